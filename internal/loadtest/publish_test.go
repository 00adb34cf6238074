package loadtest

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"
)

func TestRetryAfter(t *testing.T) {
	now := time.Date(2026, 12, 6, 23, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		in   string
		want time.Duration
	}{
		{"", defaultRetryAfter},
		{"1", time.Second},
		{" 3 ", 3 * time.Second},
		{"0", 0},
		{"99999", maxRetryAfter},
		{"-1", defaultRetryAfter},
		{"0.5", defaultRetryAfter}, // not delay-seconds: the default, not 0
		{"soon", defaultRetryAfter},
		{now.Add(2 * time.Second).Format(http.TimeFormat), 2 * time.Second},
		{now.Add(-time.Hour).Format(http.TimeFormat), 0},
	} {
		if got := retryAfter(tc.in, now); got != tc.want {
			t.Errorf("retryAfter(%q) = %v, want %v", tc.in, got, tc.want)
		}
	}
}

// A publisher refused with 503 and Retry-After waits what the server
// states before its next request, unless told to hammer; either way the
// refusals are counted apart from the other failures.
func TestPublisherHonoursRetryAfter(t *testing.T) {
	for _, honour := range []bool{true, false} {
		var hits atomic.Int64
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			hits.Add(1)
			w.Header().Set("Retry-After", "1")
			http.Error(w, `{"error":"saturated"}`, http.StatusServiceUnavailable)
		}))
		o := defaultOptions("fanout")
		api := newAPIClient(&o, srv.URL, 1)
		p := &publisher{id: 0, nPub: 1, api: api, st: newRunStats(), names: quotedChannelNames("c-", 1),
			payload: 100, batch: 1, perEvent: 1, measured: make([]uint64, 1), honourRetryAfter: honour}
		start := time.Now()
		// The run ends half-way through the second wait: an honouring
		// publisher sends two requests, whatever the machine's load.
		p.run(context.Background(), start, start.Add(1500*time.Millisecond), 0)
		srv.Close()
		req, refused := p.requests.Load(), p.refused.Load()
		if refused != req || p.failures.Load() != req || p.events.Load() != 0 {
			t.Errorf("honour=%v: %d requests, %d refused, %d failures, %d events", honour, req, refused, p.failures.Load(), p.events.Load())
		}
		waited := time.Duration(p.waited.Load())
		switch {
		case honour && (req != 2 || waited < time.Second):
			t.Errorf("honouring publisher sent %d requests in 1.5 s against Retry-After: 1 (want 2), waited %v", req, waited)
		case !honour && (req < 3 || waited != 0):
			t.Errorf("hammering publisher sent %d requests in 1.5 s (want it to retry at once), waited %v", req, waited)
		}
	}
}
