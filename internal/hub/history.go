package hub

import (
	"context"
	"errors"
	"fmt"

	"github.com/herald-ws/herald/internal/apps"
	"github.com/herald-ws/herald/internal/protocol"
)

// Channel history and recovery (docs/recovery.md). Events on a channel
// that one of its app's history rules matches go through Options.History,
// which stores them, gives them a position and delivers them to every
// node, this one included, in offset order. The hub adds the position to
// each event and tracks, per subscriber, the last position it was sent, so
// that a subscriber never gets an event twice nor out of order while its
// subscription is set up (a replay from history running beside live
// events).

// HistoryMetrics is implemented by a Metrics that also counts recoveries.
type HistoryMetrics interface {
	// Recovery reports one recovery request: result is "recovered" or a
	// failure reason (protocol.Recovery*), replayed the events sent.
	Recovery(appID, result string, replayed int)
}

// maxPendingBytes bounds what one subscription buffers while its history
// is read; a subscription that passes it is closed with 4100 (reconnect
// and try again), as a slow consumer would be.
const maxPendingBytes = 4 << 20

// histPos is one local subscriber's progress on a channel with history,
// guarded by its localChannel's lock and kept in a slice aligned with the
// subscribers (no lookup per delivery).
type histPos struct {
	// tracked is false for a subscriber from before the channel's rule
	// existed: it gets everything, as on any channel.
	tracked bool
	// setup is set while the subscription reads its history: what is
	// broadcast meanwhile waits in localChannel.held.
	setup bool
	// epoch and sent are the position of the last history event sent;
	// events at or before it are not sent again.
	epoch string
	sent  uint64
}

// heldFrames is what waits for a subscription being set up.
type heldFrames struct {
	frames   []pendingFrame
	bytes    int
	overflow bool
}

type pendingFrame struct {
	frame []byte
	at    int64
	pos   Position // zero for messages without position (member events)
}

// historyRule returns the history rule of a channel, if the hub keeps
// history and one matches.
func (h *Hub) historyRule(app *apps.App, channel string) (apps.HistoryRule, bool) {
	if h.opt.History == nil || len(app.History) == 0 {
		return apps.HistoryRule{}, false
	}
	if protocol.Classify(channel) == protocol.ServerToUser {
		return apps.HistoryRule{}, false
	}
	return app.HistoryRule(channel)
}

// appendHistory hands an event of a channel with history to the History,
// which delivers it everywhere.
func (h *Hub) appendHistory(ctx context.Context, rule apps.HistoryRule, m BrokerMessage) error {
	if _, err := h.opt.History.Append(ctx, rule, m); err != nil {
		return fmt.Errorf("%w: history %s: %w", ErrUnavailable, m.Channel, err)
	}
	return nil
}

// deliverHistory queues an event with its position on the local
// subscribers of k, except exceptID, skipping those that had it already.
func (h *Hub) deliverHistory(k chanKey, payload []byte, pos Position, at int64, exceptID string) int {
	lc := h.channelOf(k)
	if lc == nil {
		return 0
	}
	except := h.client(exceptID)
	frame := h.frame(protocol.WithPosition(payload, pos.Epoch, pos.Offset))
	n := 0
	lc.mu.Lock()
	for i, c := range lc.list {
		if c == except {
			continue
		}
		if lc.hist != nil {
			if p := &lc.hist[i]; p.tracked {
				switch {
				case p.setup:
					lc.held[c].hold(frame, at, pos)
					continue
				case p.epoch == pos.Epoch && pos.Offset <= p.sent:
					continue // replayed, or stored before it subscribed
				}
				p.epoch, p.sent = pos.Epoch, pos.Offset
			}
		}
		c.conn.Send(frame, at)
		n++
	}
	lc.mu.Unlock()
	return n
}

// hold keeps a frame for a subscription being set up.
func (hf *heldFrames) hold(frame []byte, at int64, pos Position) {
	if hf.overflow {
		return
	}
	if hf.bytes+len(frame) > maxPendingBytes {
		hf.overflow, hf.frames = true, nil
		return
	}
	hf.bytes += len(frame)
	hf.frames = append(hf.frames, pendingFrame{frame, at, pos})
}

// broadcastTracked is broadcast on a channel whose subscribers are
// tracked (lc.hist set): a message without position (member events,
// subscription counts) waits for a subscriber being set up.
func broadcastTracked(lc *localChannel, frame []byte, at int64, except *Client) int {
	n := 0
	lc.mu.Lock()
	for i, c := range lc.list {
		if c == except {
			continue
		}
		if lc.hist[i].setup {
			lc.held[c].hold(frame, at, Position{})
			continue
		}
		c.conn.Send(frame, at)
		n++
	}
	lc.mu.Unlock()
	return n
}

