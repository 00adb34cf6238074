package transport

import (
	"slices"
	"sync/atomic"

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

// Saturated reports whether the node holds more than half its outbound
// budget: publishers should then retry later instead of adding to it.
func (s *Server) Saturated() bool {
	b := s.outbound
	return b.limit > 0 && b.bytes.Load() > b.saturateAt
}

// shedder closes the largest queues whenever the budget is spent, until
// the server stops.
func (s *Server) shedder() {
	defer s.wg.Done()
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-s.outbound.wake:
		}
		s.shed()
	}
}

// shed closes, largest queue first, the connections whose queued bytes
// bring the node's total down to the low-water mark. A closed connection's
// queue is dropped at once; what its socket layer holds goes when the
// socket closes (at most CloseTimeout later).
func (s *Server) shed() {
	b := s.outbound
	excess := b.bytes.Load() - b.lowWater
	if b.limit == 0 || b.bytes.Load() <= b.limit || excess <= 0 {
		return
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
	for i := range all {
		all[i].n = all[i].c.pending()
	}
	slices.SortFunc(all, func(a, b cand) int {
		switch {
		case a.n > b.n:
			return -1
		case a.n < b.n:
			return 1
		}
		return 0
	})
	for _, x := range all {
		if excess <= 0 || x.n == 0 {
			break
		}
		if x.c.shedClose() {
			excess -= x.n
			b.shed.Add(1)
			s.slowConsumers.Add(1)
			s.refused(x.c.appID, LimitOutboundBudget)
			if x.c.metrics != nil {
				x.c.metrics.SlowConsumer()
			}
		}
	}
	s.log.Warn("transport: outbound budget spent, slowest connections closed",
		"budget_mb", b.limit>>20, "queued_mb", b.bytes.Load()>>20, "shed_total", b.shed.Load())
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
