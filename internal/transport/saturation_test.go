package transport

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/herald-ws/herald/internal/hub"
	"github.com/herald-ws/herald/internal/testwait"
)

// The delivery-delay rule: late while at least minLate writes, and more
// than 1% of those of the current and previous window, took longer than
// the bound; it forgets a window two windows on.
func TestDelayWatchRule(t *testing.T) {
	ms := int64(time.Millisecond)
	w := delayWatch{bound: 50 * ms}
	now := 10 * delayWindow
	for range 2000 {
		w.observe(now, 5*ms)
	}
	if w.late(now) {
		t.Fatal("late with every write under the bound")
	}
	// 19 late writes of 2019: still under 1 %.
	for range minLate + 9 {
		w.observe(now, 51*ms)
	}
	if w.late(now) {
		t.Fatal("late at under 1 % late writes")
	}
	// 21 of 2021: over 1 %.
	for range 2 {
		w.observe(now, 51*ms)
	}
	if !w.late(now) {
		t.Fatal("not late at over 1 % late writes")
	}
	// The next window still sees the previous one's.
	if !w.late(now + delayWindow) {
		t.Fatal("the previous window was forgotten at once")
	}
	// Two windows on, the late writes are forgotten.
	if w.late(now + 2*delayWindow) {
		t.Fatal("late writes remembered for more than two windows")
	}
	// A few late writes on a quiet node (a GC pause) are no overload.
	q := delayWatch{bound: 50 * ms}
	for range minLate - 1 {
		q.observe(now, 200*ms)
	}
	if q.late(now) {
		t.Fatalf("late after %d slow writes of %d", minLate-1, minLate-1)
	}
	// Bound 0: never watched.
	off := delayWatch{}
	for range 100 {
		off.observe(now, time.Hour.Nanoseconds())
	}
	if off.late(now) {
		t.Fatal("late with the delay not watched")
	}
}

// The flush queue's oldest wait is measured from its push and gone once
// it is popped.
func TestFlushQueueWaited(t *testing.T) {
	q := newFlushQueue()
	if q.waited(100) != 0 {
		t.Fatal("an empty queue waited")
	}
	a, b := &wsConn{}, &wsConn{}
	q.push(a, 1000, false)
	q.push(b, 3000, false)
	if got := q.waited(5000); got != 4000 {
		t.Fatalf("waited %d, want 4000 (the oldest)", got)
	}
	batch, ok := q.pop(nil, 1)
	if !ok || len(batch) != 1 || batch[0] != a {
		t.Fatalf("popped %v", batch)
	}
	if got := q.waited(5000); got != 2000 {
		t.Fatalf("waited %d after the first pop, want 2000", got)
	}
	_, _ = q.pop(nil, 8)
	if q.waited(5000) != 0 {
		t.Fatal("a drained queue waited")
	}
}

// Replies are served before the bulk of a fanout, and the bulk lane gets a
// batch at least every replyRun reply batches, so neither starves.
func TestFlushQueueServesRepliesFirst(t *testing.T) {
	q := newFlushQueue()
	bulk := make([]*wsConn, 4*flushBatch)
	for i := range bulk {
		bulk[i] = &wsConn{}
		q.push(bulk[i], int64(i), false)
	}
	r := &wsConn{}
	q.push(r, 100, true)
	batch, ok := q.pop(nil, flushBatch)
	if !ok || len(batch) != 1 || batch[0] != r {
		t.Fatalf("first batch %v, want the reply alone", batch)
	}
	batch, _ = q.pop(batch, flushBatch)
	if len(batch) != flushBatch || batch[0] != bulk[0] {
		t.Fatalf("second batch %d long, want the first %d bulk connections in order", len(batch), flushBatch)
	}
	// A steady stream of replies: the bulk lane still gets every
	// (replyRun+1)th batch, in order.
	for range 2 * replyRun {
		q.push(&wsConn{}, 200, true)
	}
	next := flushBatch
	for round := range 2 {
		for i := range replyRun {
			batch, _ = q.pop(batch, 1)
			if batch[0] == bulk[next] {
				t.Fatalf("round %d: bulk served after %d replies, want %d", round, i, replyRun)
			}
		}
		batch, _ = q.pop(batch, flushBatch)
		if batch[0] != bulk[next] {
			t.Fatalf("round %d: bulk not served after %d replies in a row", round, replyRun)
		}
		next += len(batch)
	}
	if got := q.waited(300); got != 300-int64(next) {
		t.Fatalf("waited %d, want the oldest bulk entry's %d", got, 300-int64(next))
	}
}

