package hub

import (
	"context"
	"strings"
	"sync"
	"time"

	"github.com/herald-ws/herald/internal/protocol"
)

// memState is the single-node State: plain maps under one mutex per app.
// It is only touched on subscribe/unsubscribe and queries, never on the
// delivery path.
type memState struct {
	now  func() time.Time
	mu   sync.Mutex
	apps map[string]*memApp
}

type memApp struct {
	channels map[string]*memChannel
	cache    map[string]memCached
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
	ev      CachedEvent
	expires time.Time
}

// NewMemoryState returns the in-memory State of a single node.
func NewMemoryState(now func() time.Time) State {
	if now == nil {
		now = time.Now
	}
	return &memState{now: now, apps: make(map[string]*memApp)}
}

func (s *memState) app(id string) *memApp {
	a := s.apps[id]
	if a == nil {
		a = &memApp{channels: make(map[string]*memChannel), cache: make(map[string]memCached)}
		s.apps[id] = a
	}
	return a
}

func (s *memState) Subscribe(_ context.Context, appID, channel, socketID string, member *protocol.Member, maxMembers int) (SubscribeResult, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a := s.app(appID)
	ch := a.channels[channel]
	if ch == nil {
		ch = &memChannel{sockets: make(map[string]string)}
		a.channels[channel] = ch
	}
	var res SubscribeResult
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
				return SubscribeResult{}, ErrPresenceFull
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

func (s *memState) Unsubscribe(_ context.Context, appID, channel, socketID string) (UnsubscribeResult, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a := s.app(appID)
	ch := a.channels[channel]
	if ch == nil {
		return UnsubscribeResult{}, nil
	}
	uid, ok := ch.sockets[socketID]
	if !ok {
		return UnsubscribeResult{Count: len(ch.sockets)}, nil
	}
	delete(ch.sockets, socketID)
	res := UnsubscribeResult{Removed: true, Count: len(ch.sockets)}
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

func (s *memState) Channel(_ context.Context, appID, channel string) (ChannelCounts, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ch := s.app(appID).channels[channel]
	if ch == nil {
		return ChannelCounts{}, nil
	}
	return ChannelCounts{SubscriptionCount: len(ch.sockets), UserCount: len(ch.users)}, nil
}

func (s *memState) Channels(_ context.Context, appID, prefix string) (map[string]ChannelCounts, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]ChannelCounts)
	for name, ch := range s.app(appID).channels {
		if strings.HasPrefix(name, prefix) {
			out[name] = ChannelCounts{SubscriptionCount: len(ch.sockets), UserCount: len(ch.users)}
		}
	}
	return out, nil
}

func (s *memState) Members(_ context.Context, appID, channel string) ([]protocol.Member, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ch := s.app(appID).channels[channel]
	if ch == nil {
		return nil, nil
	}
	return ch.members(), nil
}

func (s *memState) SetCache(_ context.Context, appID, channel string, ev CachedEvent, ttl time.Duration) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	a := s.app(appID)
	now := s.now()
	// Drop expired entries now and then so that a stream of one-off cache
	// channels cannot grow the map for ever.
	if len(a.cache) > 0 && len(a.cache)%1024 == 0 {
		for k, c := range a.cache {
			if !now.Before(c.expires) {
				delete(a.cache, k)
			}
		}
	}
	a.cache[channel] = memCached{ev: ev, expires: now.Add(ttl)}
	return nil
}

func (s *memState) Cache(_ context.Context, appID, channel string) (CachedEvent, time.Duration, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a := s.app(appID)
	c, ok := a.cache[channel]
	if !ok {
		return CachedEvent{}, 0, false, nil
	}
	left := c.expires.Sub(s.now())
	if left <= 0 {
		delete(a.cache, channel)
		return CachedEvent{}, 0, false, nil
	}
	return c.ev, left, true, nil
}
