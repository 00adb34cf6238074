package httpapi

import "errors"

// countRefusal tells the counter when err is a limit's refusal.
func (h *handler) countRefusal(appID string, err error) {
	if h.refuse == nil {
		return
	}
	if ae, ok := errors.AsType[*apiError](err); ok && ae.limit != "" {
		h.refuse.Refused(appID, ae.limit)
	}
}
