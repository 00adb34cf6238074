package hub

import (
	"sync"
	"time"

	"github.com/herald-ws/herald/internal/protocol"
)

// wheelSlots is the number of one-second slots of the timer wheel. A
// deadline further away than that waits in its slot for later rounds.
const wheelSlots = 512

// timerWheel holds each client once, in the slot of the second its next
// timer falls due (activity ping, pong timeout or sign-in deadline). A tick
// looks only at the slots that came due, so idle connections cost nothing
// between their deadlines and no connection owns a runtime timer.
//
// Activity (Touch) does not move a client: when its slot comes due the
// client's real deadline is recomputed and, if it moved, the client is put
// back further on.
type timerWheel struct {
	mu    sync.Mutex
	slots [wheelSlots][]*Client
	last  int64 // the second processed last; 0 before the first tick
}

// wheelEntry is a client's place in the wheel; slot is -1 when it is not in
// it and dead is set once the client is gone (it is never added again).
type wheelEntry struct {
	slot int32
	idx  int32
	due  int64 // unix nanos
	dead bool
}

func (w *timerWheel) schedule(c *Client, due int64) {
	w.mu.Lock()
	defer w.mu.Unlock()
	e := &c.timer
	if e.dead {
		return
	}
	if e.slot >= 0 {
		w.removeLocked(c)
	}
	slot := int32((due / int64(time.Second)) % wheelSlots)
	e.slot, e.idx, e.due = slot, int32(len(w.slots[slot])), due
	w.slots[slot] = append(w.slots[slot], c)
}

// forget takes a client out of the wheel for good.
func (w *timerWheel) forget(c *Client) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if c.timer.slot >= 0 {
		w.removeLocked(c)
	}
	c.timer.dead = true
}

func (w *timerWheel) removeLocked(c *Client) {
	e := &c.timer
	list := w.slots[e.slot]
	last := len(list) - 1
	moved := list[last]
	list[e.idx] = moved
	moved.timer.idx = e.idx
	list[last] = nil
	w.slots[e.slot] = list[:last]
	e.slot = -1
}

// due removes and returns the clients whose deadline is at or before now.
func (w *timerWheel) due(now int64, out []*Client) []*Client {
	w.mu.Lock()
	defer w.mu.Unlock()
	sec := now / int64(time.Second)
	from := w.last
	if from == 0 || sec-from >= wheelSlots {
		from = sec - wheelSlots + 1
	}
	if from > sec {
		from = sec
	}
	// The current second is looked at again on the next tick: a deadline
	// later within it is not due yet.
	for s := from; s <= sec; s++ {
		slot := s % wheelSlots
		list := w.slots[slot]
		for i := 0; i < len(list); {
			c := list[i]
			if c.timer.due > now {
				i++
				continue
			}
			w.removeLocked(c)
			list = w.slots[slot]
			out = append(out, c)
		}
	}
	w.last = sec
	return out
}

// sweep handles the timers that came due: it pings silent clients, closes
// those that did not answer in time and those past their sign-in deadline.
// Run calls it once a second.
func (h *Hub) sweep() {
	now := h.now().UnixNano()
	h.dueBuf = h.timers.due(now, h.dueBuf[:0])
	for i, c := range h.dueBuf {
		if next := h.checkTimers(c, now); next != 0 {
			h.timers.schedule(c, next)
		}
		h.dueBuf[i] = nil
	}
}

// startTimers puts a new client in the wheel.
func (h *Hub) startTimers(c *Client) {
	c.timer.slot = -1
	if next := h.checkTimers(c, c.lastSeen.Load()); next != 0 {
		h.timers.schedule(c, next)
	}
}

// checkTimers acts on a client's timers at now and returns when they are
// next due (0: never).
func (h *Hub) checkTimers(c *Client, now int64) int64 {
	if c.closing.Load() {
		return 0
	}
	var next int64
	sooner := func(t int64) {
		if next == 0 || t < next {
			next = t
		}
	}
	if c.authDeadline != 0 && !c.signedIn.Load() {
		if now >= c.authDeadline {
			c.closeWith(protocol.CodeUnauthorized, "Connection not authorized within timeout.")
			return 0
		}
		sooner(c.authDeadline)
	}
	timeout := int64(c.app.Load().ActivityTimeout)
	if timeout <= 0 {
		return next
	}
	pongWait := min(int64(h.opt.PongTimeout), timeout)
	if p := c.pingedAt.Load(); p != 0 {
		if now-p >= pongWait {
			c.closeWith(protocol.CodePongNotReceived, "Pong reply not received in time")
			return 0
		}
		sooner(p + pongWait)
		return next
	}
	if last := c.lastSeen.Load(); now-last < timeout {
		sooner(last + timeout)
		return next
	}
	c.pingedAt.Store(now)
	c.send(protocol.Ping())
	sooner(now + pongWait)
	return next
}