// Saturation names the limit: the outbound bytes first, then the delay
// (a connection waiting for a flusher longer than a quarter of the bound), then
// jobs waiting for a worker; "" below every threshold.
func TestSaturationNamesTheLimit(t *testing.T) {
	s := &Server{outbound: newOutboundBudget(1000), flushq: newFlushQueue(), delays: delayWatch{bound: int64(50 * time.Millisecond)}}
	s.cfg.Epoch = time.Now()
	if got := s.Saturation(); got != "" {
		t.Fatalf("quiet node saturated by %q", got)
	}
	s.pool.waiting = append(s.pool.waiting, func() {})
	if got := s.Saturation(); got != hub.LimitWorkers {
		t.Fatalf("got %q with a job waiting, want %q", got, hub.LimitWorkers)
	}
	// Waiting for more than a quarter of the bound counts: what publishers
	// add before they hear the 503 waits behind it. Under it,
	// RefusePublish sheds a share instead (TestRefusePublishShedsAShare).
	early := &Server{outbound: newOutboundBudget(1000), flushq: newFlushQueue(), delays: delayWatch{bound: int64(50 * time.Millisecond)}}
	early.cfg.Epoch = s.cfg.Epoch
	early.flushq.push(&wsConn{}, early.clock()-(15*time.Millisecond).Nanoseconds(), false)
	if got := early.Saturation(); got != hub.LimitSaturationDelay {
		t.Fatalf("got %q with a connection waiting 15 ms for a flusher (bound 50 ms), want %q", got, hub.LimitSaturationDelay)
	}
	// Queued an hour ago (on the server's clock): far over the bound.
	s.flushq.push(&wsConn{}, s.clock()-time.Hour.Nanoseconds(), false)
	if got := s.Saturation(); got != hub.LimitSaturationDelay {
		t.Fatalf("got %q with a stale flush queue, want %q", got, hub.LimitSaturationDelay)
	}
	s.outbound.add(501)
	if got := s.Saturation(); got != hub.LimitOutboundBudget {
		t.Fatalf("got %q over half the budget, want %q", got, hub.LimitOutboundBudget)
	}
}

// The share of publishes refused near saturation: none up to
// bound/shedFromShare of flush-queue wait, then in proportion up to all
// at bound/flushWaitShare, spread evenly over the requests.
func TestShedShareRule(t *testing.T) {
	const bound = int64(100 * time.Millisecond)
	lo, hi := bound/shedFromShare, bound/flushWaitShare
	for _, c := range []struct {
		waited int64
		want   float64
	}{{0, 0}, {lo, 0}, {(lo + hi) / 2, 0.5}, {hi, 1}, {10 * hi, 1}} {
		if got := shedShareOf(c.waited, bound); got != c.want {
			t.Errorf("share at %v of wait (bound %v) = %v, want %v", time.Duration(c.waited), time.Duration(bound), got, c.want)
		}
	}
	if got := shedShareOf(time.Hour.Nanoseconds(), 0); got != 0 {
		t.Errorf("share %v with the delay not watched", got)
	}
	var sc shedCounter
	var refused []int
	for i := range 12 {
		if sc.take(0.25) {
			refused = append(refused, i)
		}
	}
	if fmt.Sprint(refused) != "[3 7 11]" {
		t.Fatalf("a share of 1/4 refused requests %v, want every 4th: [3 7 11]", refused)
	}
	if sc.take(0) || sc.take(0.5) {
		t.Fatal("a spell under the share started with a refusal left over from the last")
	}
}

