package transport

import (
	"runtime"
	"sync"
)

// flushQueue is the unbounded FIFO of connections that have frames to
// write. push never blocks (it may be called from the event loop); the
// flusher goroutines take connections in small batches. Each entry keeps
// the time it was queued, so that the wait of the oldest (waited) is a
// leading measure of the flushers' backlog.
type flushQueue struct {
	mu     sync.Mutex
	cond   sync.Cond
	items  []flushItem
	head   int
	closed bool
}

type flushItem struct {
	c  *wsConn
	at int64 // when queued, on Server.clock
}

func newFlushQueue() *flushQueue {
	q := &flushQueue{}
	q.cond.L = &q.mu
	return q
}

// push queues c at now (Server.clock).
func (q *flushQueue) push(c *wsConn, now int64) {
	q.mu.Lock()
	q.items = append(q.items, flushItem{c, now})
	q.mu.Unlock()
	q.cond.Signal()
}

// waited returns how long the oldest connection in the queue has waited
// for a flusher at now (0: the queue is empty).
func (q *flushQueue) waited(now int64) int64 {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.head == len(q.items) {
		return 0
	}
	return now - q.items[q.head].at
}

// pop waits for work and moves up to max connections into batch. It
// returns false once the queue is closed and empty.
func (q *flushQueue) pop(batch []*wsConn, max int) ([]*wsConn, bool) {
	q.mu.Lock()
	for q.head == len(q.items) && !q.closed {
		q.cond.Wait()
	}
	if q.head == len(q.items) {
		q.mu.Unlock()
		return batch[:0], false
	}
	n := min(max, len(q.items)-q.head)
	batch = batch[:0]
	for _, it := range q.items[q.head : q.head+n] {
		batch = append(batch, it.c)
	}
	clear(q.items[q.head : q.head+n])
	q.head += n
	if q.head == len(q.items) {
		q.items = q.items[:0]
		q.head = 0
		if cap(q.items) > 1<<16 {
			q.items = nil // do not pin a burst's worth of memory
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
