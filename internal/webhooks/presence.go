package webhooks

import "time"

// Presence debounce. Pusher holds member_added and member_removed back for
// a few seconds, and a user who leaves and comes back within them (a page
// reload, a reconnect) causes neither: backends do not see a flap. The
// batcher does the same when Options.PresenceDelay is set: member events
// wait in a FIFO (the delay is constant, so it is in due order) and the
// opposite event for the same app, channel and user cancels both.
//
// The debounce is per node: in a cluster, a leave decided on one node and
// a rejoin decided on another are both sent.

// memberKey identifies one user on one channel of one app.
type memberKey struct {
	appID, channel, userID string
}

// heldEvent is a member event waiting out the delay.
type heldEvent struct {
	ev       event
	due      time.Time
	canceled bool
}

// presenceHold is the batcher's debounce state (owned by its goroutine).
type presenceHold struct {
	fifo    []*heldEvent
	pending map[memberKey]*heldEvent // the latest held event of each key
}

// holds reports whether ev waits out the delay.
func (d *Dispatcher) holds(ev event) bool {
	return d.opt.PresenceDelay > 0 && (ev.kind == kindMemberAdded || ev.kind == kindMemberRemoved)
}

// hold delays a member event, or cancels it together with the held
// opposite one (a leave and a rejoin, or a join and a leave, within the
// delay).
func (d *Dispatcher) hold(b *batcher, ev event) {
	p := &b.presence
	if p.pending == nil {
		p.pending = map[memberKey]*heldEvent{}
	}
	k := memberKey{ev.appID, ev.channel, ev.userID}
	if prev, ok := p.pending[k]; ok && prev.ev.kind != ev.kind {
		prev.canceled = true
		delete(p.pending, k)
		return
	}
	if len(p.fifo) >= d.opt.QueueSize {
		// A flood of joins: skip the debounce rather than grow without
		// bound or drop (nothing of this key is held the other way).
		d.batch(b, ev)
		return
	}
	h := &heldEvent{ev: ev, due: time.Now().Add(d.opt.PresenceDelay)}
	p.fifo = append(p.fifo, h)
	p.pending[k] = h
}

// releaseHeld hands the member events due by now (all of them when now is
// zero, at shutdown) to the batches.
func (d *Dispatcher) releaseHeld(b *batcher, now time.Time) {
	p := &b.presence
	for len(p.fifo) > 0 && (now.IsZero() || !p.fifo[0].due.After(now)) {
		h := p.fifo[0]
		p.fifo[0] = nil
		p.fifo = p.fifo[1:]
		if h.canceled {
			continue
		}
		k := memberKey{h.ev.appID, h.ev.channel, h.ev.userID}
		if p.pending[k] == h {
			delete(p.pending, k)
		}
		d.batch(b, h.ev)
	}
	if len(p.fifo) == 0 {
		p.fifo = nil // let the backing array go after a burst
	}
}

// nextHeld is when the first held event is due (zero when none).
func (p *presenceHold) nextHeld() time.Time {
	if len(p.fifo) == 0 {
		return time.Time{}
	}
	return p.fifo[0].due
}
