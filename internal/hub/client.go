package hub

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/herald-ws/herald/internal/apps"
	"github.com/herald-ws/herald/internal/protocol"
)

// Client is one connection's session in the hub. The transport feeds it
// messages with HandleMessage (serially), reports activity with Touch and
// the end of the socket with Closed.
type Client struct {
	hub *Hub
	// app is swapped by UpdateApp when the app's settings change (a
	// rotated secret, new limits) while the connection is open.
	app  atomic.Pointer[apps.App]
	conn Conn
	id   string

	lastSeen     atomic.Int64 // unix nanos of the last inbound frame
	pingedAt     atomic.Int64 // unix nanos of an unanswered server ping, 0 if none
	authDeadline int64        // unix nanos; 0 = none (immutable after Connect)
	closing      atomic.Bool
	timer        wheelEntry // guarded by Hub.timers.mu

	// op serialises HandleMessage with Closed: a subscription or
	// sign-in in progress when the socket goes is then either finished
	// before Closed undoes it or never started, instead of being
	// recorded after Closed released everything (which leaked the
	// client in channel lists, rosters and user sets).
	op sync.Mutex

	mu       sync.Mutex
	subs     subSet
	user     *protocol.UserData // nil until signed in
	userRaw  string
	signedIn atomic.Bool
	gone     bool // set by Closed, under op and mu

	// client-event token bucket
	tokens     float64
	tokensTime int64
}

type subscription struct {
	kind   protocol.Kind
	member *protocol.Member // presence only
}

// SocketID is the client's socket id ("123.456").
func (c *Client) SocketID() string { return c.id }

// App is the client's app.
func (c *Client) App() *apps.App { return c.app.Load() }

// Touch records inbound activity (any frame, including control frames).
func (c *Client) Touch() {
	c.lastSeen.Store(c.hub.now().UnixNano())
	c.pingedAt.Store(0)
}

func (c *Client) send(payload []byte) bool {
	return c.conn.Send(c.hub.frame(payload), 0)
}

// sendError sends pusher:error without closing.
func (c *Client) sendError(code int, msg string) {
	c.send(protocol.Error(code, msg))
}

// closeWith sends pusher:error with code and closes the socket with it.
func (c *Client) closeWith(code int, msg string) {
	if c.closing.Swap(true) {
		return
	}
	c.send(protocol.Error(code, msg))
	c.conn.Close(code, protocol.TruncateReason(msg))
}

// HandleMessage handles one complete client message. Bad input is answered
// with a pusher:error frame; the socket stays open.
func (c *Client) HandleMessage(data []byte) {
	c.op.Lock()
	defer c.op.Unlock()
	if c.gone { // written under op too
		return
	}
	c.Touch()
	m, err := protocol.DecodeMessage(data)
	if err != nil {
		c.sendError(0, errText(err))
		return
	}
	switch m.Event {
	case protocol.EventPing:
		c.send(protocol.Pong())
	case protocol.EventPong:
		// Touch above was the point.
	case protocol.EventSubscribe:
		s, err := protocol.DecodeSubscribe(m.Data)
		if err != nil {
			c.sendError(0, errText(err))
			return
		}
		c.subscribe(s)
	case protocol.EventUnsubscribe:
		name, err := protocol.DecodeChannelOnly(m.Data)
		if err != nil {
			c.sendError(0, errText(err))
			return
		}
		c.unsubscribe(name)
	case protocol.EventSignin:
		s, err := protocol.DecodeSignin(m.Data)
		if err != nil {
			c.sendError(0, errText(err))
			return
		}
		c.signin(s)
	default:
		switch {
		case strings.HasPrefix(m.Event, protocol.PrefixClientEvent):
			c.clientEvent(m)
		case strings.HasPrefix(m.Event, protocol.PrefixPusherEvent), strings.HasPrefix(m.Event, protocol.PrefixInternal):
			c.sendError(0, "Unknown event: "+protocol.Clip(m.Event, 64))
		default:
			c.sendError(0, "Invalid event "+protocol.Clip(m.Event, 64)+": clients may only send pusher: events and client- events")
		}
	}
}

