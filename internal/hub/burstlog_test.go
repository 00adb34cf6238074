package hub

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"strconv"
	"sync"
	"testing"
)

// logLines is a slog JSON handler's output, split into records.
type logLines struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logLines) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

// with returns the records whose msg is msg.
func (l *logLines) with(t *testing.T, msg string) []map[string]any {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []map[string]any
	for _, line := range bytes.Split(bytes.TrimSpace(l.buf.Bytes()), []byte("\n")) {
		var r map[string]any
		if err := json.Unmarshal(line, &r); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		if r["msg"] == msg {
			out = append(out, r)
		}
	}
	return out
}

// A mass disconnect while the State is down: every removal fails, and
// the hub logs the first failure and then one line with the count of the
// others when the interval ends, not a line per removal.
func TestFailedRemovalsLogOneLinePerInterval(t *testing.T) {
	var (
		fs  *flakyState
		out logLines
	)
	e := newEnv(t, nil, func(o *Options) {
		fs = &flakyState{State: newMemoryState(o.Now)}
		o.State = fs
		o.Logger = slog.New(slog.NewJSONHandler(&out, nil))
	})
	const n = 200
	var cs []*Client
	for i := range n {
		c, fc := e.connect()
		e.sub(c, fc, "room-"+strconv.Itoa(i%7), "")
		cs = append(cs, c)
	}
	const msg = "unsubscribe: state unavailable, will retry"
	fs.down.Store(true)
	for _, c := range cs[:n/2] {
		c.Closed()
	}
	if got := out.with(t, msg); len(got) != 1 {
		t.Fatalf("%d lines for %d failed removals, want 1 until the interval ends", len(got), n/2)
	}
	e.h.burst.Flush(false)
	if got := out.with(t, msg); len(got) != 1 {
		t.Fatalf("%d lines before the interval ended, want 1", len(got))
	}
	e.clk.Advance(burstInterval)
	e.h.burst.Flush(false)
	got := out.with(t, msg)
	if len(got) != 2 || got[1]["more"] != float64(n/2-1) || got[1]["app_id"] != e.app.ID {
		t.Fatalf("after the interval: %v, want a second line with more=%d", got, n/2-1)
	}
	// The next interval starts with its first failure, logged at once; its
	// count comes when the hub stops.
	for _, c := range cs[n/2:] {
		c.Closed()
	}
	if got := out.with(t, msg); len(got) != 3 || got[2]["more"] != nil {
		t.Fatalf("the next interval's first failure: %v", got)
	}
	ctx, stop := context.WithCancel(context.Background())
	stop()
	if err := e.h.Run(ctx); err != nil { // the hub's timers stop at once
		t.Fatal(err)
	}
	if got := out.with(t, msg); len(got) != 4 || got[3]["more"] != float64(n/2-1) {
		t.Fatalf("at the stop: %v", got)
	}
	if e.h.Ghosts() != n {
		t.Fatalf("%d ghosts, want %d: the removals are retried, only their logs are counted", e.h.Ghosts(), n)
	}
}
