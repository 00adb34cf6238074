package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/herald-ws/herald/sdk/internal/wire"
)

// Member is a presence channel member: its user id and the user_info the
// auth endpoint gave it (raw JSON, nil when none).
type Member struct {
	ID   string
	Info json.RawMessage
}

// SubscriptionError is why a subscription failed: the authorizer refused
// (Type "AuthError", Status the endpoint's HTTP status) or the server
// answered pusher:subscription_error or pusher:error.
type SubscriptionError struct {
	Channel string
	Type    string
	Message string
	Status  int
}

func (e *SubscriptionError) Error() string {
	return fmt.Sprintf("subscription to %q failed: %s %s (status %d)", e.Channel, e.Type, e.Message, e.Status)
}

// ErrNotSubscribed is returned by Trigger on a channel that is not
// subscribed at the moment (not yet, or the connection is down).
var ErrNotSubscribed = errors.New("channel is not subscribed")

// ErrClosed is returned by calls on a closed Client.
var ErrClosed = errors.New("client is closed")

// subState is where a channel's subscription stands on the current
// connection.
type subState int

const (
	subNone subState = iota
	subPending
	subSucceeded
	subFailed
)

// Channel is one channel of a Client. It keeps its bindings across
// reconnections and across Unsubscribe/Subscribe. Its fields are guarded by
// the client's mutex.
type Channel struct {
	c        *Client
	name     string
	bindings bindings[Event]
	members  bindings[Event] // pusher:member_added / removed

	// Guarded by c.mu.
	wanted  bool
	state   subState
	err     error
	key     [32]byte // encrypted channels: the shared secret of this connection
	hasKey  bool
	me      Member
	roster  map[string]json.RawMessage
	changed chan struct{} // closed and replaced when state changes
	gen     uint64        // bumped per subscribe attempt, so a stale auth answer is dropped
	// pos is the last position received (Herald history); the subscription
	// after a reconnection recovers from it. recovering is set while the
	// current subscription asked to.
	pos        Position
	recovering bool
}

// Name returns the channel's name.
func (ch *Channel) Name() string { return ch.name }

// Subscribe asks for the channel; the client subscribes now if connected
// and after every reconnection. Bind handlers before subscribing to see the
// first events (a cache channel's cached event comes right after success).
func (ch *Channel) Subscribe() { ch.c.subscribe(ch) }

// Unsubscribe leaves the channel. Its bindings are kept: subscribing again
// to the same name brings them back.
func (ch *Channel) Unsubscribe() { ch.c.unsubscribe(ch) }

// Subscribed reports whether the server has confirmed the subscription on
// the current connection.
func (ch *Channel) Subscribed() bool {
	ch.c.mu.Lock()
	defer ch.c.mu.Unlock()
	return ch.state == subSucceeded
}

// WaitSubscribed blocks until the subscription succeeds on the current
// connection (nil), fails (a *SubscriptionError), the client is closed, or
// ctx is done.
func (ch *Channel) WaitSubscribed(ctx context.Context) error {
	for {
		ch.c.mu.Lock()
		st, err, changed, closed, wanted := ch.state, ch.err, ch.changed, ch.c.closed, ch.wanted
		ch.c.mu.Unlock()
		switch {
		case closed:
			return ErrClosed
		case !wanted:
			return fmt.Errorf("channel %q: not subscribed (call Subscribe)", ch.name)
		case st == subSucceeded:
			return nil
		case st == subFailed:
			return err
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return fmt.Errorf("waiting for subscription to %q: %w", ch.name, ctx.Err())
		}
	}
}

// Bind calls fn for every event named event on this channel and returns a
// function that removes the binding. Handlers run one at a time on the
// client's dispatch goroutine, in the order events arrived.
func (ch *Channel) Bind(event string, fn func(Event)) (unbind func()) {
	if event == "" {
		return func() {}
	}
	return ch.bindings.bind(event, fn)
}

// BindAll calls fn for every event on this channel (pusher-js bind_global
// on a channel) and returns a function that removes the binding.
func (ch *Channel) BindAll(fn func(Event)) (unbind func()) { return ch.bindings.bind("", fn) }

// OnMemberAdded calls fn when a user joins this presence channel.
func (ch *Channel) OnMemberAdded(fn func(Member)) (unbind func()) {
	return ch.members.bind(EventMemberAdded, func(e Event) { fn(decodeMember(e.Data)) })
}

// OnMemberRemoved calls fn when a user's last connection leaves this
// presence channel.
func (ch *Channel) OnMemberRemoved(fn func(Member)) (unbind func()) {
	return ch.members.bind(EventMemberRemoved, func(e Event) { fn(decodeMember(e.Data)) })
}

