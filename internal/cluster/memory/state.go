package memory

import (
	"context"
	"strings"
	"sync"
	"time"

	"github.com/herald-ws/herald/internal/hub"
	"github.com/herald-ws/herald/internal/protocol"
)

// State is the hub.State kept in this process: plain maps under one
// mutex. It is only touched on subscribe/unsubscribe and queries, never on
// the delivery path. The hubs sharing one State see one cluster.
type State struct {
	now  func() time.Time
	mu   sync.Mutex
	apps map[string]*memApp
}

type memApp struct {
	channels map[string]*memChannel
	cache    map[string]memCached
	users    map[string]map[string]struct{} // user id → signed-in socket ids
}

type memChannel struct {
	sockets map[string]string // socket id → user id ("" outside presence)
	users   map[string]*memUser
	order   []string // user ids in join order
}

type memUser struct {
	member  protocol.Member
	sockets int
}

type memCached struct {
	ev      hub.CachedEvent
	expires time.Time
}

var _ hub.State = (*State)(nil)

// NewState returns an empty State on clock now (nil: time.Now).
func NewState(now func() time.Time) *State {
	if now == nil {
		now = time.Now
	}
	return &State{now: now, apps: make(map[string]*memApp)}
}

func (s *State) app(id string) *memApp {
	a := s.apps[id]
	if a == nil {
		a = &memApp{channels: make(map[string]*memChannel), cache: make(map[string]memCached), users: make(map[string]map[string]struct{})}
		s.apps[id] = a
	}
	return a
}

func (s *State) Subscribe(_ context.Context, appID, channel, socketID string, member *protocol.Member, maxMembers int) (hub.SubscribeResult, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a := s.app(appID)
	ch := a.channels[channel]
	if ch == nil {
		ch = &memChannel{sockets: make(map[string]string)}
		a.channels[channel] = ch
	}
	var res hub.SubscribeResult
	if _, ok := ch.sockets[socketID]; ok {
		res.Count = len(ch.sockets)
		if member != nil {
			res.Members = ch.members()
		}
		return res, nil
	}
	if member != nil {
		if ch.users == nil {
			ch.users = make(map[string]*memUser)
		}
		u := ch.users[member.ID]
		if u == nil {
			if maxMembers > 0 && len(ch.users) >= maxMembers {
				if len(ch.sockets) == 0 {
					delete(a.channels, channel)
				}
				return hub.SubscribeResult{}, hub.ErrPresenceFull
			}
			u = &memUser{member: *member}
			ch.users[member.ID] = u
			ch.order = append(ch.order, member.ID)
			res.FirstForUser = true
		}
		u.sockets++
		ch.sockets[socketID] = member.ID
	} else {
		ch.sockets[socketID] = ""
	}
	res.Added = true
	res.Count = len(ch.sockets)
	if member != nil {
		res.Members = ch.members()
	}
	return res, nil
}

func (ch *memChannel) members() []protocol.Member {
	out := make([]protocol.Member, 0, len(ch.order))
	for _, id := range ch.order {
		out = append(out, ch.users[id].member)
	}
	return out
}

func (s *State) Unsubscribe(_ context.Context, appID, channel, socketID string) (hub.UnsubscribeResult, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a := s.app(appID)
	ch := a.channels[channel]
	if ch == nil {
		return hub.UnsubscribeResult{}, nil
	}
	uid, ok := ch.sockets[socketID]
	if !ok {
		return hub.UnsubscribeResult{Count: len(ch.sockets)}, nil
	}
	delete(ch.sockets, socketID)
	res := hub.UnsubscribeResult{Removed: true, Count: len(ch.sockets)}
	if u := ch.users[uid]; u != nil {
		u.sockets--
		if u.sockets <= 0 {
			delete(ch.users, uid)
			for i, id := range ch.order {
				if id == uid {
					ch.order = append(ch.order[:i], ch.order[i+1:]...)
					break
				}
			}
			res.LastForUser = true
			res.Member = u.member
		}
	}
	if len(ch.sockets) == 0 {
		delete(a.channels, channel)
	}
	return res, nil
}

func (s *State) Channel(_ context.Context, appID, channel string) (hub.ChannelCounts, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ch := s.app(appID).channels[channel]
	if ch == nil {
		return hub.ChannelCounts{}, nil
	}
	return hub.ChannelCounts{SubscriptionCount: len(ch.sockets), UserCount: len(ch.users)}, nil
}

func (s *State) Channels(_ context.Context, appID, prefix string) (map[string]hub.ChannelCounts, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]hub.ChannelCounts)
	for name, ch := range s.app(appID).channels {
		if strings.HasPrefix(name, prefix) {
			out[name] = hub.ChannelCounts{SubscriptionCount: len(ch.sockets), UserCount: len(ch.users)}
		}
	}
	return out, nil
}

func (s *State) Members(_ context.Context, appID, channel string) ([]protocol.Member, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ch := s.app(appID).channels[channel]
	if ch == nil {
		return nil, nil
	}
	return ch.members(), nil
}

func (s *State) SetCache(_ context.Context, appID, channel string, ev hub.CachedEvent, ttl time.Duration) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	a := s.app(appID)
	now := s.now()
	// Drop expired entries now and then so that a stream of one-off cache
	// channels cannot grow the map for ever.
	if len(a.cache) > 0 && len(a.cache)%cacheSweepEvery == 0 {
		for k, c := range a.cache {
			if !now.Before(c.expires) {
				delete(a.cache, k)
			}
		}
	}
	a.cache[channel] = memCached{ev: ev, expires: now.Add(ttl)}
	return nil
}

func (s *State) Cache(_ context.Context, appID, channel string) (hub.CachedEvent, time.Duration, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a := s.app(appID)
	c, ok := a.cache[channel]
	if !ok {
		return hub.CachedEvent{}, 0, false, nil
	}
	left := c.expires.Sub(s.now())
	if left <= 0 {
		delete(a.cache, channel)
		return hub.CachedEvent{}, 0, false, nil
	}
	return c.ev, left, true, nil
}

// cacheSweepEvery: SetCache drops the expired cache entries of an app
// whenever it holds a multiple of this many.
const cacheSweepEvery = 1024

// UserOnline implements hub.State.
func (s *State) UserOnline(_ context.Context, appID, userID, socketID string) (bool, int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a := s.app(appID)
	socks := a.users[userID]
	if socks == nil {
		socks = make(map[string]struct{})
		a.users[userID] = socks
	}
	if _, ok := socks[socketID]; ok {
		return false, len(socks), nil
	}
	socks[socketID] = struct{}{}
	return len(socks) == 1, len(socks), nil
}

// UserOffline implements hub.State.
func (s *State) UserOffline(_ context.Context, appID, userID, socketID string) (bool, int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a := s.app(appID)
	socks := a.users[userID]
	if _, ok := socks[socketID]; !ok {
		return false, len(socks), nil
	}
	delete(socks, socketID)
	if len(socks) == 0 {
		delete(a.users, userID)
		return true, 0, nil
	}
	return false, len(socks), nil
}
