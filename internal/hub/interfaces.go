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
// and reconnects) and the hub learns of it through Session.Closed.
// Frames passed to Send are shared between connections and must not be
// modified or retained past their write. Neither Send nor Close may call
// back into the hub (Session.Closed in particular) before returning:
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
	// Bind tells the connection its app, once admission has accepted the
	// app and before anything is sent on it (the transport counts bytes,
	// latencies and later refusals per app). Admit calls it at most once.
	Bind(appID string)
}

// Framer turns a JSON message into what Conn.Send takes (for WebSocket, a
// complete unmasked text frame). The hub calls it once per message and
// shares the result between every recipient. A nil Framer sends the JSON
// as is.
type Framer func(payload []byte) []byte

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
