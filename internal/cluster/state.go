package cluster

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/herald-ws/herald/internal/hub"
	"github.com/herald-ws/herald/internal/protocol"
	"github.com/redis/go-redis/v9"
)

// State is the hub.State shared by every node through Redis. Each method is
// one Lua script (or one read), atomic for its app; sockets are recorded
// under the owning Node's id so that the survivors can remove them when the
// node dies.
type State struct{ n *Node }

var _ hub.State = (*State)(nil)

// Subscribe implements hub.State.
func (s *State) Subscribe(ctx context.Context, appID, channel, socketID string, member *protocol.Member, maxMembers int) (hub.SubscribeResult, error) {
	n := s.n
	if !n.registered.Load() {
		return hub.SubscribeResult{}, ErrNotRegistered
	}
	ctx, cancel := n.opCtx(ctx)
	defer cancel()
	// Bounded with the removals: a reconnect storm re-subscribes thousands
	// of sockets at once (and Reregister all of a node's), which would
	// otherwise take the whole pool from the queries.
	err := n.acquireBulk(ctx)
	if err != nil {
		return hub.SubscribeResult{}, fmt.Errorf("subscribe: waiting for a slot: %w", err)
	}
	defer n.releaseBulk()
	node := n.ID()
	if err := n.registerApp(ctx, node, appID); err != nil {
		return hub.SubscribeResult{}, fmt.Errorf("subscribe: %w", err)
	}
	var pres, user, blob string
	if member != nil {
		pres, user, blob = "1", member.ID, encodeMember(member)
	}
	v, err := subscribeScript.Run(ctx, n.rdb, n.k.channel(appID, channel, node),
		socketID, node, pres, user, blob, maxMembers, channel).Slice()
	if err != nil {
		return hub.SubscribeResult{}, fmt.Errorf("subscribe: %w", err)
	}
	if len(v) == 1 && toInt(v[0]) == -1 {
		return hub.SubscribeResult{}, hub.ErrPresenceFull
	}
	if len(v) < 4 {
		return hub.SubscribeResult{}, errors.New("subscribe: unexpected reply")
	}
	res := hub.SubscribeResult{Added: toInt(v[0]) == 1, Count: toInt(v[1]), FirstForUser: toInt(v[2]) == 1}
	if member != nil {
		res.Members = parseRoster(v[4:])
	}
	if toInt(v[3]) == 1 {
		// The node's first socket in the app: the barrier of a Redis
		// Cluster waits for the nodes whose node set exists.
		n.replicate(ctx, n.rdb, n.k.nodeSet(appID, node))
	}
	return res, nil
}

// Unsubscribe implements hub.State.
func (s *State) Unsubscribe(ctx context.Context, appID, channel, socketID string) (hub.UnsubscribeResult, error) {
	n := s.n
	ctx, cancel := n.opCtx(ctx)
	defer cancel()
	err := n.acquireBulk(ctx)
	if err != nil {
		return hub.UnsubscribeResult{}, fmt.Errorf("unsubscribe: waiting for a slot: %w", err)
	}
	defer n.releaseBulk()
	v, err := unsubscribeScript.Run(ctx, n.rdb, n.k.channel(appID, channel, n.ID()), socketID, channel, "").Slice()
	if err != nil {
		return hub.UnsubscribeResult{}, fmt.Errorf("unsubscribe: %w", err)
	}
	return parseUnsubscribe(v), nil
}

// leaveMemory is how long Leave keeps the outcome of a removal that ended
// a user's presence or emptied a channel, for a retry whose earlier attempt
// lost its reply. The hub retries every second once Redis answers; the
// cost is one small hash per such leave for this long.
const leaveMemory = 2 * time.Minute

var _ hub.RepairState = (*State)(nil)

// Leave implements hub.RepairState: Unsubscribe, keeping the outcome of a
// transition under op (one script, so a retry sees either the socket or
// the outcome).
func (s *State) Leave(ctx context.Context, appID, channel, socketID, op string) (hub.UnsubscribeResult, error) {
	n := s.n
	ctx, cancel := n.opCtx(ctx)
	defer cancel()
	err := n.acquireBulk(ctx)
	if err != nil {
		return hub.UnsubscribeResult{}, fmt.Errorf("leave: waiting for a slot: %w", err)
	}
	defer n.releaseBulk()
	ks := append(n.k.channel(appID, channel, n.ID()), n.k.left(appID, op))
	v, err := unsubscribeScript.Run(ctx, n.rdb, ks, socketID, channel, "", leaveMemory.Milliseconds()).Slice()
	if err != nil {
		return hub.UnsubscribeResult{}, fmt.Errorf("leave: %w", err)
	}
	return parseUnsubscribe(v), nil
}

// HeldApps implements hub.RepairState.
func (s *State) HeldApps(ctx context.Context) ([]string, error) {
	n := s.n
	ctx, cancel := n.opCtx(ctx)
	defer cancel()
	ids, err := n.rdb.SMembers(ctx, n.k.nodeApps(n.ID())).Result()
	if err != nil {
		return nil, fmt.Errorf("held apps: %w", err)
	}
	return ids, nil
}

