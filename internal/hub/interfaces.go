package hub

import (
	"context"
	"errors"
	"time"

	"github.com/herald-ws/herald/internal/protocol"
)

// Conn is one client connection as the hub sees it: a place to queue
// outbound frames and a way to close. The transport implements it.
//
// Send and Close may be called from any goroutine, concurrently, also after
// the connection has closed (they are then no-ops). Send must never block:
// it queues the frame on a bounded queue and returns false when the
// connection is closing or its queue is over its byte bound, in which case
// the transport closes the connection itself (4100, so the client backs off
// and reconnects) and the hub learns of it through Client.Disconnected.
// Frames passed to Send are shared between connections and must not be
// modified or retained past their write. Neither Send nor Close may call
// back into the hub (Client.Disconnected in particular) before returning:
// the hub calls them while holding its locks.
//
// at is when the hub took the message the frame carries, in nanoseconds
// since Options.Epoch (a monotonic clock shared with the transport), for
// the delivery-latency histogram; 0 means "not measured" (replies to the
// client's own requests, or metrics are off).
type Conn interface {
	Send(frame []byte, at int64) bool
	// Close writes what is queued, then a close frame with code and reason,
	// then closes the socket.
	Close(code int, reason string)
}

// Framer turns a JSON message into what Conn.Send takes (for WebSocket, a
// complete unmasked text frame). The hub calls it once per message and
// shares the result between every recipient. A nil Framer sends the JSON
// as is.
type Framer func(payload []byte) []byte

// ConnectError refuses a connection at admission with a Pusher close code.
type ConnectError struct {
	Code    int
	Message string
}

func (e *ConnectError) Error() string { return e.Message }

// CloseCode is the Pusher close code the connection is refused with.
func (e *ConnectError) CloseCode() int { return e.Code }

// ErrNotPresence is returned by PresenceUsers for a channel that is not a
// presence channel.
var ErrNotPresence = errors.New("the channel must be a presence channel")

// State keeps what must agree across every node: subscription counts,
// presence rosters and cache-channel events. The hub has an in-memory State
// for a single node; the cluster package provides one shared over Redis.
//
// Every method is atomic with respect to the others for the same app and
// channel: two concurrent Subscribe calls for the same user on different
// nodes yield exactly one FirstForUser. Counts are in sockets; a socket id
// is unique in the cluster. Calls must honour ctx and return promptly when
// the backing store is unreachable (the hub then answers the client with an
// error and goes on).
type State interface {
	// Subscribe records socketID on channel. For presence channels member is
	// set and maxMembers (> 0) caps the number of distinct users; a new user
	// over the cap gets ErrPresenceFull and nothing is recorded.
	Subscribe(ctx context.Context, appID, channel, socketID string, member *protocol.Member, maxMembers int) (SubscribeResult, error)
	// Unsubscribe removes socketID from channel; it is a no-op (zero result)
	// when the socket was not subscribed.
	Unsubscribe(ctx context.Context, appID, channel, socketID string) (UnsubscribeResult, error)
	// Channel returns the counts of one channel (zero when unoccupied).
	Channel(ctx context.Context, appID, channel string) (ChannelCounts, error)
	// Channels lists occupied channels whose name starts with prefix.
	Channels(ctx context.Context, appID, prefix string) (map[string]ChannelCounts, error)
	// Members lists the distinct users of a presence channel, in join order.
	Members(ctx context.Context, appID, channel string) ([]protocol.Member, error)
	// SetCache remembers the last API event of a cache channel for ttl.
	SetCache(ctx context.Context, appID, channel string, ev CachedEvent, ttl time.Duration) error
	// Cache returns the cached event and its remaining lifetime.
	Cache(ctx context.Context, appID, channel string) (ev CachedEvent, ttl time.Duration, ok bool, err error)
}

// ErrUnavailable wraps the errors of a State or Broker that cannot be
// reached (Redis down): the request may be retried later. A Publish that
// fails with it may already have reached this node's subscribers.
var ErrUnavailable = errors.New("cluster engine unavailable")

// ErrPresenceFull refuses a presence subscription over the member cap.
var ErrPresenceFull = errors.New("presence channel is full")

// SubscribeResult is what a subscription changed.
type SubscribeResult struct {
	// Count is the channel's socket count after the call.
	Count int
	// Added is false when the socket was already subscribed.
	Added bool
	// FirstForUser is set on presence channels when this socket made its
	// user present (member_added must be sent).
	FirstForUser bool
	// Members is the presence roster after the call (presence only).
	Members []protocol.Member
}

// UnsubscribeResult is what an unsubscription changed.
type UnsubscribeResult struct {
	Count   int
	Removed bool
	// LastForUser is set on presence channels when the user's last socket
	// left (member_removed must be sent); Member is that user.
	LastForUser bool
	Member      protocol.Member
}

