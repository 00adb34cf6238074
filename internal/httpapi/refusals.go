package httpapi

import "errors"

// Refusals counts what the limits refuse; the metrics package implements
// it. limit is one of the Limit* names (the config key of the limit).
// Refused must not block: it runs on the request path.
type Refusals interface {
	Refused(appID, limit string)
}

// The limits the HTTP API enforces, named by their config keys. A refusal
// is answered 429 (rates), 413 (sizes) or 400 (counts and lengths, as
// Pusher does), always with a JSON body {"error":..., "code":...}.
const (
	LimitBackendEvents     = "max_backend_events_per_second"
	LimitReadRequests      = "max_read_requests_per_second"
	LimitRequestBody       = "max_request_body_kb"
	LimitEventPayload      = "max_event_payload_kb"
	LimitEventNameLength   = "max_event_name_length"
	LimitChannelNameLength = "max_channel_name_length"
	LimitEventChannels     = "max_event_channels_at_once"
	LimitBatchSize         = "max_event_batch_size"
)

// countRefusal tells the counter when err is a limit's refusal.
func (h *handler) countRefusal(appID string, err error) {
	if h.refuse == nil {
		return
	}
	if ae, ok := errors.AsType[*apiError](err); ok && ae.limit != "" {
		h.refuse.Refused(appID, ae.limit)
	}
}
