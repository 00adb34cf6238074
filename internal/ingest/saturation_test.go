package ingest

import (
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/herald-ws/herald/internal/apps"
	"github.com/herald-ws/herald/internal/testwait"
)

// While the node is saturated, ingested messages wait at most
// SaturatedWait per saturated spell, then are dropped: counted as
// "saturated", refused under the limit that saturates the node, logged
// once (sampled); when the node is no longer saturated they pass again.
func TestIngestObeysSaturation(t *testing.T) {
	p := randomPrefix(t)
	var limit atomic.Value
	limit.Store("saturation_delay")
	var asked atomic.Int64
	r := startRig(t, []apps.App{testApp("a1", p)}, func(o *Options) {
		o.LogEvery = time.Hour
		o.SaturatedWait = 50 * time.Millisecond
		o.Saturation = func() string {
			asked.Add(1)
			return limit.Load().(string)
		}
	})
	r.waitActive(t, "a1")
	const n = 5
	for i := range n {
		r.publish(t, p+"c", laravelPayload(fmt.Sprint("e", i), `"a":1`, ""))
	}
	testwait.For(t, 10*time.Second, "every message handled", func() bool { return r.cnt.total() == n })
	if got := r.cnt.get(ResultSaturated); got != n {
		t.Fatalf("%d saturated of %d, want all", got, n)
	}
	if got := r.pub.list(); len(got) != 0 {
		t.Fatalf("published %+v while saturated", got)
	}
	r.cnt.mu.Lock()
	refused := r.cnt.refused["saturation_delay"]
	r.cnt.mu.Unlock()
	if refused != n {
		t.Fatalf("%d refusals under saturation_delay, want %d", refused, n)
	}
	// One spell, one wait: the first message polled the signal for
	// SaturatedWait, the others were dropped at once (one look each).
	if a := asked.Load(); a > n+int64(50*time.Millisecond/saturatedPoll)+2 {
		t.Errorf("the signal was read %d times: every message waited", a)
	}
	if logs := r.logs.String(); strings.Count(logs, "message not published") != 1 || !strings.Contains(logs, "result=saturated") {
		t.Errorf("want one sampled log line with result=saturated:\n%s", logs)
	}
	// The spell ends: messages pass again.
	limit.Store("")
	r.publish(t, p+"c", laravelPayload("after", `"a":1`, ""))
	testwait.For(t, 10*time.Second, "published after the spell", func() bool { return len(r.pub.list()) == 1 })
}

// A message that finds the node saturated is held, not dropped, when the
// node recovers within SaturatedWait.
func TestIngestHoldsThroughShortSaturation(t *testing.T) {
	p := randomPrefix(t)
	var saturated atomic.Bool
	saturated.Store(true)
	held := make(chan struct{})
	var once atomic.Bool
	r := startRig(t, []apps.App{testApp("a1", p)}, func(o *Options) {
		o.SaturatedWait = time.Minute
		o.Saturation = func() string {
			if !saturated.Load() {
				return ""
			}
			if once.CompareAndSwap(false, true) {
				close(held)
			}
			return "outbound_budget_mb"
		}
	})
	r.waitActive(t, "a1")
	r.publish(t, p+"c", laravelPayload("held", `"a":1`, ""))
	select {
	case <-held:
	case <-time.After(10 * time.Second):
		t.Fatal("the message never looked at the signal")
	}
	if r.cnt.total() != 0 {
		t.Fatal("handled while saturated")
	}
	saturated.Store(false)
	testwait.For(t, 10*time.Second, "published once the node recovers", func() bool { return r.cnt.get(ResultPublished) == 1 })
	if len(r.pub.list()) != 1 || r.cnt.get(ResultSaturated) != 0 {
		t.Fatalf("published %d, %d saturated", len(r.pub.list()), r.cnt.get(ResultSaturated))
	}
}
