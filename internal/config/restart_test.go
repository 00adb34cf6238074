package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestPIDFileAndRestartTimeout(t *testing.T) {
	dir := t.TempDir()
	pid := filepath.Join(dir, "herald.pid")
	c := mustLoad(t, Source{File: writeConfig(t, "pid_file: "+pid+"\nrestart_timeout: 30\n")})
	if c.PIDFile != pid || c.RestartTimeout != 30*time.Second {
		t.Fatalf("pid_file %q restart_timeout %v", c.PIDFile, c.RestartTimeout)
	}
	c = mustLoad(t, Source{Env: env(map[string]string{"HERALD_PID_FILE": pid})})
	if c.PIDFile != pid || c.RestartTimeout != DefaultRestartTimeout {
		t.Fatalf("from env: pid_file %q restart_timeout %v", c.PIDFile, c.RestartTimeout)
	}

	notDir := filepath.Join(dir, "file")
	if err := os.WriteFile(notDir, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct{ yaml, want string }{
		{"pid_file: " + filepath.Join(dir, "missing", "herald.pid"), "pid_file: the directory " + filepath.Join(dir, "missing") + " does not exist"},
		{"pid_file: " + filepath.Join(notDir, "herald.pid"), "pid_file: " + notDir + " is not a directory"},
		{"pid_file: " + dir, "pid_file: " + dir + " is a directory"},
		{"pid_file: " + dir + "/", "pid_file: must be a file name"},
		{"restart_timeout: 0", "restart_timeout: must be a duration between 1s and 10m"},
		{"restart_timeout: 1h", "restart_timeout: must be a duration between 1s and 10m"},
	} {
		p := writeConfig(t, tt.yaml+"\n")
		_, err := Load(Source{File: p})
		if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), p) {
			t.Errorf("%s: err = %v, want the file and %q", tt.yaml, err, tt.want)
		}
	}
	// The flag's help names the env variable.
	if h := flagUsage(t, "pid_file"); !strings.Contains(h, "`file`") {
		t.Errorf("pid_file help: %q", h)
	}
}