// subscribeHistory completes the subscription of c to a channel with
// history: it joins the channel's local subscribers holding what is
// broadcast, reads the history, then sends subscription_succeeded with the
// top position, the recovered events and herald:recovery when asked, and
// what was held after them, skipping what was sent already. succeeded is
// the success message without position.
func (h *Hub) subscribeHistory(c *Client, k chanKey, rule apps.HistoryRule, succeeded []byte, rec *protocol.Recover) {
	lc := h.addLocalTracked(k, c)
	after, limit := uint64(0), 0
	if rec != nil && rec.Valid {
		after, limit = rec.Offset, rule.Size
	}
	ctx, cancel := h.stateCtx()
	page, err := h.opt.History.Read(ctx, k.app, k.name, rule, after, limit)
	cancel()

	lc.mu.Lock()
	defer lc.mu.Unlock()
	i, ok := lc.index[c]
	if !ok || lc.hist == nil {
		return // left meanwhile
	}
	hs := &lc.hist[i]
	held := lc.held[c]
	delete(lc.held, c)
	if err != nil {
		h.log.Warn("subscribe: history unavailable", "app_id", k.app, "channel", k.name, "err", err)
		c.send(succeeded)
		if rec != nil {
			h.recovered(c, k, protocol.RecoveryUnavailable, 0, Position{})
		}
		hs.epoch, hs.sent = "", 0
		h.drainHeld(c, hs, held)
		return
	}
	c.send(protocol.WithPosition(succeeded, page.Epoch, page.Top))
	hs.epoch, hs.sent = page.Epoch, page.Top
	if rec != nil {
		reason, replay := recoveryPlan(rec, page)
		if reason == "" {
			for _, e := range replay {
				c.send(protocol.WithPosition(e.Payload, page.Epoch, e.Offset))
			}
		}
		h.recovered(c, k, reason, len(replay), Position{page.Epoch, page.Top})
	}
	h.drainHeld(c, hs, held)
}

// recoveryPlan decides a recovery request against the history read: the
// events to replay, or why not.
func recoveryPlan(rec *protocol.Recover, page HistoryPage) (reason string, replay []HistoryEntry) {
	switch {
	case !rec.Valid:
		return protocol.RecoveryInvalid, nil
	case rec.Epoch != page.Epoch:
		return protocol.RecoveryEpochChanged, nil
	case rec.Offset > page.Top:
		return protocol.RecoveryInvalid, nil
	case rec.Offset == page.Top:
		return "", nil
	}
	// Every offset from rec.Offset+1 to the top, without a hole: the
	// entries must start right after the client's offset and end at the
	// top read with them.
	es := page.Entries
	if len(es) == 0 || es[0].Offset != rec.Offset+1 || es[len(es)-1].Offset != page.Top ||
		uint64(len(es)) != page.Top-rec.Offset {
		return protocol.RecoveryTooOld, nil
	}
	return "", es
}

// recovered sends herald:recovery and counts it (reason "" is success).
func (h *Hub) recovered(c *Client, k chanKey, reason string, replayed int, top Position) {
	c.send(protocol.Recovery(k.name, reason == "", reason, replayed, top.Epoch, top.Offset))
	result := reason
	if reason == "" {
		result = "recovered"
	} else {
		replayed = 0
	}
	if hm := h.histMetrics; hm != nil {
		hm.Recovery(k.app, result, replayed)
	}
}

// drainHeld sends what was held while the subscription was set up, in
// order, skipping history events at or before what was sent, and makes the
// subscription live. The channel's lock is held.
func (h *Hub) drainHeld(c *Client, hs *histPos, held *heldFrames) {
	hs.setup = false
	if held == nil {
		return
	}
	if held.overflow {
		c.closeWith(protocol.CodeReconnect, "Too many events while the subscription was set up, please reconnect")
		return
	}
	for _, p := range held.frames {
		if p.pos.Epoch != "" {
			if p.pos.Epoch == hs.epoch && p.pos.Offset <= hs.sent {
				continue
			}
			hs.epoch, hs.sent = p.pos.Epoch, p.pos.Offset
		}
		c.conn.Send(p.frame, p.at)
	}
}

// ErrNoHistory is returned by History for a channel no history rule
// matches.
var ErrNoHistory = errors.New("the channel has no history")

// MaxHistoryPage bounds the events one History call returns.
const MaxHistoryPage = 1000

// History answers GET /channels/{name}/history: at most limit (1 to
// MaxHistoryPage) kept events after offset after.
func (h *Hub) History(ctx context.Context, app *apps.App, channel string, after uint64, limit int) (HistoryPage, error) {
	rule, ok := h.historyRule(app, channel)
	if !ok {
		return HistoryPage{}, ErrNoHistory
	}
	limit = max(1, min(limit, MaxHistoryPage))
	page, err := h.opt.History.Read(ctx, app.ID, channel, rule, after, limit)
	if err != nil {
		return HistoryPage{}, fmt.Errorf("%w: history %s: %w", ErrUnavailable, channel, err)
	}
	return page, nil
}
