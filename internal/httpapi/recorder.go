package httpapi

import (
	"net/http"
	"time"
)

// Recorder counts the requests the handler answers (metrics). It is
// optional; its methods are called synchronously and must not block.
type Recorder interface {
	// Request reports one answered request. appID is the app of an
	// /apps/{id}/... path once it was found ("" before, so that unknown ids
	// cannot make up label values); endpoint is the route pattern that
	// served it, such as "POST /apps/{id}/events" ("" when none did).
	Request(appID, endpoint string, status int, elapsed time.Duration)
}

// Refusals by limit are reported through Options.Refusals (refusals.go).

// noteApp records on the response writer the app a request is for.
func noteApp(w http.ResponseWriter, appID string) {
	if rw, ok := w.(*responseWriter); ok {
		rw.appID = appID
	}
}

// record reports a finished request to the recorder.
func (h *handler) record(rw *responseWriter, r *http.Request, start time.Time) {
	status := rw.status
	if status == 0 {
		status = http.StatusOK
	}
	h.recorder.Request(rw.appID, r.Pattern, status, time.Since(start))
}
