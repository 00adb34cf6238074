package heraldtest

import (
	"bufio"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"
)

// RedisAddr is the Redis the cluster tests use; a missing Redis fails them.
const RedisAddr = "127.0.0.1:6379"

// Redis returns the YAML server settings that put a node on the test Redis
// under a key prefix of the test's own (so parallel runs never share keys)
// and deletes the prefix's keys when the test ends.
func Redis(tb testing.TB) (serverYAML string) {
	tb.Helper()
	if _, err := redisCmd("PING"); err != nil {
		tb.Fatalf("Redis at %s is required: %v", RedisAddr, err)
	}
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	prefix := "herald-sdk-test:" + hex.EncodeToString(b) + ":"
	tb.Cleanup(func() {
		if err := DeleteRedisKeys(prefix + "*"); err != nil {
			tb.Logf("deleting %s*: %v", prefix, err)
		}
	})
	return fmt.Sprintf("redis_url: redis://%s/0\nredis_prefix: %q\n", RedisAddr, prefix)
}

// DeleteRedisKeys deletes every key matching pattern (SCAN + DEL).
func DeleteRedisKeys(pattern string) error {
	cursor := "0"
	for {
		reply, err := redisCmd("SCAN", cursor, "MATCH", pattern, "COUNT", "1000")
		if err != nil {
			return err
		}
		arr, ok := reply.([]any)
		if !ok || len(arr) != 2 {
			return fmt.Errorf("SCAN: unexpected reply %v", reply)
		}
		keys, _ := arr[1].([]any)
		if len(keys) > 0 {
			args := []string{"DEL"}
			for _, k := range keys {
				args = append(args, fmt.Sprint(k))
			}
			if _, err := redisCmd(args...); err != nil {
				return err
			}
		}
		cursor = fmt.Sprint(arr[0])
		if cursor == "0" {
			return nil
		}
	}
}

// redisCmd sends one command over RESP and reads its reply (strings,
// integers, arrays; an error reply is an error).
func redisCmd(args ...string) (any, error) {
	c, err := net.DialTimeout("tcp", RedisAddr, 2*time.Second)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	var b strings.Builder
	fmt.Fprintf(&b, "*%d\r\n", len(args))
	for _, a := range args {
		fmt.Fprintf(&b, "$%d\r\n%s\r\n", len(a), a)
	}
	if _, err := c.Write([]byte(b.String())); err != nil {
		return nil, err
	}
	return readRESP(bufio.NewReader(c))
}

func readRESP(r *bufio.Reader) (any, error) {
	line, err := r.ReadString('\n')
	if err != nil {
		return nil, err
	}
	line = strings.TrimSuffix(line, "\r\n")
	if line == "" {
		return nil, errors.New("empty RESP line")
	}
	switch line[0] {
	case '+':
		return line[1:], nil
	case '-':
		return nil, errors.New(line[1:])
	case ':':
		return strconv.ParseInt(line[1:], 10, 64)
	case '$':
		n, err := strconv.Atoi(line[1:])
		if err != nil || n < 0 {
			return nil, err
		}
		buf := make([]byte, n+2)
		if _, err := io.ReadFull(r, buf); err != nil {
			return nil, err
		}
		return string(buf[:n]), nil
	case '*':
		n, err := strconv.Atoi(line[1:])
		if err != nil || n < 0 {
			return nil, err
		}
		out := make([]any, n)
		for i := range out {
			if out[i], err = readRESP(r); err != nil {
				return nil, err
			}
		}
		return out, nil
	}
	return nil, fmt.Errorf("unexpected RESP %q", line)
}
