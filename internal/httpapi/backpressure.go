package httpapi

import (
	"net/http"

	"github.com/herald-ws/herald/internal/hub"
)

// Backpressure tells whether the node is saturated: its connections'
// queues hold so much that more events would only be queued without
// bound (the transport implements it with its outbound budget).
type Backpressure interface {
	Saturated() bool
}

// retryAfterSaturated is the Retry-After of a saturated node, in seconds:
// queues drain at socket speed, so a second is enough to find out again.
const retryAfterSaturated = "1"

// backpressure refuses a publish with 503 and Retry-After while the node
// is saturated, before it costs anything.
func (h *handler) backpressure(w http.ResponseWriter) error {
	if h.pressure == nil || !h.pressure.Saturated() {
		return nil
	}
	w.Header().Set("Retry-After", retryAfterSaturated)
	return overLimit(hub.LimitOutboundBudget, errorf(http.StatusServiceUnavailable,
		"Service unavailable: the server is saturated (its outbound budget is spent); retry later"))
}
