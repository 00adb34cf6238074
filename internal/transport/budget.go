package transport

import (
	"cmp"
	"context"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/herald-ws/herald/internal/hub"
	"github.com/herald-ws/herald/internal/protocol"
)

// outboundBudget counts the bytes queued for every connection of the node
// (frames waiting for a flusher plus what the socket layer holds), above
// the per-connection bound. Past the budget the shedder closes the
// connections holding the most bytes (slow consumers first) until the
// total is under the low-water mark; past the saturation mark publishers
// are told to come back later (Server.Saturated).
type outboundBudget struct {
	bytes atomic.Int64
	shed  atomic.Int64 // connections closed by the shedder

	limit      int64 // 0: no budget
	lowWater   int64 // shedding stops at or below it (3/4 of the limit)
	saturateAt int64 // Saturated from here on (1/2 of the limit)
	wake       chan struct{}
}

func newOutboundBudget(limit int64) *outboundBudget {
	b := &outboundBudget{wake: make(chan struct{}, 1)}
	if limit > 0 {
		b.limit = limit
		b.lowWater = limit / 4 * 3
		b.saturateAt = limit / 2
	}
	return b
}

// add counts n bytes queued (or, negative, written or dropped) and wakes
// the shedder when the total passes the budget. It never blocks.
func (b *outboundBudget) add(n int64) {
	v := b.bytes.Add(n)
	if n > 0 && b.limit > 0 && v > b.limit {
		select {
		case b.wake <- struct{}{}:
		default:
		}
	}
}

// OutboundBytes returns the bytes queued for all connections of the node.
func (s *Server) OutboundBytes() int64 { return s.outbound.bytes.Load() }

// ShedConnections returns how many connections were closed because the
// node's outbound budget was spent.
func (s *Server) ShedConnections() int64 { return s.outbound.shed.Load() }

// OutboundBudget returns the node's outbound budget in bytes (0: none).
func (s *Server) OutboundBudget() int64 { return s.outbound.limit }

// Saturated reports whether publishers should retry later instead of
// adding to what the node holds (Saturation says why).
func (s *Server) Saturated() bool { return s.Saturation() != "" }

// Saturation is the node's one saturation signal, which the HTTP API (503,
// through RefusePublish) and ingestion (wait, then drop) obey. It returns
// the config key of the limit that makes the node saturated, "" when none
// does; each covers a stage where accepted publishes can wait:
//   - hub.LimitOutboundBudget: the connections' queues hold more than half
//     the outbound budget (frames queued, not yet taken by the kernel);
//   - hub.LimitSaturationDelay: a connection has waited for a flusher longer
//     than a quarter of Config.SaturationDelay (flushWaitShare), or more than 1% of the
//     recent socket writes came later than Config.SaturationDelay after
//     their event's fanout started (fanout, flush queue, flushers' CPU;
//     see delayWatch: the outcome);
//   - hub.LimitWorkers: HTTP requests or messages wait for a worker (all
//     MaxWorkers are busy), so a publish accepted now would wait too.
//
// Below every threshold it is always "": a quiet node never refuses.
func (s *Server) Saturation() string {
	l, _ := s.saturation()
	return l
}

// saturation is Saturation, with the flush queue's oldest wait it saw (0
// when it did not look).
func (s *Server) saturation() (string, int64) {
	b := s.outbound
	if b.limit > 0 && b.bytes.Load() > b.saturateAt {
		return hub.LimitOutboundBudget, 0
	}
	var waited int64
	if s.delays.bound > 0 {
		now := s.clock()
		waited = s.flushq.waited(now)
		if waited > s.delays.bound/flushWaitShare || s.delays.late(now) {
			return hub.LimitSaturationDelay, waited
		}
	}
	if s.pool.waitingLen() > 0 {
		return hub.LimitWorkers, waited
	}
	return "", waited
}

// RefusePublish decides one publish (the HTTP API asks once per request):
// it returns the limit under which this publish is refused, "" to accept
// it. While the node is saturated (Saturation) every publish is refused.
// Before that, from the moment a connection has waited for a flusher
// longer than SaturationDelay/shedFromShare, a share of the publishes is
// refused, growing in proportion to that wait up to all of them where
// Saturation trips: a publisher told Retry-After waits a whole second,
// so refusing every publisher at the first sign of a backlog (the rule
// until session 6) left the node idle most of each second under a flood
// (docs/benchmarks.md, "Session 6"). The refusals of a share are spread
// evenly over the requests (every 1/share-th), not drawn at random.
func (s *Server) RefusePublish() string {
	limit, waited := s.saturation()
	if limit != "" {
		return limit
	}
	if s.publishShed.take(shedShareOf(waited, s.delays.bound)) {
		return hub.LimitSaturationDelay
	}
	return ""
}

