package hub

import (
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// RateKind names a per-app rate limit on what backends send.
type RateKind uint8

const (
	// RateBackend is apps.App.MaxBackendEventsPerSecond: one point per
	// channel of each published event, whichever way it came in (HTTP API,
	// Laravel's redis broadcaster).
	RateBackend RateKind = iota + 1
	// RateRead is apps.App.MaxReadRequestsPerSecond: one point per HTTP API
	// query.
	RateRead
)

// RateLimits holds the token buckets of every app, created on first use,
// so that every way in that publishes for an app spends from the same
// bucket on this node. Buckets are refilled at the limit per second and
// hold one second's worth. It is safe for concurrent use; the zero value
// is ready.
type RateLimits struct {
	mu sync.Mutex
	m  map[string]*appLimiter
}

// appLimiter is one app's buckets. mu makes a take atomic, including the
// several reservations of an overdraft.
type appLimiter struct {
	mu      sync.Mutex
	backend bucket
	read    bucket
}

type bucket struct {
	lim   *rate.Limiter
	limit int
}

func (s *RateLimits) get(appID string) *appLimiter {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.m == nil {
		s.m = make(map[string]*appLimiter)
	}
	l := s.m[appID]
	if l == nil {
		l = new(appLimiter)
		s.m[appID] = l
	}
	return l
}

// Take spends points from the app's kind bucket of limit tokens (the
// app's current setting, so a change applies at once). It returns whether
// the points were spent, the whole tokens left and, when refused, how long
// until the request could pass. A limit or points <= 0 always passes.
//
// A request of more points than the bucket holds is allowed when the
// bucket is full and leaves it in debt, paid back from future tokens, so
// that the long-run rate still holds and such a request is not refused
// forever.
func (s *RateLimits) Take(appID string, kind RateKind, limit, points int, now time.Time) (ok bool, remaining int, retry time.Duration) {
	if limit <= 0 || points <= 0 {
		return true, 0, 0
	}
	al := s.get(appID)
	al.mu.Lock()
	defer al.mu.Unlock()
	b := &al.read
	if kind == RateBackend {
		b = &al.backend
	}
	return b.take(limit, now, points)
}

func (b *bucket) take(limit int, now time.Time, points int) (ok bool, remaining int, retry time.Duration) {
	switch {
	case b.lim == nil:
		b.lim = rate.NewLimiter(rate.Limit(limit), limit)
		b.limit = limit
	case b.limit != limit: // the app's settings changed
		b.lim.SetLimitAt(now, rate.Limit(limit))
		b.lim.SetBurstAt(now, limit)
		b.limit = limit
	}
	lim := b.lim
	if points <= limit {
		r := lim.ReserveN(now, points)
		if d := r.DelayFrom(now); d > 0 {
			r.CancelAt(now)
			return false, tokens(lim, now), d
		}
		return true, tokens(lim, now), 0
	}
	if t := lim.TokensAt(now); t < float64(limit) {
		d := time.Duration((float64(limit) - t) / float64(limit) * float64(time.Second))
		return false, tokens(lim, now), d
	}
	for left := points; left > 0; left -= limit {
		lim.ReserveN(now, min(left, limit))
	}
	return true, 0, 0
}

func tokens(lim *rate.Limiter, now time.Time) int {
	t := lim.TokensAt(now)
	if t < 0 {
		return 0
	}
	return int(t)
}
