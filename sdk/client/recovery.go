package client

import (
	"encoding/json"
	"strconv"
)

// Position is a place in a channel's history on a Herald server with
// history configured for the channel: Offset grows by one per event on the
// channel (the first event is 1), and Epoch changes when the server lost
// the channel's history (offsets then start again). The zero Position
// (Epoch "") means none: the channel has no history, or the server is not
// Herald.
type Position struct {
	Epoch  string `json:"epoch"`
	Offset uint64 `json:"offset"`
}

// IsZero reports whether p is no position.
func (p Position) IsZero() bool { return p.Epoch == "" }

// String returns "epoch:offset".
func (p Position) String() string { return p.Epoch + ":" + strconv.FormatUint(p.Offset, 10) }

// decodePosition reads a frame's top-level position; anything malformed
// is no position (the event itself is still delivered).
func decodePosition(raw json.RawMessage) Position {
	if len(raw) == 0 {
		return Position{}
	}
	var p Position
	if json.Unmarshal(raw, &p) != nil {
		return Position{}
	}
	return p
}

// EventRecovery is the event Herald sends on a channel after a
// subscription that asked to recover: its data is a Recovery.
const EventRecovery = "herald:recovery"

// Reasons a recovery failed (Recovery.Reason).
const (
	// RecoveryEpochChanged: the server lost the channel's history since
	// the client's position (Redis lost it, a restart in memory mode, or
	// the whole history expired).
	RecoveryEpochChanged = "epoch_changed"
	// RecoveryTooOld: the first missed event is no longer kept (the
	// channel's history size or TTL was exceeded meanwhile).
	RecoveryTooOld = "too_old"
	// RecoveryInvalid: the position sent was malformed or beyond the top.
	RecoveryInvalid = "invalid"
	// RecoveryNoHistory: the channel has no history (anymore).
	RecoveryNoHistory = "no_history"
)

// Recovery is the outcome of one recovery: after an automatic
// reconnection the client subscribes again with the channel's last
// Position, and the server replays the events the client missed, in order
// and exactly once, through the channel's bindings, then reports.
type Recovery struct {
	// Channel is the channel's name.
	Channel string
	// Recovered is true when every missed event was replayed (before this
	// report). When false, events may be missing: refetch the state the
	// channel's events build (Reason says why).
	Recovered bool
	// Replayed is the number of events replayed.
	Replayed int
	// Reason is one of the Recovery* constants when Recovered is false.
	Reason string
	// Position is where the channel stands now; live events continue
	// after it.
	Position Position
}

func decodeRecovery(e Event) Recovery {
	var d struct {
		Recovered bool            `json:"recovered"`
		Replayed  int             `json:"replayed"`
		Reason    string          `json:"reason"`
		Position  json.RawMessage `json:"position"`
	}
	_ = json.Unmarshal(e.Data, &d)
	return Recovery{Channel: e.Channel, Recovered: d.Recovered, Replayed: d.Replayed, Reason: d.Reason, Position: decodePosition(d.Position)}
}

// OnRecovery calls fn with the outcome of every recovery of this channel
// (after an automatic reconnection, or a subscription that SetPosition
// seeded) and returns a function that removes it. It runs on the dispatch
// goroutine after the replayed events' handlers.
func (ch *Channel) OnRecovery(fn func(Recovery)) (unbind func()) {
	return ch.bindings.bind(EventRecovery, func(e Event) { fn(decodeRecovery(e)) })
}

// Position returns the channel's last position: of the last event
// received, or of the subscription when no event came since. ok is false
// when the channel has none (no history on the server).
func (ch *Channel) Position() (p Position, ok bool) {
	ch.c.mu.Lock()
	defer ch.c.mu.Unlock()
	return ch.pos, !ch.pos.IsZero()
}

// SetPosition sets the position the channel's next subscription recovers
// from: e.g. the epoch and last_offset of the server's history endpoint
// (GET /apps/{id}/channels/{name}/history) a service rebuilt its state
// from, so that the first subscription continues from there with no gap.
// A zero p forgets the position.
func (ch *Channel) SetPosition(p Position) {
	ch.c.mu.Lock()
	defer ch.c.mu.Unlock()
	ch.pos = p
}

// subscribeData is the data of pusher:subscribe.
type subscribeData struct {
	Auth        string    `json:"auth"`
	Channel     string    `json:"channel"`
	ChannelData string    `json:"channel_data,omitempty"`
	Recover     *Position `json:"recover,omitempty"`
}

// subscribeFrameLocked builds ch's pusher:subscribe (c.mu held), asking to
// recover from the channel's position when it has one.
func subscribeFrameLocked(ch *Channel, d subscribeData) []byte {
	ch.recovering = !ch.pos.IsZero()
	if ch.recovering {
		p := ch.pos
		d.Recover = &p
	}
	frame, _ := json.Marshal(outFrame{Event: "pusher:subscribe", Data: mustJSON(d)})
	return frame
}
