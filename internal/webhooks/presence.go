package webhooks

import (
	"context"
	"time"
)

// Presence debounce. Pusher holds member_added and member_removed back for
// a few seconds, and a user who leaves and comes back within them (a page
// reload, a reconnect) causes neither: backends do not see a flap. The
// batcher does the same when Options.PresenceDelay is set: member events
// wait in a FIFO (the delay is constant, so it is in due order) and the
// opposite event for the same app, channel and user cancels both.
//
// In a cluster, a leave decided on one node and a rejoin decided on
// another are held on different nodes; Options.PresenceGate (the shared
// State) settles them when they come due: a member_removed is sent only if
// the user is still gone and the backend was told they were there, a
// member_added only if the user is still there and the backend was not
// told so already. A leave and rejoin across nodes within the delay then
// send neither, and a join and leave across nodes neither either.

// PresenceGate decides, across the cluster, whether a member event that
// waited out the presence delay is sent (see above). An error sends it.
type PresenceGate interface {
	MemberWebhook(ctx context.Context, appID, channel, userID string, added bool) (send bool, err error)
}

// gateTimeout bounds one PresenceGate call (it runs on the batcher).
const gateTimeout = time.Second

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
		if !d.gate(h.ev) {
			continue
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

// gate asks the PresenceGate, if any, whether ev is sent.
func (d *Dispatcher) gate(ev event) bool {
	g := d.opt.PresenceGate
	if g == nil {
		return true
	}
	ctx, cancel := context.WithTimeout(context.Background(), gateTimeout)
	defer cancel()
	send, err := g.MemberWebhook(ctx, ev.appID, ev.channel, ev.userID, ev.kind == kindMemberAdded)
	if err != nil {
		d.rlog.warn("gate:"+ev.appID, "presence webhook check failed; sending", "app_id", ev.appID, "err", err)
		return true
	}
	return send
}