// ChannelCounts are the counts of one channel.
type ChannelCounts struct {
	SubscriptionCount int
	// UserCount is the number of distinct presence users (presence only).
	UserCount int
}

// CachedEvent is the last event published on a cache channel.
type CachedEvent struct {
	Event string
	Data  string
}

// Broker carries messages between nodes. Nil (a single node) means there
// are no other nodes. Publish must deliver each message to every other
// node at most once and in order per publisher and channel; the node that
// publishes delivers to its own connections itself.
//
// Interest and UserInterest tell the broker that this node has one more
// (on) or one less (off) local subscriber of a channel, or signed-in socket
// of a user; calls are counted, and the node receives a channel's or user's
// messages only while its count is above zero. An "on" returns once the
// broker can deliver; the interest is kept, and restored after an outage,
// even when it returns an error. The hub never calls them with a lock held.
type Broker interface {
	Publish(ctx context.Context, m BrokerMessage) error
	Interest(ctx context.Context, appID, channel string, on bool) error
	UserInterest(ctx context.Context, appID, userID string, on bool) error
}

// UserState is implemented by a State that also counts the signed-in
// sockets of each user across the cluster (for watchlists and cluster-wide
// queries). The hub records sign-ins in it when the State has it.
type UserState interface {
	UserOnline(ctx context.Context, appID, userID, socketID string) (first bool, count int, err error)
	UserOffline(ctx context.Context, appID, userID, socketID string) (last bool, count int, err error)
}

// Departure is what the cluster removed from one channel when a node died:
// the channel's count afterwards, the presence members who are gone
// everywhere, and whether the channel is now empty.
type Departure struct {
	Channel string
	Count   int
	Gone    []protocol.Member
	Vacated bool
}

// BrokerMessage is one message for the other nodes.
type BrokerMessage struct {
	AppID string
	// Channel is the channel whose subscribers get Payload; empty for
	// Terminate.
	Channel string
	// Payload is the JSON message, already encoded.
	Payload []byte
	// ExceptSocketID is skipped on delivery.
	ExceptSocketID string
	// ToUser, when set, delivers Payload to the sockets signed in as that
	// user rather than to a channel.
	ToUser string
	// TerminateUser, when set, closes the sockets signed in as that user.
	TerminateUser string
}

// Observer learns of what happens in the hub (metrics, webhooks, the
// dashboard). Its methods are called synchronously on hot paths and must
// not block. A nil Observer is allowed.
type Observer interface {
	ConnectionOpened(appID string)
	ConnectionClosed(appID string)
	ChannelOccupied(appID, channel string)
	ChannelVacated(appID, channel string)
	MemberAdded(appID, channel, userID string)
	MemberRemoved(appID, channel, userID string)
	ClientEvent(appID, channel, event string, data []byte, socketID, userID string)
	CacheMiss(appID, channel string)
	SubscriptionCount(appID, channel string, count int)
	// Published is called once per channel an API event was published on,
	// with the number of local deliveries.
	Published(appID, channel, event string, deliveries int)
}

// RepairState is implemented by a State whose calls can time out after the
// backing store applied them (Redis), and which records every socket under
// the node that holds it. The hub uses it to repair what such calls leave
// behind: ghosts (ghosts.go) and, on each lease tick, the differences
// between its own connections and what the State holds for this node
// (Hub.Reconcile).
type RepairState interface {
	// Leave is Unsubscribe made safe to retry after a timeout. op names one
	// leave: every attempt at it passes the same op, and no other leave
	// uses it. When the call that removes the socket makes the user's last
	// socket go (member_removed) or empties the channel, the State keeps
	// that outcome under op for a while (minutes); a later attempt that
	// finds the socket gone returns it, with Removed set, so the follow-up
	// events are sent although the reply of the call that did the removal
	// was lost. The kept outcome is reported only while it is still true:
	// LastForUser only while the user is still absent, Count as it is now.
	Leave(ctx context.Context, appID, channel, socketID, op string) (UnsubscribeResult, error)
	// HeldApps lists the apps the State holds entries of this node for.
	HeldApps(ctx context.Context) ([]string, error)
	// Held lists the entries of this node in appID a page at a time:
	// cursor 0 starts, a returned cursor of 0 ends. A page may repeat an
	// entry of an earlier one.
	Held(ctx context.Context, appID string, cursor uint64) ([]HeldEntry, uint64, error)
	// Holds reports, for each entry, whether the State holds it for this
	// node.
	Holds(ctx context.Context, appID string, entries []HeldEntry) ([]bool, error)
}

// HeldEntry is one socket the State records for this node: a channel
// subscription (Channel set) or a signed-in user (User set, see UserState).
type HeldEntry struct {
	Channel string
	User    string
	Socket  string
}
