// Package testwait is how Herald's tests wait for something to happen: they
// poll a condition until it holds or a deadline passes, never sleep a fixed
// time. Only tests import it.
package testwait

import (
	"runtime"
	"testing"
	"time"
)

// maxPoll bounds the pause between two looks at a condition: short enough
// that a test waits little past the moment the condition holds.
const maxPoll = 10 * time.Millisecond

// Until polls cond until it holds (true) or d passes (false). The first
// looks come quickly and the pause grows to maxPoll, so that conditions
// that hold soon cost little and slow ones do not spin.
func Until(d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	pause := 100 * time.Microsecond
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(pause)
		pause = min(2*pause, maxPoll)
	}
	return true
}

// For polls cond like Until and fails tb, naming what it waited for, when
// d passes first.
func For(tb testing.TB, d time.Duration, what string, cond func() bool) {
	tb.Helper()
	if !Until(d, cond) {
		tb.Fatalf("timed out after %v waiting for %s", d, what)
	}
}

// Goroutines waits until no more than before goroutines run, failing tb
// with the stacks of those left when d passes first: what a test started
// must be gone once it is stopped.
func Goroutines(tb testing.TB, d time.Duration, before int) {
	tb.Helper()
	if Until(d, func() bool { return runtime.NumGoroutine() <= before }) {
		return
	}
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	tb.Fatalf("%d goroutines left, %d before:\n%s", runtime.NumGoroutine(), before, buf)
}