func errText(err error) string {
	s := err.Error()
	// "invalid message: not valid JSON" reads better capitalised.
	if s != "" {
		s = strings.ToUpper(s[:1]) + s[1:]
	}
	return s
}

func (c *Client) subscriptionError(channel, typ, msg string, status int) {
	c.send(protocol.SubscriptionError(channel, typ, msg, status))
}

func (c *Client) subscribe(s protocol.Subscribe) {
	h, app := c.hub, c.app.Load()
	name := s.Channel
	if err := protocol.ValidateChannelName(name, app.MaxChannelNameLength); err != nil {
		if len(name) > app.MaxChannelNameLength {
			h.refused(app.ID, LimitChannelNameLength)
		}
		c.subscriptionError(name, "InvalidChannel", err.Error(), 400)
		return
	}
	kind := protocol.Classify(name)
	var member *protocol.Member

	switch {
	case kind == protocol.ServerToUser:
		c.mu.Lock()
		u := c.user
		c.mu.Unlock()
		if u == nil || name != protocol.ServerToUserChannel(u.ID) {
			c.subscriptionError(name, "AuthError", "Only the user signed in on this connection may subscribe to "+name, 403)
			return
		}
	case kind.NeedsAuth():
		channelData := s.ChannelData
		if kind.IsPresence() && s.ChannelDataNotString {
			c.subscriptionError(name, "AuthError", "channel_data must be the JSON string that the auth endpoint returned", 401)
			return
		}
		if kind.IsPresence() && channelData == "" {
			// pusher-js may omit channel_data on a signed-in connection; the
			// member is then the signed-in user (protocol reference §5.3).
			c.mu.Lock()
			u := c.user
			c.mu.Unlock()
			if u == nil {
				c.subscriptionError(name, "AuthError", "channel_data is required to subscribe to a presence channel", 401)
				return
			}
			idJSON := protocol.AppendString(nil, u.ID)
			member = &protocol.Member{ID: u.ID, RawID: idJSON, Info: u.Info}
		}
		if err := protocol.VerifyToken(app.Key, app.Secret, s.Auth, protocol.ChannelAuthString(c.id, name, channelData)); err != nil {
			c.subscriptionError(name, "AuthError", "The connection is unauthorized: "+err.Error(), 401)
			return
		}
		if kind.IsPresence() && member == nil {
			m, err := protocol.ParseChannelData(channelData)
			if err != nil {
				c.subscriptionError(name, "AuthError", err.Error(), 400)
				return
			}
			member = &m
		}
		if member != nil && len(member.Info) > app.MaxPresenceMemberBytes() {
			h.refused(app.ID, LimitPresenceMemberSize)
			c.subscriptionError(name, "LimitReached", "The presence member's user_info is larger than the allowed maximum", 413)
			return
		}
	}

	c.mu.Lock()
	if c.gone {
		c.mu.Unlock()
		return
	}
	existing := c.subs.get(name)
	subscribed := len(c.subs)
	c.mu.Unlock()
	k := chanKey{app.ID, name}

	if existing != nil {
		// Re-subscribing succeeds again without counting twice.
		if kind.IsPresence() {
			ctx, cancel := h.stateCtx()
			members, err := h.state.Members(ctx, app.ID, name)
			cancel()
			if err != nil {
				c.subscriptionError(name, "ServerError", "Presence state is unavailable, try again", 503)
				return
			}
			c.send(protocol.PresenceSucceeded(name, members))
		} else {
			c.send(protocol.SubscriptionSucceeded(name))
		}
		if s.Recover != nil {
			// Already subscribed on this connection: nothing was missed
			// here, and nothing is replayed.
			h.recovered(c, k, protocol.RecoveryInvalid, 0, Position{})
		}
		return
	}

	if max := app.MaxChannelsPerConnection; max > 0 && subscribed >= max {
		h.refused(app.ID, LimitChannelsPerConnection)
		c.subscriptionError(name, "LimitReached", "The connection is subscribed to the maximum number of channels ("+strconv.Itoa(max)+")", protocol.CodeClientEventRejected)
		return
	}
	maxMembers := 0
	if kind.IsPresence() {
		maxMembers = app.MaxPresenceMembers
		// Joins and leaves of one presence channel on this node go one at a
		// time, from the State call to the member event, so that a roster
		// handed to a joiner can never miss a member_removed sent meanwhile.
		unlock := h.lockPresence(k)
		defer unlock()
	}
	// Listen for the channel's messages from other nodes before reading the
	// roster, so that nothing published after the read can be missed.
	h.channelInterest(app.ID, name, kind, true)
	ctx, cancel := h.stateCtx()
	res, err := h.state.Subscribe(ctx, app.ID, name, c.id, member, maxMembers)
	cancel()
	if errors.Is(err, ErrPresenceFull) {
		h.refused(app.ID, LimitPresenceMembers)
		h.channelInterest(app.ID, name, kind, false)
		c.subscriptionError(name, "LimitReached", "The presence channel has reached its maximum number of members", 4100)
		return
	}
	if err != nil {
		h.channelInterest(app.ID, name, kind, false)
		h.burst.Warn("subscribe: state unavailable", "app_id", app.ID, "channel", name, "err", err)
		// The call may have been applied all the same (a timeout): make
		// sure the State does not keep it.
		h.addGhost(app, name, c.id, kind, "")
		c.subscriptionError(name, "ServerError", "The server could not record the subscription, try again", 503)
		return
	}

	c.mu.Lock()
	if c.gone {
		// The socket closed while the state call was in flight: undo.
		c.mu.Unlock()
		h.channelInterest(app.ID, name, kind, false)
		op := h.newOp(c.id)
		res, err := h.stateLeave(app.ID, name, c.id, op)
		if err != nil {
			h.addGhost(app, name, c.id, kind, op)
		} else {
			h.afterLeave(app, name, kind, res)
		}
		return
	}
	c.subs.add(name, &subscription{kind: kind, member: member})
	c.mu.Unlock()

	var ok []byte
	if kind.IsPresence() {
		ok = protocol.PresenceSucceeded(name, res.Members)
	} else {
		ok = protocol.SubscriptionSucceeded(name)
	}
	if rule, hist := h.historyRule(app, name); hist {
		h.subscribeHistory(c, k, rule, ok, s.Recover)
	} else {
		h.addLocal(k, c, h.frame(ok))
		if s.Recover != nil {
			h.recovered(c, k, protocol.RecoveryNoHistory, 0, Position{})
		}
	}

	obs := h.opt.Observer
	if res.Added && res.Count == 1 && obs != nil {
		obs.ChannelOccupied(app.ID, name)
	}
	if res.FirstForUser {
		h.publishInternal(app, name, protocol.MemberAdded(name, *member), c, SourceServer)
		if obs != nil {
			obs.MemberAdded(app.ID, name, member.ID)
		}
	}
	if kind.IsCache() {
		c.sendCache(name)
	}
	if res.Added && app.EnableSubscriptionCount && !kind.IsPresence() && kind != protocol.ServerToUser {
		h.markCountDirty(app, name)
	}
}

