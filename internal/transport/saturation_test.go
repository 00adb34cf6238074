package transport

import (
	"testing"
	"time"

	"github.com/herald-ws/herald/internal/hub"
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
	// Waiting for 30% of the bound already counts: what publishers add
	// before they hear the 503 waits behind it.
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
