package loadtest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"strings"
	"syscall"
	"testing"

	"github.com/gorilla/websocket"
)

func TestParseSourceIPs(t *testing.T) {
	ok := []struct {
		in   string
		n    int
		head string
		tail string
	}{
		{"", 0, "", ""},
		{"127.0.0.1-127.0.0.20", 20, "127.0.0.1", "127.0.0.20"},
		{"127.0.0.1-20", 20, "127.0.0.1", "127.0.0.20"},
		{"127.0.0.250-127.0.1.4", 11, "127.0.0.250", "127.0.1.4"},
		{"127.0.0.0/30", 4, "127.0.0.0", "127.0.0.3"},
		{"127.0.0.2, 127.0.0.3,127.0.0.2", 2, "127.0.0.2", "127.0.0.3"},
		{"::1", 1, "::1", "::1"},
		{"127.0.0.5-5", 1, "127.0.0.5", "127.0.0.5"},
	}
	for _, c := range ok {
		got, err := parseSourceIPs(c.in)
		if err != nil {
			t.Errorf("%q: %v", c.in, err)
			continue
		}
		if len(got) != c.n {
			t.Errorf("%q: %d addresses, want %d", c.in, len(got), c.n)
			continue
		}
		if c.n > 0 && (got[0].String() != c.head || got[len(got)-1].String() != c.tail) {
			t.Errorf("%q: %v..%v", c.in, got[0], got[len(got)-1])
		}
	}
	for _, bad := range []string{"127.0.0.20-127.0.0.1", "127.0.0.1-300", "foo", "127.0.0.1-bar", "::1-::5", "127.0.0.0/8", "10.0.0.0/33", "127.0.0.1-127.255.255.255"} {
		if _, err := parseSourceIPs(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestLoopbackGuard(t *testing.T) {
	ctx := context.Background()
	resolver := func(_ context.Context, host string) ([]netip.Addr, error) {
		switch host {
		case "loop.test":
			return []netip.Addr{netip.MustParseAddr("127.0.0.7"), netip.MustParseAddr("::1")}, nil
		case "mixed.test":
			return []netip.Addr{netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("192.168.1.10")}, nil
		case "remote.test":
			return []netip.Addr{netip.MustParseAddr("93.184.216.34")}, nil
		}
		return nil, errors.New("no such host")
	}
	for _, u := range []string{"ws://127.0.0.1:6001", "ws://localhost:6001", "http://[::1]:6001", "wss://127.3.2.1", "http://loop.test:80/prefix", "ws://[::ffff:127.0.0.1]:1"} {
		if err := checkTargets(ctx, false, resolver, u); err != nil {
			t.Errorf("%s refused: %v", u, err)
		}
	}
	for _, u := range []string{"ws://10.0.0.1:6001", "http://192.168.1.1", "ws://mixed.test", "ws://remote.test", "ws://unknown.test", "ws://0.0.0.0:6001", "ftp://127.0.0.1", "ws://:6001"} {
		err := checkTargets(ctx, false, resolver, u)
		if err == nil {
			t.Errorf("%s allowed", u)
		}
	}
	if err := checkTargets(ctx, false, resolver, "ws://remote.test"); err == nil || !strings.Contains(err.Error(), "--allow-remote") {
		t.Errorf("error does not name --allow-remote: %v", err)
	}
	if err := checkTargets(ctx, true, resolver, "ws://remote.test:6001", "http://10.0.0.1"); err != nil {
		t.Errorf("--allow-remote: %v", err)
	}
	if err := checkSources(false, []netip.Addr{netip.MustParseAddr("127.0.0.2")}); err != nil {
		t.Error(err)
	}
	if err := checkSources(false, []netip.Addr{netip.MustParseAddr("10.0.0.2")}); err == nil {
		t.Error("non-loopback source allowed")
	}
	if !isLoopbackTarget("ws://127.0.0.1:6001") || isLoopbackTarget("ws://localhost:6001") || isLoopbackTarget("ws://10.0.0.1") {
		t.Error("isLoopbackTarget")
	}
}

func TestWSURL(t *testing.T) {
	o := defaultOptions("idle")
	o.URL = "ws://127.0.0.1:6001/ws/, ws://127.0.0.2:6002"
	o.ServerPIDs = "12,34"
	if err := o.validate("idle"); err != nil {
		t.Fatal(err)
	}
	got := o.wsURLs()
	want := []string{
		"ws://127.0.0.1:6001/ws/app/app-key?protocol=7&client=herald-bench&version=1.0&flash=false",
		"ws://127.0.0.2:6002/app/app-key?protocol=7&client=herald-bench&version=1.0&flash=false",
	}
	if len(got) != 2 || got[0] != want[0] || got[1] != want[1] {
		t.Errorf("wsURLs %q, want %q", got, want)
	}
	if p, err := targetPort(o.urls[0]); err != nil || p != 6001 {
		t.Error(p, err)
	}
	if len(o.pids) != 2 || o.pids[0] != 12 || o.pids[1] != 34 {
		t.Errorf("pids %v", o.pids)
	}
	for _, bad := range []struct{ field, value string }{
		{"url", " , "}, {"api", "ftp://x"}, {"pid", "12,x"}, {"pid", "-3"},
	} {
		o := defaultOptions("fanout")
		switch bad.field {
		case "url":
			o.URL = bad.value
		case "api":
			o.API = bad.value
		case "pid":
			o.ServerPIDs = bad.value
		}
		if err := o.validate("fanout"); err == nil {
			t.Errorf("--%s %q accepted", bad.field, bad.value)
		}
	}
}

func TestErrKind(t *testing.T) {
	code := 4001
	cases := map[string]error{
		"handshake: pusher:error 4001":         &pusherError{Event: "pusher:error", Code: &code, Message: "Application does not exist"},
		"connect: timeout":                     context.DeadlineExceeded,
		"connect: out of local ports":          errNoSourcePorts,
		"connect: connection refused":          syscall.ECONNREFUSED,
		"subscribe: closed 4200":               &websocket.CloseError{Code: 4200},
		"connect: connection closed by server": io.ErrUnexpectedEOF,
	}
	for want, err := range cases {
		stage, _, _ := strings.Cut(want, ":")
		if got := errKind(stage, err); got != want {
			t.Errorf("errKind(%v) = %q, want %q", err, got, want)
		}
	}
	var e errorCounter
	for i := 0; i < maxErrorKinds+10; i++ {
		e.add(fmt.Sprintf("kind %d", i))
	}
	if len(e.snapshot()) > maxErrorKinds+1 || e.total() != maxErrorKinds+10 {
		t.Errorf("error kinds not bounded: %d kinds, %d total", len(e.snapshot()), e.total())
	}
}