// sendCache replays the cached event of a cache channel, or says it missed.
func (c *Client) sendCache(name string) {
	h := c.hub
	ctx, cancel := h.stateCtx()
	ev, _, ok, err := h.state.Cache(ctx, c.app.Load().ID, name)
	cancel()
	if err != nil {
		h.log.Warn("cache lookup failed", "app_id", c.app.Load().ID, "channel", name, "err", err)
	}
	if ok {
		c.send(protocol.Event(ev.Event, name, ev.Data))
		return
	}
	c.send(protocol.CacheMiss(name))
	if o := h.opt.Observer; o != nil {
		o.CacheMiss(c.app.Load().ID, name)
	}
}

func (c *Client) unsubscribe(name string) {
	c.mu.Lock()
	sub := c.subs.remove(name)
	c.mu.Unlock()
	if sub == nil {
		return
	}
	c.hub.leave(c, name, sub)
}

// leave removes c from channel name everywhere and sends what follows.
func (h *Hub) leave(c *Client, name string, sub *subscription) {
	app := c.app.Load()
	k := chanKey{app.ID, name}
	if sub.kind.IsPresence() {
		unlock := h.lockPresence(k)
		defer unlock()
	}
	h.removeLocal(k, c)
	h.channelInterest(app.ID, name, sub.kind, false)
	op := h.newOp(c.id)
	res, err := h.stateLeave(app.ID, name, c.id, op)
	if err != nil {
		h.burst.Warn("unsubscribe: state unavailable, will retry", "app_id", app.ID, "channel", name, "err", err)
		// The same op on every retry: one that finds the socket gone
		// learns what this call did if it was applied after all.
		h.addGhost(app, name, c.id, sub.kind, op)
		return
	}
	h.afterLeave(app, name, sub.kind, res)
}

