package httpapi

import (
	"context"
	"net/http"
)

// Backpressure is the node's saturation signal (the transport owns it:
// transport.Server.RefusePublish and docs/security.md state the rule).
type Backpressure interface {
	// RefusePublish is asked once per publish: it returns the config key
	// of the limit under which this publish is refused (the node's queues
	// hold so much, or deliver so late, that more events would only wait
	// longer), "" to accept it. Near saturation it refuses a share of the
	// publishes, not all of them.
	RefusePublish() string
	// PacePublish is called once a publish is accepted, before it is
	// answered: it holds the answer while the node drains its backlog,
	// so that a publisher waiting for each answer slows to the node's
	// pace before it is refused.
	PacePublish(ctx context.Context)
}

// retryAfterSaturated is the Retry-After of a saturated node, in seconds:
// queues drain at socket speed and the signal looks back half a second at
// most, so a second is enough to find out again.
const retryAfterSaturated = "1"

// backpressure refuses a publish with 503 and Retry-After when the node's
// signal says so, before it costs anything; the refusal is counted under
// the limit that saturates the node.
func (h *handler) backpressure(w http.ResponseWriter) error {
	if h.pressure == nil {
		return nil
	}
	limit := h.pressure.RefusePublish()
	if limit == "" {
		return nil
	}
	w.Header().Set("Retry-After", retryAfterSaturated)
	return overLimit(limit, errorf(http.StatusServiceUnavailable,
		"Service unavailable: the server is saturated (%s); retry later", limit))
}

// pace holds a publish's answer while the node drains (PacePublish).
func (h *handler) pace(r *http.Request) {
	if h.pressure != nil {
		h.pressure.PacePublish(r.Context())
	}
}
