package transport

import (
	"runtime"
	"sync"
)

// flushQueue holds the connections that have frames to write, in two
// FIFO lanes: replies (frames answering the connection's own request or
// admission: connection_established, subscription_succeeded, pong, errors)
// and bulk (broadcast events). Flushers serve replies first, so that a
// new connection's connection_established does not wait behind a fanout
// of thousands of sockets: with a single lane, the dev app's once-a-second
// subscription_count broadcast during a 2,000/s connection ramp held
// connection_established for 50-170 ms (1 connection in 20), while the
// flushers themselves never waited for a CPU more than 15 ms. The bulk lane
// is still served at least once every replyRun batches, so replies cannot
// starve it. push never blocks (it may be called from the event loop).
// Each entry keeps the time it was queued, so that the wait of the oldest
// (waited) is a leading measure of the flushers' backlog.
type flushQueue struct {
	mu     sync.Mutex
	cond   sync.Cond
	lanes  [2]flushLane // laneReply, laneBulk
	run    int          // reply batches served in a row while bulk waited
	closed bool
}

const (
	laneReply = iota
	laneBulk
)

// replyRun is how many reply batches the flushers serve in a row while
// bulk connections wait, before one bulk batch.
const replyRun = 4

type flushLane struct {
	items []flushItem
	head  int
}

type flushItem struct {
	c  *wsConn
	at int64 // when queued, on Server.clock
}

func (l *flushLane) len() int { return len(l.items) - l.head }

func newFlushQueue() *flushQueue {
	q := &flushQueue{}
	q.cond.L = &q.mu
	return q
}

// push queues c at now (Server.clock), in the reply lane when reply.
func (q *flushQueue) push(c *wsConn, now int64, reply bool) {
	lane := laneBulk
	if reply {
		lane = laneReply
	}
	q.mu.Lock()
	l := &q.lanes[lane]
	l.items = append(l.items, flushItem{c, now})
	q.mu.Unlock()
	q.cond.Signal()
}

// waited returns how long the oldest connection in the queue has waited
// for a flusher at now (0: the queue is empty).
func (q *flushQueue) waited(now int64) int64 {
	q.mu.Lock()
	defer q.mu.Unlock()
	var w int64
	for i := range q.lanes {
		if l := &q.lanes[i]; l.len() > 0 {
			w = max(w, now-l.items[l.head].at)
		}
	}
	return w
}

// pop waits for work and moves up to max connections of one lane into
// batch. It returns false once the queue is closed and empty.
func (q *flushQueue) pop(batch []*wsConn, max int) ([]*wsConn, bool) {
	q.mu.Lock()
	reply, bulk := &q.lanes[laneReply], &q.lanes[laneBulk]
	for reply.len() == 0 && bulk.len() == 0 && !q.closed {
		q.cond.Wait()
	}
	l := bulk
	switch {
	case reply.len() == 0 && bulk.len() == 0:
		q.mu.Unlock()
		return batch[:0], false
	case reply.len() > 0 && (bulk.len() == 0 || q.run < replyRun):
		l = reply
		if bulk.len() > 0 {
			q.run++
		}
	default:
		q.run = 0
	}
	n := min(max, l.len())
	batch = batch[:0]
	for _, it := range l.items[l.head : l.head+n] {
		batch = append(batch, it.c)
	}
	clear(l.items[l.head : l.head+n])
	l.head += n
	if l.head == len(l.items) {
		l.items = l.items[:0]
		l.head = 0
		if cap(l.items) > 1<<16 {
			l.items = nil // do not pin a burst's worth of memory
		}
	}
	q.mu.Unlock()
	return batch, true
}

func (q *flushQueue) close() {
	q.mu.Lock()
	q.closed = true
	q.mu.Unlock()
	q.cond.Broadcast()
}

// flusher writes queued frames until the queue is closed.
func (s *Server) flusher() {
	defer s.wg.Done()
	scratch := make([]byte, 0, maxWriteChunk)
	batch := make([]*wsConn, 0, flushBatch)
	for {
		var ok bool
		batch, ok = s.flushq.pop(batch, flushBatch)
		if !ok {
			return
		}
		for i, c := range batch {
			c.flush(&scratch)
			batch[i] = nil
		}
		// A flusher with work never blocks: its writes are syscalls that
		// return at once, so without a yield it keeps its P until sysmon
		// preempts it (10 ms) and a poller woken from epoll_wait waits
		// that long for a P.
		runtime.Gosched()
	}
}

// flushBatch is how many connections a flusher takes from the queue at once.
// Small, so that a fanout's connections are shared out finely: a flusher
// descheduled in the middle of its batch delays only a few sockets while
// the others drain the queue (with 64, up to 64 sockets of an event waited
// behind one preempted flusher).
const flushBatch = 8