// PacePublish holds the answer to a publish the node has accepted (and
// fanned out) while a connection has waited for a flusher longer than
// SaturationDelay/paceFromShare, until the wait is back under it, ctx is
// done or SaturationDelay has passed. A publisher that sends its next
// event when the last is answered is so held to the pace at which the
// node delivers, instead of filling the queues until Saturation refuses it
// for a whole Retry-After second; the event itself is not delayed. A held
// answer keeps its worker, which MaxWorkers bounds (and Saturation
// watches).
func (s *Server) PacePublish(ctx context.Context) {
	bound := s.delays.bound
	if bound <= 0 {
		return
	}
	from := bound / paceFromShare
	start := s.clock()
	if s.flushq.waited(start) <= from {
		return
	}
	t := time.NewTicker(pacePoll)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		now := s.clock()
		if now-start >= bound || s.flushq.waited(now) <= from {
			return
		}
	}
}

// paceFromShare: PacePublish holds answers from a flush-queue wait of
// SaturationDelay/paceFromShare on; pacePoll is how often a held answer
// looks again (a flusher drains a fanout of hundreds of sockets in about
// that time).
const (
	paceFromShare = 16
	pacePoll      = 2 * time.Millisecond
)

// shedShareOf is the share of publishes refused at a flush-queue wait of
// waited under a SaturationDelay of bound (both in nanoseconds): 0 up to
// bound/shedFromShare, then rising linearly to 1 at bound/flushWaitShare.
func shedShareOf(waited, bound int64) float64 {
	if bound <= 0 {
		return 0
	}
	lo, hi := bound/shedFromShare, bound/flushWaitShare
	if waited <= lo {
		return 0
	}
	return min(float64(waited-lo)/float64(hi-lo), 1)
}

// flushWaitShare: the node is saturated once a connection has waited for
// a flusher longer than SaturationDelay/flushWaitShare. The wait of the
// oldest is a leading measure, but what publishers add until they hear the
// 503 (a request in flight each, then the events already accepted) waits
// behind it, which is why RefusePublish sheds a growing share of the
// publishes before it (from SaturationDelay/shedFromShare on). Measured
// under a fanout flood (docs/benchmarks.md, "Session 6"): pacing from /16
// and shedding from /8 to /4 kept p99 at 30-35 ms with 63-69k deliveries/s,
// where /8 and /4 to /2 gave 61-110 ms and 33-35k (a longer flush queue
// is no faster to drain).
const (
	flushWaitShare = 4
	shedFromShare  = 8
)

// shedCounter spreads a share of refusals evenly over requests: each
// request adds the current share, and one is refused each time the sum
// passes a whole.
type shedCounter struct {
	mu  sync.Mutex
	acc float64
}

// take adds share (0 to 1) and reports whether this request is refused.
func (c *shedCounter) take(share float64) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if share <= 0 {
		c.acc = 0 // a new spell starts afresh
		return false
	}
	c.acc += share
	if c.acc >= 1 {
		c.acc--
		return true
	}
	return false
}

// clock reads the monotonic clock the hub stamps frames with
// (nanoseconds since Config.Epoch).
func (s *Server) clock() int64 { return int64(time.Since(s.cfg.Epoch)) }

// delayWatch measures the delivery delay of recent socket writes: the time
// from the start of the fanout of the oldest frame a write carries (the
// hub's stamp) until the write returned. That time covers every stage a
// published event waits in on this node after the HTTP API accepted it:
// the fanout over the channel's other subscribers, the flush queue, the
// flushers' share of the CPU and a socket's backlog. It counts, for the
// current and the previous window, the writes and those later than bound;
// the node is late while at least minLate writes, and more than 1% of
// them, were later than bound (the recent p99 is over the bound).
type delayWatch struct {
	bound int64 // nanoseconds; 0: not watched

	mu     sync.Mutex
	window int64 // the window cur counts (clock / delayWindow)
	cur    delayCount
	prev   delayCount
}

