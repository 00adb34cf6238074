package httpapi

import (
	"math"
	"net/http"
	"strconv"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// rateKind names the per-app limit a request is charged to.
type rateKind uint8

const (
	rateNone    rateKind = iota
	rateBackend          // apps.App.MaxBackendEventsPerSecond; points = channels
	rateRead             // apps.App.MaxReadRequestsPerSecond; 1 point a request
)

// limiterSet holds the token buckets of every app seen so far, created on
// first use. Apps come from the Store, so the set is bounded by the number
// of apps.
type limiterSet struct {
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

func (s *limiterSet) get(appID string) *appLimiter {
	s.mu.Lock()
	defer s.mu.Unlock()
	l := s.m[appID]
	if l == nil {
		l = new(appLimiter)
		s.m[appID] = l
	}
	return l
}

// allow charges points to the app's kind limit. It sets the X-RateLimit-*
// headers whenever a limit applies and answers 429 with Retry-After when
// the bucket cannot pay. A limit <= 0 means unlimited.
func (h *handler) allow(w http.ResponseWriter, c *call, kind rateKind, points int) error {
	limit := c.app.MaxReadRequestsPerSecond
	if kind == rateBackend {
		limit = c.app.MaxBackendEventsPerSecond
	}
	if limit <= 0 || points <= 0 {
		return nil
	}
	al := h.limits.get(c.app.ID)
	al.mu.Lock()
	b := &al.read
	if kind == rateBackend {
		b = &al.backend
	}
	ok, remaining, retry := b.take(limit, c.now, points)
	al.mu.Unlock()

	hd := w.Header()
	hd.Set("X-RateLimit-Limit", strconv.Itoa(limit))
	hd.Set("X-RateLimit-Remaining", strconv.Itoa(remaining))
	if ok {
		return nil
	}
	secs := int(math.Ceil(retry.Seconds()))
	if secs < 1 {
		secs = 1
	}
	hd.Set("Retry-After", strconv.Itoa(secs))
	if kind == rateBackend {
		return limited(errorf(http.StatusTooManyRequests,
			"Too many requests: the app allows %d events per second (one per channel) and this request has %d", limit, points), "backend_events_per_second")
	}
	return limited(errorf(http.StatusTooManyRequests, "Too many requests: the app allows %d read requests per second", limit), "read_requests_per_second")
}

// take spends points from a bucket of limit tokens refilled at limit per
// second. A request of more points than the bucket holds is allowed when
// the bucket is full and leaves it in debt, paid back from future tokens,
// so that the long-run rate still holds and such a request is not refused
// forever. It returns whether the points were spent, the whole tokens left
// and, when refused, how long until the request could pass.
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
