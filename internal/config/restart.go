package config

import (
	"os"
	"path/filepath"
	"strings"
	"time"
)

// DefaultRestartTimeout is the default of restart_timeout.
const DefaultRestartTimeout = time.Minute

// restartRule is the range of a key of restarts in place (docs/restarts.md).
func restartRule(key string) (rule, bool) {
	if key == "restart_timeout" {
		return rule{expect: `a duration between 1s and 10m (e.g. "30s", "2m", or 30 for seconds)`, min: int64(time.Second), max: int64(10 * time.Minute)}, true
	}
	return rule{}, false
}

// restartFlagHelp is the usage line of a restart key's flag.
func restartFlagHelp(key string) (string, bool) {
	switch key {
	case "pid_file":
		return "write the `file` with the PID of the process that serves (after a restart with SIGHUP, the new one's); removed at exit", true
	case "restart_timeout":
		return "on SIGHUP, keep serving if the new process is not ready within this `duration` (e.g. 30s, 2m, or 30 for seconds)", true
	}
	return "", false
}

// restart checks pid_file: a file name in a directory that exists.
func (v *validator) restart(c *Config) {
	if c.PIDFile == "" {
		return
	}
	name := filepath.Base(c.PIDFile)
	if strings.HasSuffix(c.PIDFile, "/") || name == "." || name == ".." {
		v.add("pid_file", "must be a file name (e.g. /run/herald/herald.pid), got %q", c.PIDFile)
		return
	}
	dir := filepath.Dir(c.PIDFile)
	st, err := os.Stat(dir)
	switch {
	case err != nil:
		v.add("pid_file", "the directory %s does not exist (create it, e.g. systemd's RuntimeDirectory=herald for /run/herald)", dir)
	case !st.IsDir():
		v.add("pid_file", "%s is not a directory", dir)
	}
	if st, err := os.Stat(c.PIDFile); err == nil && st.IsDir() {
		v.add("pid_file", "%s is a directory; name a file in it (e.g. %s)", c.PIDFile, filepath.Join(c.PIDFile, "herald.pid"))
	}
}