// afterLeave sends what follows a removal the State decided: member_removed
// for a user gone everywhere, channel_vacated, the new count.
func (h *Hub) afterLeave(app *apps.App, name string, kind protocol.Kind, res UnsubscribeResult) {
	obs := h.opt.Observer
	if res.LastForUser {
		h.publishInternal(app, name, protocol.MemberRemoved(name, res.Member), nil, SourceServer)
		if obs != nil {
			obs.MemberRemoved(app.ID, name, res.Member.ID)
		}
	}
	if res.Removed && res.Count == 0 && obs != nil {
		obs.ChannelVacated(app.ID, name)
	}
	if res.Removed && app.EnableSubscriptionCount && !kind.IsPresence() && kind != protocol.ServerToUser {
		h.markCountDirty(app, name)
	}
}

// Closed releases everything the connection held: the transport calls it
// once when the socket is gone, whatever the reason (Session).
func (c *Client) Closed() {
	c.closing.Store(true)
	c.op.Lock()
	defer c.op.Unlock()
	c.mu.Lock()
	if c.gone {
		c.mu.Unlock()
		return
	}
	c.gone = true
	subs := c.subs
	c.subs = nil
	user := c.user
	c.mu.Unlock()

	h := c.hub
	for _, e := range subs {
		h.leave(c, e.name, e.sub)
	}
	if user != nil {
		h.userOffline(c, user, false)
	}
	h.removeClient(c)
}

func (c *Client) signin(s protocol.Signin) {
	app := c.app.Load()
	if err := protocol.VerifyToken(app.Key, app.Secret, s.Auth, protocol.UserAuthString(c.id, s.UserData)); err != nil {
		c.closeWith(protocol.CodeUnauthorized, "Connection not authorized: "+err.Error())
		return
	}
	u, err := protocol.ParseUserData(s.UserData)
	if err != nil {
		c.closeWith(protocol.CodeUnauthorized, "Connection not authorized: "+err.Error())
		return
	}
	c.mu.Lock()
	if c.gone {
		c.mu.Unlock()
		return
	}
	prev := c.user
	c.user = &u
	c.userRaw = s.UserData
	c.mu.Unlock()
	c.signedIn.Store(true)
	h := c.hub
	if prev != nil {
		h.userOffline(c, prev, prev.ID == u.ID)
	}
	// Recorded (and listened for on other nodes) before the client hears
	// of its success, so a sendToUser or terminate it triggers right away
	// finds it.
	h.userOnline(c, &u, protocol.SigninSuccess(s.UserData))
}

// allowClientEvent applies the per-connection token bucket: rate per
// second, burst of the same size.
func (c *Client) allowClientEvent() bool {
	rate := float64(c.app.Load().ClientEventsPerSecond)
	if rate < 0 {
		return true
	}
	now := c.hub.now().UnixNano()
	if c.tokensTime == 0 {
		c.tokens = rate
	} else {
		c.tokens += float64(now-c.tokensTime) / float64(time.Second) * rate
		if c.tokens > rate {
			c.tokens = rate
		}
	}
	c.tokensTime = now
	if c.tokens < 1 {
		return false
	}
	c.tokens--
	return true
}

