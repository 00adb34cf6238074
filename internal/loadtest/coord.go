package loadtest

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// A run spread over several load-tool processes (bench/cluster-scale.sh)
// is coordinated through two files per process: each writes its
// --ready-file once its connections are subscribed, and the script, once
// every process is ready, writes the --start-file they all wait for with
// one start time, so that their measured windows coincide and their JSON
// lines can be merged (merge.go).

// writeFileAtomic writes data to path through a temporary file and a
// rename, so that a reader never sees it half written.
func writeFileAtomic(path, data string) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	_, werr := tmp.WriteString(data)
	cerr := tmp.Close()
	if err := errors.Join(werr, cerr); err != nil {
		_ = os.Remove(tmp.Name())
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		_ = os.Remove(tmp.Name())
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// parseStartTime reads a start file's content: a Unix time in
// nanoseconds, or empty for "now".
func parseStartTime(b []byte, now time.Time) (time.Time, error) {
	s := strings.TrimSpace(string(b))
	if s == "" {
		return now, nil
	}
	ns, err := strconv.ParseInt(s, 10, 64)
	if err != nil || ns <= 0 {
		return time.Time{}, fmt.Errorf("start time %q is not a Unix time in nanoseconds", s)
	}
	at := time.Unix(0, ns)
	// A start an hour away is a unit mistake (seconds, milliseconds), not
	// a plan; refuse it instead of waiting or measuring nothing.
	if d := at.Sub(now); d > time.Hour || d < -time.Hour {
		return time.Time{}, fmt.Errorf("start time %s is more than an hour from now (%s): want Unix nanoseconds", at.UTC().Format(time.RFC3339Nano), now.UTC().Format(time.RFC3339))
	}
	return at, nil
}

// waitStartFile waits until path exists, at most wait, and returns the
// start time it holds. The file is polled: it is written by a shell
// script, not by a process this one could be told by.
func waitStartFile(ctx context.Context, path string, wait time.Duration) (time.Time, error) {
	deadline := time.Now().Add(wait)
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for {
		b, err := os.ReadFile(path)
		switch {
		case err == nil:
			return parseStartTime(b, time.Now())
		case !errors.Is(err, fs.ErrNotExist):
			return time.Time{}, fmt.Errorf("read %s: %w", path, err)
		case time.Now().After(deadline):
			return time.Time{}, fmt.Errorf("%s did not appear within --start-wait %v", path, wait)
		}
		select {
		case <-ctx.Done():
			return time.Time{}, ctx.Err()
		case <-t.C:
		}
	}
}