// heldPage is how many entries Held asks SSCAN for per call.
const heldPage = 500

// Held implements hub.RepairState over the node's set of entries in the
// app (SSCAN, so a page costs the same however large the set).
func (s *State) Held(ctx context.Context, appID string, cursor uint64) ([]hub.HeldEntry, uint64, error) {
	n := s.n
	ctx, cancel := n.opCtx(ctx)
	defer cancel()
	raw, next, err := n.rdb.SScan(ctx, n.k.nodeSet(appID, n.ID()), cursor, "", heldPage).Result()
	if err != nil {
		return nil, 0, fmt.Errorf("held: %w", err)
	}
	out := make([]hub.HeldEntry, 0, len(raw))
	for _, e := range raw {
		ch, sock, ok := strings.Cut(e, "\n")
		if !ok {
			continue
		}
		if user, isUser := strings.CutPrefix(ch, userMark); isUser {
			out = append(out, hub.HeldEntry{User: user, Socket: sock})
		} else {
			out = append(out, hub.HeldEntry{Channel: ch, Socket: sock})
		}
	}
	return out, next, nil
}

// Holds implements hub.RepairState (one SMISMEMBER).
func (s *State) Holds(ctx context.Context, appID string, entries []hub.HeldEntry) ([]bool, error) {
	if len(entries) == 0 {
		return nil, nil
	}
	n := s.n
	ctx, cancel := n.opCtx(ctx)
	defer cancel()
	members := make([]any, len(entries))
	for i, e := range entries {
		ch := e.Channel
		if e.User != "" {
			ch = userMark + e.User
		}
		members[i] = ch + "\n" + e.Socket
	}
	got, err := n.rdb.SMIsMember(ctx, n.k.nodeSet(appID, n.ID()), members...).Result()
	if err != nil {
		return nil, fmt.Errorf("holds: %w", err)
	}
	return got, nil
}

// Channel implements hub.State.
func (s *State) Channel(ctx context.Context, appID, channel string) (hub.ChannelCounts, error) {
	n := s.n
	ctx, cancel := n.opCtx(ctx)
	defer cancel()
	v, err := channelScript.Run(ctx, n.rdb, []string{n.k.sockets(appID, channel), n.k.members(appID, channel)}).Slice()
	if err != nil {
		return hub.ChannelCounts{}, fmt.Errorf("channel: %w", err)
	}
	if len(v) != 2 {
		return hub.ChannelCounts{}, errors.New("channel: unexpected reply")
	}
	return hub.ChannelCounts{SubscriptionCount: toInt(v[0]), UserCount: toInt(v[1])}, nil
}

// channelsPage is how many channel names Channels reads per round trip.
const channelsPage = 500

// Channels implements hub.State. It walks the app's index of occupied
// channels by name (ZRANGEBYLEX), never the keyspace, and reads the counts
// of a page of channels in one pipeline.
func (s *State) Channels(ctx context.Context, appID, prefix string) (map[string]hub.ChannelCounts, error) {
	n := s.n
	ctx, cancel := n.opCtx(ctx)
	defer cancel()
	out := make(map[string]hub.ChannelCounts)
	// "[\x01" skips the users' records ("\x00user:…"), which share the index.
	lo, hi := "[\x01", "+"
	if prefix != "" {
		lo, hi = "["+prefix, "["+prefix+"\xff"
	}
	for {
		names, err := n.rdb.ZRangeArgs(ctx, redis.ZRangeArgs{Key: n.k.chans(appID), Start: lo, Stop: hi, ByLex: true, Count: channelsPage}).Result()
		if err != nil {
			return nil, fmt.Errorf("channels: %w", err)
		}
		if len(names) == 0 {
			return out, nil
		}
		pipe := n.rdb.Pipeline()
		cmds := make([][2]*redis.IntCmd, len(names))
		for i, name := range names {
			cmds[i] = [2]*redis.IntCmd{pipe.HLen(ctx, n.k.sockets(appID, name)), pipe.HLen(ctx, n.k.members(appID, name))}
		}
		if _, err := pipe.Exec(ctx); err != nil {
			return nil, fmt.Errorf("channels: %w", err)
		}
		for i, name := range names {
			if c := int(cmds[i][0].Val()); c > 0 {
				out[name] = hub.ChannelCounts{SubscriptionCount: c, UserCount: int(cmds[i][1].Val())}
			}
		}
		if len(names) < channelsPage {
			return out, nil
		}
		lo = "(" + names[len(names)-1]
	}
}

// Members implements hub.State.
func (s *State) Members(ctx context.Context, appID, channel string) ([]protocol.Member, error) {
	n := s.n
	ctx, cancel := n.opCtx(ctx)
	defer cancel()
	v, err := membersScript.Run(ctx, n.rdb, []string{n.k.members(appID, channel), n.k.order(appID, channel)}).Slice()
	if err != nil {
		return nil, fmt.Errorf("members: %w", err)
	}
	if len(v) == 0 {
		return nil, nil
	}
	return parseRoster(v), nil
}