func (c *Client) clientEvent(m protocol.Message) {
	app, h := c.app.Load(), c.hub
	if !app.EnableClientMessages {
		c.sendError(protocol.CodeClientEventRejected, "The app does not have client messaging enabled.")
		return
	}
	if m.Channel == "" {
		c.sendError(protocol.CodeClientEventRejected, "Client events need a channel.")
		return
	}
	kind := protocol.Classify(m.Channel)
	if !kind.AllowsClientEvents() {
		c.sendError(protocol.CodeClientEventRejected, "Client events are only allowed on private and presence channels (not encrypted ones).")
		return
	}
	if len(m.Event) > app.MaxEventNameLength {
		h.refused(app.ID, LimitEventNameLength)
		c.sendError(protocol.CodeClientEventRejected, "Event name is too long.")
		return
	}
	if len(m.Data) > app.MaxEventPayloadBytes() {
		h.refused(app.ID, LimitEventPayload)
		c.sendError(protocol.CodeClientEventRejected, "The event data is larger than the allowed maximum.")
		return
	}
	c.mu.Lock()
	sub := c.subs.get(m.Channel)
	c.mu.Unlock()
	if sub == nil {
		c.sendError(protocol.CodeUnauthorized, "The client is not a member of the specified channel.")
		return
	}
	if !c.allowClientEvent() {
		h.refused(app.ID, LimitClientEvents)
		c.sendError(protocol.CodeClientEventRejected, "The rate limit for sending client events exceeded the quota.")
		return
	}
	userID := ""
	if sub.member != nil {
		userID = sub.member.ID
	}
	payload := protocol.EventRaw(m.Event, m.Channel, m.Data, userID)
	if rule, ok := h.historyRule(app, m.Channel); ok {
		// Numbered and delivered by the History (history.go); no deadline
		// of ours, as in publishInternal.
		if err := h.appendHistory(context.Background(), rule, BrokerMessage{AppID: app.ID, Channel: m.Channel, Payload: payload, ExceptSocketID: c.id}); err != nil {
			h.log.Warn("client event: history unavailable", "app_id", app.ID, "channel", m.Channel, "err", err)
		}
	} else {
		h.publishInternal(app, m.Channel, payload, c, SourceClient)
	}
	if o := h.opt.Observer; o != nil {
		o.ClientEvent(app.ID, m.Channel, m.Event, m.Data, c.id, userID)
	}
}

// userOnline records a signed-in socket, sends it success (when not nil)
// and tells watchers.
func (h *Hub) userOnline(c *Client, u *protocol.UserData, success []byte) {
	h.userInterest(c, u.ID, true)
	k := userKey{c.app.Load().ID, u.ID}
	h.usersMu.Lock()
	set := h.users[k]
	first := len(set) == 0
	if set == nil {
		set = make(map[*Client]struct{}, 1)
		h.users[k] = set
	}
	set[c] = struct{}{}
	if first && c.app.Load().EnableWatchlistEvents && len(h.watchers[k]) > 0 {
		// Sent under usersMu (Send never blocks) so that no notice reaches
		// a watcher after userOffline has removed it.
		f := h.frame(protocol.Watchlist([]protocol.WatchlistEvent{{Name: "online", UserIDs: []string{u.ID}}}))
		at := h.clock()
		for w := range h.watchers[k] {
			w.conn.Send(f, at)
		}
	}
	var online, offline []string
	if c.app.Load().EnableWatchlistEvents && len(u.Watchlist) > 0 {
		for _, id := range u.Watchlist {
			wk := userKey{c.app.Load().ID, id}
			ws := h.watchers[wk]
			if ws == nil {
				ws = make(map[*Client]struct{}, 1)
				h.watchers[wk] = ws
			}
			ws[c] = struct{}{}
			if len(h.users[wk]) > 0 {
				online = append(online, id)
			} else {
				offline = append(offline, id)
			}
		}
	}
	h.usersMu.Unlock()

	if success != nil {
		c.send(success)
	}
	if c.app.Load().EnableWatchlistEvents {
		if len(online)+len(offline) > 0 {
			var evs []protocol.WatchlistEvent
			if len(online) > 0 {
				evs = append(evs, protocol.WatchlistEvent{Name: "online", UserIDs: online})
			}
			if len(offline) > 0 {
				evs = append(evs, protocol.WatchlistEvent{Name: "offline", UserIDs: offline})
			}
			c.send(protocol.Watchlist(evs))
		}
	}
}