type delayCount struct{ writes, late int64 }

const (
	// delayWindow is the length of a counting window: the signal looks at
	// the last one to two windows, so it clears within half a second of
	// the delays going down, before a refused publisher's Retry-After.
	delayWindow = int64(250 * time.Millisecond)
	// minLate late writes before the node is late: a few slow writes (a
	// GC pause, one descheduled flusher) are no overload.
	minLate = 10
)

// observe counts a write that took d, at now (both in nanoseconds).
func (w *delayWatch) observe(now, d int64) {
	if w.bound <= 0 {
		return
	}
	w.mu.Lock()
	w.rotateLocked(now)
	w.cur.writes++
	if d > w.bound {
		w.cur.late++
	}
	w.mu.Unlock()
}

// late reports whether the recent writes' p99 is over the bound, at now.
func (w *delayWatch) late(now int64) bool {
	if w.bound <= 0 {
		return false
	}
	w.mu.Lock()
	w.rotateLocked(now)
	writes, late := w.cur.writes+w.prev.writes, w.cur.late+w.prev.late
	w.mu.Unlock()
	return late >= minLate && late*100 > writes
}

func (w *delayWatch) rotateLocked(now int64) {
	i := now / delayWindow
	switch {
	case i <= w.window:
	case i == w.window+1:
		w.prev, w.cur = w.cur, delayCount{}
	default:
		w.prev, w.cur = delayCount{}, delayCount{}
	}
	w.window = max(w.window, i)
}

// shedder closes the largest queues whenever the budget is spent, until
// the server stops. While the total stays over the budget (the sockets of
// closed connections still hold their bytes until they are gone) it looks
// again every shedRecheck.
func (s *Server) shedder() {
	defer s.wg.Done()
	t := time.NewTimer(0)
	<-t.C
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-s.outbound.wake:
		case <-t.C:
		}
		if s.shed() {
			t.Reset(shedRecheck)
		}
	}
}

const shedRecheck = 50 * time.Millisecond

// shed closes, largest queue first, the open connections whose queued
// bytes bring the node's total down to the low-water mark, counting the
// bytes of connections already closing as going. A closed connection's
// queue is dropped at once; what its socket layer holds goes when the
// socket closes (at most CloseTimeout later). It reports whether the total
// is still over the budget.
func (s *Server) shed() bool {
	b := s.outbound
	total := b.bytes.Load()
	if b.limit == 0 || total <= b.limit {
		return false
	}
	type cand struct {
		c *wsConn
		n int64
	}
	s.mu.Lock()
	all := make([]cand, 0, len(s.conns))
	for c := range s.conns {
		all = append(all, cand{c: c})
	}
	s.mu.Unlock()
	excess := total - b.lowWater
	open := all[:0]
	for _, x := range all {
		n, isOpen := x.c.pendingState()
		if !isOpen {
			excess -= n // going already
			continue
		}
		open = append(open, cand{x.c, n})
	}
	slices.SortFunc(open, func(a, b cand) int { return cmp.Compare(b.n, a.n) })
	shed := 0
	for _, x := range open {
		if excess <= 0 || x.n == 0 {
			break
		}
		if x.c.shedClose() {
			excess -= x.n
			shed++
			b.shed.Add(1)
			s.slowConsumers.Add(1)
			s.refused(x.c.appID, hub.LimitOutboundBudget)
			if x.c.metrics != nil {
				x.c.metrics.SlowConsumer()
			}
		}
	}
	if shed > 0 {
		s.log.Warn("outbound budget spent, the connections holding the most were closed",
			"budget_mb", b.limit>>20, "queued_mb", total>>20, "closed", shed, "closed_total", b.shed.Load())
	}
	return b.bytes.Load() > b.limit
}

// pendingState returns the bytes queued and not yet taken by the kernel,
// and whether the connection is open.
func (c *wsConn) pendingState() (int64, bool) {
	c.mu.Lock()
	n, open := int64(c.queued), c.state == stateOpen
	c.mu.Unlock()
	return n + c.backlog.Load(), open
}

// shedClose drops the connection's queue and closes it with 4100, as a
// slow consumer; false when it was closing already.
func (c *wsConn) shedClose() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.state != stateOpen {
		return false
	}
	c.dropQueueLocked()
	c.startCloseLocked(protocol.CodeOverCapacity, "Slow consumer: server over its outbound budget")
	return true
}
