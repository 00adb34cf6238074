package httpapi

import "net/http"

// Backpressure is the node's saturation signal (the transport owns it:
// transport.Server.Saturation and docs/security.md state the rule).
type Backpressure interface {
	// Saturation returns the config key of the limit that makes the node
	// saturated (its queues hold so much, or deliver so late, that more
	// events would only wait longer), "" when it is not.
	Saturation() string
}

// retryAfterSaturated is the Retry-After of a saturated node, in seconds:
// queues drain at socket speed and the signal looks back half a second at
// most, so a second is enough to find out again.
const retryAfterSaturated = "1"

// backpressure refuses a publish with 503 and Retry-After while the node
// is saturated, before it costs anything; the refusal is counted under
// the limit that saturates the node.
func (h *handler) backpressure(w http.ResponseWriter) error {
	if h.pressure == nil {
		return nil
	}
	limit := h.pressure.Saturation()
	if limit == "" {
		return nil
	}
	w.Header().Set("Retry-After", retryAfterSaturated)
	return overLimit(limit, errorf(http.StatusServiceUnavailable,
		"Service unavailable: the server is saturated (%s); retry later", limit))
}
