package hub

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/herald-ws/herald/internal/apps"
	"github.com/herald-ws/herald/internal/protocol"
)

// Publish delivers an API event to every subscriber of each channel, here
// and on the other nodes, except the socket req.ExceptSocketID. The request
// is assumed valid (the HTTP API checks names, sizes and limits). Each
// channel's message is encoded and framed once for all its subscribers.
func (h *Hub) Publish(ctx context.Context, app *apps.App, req PublishRequest) error {
	except := h.client(req.ExceptSocketID)
	var firstErr error
	// The broker calls of the channels run side by side (at most
	// brokerParallel at once; the broker pipelines what they queue), not
	// one after another: a 100-channel trigger against a slow Redis waits
	// about one round trip, not a hundred. Publish returns only when all
	// are done, so one publisher's events on a channel keep their order.
	var wg sync.WaitGroup
	brokerErrs := make([]error, len(req.Channels))
	sem := make(chan struct{}, brokerParallel)
	run := func(i int, f func() error) {
		if len(req.Channels) == 1 {
			// The common case needs no goroutine.
			brokerErrs[i] = f()
			return
		}
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			brokerErrs[i] = f()
		}()
	}
	toBroker := func(i int, m BrokerMessage) { run(i, func() error { return h.toBroker(ctx, m) }) }
	for i, name := range req.Channels {
		start := h.fanoutStart()
		payload := protocol.Event(req.Name, name, req.Data)
		kind := protocol.Classify(name)
		if kind.IsCache() {
			// Cache before delivering: a client subscribing meanwhile then
			// gets the event live, from the cache, or both, never neither.
			if err := h.state.SetCache(ctx, app.ID, name, CachedEvent{Event: req.Name, Data: req.Data}, h.opt.CacheTTL); err != nil && firstErr == nil {
				firstErr = fmt.Errorf("%w: cache %s: %w", ErrUnavailable, name, err)
			}
		}
		if rule, ok := h.historyRule(app, name); ok {
			// The History stores it, numbers it and delivers it to every
			// node, this one too, in offset order.
			m := BrokerMessage{AppID: app.ID, Channel: name, Payload: payload, ExceptSocketID: req.ExceptSocketID}
			run(i, func() error { return h.appendHistory(ctx, rule, m) })
			if o := h.opt.Observer; o != nil {
				o.Published(app.ID, name, req.Name, 0)
			}
			continue
		}
		n := 0
		if kind == protocol.ServerToUser {
			user := strings.TrimPrefix(name, protocol.PrefixServerToUser)
			n = h.deliverToUser(app.ID, user, h.frame(payload), start, except)
			toBroker(i, BrokerMessage{AppID: app.ID, Payload: payload, ExceptSocketID: req.ExceptSocketID, ToUser: user})
		} else {
			n = h.broadcast(chanKey{app.ID, name}, h.frame(payload), start, except)
			toBroker(i, BrokerMessage{AppID: app.ID, Channel: name, Payload: payload, ExceptSocketID: req.ExceptSocketID})
		}
		h.fanoutDone(app.ID, SourceAPI, n, start)
		if o := h.opt.Observer; o != nil {
			o.Published(app.ID, name, req.Name, n)
		}
	}
	wg.Wait()
	for _, err := range brokerErrs {
		if err != nil && firstErr == nil {
			firstErr = err
		}
	}
	return firstErr
}

// brokerParallel bounds the broker calls one Publish has in flight.
const brokerParallel = 16

// publishInternal sends a hub-made message (member events, client events)
// to a channel here and on the other nodes.
func (h *Hub) publishInternal(app *apps.App, channel string, payload []byte, except *Client, src Source) {
	start := h.fanoutStart()
	n := h.broadcast(chanKey{app.ID, channel}, h.frame(payload), start, except)
	h.fanoutDone(app.ID, src, n, start)
	exceptID := ""
	if except != nil {
		exceptID = except.id
	}
	// No deadline of ours: the Broker bounds its own calls (a timer per
	// client event would cost a single node more than its Broker does).
	if err := h.toBroker(context.Background(), BrokerMessage{AppID: app.ID, Channel: channel, Payload: payload, ExceptSocketID: exceptID}); err != nil {
		h.log.Warn("broker publish failed", "app_id", app.ID, "channel", channel, "err", err)
	}
}

func (h *Hub) toBroker(ctx context.Context, m BrokerMessage) error {
	if err := h.opt.Broker.Publish(ctx, m); err != nil {
		return fmt.Errorf("%w: broker: %w", ErrUnavailable, err)
	}
	return nil
}

