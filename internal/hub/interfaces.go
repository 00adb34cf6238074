package hub

import (
	"context"
	"errors"
	"time"

	"github.com/herald-ws/herald/internal/apps"
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
// presence rosters, the signed-in sockets of each user and cache-channel
// events. internal/cluster/memory keeps it in this process (one node, or
// several hubs of one process); internal/cluster keeps it in Redis. Every
// implementation passes internal/cluster/enginetest.
//
// Atomicity: every method is atomic with respect to the others for the
// same app and channel (or user), across every node sharing the State: two
// concurrent Subscribe calls for the same user on different nodes yield
// exactly one FirstForUser, and the last of their Unsubscribe calls exactly
// one LastForUser. Apps are separate: nothing of one app is visible in
// another.
//
// Counts are in sockets; a socket id is unique in the cluster, and a
// socket is recorded at most once per channel (calls are idempotent).
// Zero values mean "nothing there": an unoccupied channel has zero counts,
// no members and no cache entry, never an error.
//
// Errors: a non-nil error means the backing store could not be reached or
// answered garbage (implementations wrap ErrUnavailable or a transport
// error); the call may or may not have taken effect, and the hub answers
// the client with an error and goes on (ghosts.go repairs what may be
// left). ErrPresenceFull is the only refusal. Every call honours ctx and
// returns promptly when the store is unreachable.
type State interface {
	// Subscribe records socketID on channel. For presence channels member is
	// set and maxMembers (> 0) caps the number of distinct users; a new user
	// over the cap gets ErrPresenceFull and nothing is recorded. A socket
	// already recorded changes nothing (Added false, the counts and roster
	// as they are).
	Subscribe(ctx context.Context, appID, channel, socketID string, member *protocol.Member, maxMembers int) (SubscribeResult, error)
	// Unsubscribe removes socketID from channel; it is a no-op (Removed
	// false, the current Count) when the socket was not subscribed.
	Unsubscribe(ctx context.Context, appID, channel, socketID string) (UnsubscribeResult, error)
	// Channel returns the counts of one channel (zero when unoccupied).
	Channel(ctx context.Context, appID, channel string) (ChannelCounts, error)
	// Channels lists the occupied channels whose name starts with prefix
	// ("" for all), never an empty one; an empty map when none.
	Channels(ctx context.Context, appID, prefix string) (map[string]ChannelCounts, error)
	// Members lists the distinct users of a presence channel, in join order
	// (nil when none).
	Members(ctx context.Context, appID, channel string) ([]protocol.Member, error)
	// SetCache remembers ev as the last event of a cache channel for ttl,
	// replacing the previous one.
	SetCache(ctx context.Context, appID, channel string, ev CachedEvent, ttl time.Duration) error
	// Cache returns the cached event and its remaining lifetime (> 0); ok
	// is false when there is none or it expired.
	Cache(ctx context.Context, appID, channel string) (ev CachedEvent, ttl time.Duration, ok bool, err error)
	// UserOnline records that socketID signed in as userID. first is set
	// when it is the user's first socket in the cluster (watchlist online
	// events); count is the user's socket count after the call. Calling it
	// again for the same socket changes nothing (first false).
	UserOnline(ctx context.Context, appID, userID, socketID string) (first bool, count int, err error)
	// UserOffline records that socketID, signed in as userID, is gone. last
	// is set when the user has no socket left in the cluster; a socket not
	// recorded changes nothing (last false).
	UserOffline(ctx context.Context, appID, userID, socketID string) (last bool, count int, err error)
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

// Broker carries messages between the nodes of a cluster. Every hub has
// one: alone, the memory Broker (internal/cluster/memory) has no other
// node to deliver to and costs next to nothing, so one node and many run
// the same code. Every implementation passes internal/cluster/enginetest.
//
// Attach registers the hub once it exists (hub.New calls it, before any
// other method); the broker delivers to it from then on.
//
// Publish delivers m to every other node that has interest in m's channel
// (or user, for ToUser and TerminateUser) when the message arrives there,
// by calling that node's Receiver.HandleBrokerMessage: at most once (never
// duplicated, never back to the publishing node, which delivers to its own
// connections itself) and in order per publisher and channel or user
// (messages one node publishes one after another on a channel arrive in
// that order everywhere). Nothing is promised across channels or
// publishers. A nil error means the message is on its way; an error means
// it may or may not reach the other nodes (the hub reports ErrUnavailable).
// A message without AppID, or without Channel, ToUser and TerminateUser,
// is an error.
//
// Interest and UserInterest tell the broker that this node has one more
// (on) or one less (off) local subscriber of a channel, or signed-in socket
// of a user. Calls are counted: the node receives a channel's or user's
// messages only while its count is above zero. An "on" returns once the
// broker can deliver (an event published after it returns reaches this
// node); the count is kept, and the interest restored after an outage,
// even when the call returns an error. The hub never calls them with a
// lock held.
//
// Every call honours ctx; given a ctx without a deadline (the hub's own
// messages and interest), the Broker bounds the call itself and returns
// an error rather than wait for an unreachable store for ever.
type Broker interface {
	Attach(r Receiver)
	Publish(ctx context.Context, m BrokerMessage) error
	Interest(ctx context.Context, appID, channel string, on bool) error
	UserInterest(ctx context.Context, appID, userID string, on bool) error
}

// Receiver is the hub as its engine sees it: where the Broker delivers the
// other nodes' messages, and the engine reports what it did on its own.
// The Hub implements it. Its methods may be called from any goroutine.
type Receiver interface {
	// HandleBrokerMessage delivers a message another node published to
	// this node's connections. It does not block.
	HandleBrokerMessage(m BrokerMessage)
	// HandleDeparture announces what the engine removed when another node
	// died (member_removed, channel_vacated, subscription counts). The
	// engine reports each removal once, on one surviving node (a cleanup
	// cut short and resumed reports the rest in a second Departure).
	HandleDeparture(d Departure)
	// Reregister records every local subscription and sign-in in the State
	// again, after the engine lost this node's records (its lease expired,
	// or Redis lost its data). ctx ends when the engine closes.
	Reregister(ctx context.Context)
	// Reconcile compares, after each renewal of this node's lease, the
	// node's own connections with what the State holds for it and repairs
	// both ways (ghosts left by calls that timed out, records the State
	// lost). An engine whose writes are never lost or applied late need
	// not call it. ctx ends when the engine closes.
	Reconcile(ctx context.Context)
}

// Departure is what the engine removed when a node died.
type Departure struct {
	// Node is the dead node's id.
	Node     string
	Channels []DepartedChannel
	// Offline are the users (State.UserOnline) left with no socket.
	Offline []DepartedUser
}

// DepartedChannel is what a departure changed on one channel: the channel's
// count afterwards, the presence members who are gone everywhere, and
// whether the channel is now empty.
type DepartedChannel struct {
	AppID   string
	Channel string
	// Removed is the number of the dead node's sockets removed.
	Removed int
	// Count is the channel's subscription count after the removal.
	Count int
	// Gone are the presence users who had no socket left.
	Gone []protocol.Member
	// Vacated is set when the channel became empty.
	Vacated bool
}

// DepartedUser is a user a departure left without a signed-in socket.
type DepartedUser struct{ AppID, UserID string }

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
	// Position is set on the events of a channel with history (History):
	// Payload is then the message without its position, which the hub adds.
	Position Position
}

// Position is where an event stands in its channel's history: Epoch names
// one unbroken history (a new one whenever history was lost) and Offset
// counts its events from 1.
type Position struct {
	Epoch  string
	Offset uint64
}

// HistoryEntry is one stored event: its offset and its message without a
// position (as BrokerMessage.Payload).
type HistoryEntry struct {
	Offset  uint64
	Payload []byte
}

// HistoryPage is what History.Read found.
type HistoryPage struct {
	// Epoch is the history's epoch; Top the last offset assigned in it (0
	// when none yet).
	Epoch string
	Top   uint64
	// First is the offset of the oldest event still kept (0 when none).
	First uint64
	// Entries are the kept events after the requested offset, in order.
	Entries []HistoryEntry
}

// History keeps the recent events of the channels an app's history rules
// match (apps.HistoryRule), and delivers them in order. internal/cluster/
// memory keeps it in this process (bounded by a global byte cap);
// internal/cluster keeps it in Redis streams, where any node can read it.
// Every implementation passes internal/cluster/enginetest.
//
// Append stores m.Payload as the next event of (m.AppID, m.Channel): its
// offset is the previous one plus one, across every node sharing the
// History. When the channel has no history yet, or lost it (expired as a
// whole after rule.TTL without an event, evicted, deleted from Redis), a
// new history starts with a new random epoch and offset 1. The channel
// keeps at most rule.Size events, each for at most rule.TTL. Append then
// delivers m, Position set, to every node with interest in the channel,
// this one included, through Receiver.HandleBrokerMessage: each node
// receives a channel's events in offset order, once (the hub does not
// deliver history events to its own connections itself). On error the
// event may or may not have been stored and delivered.
//
// Read returns the channel's epoch and top, creating the history (a new
// epoch, top 0) when there is none, and at most limit kept events with an
// offset above after, oldest first (limit 0: none). Every call honours
// ctx.
type History interface {
	Append(ctx context.Context, rule apps.HistoryRule, m BrokerMessage) (Position, error)
	Read(ctx context.Context, appID, channel string, rule apps.HistoryRule, after uint64, limit int) (HistoryPage, error)
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
