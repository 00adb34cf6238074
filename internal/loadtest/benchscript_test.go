//go:build linux

package loadtest

import (
	"errors"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestClusterScaleScriptArguments runs bench/cluster-scale.sh's argument
// handling, which ends before anything is built or started: --help
// documents every flag, and a wrong value exits 2 with a message naming
// it instead of starting a 100,000-connection run with it.
func TestClusterScaleScriptArguments(t *testing.T) {
	script, err := filepath.Abs("../../bench/cluster-scale.sh")
	if err != nil {
		t.Fatal(err)
	}
	run := func(args ...string) (string, int) {
		cmd := exec.Command("bash", append([]string{script}, args...)...)
		cmd.Env = append(cmd.Environ(), "HERALD_BIN=/nonexistent/herald", "HERALD_BENCH_BIN=/nonexistent/herald-bench")
		out, err := cmd.CombinedOutput()
		var ee *exec.ExitError
		switch {
		case err == nil:
			return string(out), 0
		case errors.As(err, &ee):
			return string(out), ee.ExitCode()
		}
		t.Fatalf("run %v: %v", args, err)
		return "", -1
	}
	out, code := run("--help")
	if code != 0 {
		t.Fatalf("--help: exit %d\n%s", code, out)
	}
	for _, flag := range []string{"--nodes", "--conns", "--loaders", "--channels", "--rate", "--publishers", "--duration", "--warmup", "--payload", "--connect-rate", "--subscription-count", "--small", "--out", "HERALD_BIN", "BENCH_PORT"} {
		if !strings.Contains(out, flag) {
			t.Errorf("--help does not mention %s", flag)
		}
	}
	if strings.Contains(out, "set -euo") {
		t.Error("--help prints the script's code")
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--nodes", "x"}, "--nodes x: want a whole number"},
		{[]string{"--nodes=six"}, "--nodes six: want a whole number"},
		{[]string{"--conns"}, "--conns needs a value"},
		{[]string{"--duration", "60"}, "--duration 60: want a duration"},
		{[]string{"--warmup=5 s"}, "--warmup 5 s: want a duration"},
		{[]string{"--loaders", "0"}, "--loaders must be between 1 and 60"},
		{[]string{"--nodes", "0"}, "--nodes must be at least 1"},
		{[]string{"--publishers", "0"}, "--publishers must be at least 1"},
		{[]string{"--bogus"}, "unknown argument --bogus"},
	} {
		out, code := run(tc.args...)
		if code != 2 || !strings.Contains(out, tc.want) {
			t.Errorf("%v: exit %d, output %q; want exit 2 and %q", tc.args, code, out, tc.want)
		}
	}
	// More connections per process than the open-file limit allows is
	// refused up front (when the hard limit is finite).
	if lim, err := exec.Command("bash", "-c", "ulimit -Hn").Output(); err == nil && strings.TrimSpace(string(lim)) != "unlimited" {
		out, code := run("--conns", "2000000000", "--loaders", "1")
		if code != 2 || !strings.Contains(out, "do not fit the open-file limit") {
			t.Errorf("2e9 connections in one process: exit %d, %q", code, out)
		}
	}
}