// SetCache implements hub.State.
func (s *State) SetCache(ctx context.Context, appID, channel string, ev hub.CachedEvent, ttl time.Duration) error {
	n := s.n
	ctx, cancel := n.opCtx(ctx)
	defer cancel()
	if ttl < time.Millisecond {
		ttl = time.Millisecond
	}
	if err := n.rdb.Set(ctx, n.k.cache(appID, channel), encodeCache(ev), ttl).Err(); err != nil {
		return fmt.Errorf("set cache: %w", err)
	}
	return nil
}

// Cache implements hub.State.
func (s *State) Cache(ctx context.Context, appID, channel string) (hub.CachedEvent, time.Duration, bool, error) {
	n := s.n
	ctx, cancel := n.opCtx(ctx)
	defer cancel()
	v, err := cacheScript.Run(ctx, n.rdb, []string{n.k.cache(appID, channel)}).Slice()
	if errors.Is(err, redis.Nil) {
		return hub.CachedEvent{}, 0, false, nil
	}
	if err != nil {
		return hub.CachedEvent{}, 0, false, fmt.Errorf("cache: %w", err)
	}
	if len(v) != 2 {
		return hub.CachedEvent{}, 0, false, errors.New("cache: unexpected reply")
	}
	raw, _ := v[0].(string)
	ev, ok := decodeCache(raw)
	ttl := time.Duration(toInt(v[1])) * time.Millisecond
	if !ok || ttl <= 0 {
		return hub.CachedEvent{}, 0, false, nil
	}
	return ev, ttl, true, nil
}

func toInt(v any) int {
	i, _ := v.(int64)
	return int(i)
}

func parseRoster(v []any) []protocol.Member {
	out := make([]protocol.Member, 0, len(v)/2)
	for i := 0; i+1 < len(v); i += 2 {
		id, _ := v[i].(string)
		blob, _ := v[i+1].(string)
		out = append(out, decodeMember(id, blob))
	}
	return out
}

func parseUnsubscribe(v []any) hub.UnsubscribeResult {
	if len(v) < 2 {
		return hub.UnsubscribeResult{}
	}
	r := hub.UnsubscribeResult{Removed: toInt(v[0]) == 1, Count: toInt(v[1])}
	if len(v) >= 5 && toInt(v[2]) == 1 {
		id, _ := v[3].(string)
		blob, _ := v[4].(string)
		r.LastForUser = true
		r.Member = decodeMember(id, blob)
	}
	return r
}

// userMark starts the pseudo-channel that records a user's signed-in
// sockets; no channel name can start with it.
const userMark = "\x00user:"

// UserOnline records that socketID signed in as userID. First is set when
// it is the user's first socket in the cluster (for watchlist online
// events); count is the user's socket count after the call. Calling it
// again for the same socket changes nothing.
func (s *State) UserOnline(ctx context.Context, appID, userID, socketID string) (first bool, count int, err error) {
	r, err := s.Subscribe(ctx, appID, userMark+userID, socketID, nil, 0)
	if err != nil {
		return false, 0, err
	}
	return r.Added && r.Count == 1, r.Count, nil
}

// UserOffline records that socketID, signed in as userID, is gone. Last is
// set when the user has no socket left in the cluster.
func (s *State) UserOffline(ctx context.Context, appID, userID, socketID string) (last bool, count int, err error) {
	r, err := s.Unsubscribe(ctx, appID, userMark+userID, socketID)
	if err != nil {
		return false, 0, err
	}
	return r.Removed && r.Count == 0, r.Count, nil
}

// UserSockets returns the number of sockets signed in as userID in the
// cluster.
func (s *State) UserSockets(ctx context.Context, appID, userID string) (int, error) {
	c, err := s.Channel(ctx, appID, userMark+userID)
	return c.SubscriptionCount, err
}

// memberWebhookScript settles a member webhook that waited out the
// presence delay. KEYS: the channel's members hash, its told hash (the
// users the webhook receiver was last told are present). ARGV: user,
// "1" for member_added. Returns 1 to send.
var memberWebhookScript = redis.NewScript(`
local present = redis.call('HEXISTS', KEYS[1], ARGV[1]) == 1
if ARGV[2] == '1' then
  if not present then return 0 end
  return redis.call('HSETNX', KEYS[2], ARGV[1], '1')
end
if present then return 0 end
return redis.call('HDEL', KEYS[2], ARGV[1])`)

// MemberWebhook implements webhooks.PresenceGate: a member_added is sent
// when the user is present and the receiver was not told so yet, a
// member_removed when the user is gone and the receiver was told they were
// there. So a leave on one node and a rejoin on another within the
// presence delay send neither, whichever comes due first.
func (s *State) MemberWebhook(ctx context.Context, appID, channel, userID string, added bool) (bool, error) {
	n := s.n
	ctx, cancel := n.opCtx(ctx)
	defer cancel()
	flag := "0"
	if added {
		flag = "1"
	}
	v, err := memberWebhookScript.Run(ctx, n.rdb, []string{n.k.members(appID, channel), n.k.told(appID, channel)}, userID, flag).Int()
	if err != nil {
		return true, fmt.Errorf("member webhook: %w", err)
	}
	return v == 1, nil
}
