package webhooks

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/herald-ws/herald/internal/apps"
)

const (
	testKey    = "278d425bdf160c739803"
	testSecret = "7ad3773142a6692b25b8"
)

// request is one request the receiver got.
type request struct {
	header http.Header
	body   []byte
	status int
}

// body is a decoded webhook body.
type body struct {
	TimeMs int64            `json:"time_ms"`
	Events []map[string]any `json:"events"`
}

// receiver is a real HTTP webhook endpoint on 127.0.0.1. respond decides
// the status of the n-th request (from 0); it may block on r.Context().
type receiver struct {
	t       *testing.T
	srv     *httptest.Server
	mu      sync.Mutex
	reqs    []request
	respond func(n int, r *http.Request) int
	notify  chan struct{}
}

func newReceiver(t *testing.T, respond func(n int, r *http.Request) int) *receiver {
	t.Helper()
	rc := &receiver{t: t, respond: respond, notify: make(chan struct{}, 1)}
	rc.srv = httptest.NewServer(http.HandlerFunc(rc.serve))
	t.Cleanup(rc.srv.Close)
	return rc
}

func (rc *receiver) serve(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	rc.mu.Lock()
	n := len(rc.reqs)
	rc.reqs = append(rc.reqs, request{header: r.Header.Clone(), body: b})
	rc.mu.Unlock()
	status := http.StatusOK
	if rc.respond != nil {
		status = rc.respond(n, r)
	}
	rc.mu.Lock()
	rc.reqs[n].status = status
	rc.mu.Unlock()
	w.WriteHeader(status)
	select {
	case rc.notify <- struct{}{}:
	default:
	}
}

func (rc *receiver) requests() []request {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	out := make([]request, len(rc.reqs))
	copy(out, rc.reqs)
	return out
}

// accepted returns the bodies answered 2xx, decoded.
func (rc *receiver) accepted() []body {
	var out []body
	for _, r := range rc.requests() {
		if r.status >= 200 && r.status < 300 {
			out = append(out, decode(rc.t, r.body))
		}
	}
	return out
}

// waitEvents waits until the accepted bodies hold n events in all.
func (rc *receiver) waitEvents(n int, within time.Duration) []map[string]any {
	rc.t.Helper()
	deadline := time.Now().Add(within)
	for {
		var evs []map[string]any
		for _, b := range rc.accepted() {
			evs = append(evs, b.Events...)
		}
		if len(evs) >= n {
			return evs
		}
		if time.Now().After(deadline) {
			rc.t.Fatalf("got %d events, want %d: %v", len(evs), n, evs)
		}
		select {
		case <-rc.notify:
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func decode(t *testing.T, b []byte) body {
	t.Helper()
	var out body
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatalf("body %q: %v", b, err)
	}
	return out
}

// verify checks the Pusher headers and recomputes the signature.
func verify(t *testing.T, r request) {
	t.Helper()
	if got := r.header.Values("Content-Type"); len(got) != 1 || got[0] != "application/json" {
		t.Errorf("Content-Type = %q, want exactly application/json", got)
	}
	if got := r.header.Values("X-Pusher-Key"); len(got) != 1 || got[0] != testKey {
		t.Errorf("X-Pusher-Key = %q", got)
	}
	m := hmac.New(sha256.New, []byte(testSecret))
	m.Write(r.body)
	want := hex.EncodeToString(m.Sum(nil))
	if got := r.header.Values("X-Pusher-Signature"); len(got) != 1 || got[0] != want {
		t.Errorf("X-Pusher-Signature = %q, want %q", got, want)
	}
	if id := r.header.Get("X-Herald-Batch-Id"); len(id) != 32 {
		t.Errorf("X-Herald-Batch-Id = %q", id)
	}
}

func testApp(hooks ...apps.Webhook) apps.App {
	a := apps.Defaults()
	a.ID, a.Key, a.Secret = "1", testKey, testSecret
	a.Webhooks = hooks
	return a
}

func store(t *testing.T, list ...apps.App) apps.Store {
	t.Helper()
	s, err := apps.NewStatic(list)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

var allTypes = []string{"channel_occupied", "channel_vacated", "member_added", "member_removed",
	"client_event", "cache_miss", "subscription_count"}

func quietLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

// start builds and starts a dispatcher with test-sized defaults; it is
// closed at the end of the test.
func start(t *testing.T, opt Options) *Dispatcher {
	t.Helper()
	if opt.Window == 0 {
		opt.Window = 20 * time.Millisecond
	}
	if opt.Timeout == 0 {
		opt.Timeout = 2 * time.Second
	}
	if opt.RetryBase == 0 {
		opt.RetryBase = 50 * time.Millisecond
	}
	if opt.RetryMax == 0 {
		opt.RetryMax = 200 * time.Millisecond
	}
	if opt.Logger == nil {
		opt.Logger = quietLogger()
	}
	d, err := New(opt)
	if err != nil {
		t.Fatal(err)
	}
	d.Start(context.Background())
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = d.Close(ctx)
	})
	return d
}
