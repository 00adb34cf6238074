package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func TestHelpExplainsEveryCommand(t *testing.T) {
	var out, errOut bytes.Buffer
	if code := run([]string{"help"}, &out, &errOut); code != 0 {
		t.Fatalf("help exit %d", code)
	}
	for _, want := range []string{"serve", "version", "config check", "config import soketi", "HERALD_"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("help does not mention %q:\n%s", want, out.String())
		}
	}
}

func TestServeHelpListsFlags(t *testing.T) {
	var out, errOut bytes.Buffer
	if code := run([]string{"serve", "--help"}, &out, &errOut); code != 0 {
		t.Fatalf("serve --help exit %d", code)
	}
	for _, want := range []string{"-config", "-port", "-host", "HERALD_PORT", "-shutdown-timeout"} {
		if !strings.Contains(errOut.String(), want) {
			t.Errorf("serve --help does not mention %q:\n%s", want, errOut.String())
		}
	}
}

func TestVersion(t *testing.T) {
	var out, errOut bytes.Buffer
	if code := run([]string{"version"}, &out, &errOut); code != 0 || !strings.HasPrefix(out.String(), "herald ") {
		t.Fatalf("version: exit %d, %q", code, out.String())
	}
}

func TestUnknownCommandIsUsageError(t *testing.T) {
	var out, errOut bytes.Buffer
	if code := run([]string{"frobnicate"}, &out, &errOut); code != 2 {
		t.Fatalf("exit %d, want 2", code)
	}
	if !strings.Contains(errOut.String(), `unknown command "frobnicate"`) {
		t.Fatalf("stderr: %s", errOut.String())
	}
}

func TestInvalidConfigNamesFileAndKey(t *testing.T) {
	path := filepath.Join(t.TempDir(), "herald.yaml")
	if err := os.WriteFile(path, []byte("port: 6001\napps:\n  - id: a\n    key: k\n    secret: s\n    max_connections: 0\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var out, errOut bytes.Buffer
	if code := run([]string{"serve", "--config", path}, &out, &errOut); code != 2 {
		t.Fatalf("exit %d, want 2; stderr %s", code, errOut.String())
	}
	msg := errOut.String()
	if !strings.Contains(msg, path+" line 6") || !strings.Contains(msg, "max_connections") {
		t.Fatalf("error does not name the file, the line and the key:\n%s", msg)
	}
}

func TestBadFlagValueIsUsageError(t *testing.T) {
	var out, errOut bytes.Buffer
	if code := run([]string{"serve", "--port", "seventy"}, &out, &errOut); code != 2 {
		t.Fatalf("exit %d, want 2", code)
	}
	if !strings.Contains(errOut.String(), "--port") {
		t.Fatalf("error does not name the flag:\n%s", errOut.String())
	}
}

// TestGoInstallable: `go install github.com/herald-ws/herald/cmd/herald@latest`
// (docs/laravel.md) works only while the module's go.mod has no replace
// directive; Go refuses it otherwise.
func TestGoInstallable(t *testing.T) {
	b, err := os.ReadFile("../../go.mod")
	if err != nil {
		t.Fatal(err)
	}
	for i, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) > 0 && (f[0] == "replace" || f[0] == "exclude") {
			t.Errorf("go.mod:%d: %q makes `go install …/cmd/herald@version` fail", i+1, line)
		}
	}
}

// TestBenchPointsToHeraldBench: the load tool left the server for its own
// binary; `herald bench` (and its help) says where it went.
func TestBenchPointsToHeraldBench(t *testing.T) {
	for _, args := range [][]string{{"bench"}, {"bench", "fanout", "--subscribers", "10"}, {"help", "bench"}} {
		var out, errOut bytes.Buffer
		if code := run(args, &out, &errOut); code != 2 {
			t.Errorf("herald %q: exit %d, want 2", args, code)
		}
		msg := errOut.String()
		if strings.Count(msg, "\n") != 1 || !strings.Contains(msg, "herald-bench") ||
			!strings.Contains(msg, "bin/herald-bench") || !strings.Contains(msg, "go install github.com/herald-ws/herald/cmd/herald-bench@latest") {
			t.Errorf("herald %q: stderr is not the one-line pointer to herald-bench:\n%s", args, msg)
		}
		if out.Len() != 0 {
			t.Errorf("herald %q: stdout %q", args, out.String())
		}
	}
}

// TestHeraldDoesNotLinkTheLoadTool: the server binary leaves out the load
// tool (cmd/herald-bench) and the WebSocket client libraries only it
// uses, on every platform Herald builds for.
func TestHeraldDoesNotLinkTheLoadTool(t *testing.T) {
	banned := []string{
		"github.com/herald-ws/herald/internal/loadtest",
		"github.com/gorilla/websocket",
		"github.com/gobwas/ws",
	}
	for _, goos := range []string{"linux", "darwin", "windows"} {
		cmd := exec.Command("go", "list", "-deps", ".")
		cmd.Env = append(os.Environ(), "GOOS="+goos)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("GOOS=%s go list -deps: %v\n%s", goos, err, stderr.String())
		}
		deps := strings.Fields(string(out))
		if len(deps) < 50 {
			t.Fatalf("GOOS=%s go list -deps lists only %d packages:\n%s", goos, len(deps), out)
		}
		for _, dep := range deps {
			for _, b := range banned {
				if dep == b || strings.HasPrefix(dep, b+"/") {
					t.Errorf("GOOS=%s: herald links %s", goos, dep)
				}
			}
		}
	}
}