// Members returns the presence channel's members, sorted by id (empty
// until subscribed, and on other channels).
func (ch *Channel) Members() []Member {
	ch.c.mu.Lock()
	defer ch.c.mu.Unlock()
	out := make([]Member, 0, len(ch.roster))
	for id, info := range ch.roster {
		out = append(out, Member{ID: id, Info: info})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// Member returns the member with id, if present.
func (ch *Channel) Member(id string) (Member, bool) {
	ch.c.mu.Lock()
	defer ch.c.mu.Unlock()
	info, ok := ch.roster[id]
	return Member{ID: id, Info: info}, ok
}

// MemberCount returns the number of distinct users on the presence channel.
func (ch *Channel) MemberCount() int {
	ch.c.mu.Lock()
	defer ch.c.mu.Unlock()
	return len(ch.roster)
}

// Me returns this connection's own member on a presence channel (from
// the channel_data its authorizer returned); ok is false before the
// subscription succeeds.
func (ch *Channel) Me() (m Member, ok bool) {
	ch.c.mu.Lock()
	defer ch.c.mu.Unlock()
	return ch.me, ch.state == subSucceeded && ch.me.ID != ""
}

// Trigger sends a client event (its name must start with "client-") to the
// other subscribers of this private or presence channel; the app must have
// client events enabled. data is marshalled to JSON (json.RawMessage is
// sent as is). It fails with ErrNotSubscribed while the subscription is
// not confirmed. The server never echoes it back to this connection.
func (ch *Channel) Trigger(ctx context.Context, event string, data any) error {
	if !strings.HasPrefix(event, "client-") {
		return fmt.Errorf("client event %q: name must start with client-", event)
	}
	if !wire.IsPrivate(ch.name) && !wire.IsPresence(ch.name) {
		return fmt.Errorf("client event on %q: only private and presence channels take client events", ch.name)
	}
	if wire.IsEncrypted(ch.name) {
		return fmt.Errorf("client event on %q: encrypted channels take no client events", ch.name)
	}
	raw, err := json.Marshal(data)
	if err != nil {
		return fmt.Errorf("client event %q: data: %w", event, err)
	}
	frame, err := json.Marshal(outFrame{Event: event, Channel: ch.name, Data: raw})
	if err != nil {
		return err
	}
	c := ch.c
	c.mu.Lock()
	s := c.sess
	ok := ch.state == subSucceeded
	c.mu.Unlock()
	if s == nil || !ok {
		return fmt.Errorf("client event %q on %q: %w", event, ch.name, ErrNotSubscribed)
	}
	return s.write(ctx, frame)
}

func decodeMember(data []byte) Member {
	var m struct {
		UserID   json.RawMessage `json:"user_id"`
		UserInfo json.RawMessage `json:"user_info"`
	}
	_ = json.Unmarshal(data, &m)
	return Member{ID: idString(m.UserID), Info: nullToNil(m.UserInfo)}
}

// idString turns a user id sent as a JSON string or number into its text.
func idString(raw json.RawMessage) string {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	return strings.TrimSpace(string(raw))
}

func nullToNil(raw json.RawMessage) json.RawMessage {
	if len(raw) == 0 || string(raw) == "null" {
		return nil
	}
	return raw
}

// User is the signed-in user of a Client (pusher-js pusher.user): events
// sent to it with the server SDK's SendToUser arrive on its bindings.
type User struct {
	c        *Client
	bindings bindings[Event]
}

// Bind calls fn for every event named event sent to the signed-in user.
func (u *User) Bind(event string, fn func(Event)) (unbind func()) {
	if event == "" {
		return func() {}
	}
	return u.bindings.bind(event, fn)
}

// BindAll calls fn for every event sent to the signed-in user.
func (u *User) BindAll(fn func(Event)) (unbind func()) { return u.bindings.bind("", fn) }

// ID returns the signed-in user's id on the current connection ("" when
// not signed in).
func (u *User) ID() string {
	u.c.mu.Lock()
	defer u.c.mu.Unlock()
	return u.c.userID
}

// WaitSignedIn blocks until the current connection is signed in (nil), the
// sign-in fails, the client is closed, or ctx is done.
func (u *User) WaitSignedIn(ctx context.Context) error {
	c := u.c
	for {
		c.mu.Lock()
		id, err, changed, closed, wanted := c.userID, c.signinErr, c.userChanged, c.closed, c.signinWanted
		c.mu.Unlock()
		switch {
		case closed:
			return ErrClosed
		case !wanted:
			return errors.New("sign-in not requested (call SignIn)")
		case id != "":
			return nil
		case err != nil:
			return err
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return fmt.Errorf("waiting for sign-in: %w", ctx.Err())
		}
	}
}
