package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/herald-ws/herald/internal/config"
	"github.com/herald-ws/herald/internal/server"
)

// benchBin is the herald-bench binary built once by TestMain: the tests
// run the real command, so that its exit codes and streams are checked.
var benchBin string

func TestMain(m *testing.M) {
	os.Exit(buildAndRun(m))
}

func buildAndRun(m *testing.M) int {
	dir, err := os.MkdirTemp("", "herald-bench-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	benchBin = filepath.Join(dir, "herald-bench")
	if out, err := exec.Command("go", "build", "-o", benchBin, ".").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "building herald-bench: %v\n%s", err, out)
		return 1
	}
	return m.Run()
}

// bench runs herald-bench with args and returns its exit code and streams.
func bench(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var out, errb bytes.Buffer
	cmd := exec.CommandContext(ctx, benchBin, args...)
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	var exit *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &exit):
		code = exit.ExitCode()
	default:
		t.Fatalf("herald-bench %v: %v", args, err)
	}
	return code, out.String(), errb.String()
}

func TestHelpListsTheScenarios(t *testing.T) {
	code, out, _ := bench(t, "help")
	if code != 0 {
		t.Fatalf("help: exit %d", code)
	}
	for _, want := range []string{"Usage: herald-bench <scenario>", "idle", "fanout", "churn", "herald-bench help <scenario>"} {
		if !strings.Contains(out, want) {
			t.Errorf("help does not mention %q:\n%s", want, out)
		}
	}
	code, out, _ = bench(t, "help", "fanout")
	if code != 0 || !strings.Contains(out, "Usage: herald-bench fanout") || !strings.Contains(out, "-publishers") {
		t.Errorf("help fanout: exit %d\n%s", code, out)
	}
}

func TestUsageErrorsExit2(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{nil, "Usage: herald-bench"},
		{[]string{"nope"}, `herald-bench: unknown scenario "nope"`},
		{[]string{"fanout", "--no-such-flag"}, "no-such-flag"},
		{[]string{"idle", "extra"}, `herald-bench idle: unexpected argument "extra"`},
		{[]string{"idle", "--url", "ws://10.1.2.3:6001"}, "allow-remote"},
	} {
		code, out, errOut := bench(t, tc.args...)
		if code != 2 || !strings.Contains(errOut, tc.want) {
			t.Errorf("herald-bench %q: exit %d, want 2 and %q on stderr\nstdout:\n%s\nstderr:\n%s", tc.args, code, tc.want, out, errOut)
		}
	}
}

// startHerald runs a Herald node (the development app) in this process on
// a free loopback port and returns its address.
func startHerald(t *testing.T) string {
	t.Helper()
	cfg := config.Default()
	cfg.Host = "127.0.0.1"
	cfg.Port = 0
	cfg.ShutdownTimeout = 2 * time.Second
	srv, err := server.New(cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	addrc := make(chan string, 1)
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx, func(a net.Addr) { addrc <- a.String() }) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("server: %v", err)
		}
	})
	select {
	case addr := <-addrc:
		return addr
	case err := <-done:
		t.Fatalf("server stopped at start: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("server did not start")
	}
	return ""
}

// result is the part of the JSON line these tests read.
type result struct {
	Scenario      string   `json:"scenario"`
	OK            bool     `json:"ok"`
	Verdict       string   `json:"verdict"`
	Connections   int64    `json:"connections"`
	ConnectErrors int64    `json:"connect_errors"`
	DeliveryRatio *float64 `json:"delivery_ratio"`
	Cycles        int64    `json:"cycles"`
	ServerPID     int      `json:"server_pid"`
}

// lastJSON decodes the last stdout line, which is always the JSON result.
func lastJSON(t *testing.T, stdout string) result {
	t.Helper()
	lines := strings.Split(strings.TrimSpace(stdout), "\n")
	var r result
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &r); err != nil {
		t.Fatalf("last stdout line is not JSON: %v\n%s", err, stdout)
	}
	return r
}

// TestScenariosAgainstHerald runs each scenario briefly against a real
// Herald node: the table and the JSON line on stdout, exit 0.
func TestScenariosAgainstHerald(t *testing.T) {
	addr := startHerald(t)
	pid := strconv.Itoa(os.Getpid())
	target := []string{"--url", "ws://" + addr, "--server-pid", pid}
	for _, tc := range []struct {
		scenario string
		args     []string
		check    func(result) string
	}{
		{"idle", []string{"--conns", "20", "--channels", "4", "--settle", "100ms"}, func(r result) string {
			if r.Connections != 20 {
				return fmt.Sprintf("connections %d, want 20", r.Connections)
			}
			return ""
		}},
		{"fanout", []string{"--api", "http://" + addr, "--subscribers", "20", "--channels", "2", "--publishers", "1",
			"--rate", "50", "--duration", "1s", "--warmup", "200ms", "--drain", "5s"}, func(r result) string {
			if r.DeliveryRatio == nil || *r.DeliveryRatio != 1 {
				return fmt.Sprintf("delivery ratio %v, want 1", r.DeliveryRatio)
			}
			return ""
		}},
		{"churn", []string{"--conns", "2", "--channels", "2", "--duration", "500ms", "--warmup", "100ms"}, func(r result) string {
			if r.Cycles == 0 {
				return "no cycle"
			}
			return ""
		}},
	} {
		t.Run(tc.scenario, func(t *testing.T) {
			args := append(append([]string{tc.scenario}, target...), append(tc.args, "--progress", "0")...)
			code, out, errOut := bench(t, args...)
			r := lastJSON(t, out)
			if code != 0 || !r.OK || r.Scenario != tc.scenario || r.ConnectErrors != 0 || r.ServerPID != os.Getpid() {
				t.Fatalf("exit %d, %+v\nstdout:\n%s\nstderr:\n%s", code, r, out, errOut)
			}
			if !strings.Contains(out, "herald-bench "+tc.scenario+" against ws://"+addr) {
				t.Errorf("no summary table:\n%s", out)
			}
			if msg := tc.check(r); msg != "" {
				t.Errorf("%s\nstdout:\n%s\nstderr:\n%s", msg, out, errOut)
			}
		})
	}
}

// TestJSONPrintsOnlyTheJSONLine: --json, as the bench scripts use it.
func TestJSONPrintsOnlyTheJSONLine(t *testing.T) {
	addr := startHerald(t)
	code, out, errOut := bench(t, "idle", "--url", "ws://"+addr, "--conns", "5", "--channels", "1", "--settle", "0s", "--json")
	if code != 0 || strings.Count(out, "\n") != 1 || !lastJSON(t, out).OK {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
}

// TestNoServerFailsWithExit1: a run that connects nothing fails (exit 1)
// and still prints its JSON line.
func TestNoServerFailsWithExit1(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now: every connect is refused
	code, out, errOut := bench(t, "idle", "--url", "ws://"+addr, "--conns", "5", "--settle", "0s", "--json")
	if r := lastJSON(t, out); code != 1 || r.OK || r.ConnectErrors == 0 {
		t.Fatalf("exit %d, %+v\nstderr:\n%s", code, r, errOut)
	}
}