// userOffline forgets a signed-in socket and tells watchers when it was the
// user's last. With unwatchOnly (the socket signs in again as the same user,
// which is not going offline) it only forgets the socket's old watchlist.
func (h *Hub) userOffline(c *Client, u *protocol.UserData, unwatchOnly bool) {
	k := userKey{c.app.Load().ID, u.ID}
	h.usersMu.Lock()
	last := false
	if !unwatchOnly {
		set := h.users[k]
		delete(set, c)
		if last = len(set) == 0; last {
			delete(h.users, k)
		}
	}
	if last && c.app.Load().EnableWatchlistEvents && len(h.watchers[k]) > 0 {
		// Under usersMu, as in userOnline.
		f := h.frame(protocol.Watchlist([]protocol.WatchlistEvent{{Name: "offline", UserIDs: []string{u.ID}}}))
		at := h.clock()
		for w := range h.watchers[k] {
			if w != c {
				w.conn.Send(f, at)
			}
		}
	}
	for _, id := range u.Watchlist {
		wk := userKey{c.app.Load().ID, id}
		if ws := h.watchers[wk]; ws != nil {
			delete(ws, c)
			if len(ws) == 0 {
				delete(h.watchers, wk)
			}
		}
	}
	h.usersMu.Unlock()
	if !unwatchOnly {
		h.userInterest(c, u.ID, false)
	}
}

// userInterest tells the broker and the State that a socket of user
// signed in (on) or left (off).
func (h *Hub) userInterest(c *Client, userID string, on bool) {
	// The Broker bounds its own calls (see publishInternal).
	if err := h.opt.Broker.UserInterest(context.Background(), c.app.Load().ID, userID, on); err != nil {
		h.burst.Warn("broker: user interest", "app_id", c.app.Load().ID, "user", userID, "on", on, "err", err)
	}
	ctx, cancel := h.stateCtx()
	var err error
	if on {
		_, _, err = h.state.UserOnline(ctx, c.app.Load().ID, userID, c.id)
	} else {
		_, _, err = h.state.UserOffline(ctx, c.app.Load().ID, userID, c.id)
	}
	cancel()
	if err != nil {
		h.burst.Warn("state: user sockets", "app_id", c.app.Load().ID, "user", userID, "on", on, "err", err)
	}
}

// channelInterest tells the broker that this node gained or lost a local
// subscriber of a channel. Server-to-user channels are routed by user.
func (h *Hub) channelInterest(appID, channel string, kind protocol.Kind, on bool) {
	if kind == protocol.ServerToUser {
		return
	}
	// The Broker bounds its own calls (see publishInternal).
	if err := h.opt.Broker.Interest(context.Background(), appID, channel, on); err != nil {
		h.burst.Warn("broker: channel interest", "app_id", appID, "channel", channel, "on", on, "err", err)
	}
}

// userClients returns the local sockets signed in as user.
func (h *Hub) userClients(appID, user string) []*Client {
	h.usersMu.Lock()
	defer h.usersMu.Unlock()
	set := h.users[userKey{appID, user}]
	out := make([]*Client, 0, len(set))
	for c := range set {
		out = append(out, c)
	}
	return out
}

// RateLimited answers a message the transport refused because the
// connection sends faster than its message rate: a subscribe fails with
// pusher:subscription_error (LimitReached, 4301), so that the client's
// subscription ends instead of waiting forever; anything else gets
// pusher:error 4301. The socket stays.
func (c *Client) RateLimited(data []byte) {
	const msg = "Rate limit exceeded: too many messages, try again later"
	if m, err := protocol.DecodeMessage(data); err == nil && m.Event == protocol.EventSubscribe {
		if s, err := protocol.DecodeSubscribe(m.Data); err == nil {
			c.subscriptionError(s.Channel, "LimitReached", msg, protocol.CodeClientEventRejected)
			return
		}
	}
	c.sendError(protocol.CodeClientEventRejected, msg)
}