// deliverToUser sends under usersMu (Send never blocks) so that nothing
// reaches a socket after userOffline has removed it.
func (h *Hub) deliverToUser(appID, user string, frame []byte, at int64, except *Client) int {
	h.usersMu.Lock()
	defer h.usersMu.Unlock()
	n := 0
	for c := range h.users[userKey{appID, user}] {
		if c != except {
			c.conn.Send(frame, at)
			n++
		}
	}
	return n
}

// HandleBrokerMessage implements Receiver: it delivers a message that
// another node published to this node's connections.
func (h *Hub) HandleBrokerMessage(m BrokerMessage) {
	start := h.fanoutStart()
	switch {
	case m.TerminateUser != "":
		h.terminateLocal(m.AppID, m.TerminateUser)
	case m.ToUser != "":
		n := h.deliverToUser(m.AppID, m.ToUser, h.frame(m.Payload), start, h.client(m.ExceptSocketID))
		h.fanoutDone(m.AppID, SourceCluster, n, start)
	case m.Channel != "" && m.Position.Epoch != "":
		n := h.deliverHistory(chanKey{m.AppID, m.Channel}, m.Payload, m.Position, start, m.ExceptSocketID)
		h.fanoutDone(m.AppID, SourceCluster, n, start)
	case m.Channel != "":
		n := h.broadcastExceptID(chanKey{m.AppID, m.Channel}, h.frame(m.Payload), start, m.ExceptSocketID)
		h.fanoutDone(m.AppID, SourceCluster, n, start)
	}
}

// TerminateUser closes every connection signed in as userID, on every node,
// with 4009.
func (h *Hub) TerminateUser(ctx context.Context, app *apps.App, userID string) error {
	h.terminateLocal(app.ID, userID)
	return h.toBroker(ctx, BrokerMessage{AppID: app.ID, TerminateUser: userID})
}

func (h *Hub) terminateLocal(appID, userID string) {
	for _, c := range h.userClients(appID, userID) {
		c.closeWith(protocol.CodeUnauthorized, "You got disconnected by the app.")
	}
}

// Channel answers GET /channels/{name}.
func (h *Hub) Channel(ctx context.Context, app *apps.App, name string) (ChannelInfo, error) {
	kind := protocol.Classify(name)
	counts, err := h.state.Channel(ctx, app.ID, name)
	if err != nil {
		return ChannelInfo{}, fmt.Errorf("%w: channel %s: %w", ErrUnavailable, name, err)
	}
	info := ChannelInfo{
		Name:              name,
		Kind:              kind,
		Occupied:          counts.SubscriptionCount > 0,
		SubscriptionCount: counts.SubscriptionCount,
		UserCount:         counts.UserCount,
	}
	if kind.IsCache() {
		ev, ttl, ok, err := h.state.Cache(ctx, app.ID, name)
		if err != nil {
			return ChannelInfo{}, fmt.Errorf("%w: channel %s cache: %w", ErrUnavailable, name, err)
		}
		if ok {
			info.Cache = &CacheInfo{Event: ev.Event, Data: ev.Data, TTL: int((ttl + time.Second - 1) / time.Second)}
		}
	}
	return info, nil
}

