package httpapi

import (
	"math"
	"net/http"
	"strconv"

	"github.com/herald-ws/herald/internal/hub"
)

// rateKind names the per-app limit a request is charged to.
type rateKind uint8

const (
	rateNone    rateKind = iota
	rateBackend          // apps.App.MaxBackendEventsPerSecond; points = channels
	rateRead             // apps.App.MaxReadRequestsPerSecond; 1 point a request
)

// allow charges points to the app's kind limit. It sets the X-RateLimit-*
// headers whenever a limit applies and answers 429 with Retry-After when
// the bucket cannot pay. A limit <= 0 means unlimited.
func (h *handler) allow(w http.ResponseWriter, c *call, kind rateKind, points int) error {
	limit, hk := c.app.MaxReadRequestsPerSecond, hub.RateRead
	if kind == rateBackend {
		limit, hk = c.app.MaxBackendEventsPerSecond, hub.RateBackend
	}
	if limit <= 0 || points <= 0 {
		return nil
	}
	ok, remaining, retry := h.limits.Take(c.app.ID, hk, limit, points, c.now)

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
		return overLimit(hub.LimitBackendEvents, errorf(http.StatusTooManyRequests,
			"Too many requests: the app allows %d events per second (one per channel) and this request has %d", limit, points))
	}
	return overLimit(hub.LimitReadRequests, errorf(http.StatusTooManyRequests, "Too many requests: the app allows %d read requests per second", limit))
}
