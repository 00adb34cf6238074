package config

import (
	"os"
	"path/filepath"
	"strings"
	"time"
)

// DefaultRestartTimeout is the default of restart_timeout.
const DefaultRestartTimeout = time.Minute

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