// Between the start of the shedding and saturation, RefusePublish refuses
// a share of the publishes (here half of them), under saturation_delay,
// where the rule before session 6 refused all of them; a saturated node
// refuses every publish, a quiet one none. The bound is an hour so that
// the share does not move while the test runs, however slowly.
func TestRefusePublishShedsAShare(t *testing.T) {
	bound := time.Hour.Nanoseconds()
	s := &Server{outbound: newOutboundBudget(0), flushq: newFlushQueue(), delays: delayWatch{bound: bound}}
	s.cfg.Epoch = time.Now().Add(-2 * time.Hour)
	count := func() (refused int) {
		for range 100 {
			switch got := s.RefusePublish(); got {
			case "":
			case hub.LimitSaturationDelay:
				refused++
			default:
				t.Fatalf("refused under %q", got)
			}
		}
		return refused
	}
	if n := count(); n != 0 {
		t.Fatalf("a quiet node refused %d of 100 publishes", n)
	}
	lo, hi := bound/shedFromShare, bound/flushWaitShare
	s.flushq.push(&wsConn{}, s.clock()-(lo+hi)/2, false)
	if n := count(); n < 45 || n > 55 {
		t.Fatalf("halfway to saturation %d of 100 publishes were refused, want about half", n)
	}
	_, _ = s.flushq.pop(nil, 8)
	s.flushq.push(&wsConn{}, s.clock()-hi-time.Minute.Nanoseconds(), false)
	if n := count(); n != 100 {
		t.Fatalf("a saturated node refused %d of 100 publishes, want all", n)
	}
}

// PacePublish holds the answer to an accepted publish while a connection
// has waited for a flusher past bound/paceFromShare, and lets it go once
// the flushers have caught up; on a quiet node it does not hold.
func TestPacePublishHoldsUntilTheFlushersCatchUp(t *testing.T) {
	s := &Server{outbound: newOutboundBudget(0), flushq: newFlushQueue(), delays: delayWatch{bound: time.Hour.Nanoseconds()}}
	s.cfg.Epoch = time.Now().Add(-2 * time.Hour)
	quiet := make(chan struct{})
	go func() { s.PacePublish(context.Background()); close(quiet) }()
	testwait.For(t, 10*time.Second, "PacePublish to return on a quiet node", func() bool {
		select {
		case <-quiet:
			return true
		default:
			return false
		}
	})

	s.flushq.push(&wsConn{}, s.clock()-time.Hour.Nanoseconds()/paceFromShare-time.Minute.Nanoseconds(), false)
	var started, returned atomic.Int64
	go func() {
		started.Store(s.clock())
		s.PacePublish(context.Background())
		returned.Store(s.clock())
	}()
	testwait.For(t, 10*time.Second, "PacePublish to start", func() bool { return started.Load() != 0 })
	// Some time for a PacePublish that does not hold to return.
	testwait.For(t, 10*time.Second, "20 ms to pass", func() bool { return s.clock() > started.Load()+(20*time.Millisecond).Nanoseconds() })
	if returned.Load() != 0 {
		t.Fatal("the answer was not held while a connection waited for a flusher past the pace mark")
	}
	_, _ = s.flushq.pop(nil, 8)
	caughtUp := s.clock()
	testwait.For(t, 10*time.Second, "PacePublish to return once the queue is drained", func() bool { return returned.Load() != 0 })
	if returned.Load() < caughtUp {
		t.Fatal("PacePublish returned before the flushers caught up")
	}

	// A cancelled request is let go.
	ctx, cancel := context.WithCancel(context.Background())
	s.flushq.push(&wsConn{}, s.clock()-time.Hour.Nanoseconds()/2, false)
	done := make(chan struct{})
	go func() { s.PacePublish(ctx); close(done) }()
	cancel()
	testwait.For(t, 10*time.Second, "a cancelled PacePublish to return", func() bool {
		select {
		case <-done:
			return true
		default:
			return false
		}
	})
}