// Channels answers GET /channels: occupied channels whose name starts with
// prefix, sorted by name.
func (h *Hub) Channels(ctx context.Context, app *apps.App, prefix string) ([]ChannelInfo, error) {
	m, err := h.state.Channels(ctx, app.ID, prefix)
	if err != nil {
		return nil, fmt.Errorf("%w: channels: %w", ErrUnavailable, err)
	}
	out := make([]ChannelInfo, 0, len(m))
	for name, c := range m {
		if c.SubscriptionCount == 0 {
			continue
		}
		out = append(out, ChannelInfo{Name: name, Kind: protocol.Classify(name), Occupied: true, SubscriptionCount: c.SubscriptionCount, UserCount: c.UserCount})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// PresenceUsers answers GET /channels/{name}/users.
func (h *Hub) PresenceUsers(ctx context.Context, app *apps.App, name string) ([]protocol.Member, error) {
	if !protocol.Classify(name).IsPresence() {
		return nil, ErrNotPresence
	}
	ms, err := h.state.Members(ctx, app.ID, name)
	if err != nil {
		return nil, fmt.Errorf("%w: presence users %s: %w", ErrUnavailable, name, err)
	}
	return ms, nil
}

// markCountDirty schedules a subscription_count event for the channel.
func (h *Hub) markCountDirty(app *apps.App, name string) {
	h.countMu.Lock()
	h.countDirty[chanKey{app.ID, name}] = app
	h.countMu.Unlock()
}

// flushCounts sends the latest subscription count of every channel that
// changed since the last flush.
func (h *Hub) flushCounts() {
	h.countMu.Lock()
	if len(h.countDirty) == 0 {
		h.countMu.Unlock()
		return
	}
	dirty := h.countDirty
	h.countDirty = make(map[chanKey]*apps.App)
	h.countMu.Unlock()
	for k, app := range dirty {
		ctx, cancel := h.stateCtx()
		counts, err := h.state.Channel(ctx, k.app, k.name)
		cancel()
		if err != nil {
			h.log.Warn("subscription count: state unavailable", "app_id", k.app, "channel", k.name, "err", err)
			continue
		}
		if counts.SubscriptionCount > 0 {
			// To every node's subscribers: the change may have happened
			// here only.
			h.publishInternal(app, k.name, protocol.SubscriptionCount(k.name, counts.SubscriptionCount), nil, SourceServer)
		}
		if o := h.opt.Observer; o != nil {
			o.SubscriptionCount(app.ID, k.name, counts.SubscriptionCount)
		}
	}
}

// HandleDeparture implements Receiver: it sends what follows when the
// engine removed a dead node's sockets: member_removed for the users now
// gone everywhere, channel_vacated and the new subscription count of each
// channel. The engine reports a dead node once, on one node; the events
// reach every node through the Broker.
func (h *Hub) HandleDeparture(d Departure) {
	for _, ch := range d.Channels {
		if h.opt.Apps == nil {
			break
		}
		app, err := h.opt.Apps.ByID(context.Background(), ch.AppID)
		if err != nil {
			continue // an app that is no longer configured
		}
		h.departed(app, ch)
	}
	h.log.Info("cleaned up a dead node", "node", d.Node, "channels", len(d.Channels), "users_offline", len(d.Offline))
}

func (h *Hub) departed(app *apps.App, d DepartedChannel) {
	kind := protocol.Classify(d.Channel)
	obs := h.opt.Observer
	if kind.IsPresence() && len(d.Gone) > 0 {
		unlock := h.lockPresence(chanKey{app.ID, d.Channel})
		for _, m := range d.Gone {
			h.publishInternal(app, d.Channel, protocol.MemberRemoved(d.Channel, m), nil, SourceServer)
			if obs != nil {
				obs.MemberRemoved(app.ID, d.Channel, m.ID)
			}
		}
		unlock()
	}
	if d.Vacated && obs != nil {
		obs.ChannelVacated(app.ID, d.Channel)
	}
	if app.EnableSubscriptionCount && !kind.IsPresence() && kind != protocol.ServerToUser && d.Count > 0 {
		h.publishInternal(app, d.Channel, protocol.SubscriptionCount(d.Channel, d.Count), nil, SourceServer)
	}
}

// Reregister implements Receiver: it records every local subscription and
// sign-in in the State again, after the cluster lost this node's records (its lease expired, or
// Redis lost its data). Users who had been removed meanwhile are announced
// again with member_added.
func (h *Hub) Reregister(ctx context.Context) {
	type entry struct {
		c    *Client
		name string
		sub  *subscription
	}
	var all []entry
	var users []*Client
	h.forEachClient(func(c *Client) {
		c.mu.Lock()
		for _, e := range c.subs {
			all = append(all, entry{c, e.name, e.sub})
		}
		if c.user != nil {
			users = append(users, c)
		}
		c.mu.Unlock()
	})
	for _, e := range all {
		if ctx.Err() != nil {
			return
		}
		app := e.c.app.Load()
		k := chanKey{app.ID, e.name}
		var unlock func()
		if e.sub.kind.IsPresence() {
			unlock = h.lockPresence(k)
		}
		sctx, cancel := context.WithTimeout(ctx, h.opt.StateTimeout)
		// No member cap: these sockets were admitted already.
		res, err := h.state.Subscribe(sctx, app.ID, e.name, e.c.id, e.sub.member, 0)
		cancel()
		if err != nil {
			h.log.Warn("reregister: state unavailable", "app_id", app.ID, "channel", e.name, "err", err)
		} else if res.FirstForUser && e.sub.member != nil {
			h.publishInternal(app, e.name, protocol.MemberAdded(e.name, *e.sub.member), e.c, SourceServer)
		}
		if unlock != nil {
			unlock()
		}
	}
	for _, c := range users {
		c.mu.Lock()
		u := c.user
		c.mu.Unlock()
		if u == nil {
			continue
		}
		sctx, cancel := context.WithTimeout(ctx, h.opt.StateTimeout)
		if _, _, err := h.state.UserOnline(sctx, c.app.Load().ID, u.ID, c.id); err != nil {
			h.log.Warn("reregister: user sockets", "app_id", c.app.Load().ID, "user", u.ID, "err", err)
		}
		cancel()
	}
}

var _ Receiver = (*Hub)(nil)
