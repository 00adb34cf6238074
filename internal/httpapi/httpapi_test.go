package httpapi

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/herald-ws/herald/internal/apps"
	"github.com/herald-ws/herald/internal/hub"
	"github.com/herald-ws/herald/internal/protocol"
)

func TestHealth(t *testing.T) {
	e := newEnv(t, nil, nil)
	want(t, e.do(httptest.NewRequest("GET", "/up", nil)), 200, `{"status":"ok"}`)
	want(t, e.do(httptest.NewRequest("GET", "/ready", nil)), 200, `{"status":"ready"}`)
	want(t, e.do(httptest.NewRequest("HEAD", "/up", nil)), 200, "")

	var mu sync.Mutex
	var readyErr error
	e = newEnv(t, nil, func(o *Options) {
		o.Ready = func() error {
			mu.Lock()
			defer mu.Unlock()
			return readyErr
		}
	})
	want(t, e.do(httptest.NewRequest("GET", "/ready", nil)), 200, `{"status":"ready"}`)
	mu.Lock()
	readyErr = errors.New("draining: shutting down")
	mu.Unlock()
	want(t, e.do(httptest.NewRequest("GET", "/ready", nil)), 503, `{"status":"draining: shutting down"}`)
}

func TestRoutesNotFoundAndMethods(t *testing.T) {
	e := newEnv(t, nil, nil)
	notFound := []string{
		"/", "/apps", "/apps/", "/apps/3", "/apps/3/", "/apps/3/channels/", "/apps/3/channels/x/users/", "/apps/3/nope", "/apps/3/events/", "/apps/3/channels/a/b/c",
		"/apps/3/users/1", "/apps/3/users/1/terminate", "/app/278d425bdf160c739803", "/metrics",
		"/apps//events", "/apps/3/./events", "/apps/3/channels/..", "/apps/3/channels/%2E%2E/users", "/apps/3/events/../events",
	}
	for _, p := range notFound {
		for _, m := range []string{"GET", "POST"} {
			r := e.do(httptest.NewRequest(m, p, nil))
			if r.status != 404 {
				t.Errorf("%s %s: status %d, want 404", m, p, r.status)
			}
		}
	}
	want(t, e.do(httptest.NewRequest("GET", "/apps/3/nope", nil)), 404, `{"error":"Not found","code":404}`)

	methods := []struct{ method, path, allow string }{
		{"GET", "/apps/3/events", "POST"},
		{"PUT", "/apps/3/events", "POST"},
		{"OPTIONS", "/apps/3/events", "POST"},
		{"GET", "/apps/3/batch_events", "POST"},
		{"POST", "/apps/3/channels", "GET, HEAD"},
		{"DELETE", "/apps/3/channels/x", "GET, HEAD"},
		{"POST", "/apps/3/channels/presence-x/users", "GET, HEAD"},
		{"GET", "/apps/3/users/1/terminate_connections", "POST"},
		{"POST", "/up", "GET, HEAD"},
		{"POST", "/ready", "GET, HEAD"},
	}
	for _, c := range methods {
		r := e.do(httptest.NewRequest(c.method, c.path, nil))
		if r.status != 405 || r.header.Get("Allow") != c.allow {
			t.Errorf("%s %s: status %d Allow %q, want 405 %q", c.method, c.path, r.status, r.header.Get("Allow"), c.allow)
		}
	}
}

func TestRateLimitBackend(t *testing.T) {
	a := testApp()
	a.MaxBackendEventsPerSecond = 5
	e := newEnv(t, []apps.App{a}, nil)
	three := `{"name":"e","channels":["a","b","c"],"data":"x"}`
	r := e.post("/apps/3/events", three)
	want(t, r, 200, `{}`)
	if r.header.Get("X-RateLimit-Limit") != "5" || r.header.Get("X-RateLimit-Remaining") != "2" {
		t.Fatalf("headers %v", r.header)
	}
	r = e.post("/apps/3/events", three)
	wantError(t, r, 429, "Too many requests")
	if r.header.Get("Retry-After") != "1" || r.header.Get("X-RateLimit-Limit") != "5" || r.header.Get("X-RateLimit-Remaining") != "2" {
		t.Fatalf("429 headers %v", r.header)
	}
	// Two points are still there.
	want(t, e.post("/apps/3/batch_events", `{"batch":[{"name":"e","channel":"a","data":"x"},{"name":"e","channel":"b","data":"x"}]}`), 200, `{}`)
	// A batch is charged all its channels at once.
	e.clock.Advance(time.Second)
	batch := `{"batch":[{"name":"e","channels":["a","b","c"],"data":"x"},{"name":"e","channels":["d","e","f"],"data":"x"}]}`
	// 6 points > 5: allowed only because the bucket is full, which leaves it in debt.
	want(t, e.post("/apps/3/batch_events", batch), 200, `{}`)
	r = e.post("/apps/3/events", three)
	wantError(t, r, 429, "this request has 3")
	// One second later the debt of one point leaves four.
	e.clock.Advance(time.Second)
	want(t, e.post("/apps/3/events", `{"name":"e","channels":["a"],"data":"x"}`), 200, `{}`)
	// An oversize request is refused while the bucket is not full, with
	// the wait until it is.
	r = e.post("/apps/3/batch_events", batch)
	wantError(t, r, 429, "Too many requests")
	if r.header.Get("Retry-After") != "1" {
		t.Fatalf("Retry-After %q", r.header.Get("Retry-After"))
	}
	if n := len(e.hub.events()); n != 6 {
		t.Fatalf("hub got %d events, want 6", n)
	}
	// Reads are not charged to the backend limit.
	for range 10 {
		want(t, e.get("/apps/3/channels", nil), 200, "")
	}
}

func TestRateLimitRead(t *testing.T) {
	a := testApp()
	a.MaxReadRequestsPerSecond = 2
	b := testApp()
	b.ID, b.Key = "4", "otherkey"
	b.MaxReadRequestsPerSecond = 2
	e := newEnv(t, []apps.App{a, b}, nil)
	paths := []string{"/apps/3/channels", "/apps/3/channels/x", "/apps/3/channels/presence-x/users"}
	want(t, e.get(paths[0], nil), 200, "")
	want(t, e.get(paths[1], nil), 200, "")
	r := e.get(paths[2], nil)
	wantError(t, r, 429, "2 read requests per second")
	if r.header.Get("Retry-After") == "" || r.header.Get("X-RateLimit-Remaining") != "0" || r.header.Get("X-RateLimit-Limit") != "2" {
		t.Fatalf("429 headers %v", r.header)
	}
	// Other apps have their own buckets.
	want(t, e.do(e.signedWith("otherkey", testSecret, "GET", "/apps/4/channels", nil, nil)), 200, "")
	// Triggers are not charged to the read limit.
	want(t, e.post("/apps/3/events", exampleBody), 200, `{}`)
	// Unsigned requests do not spend the app's budget.
	e.clock.Advance(time.Second)
	for range 5 {
		wantError(t, e.do(httptest.NewRequest("GET", "/apps/3/channels", nil)), 401, "Missing")
	}
	want(t, e.get(paths[2], nil), 200, "")
}

func TestRateLimitUnlimited(t *testing.T) {
	e := newEnv(t, nil, nil) // defaults: -1
	for range 50 {
		r := e.post("/apps/3/events", exampleBody)
		want(t, r, 200, `{}`)
		if r.header.Get("X-RateLimit-Limit") != "" {
			t.Fatal("rate-limit headers without a limit")
		}
	}
}

// A limit changed in the app's settings takes effect without a restart.
func TestRateLimitChanges(t *testing.T) {
	a := testApp()
	a.MaxBackendEventsPerSecond = 1
	store := &swapStore{}
	store.set(a)
	f := newFakeHub()
	c := &clock{t: testNow}
	h := New(Options{Apps: store, Hub: f, Now: c.Now})
	e := &env{t: t, h: h, hub: f, clock: c}
	want(t, e.post("/apps/3/events", exampleBody), 200, `{}`)
	wantError(t, e.post("/apps/3/events", exampleBody), 429, "1 events per second")
	a.MaxBackendEventsPerSecond = 3
	store.set(a)
	// Raising the limit grants no tokens at once: the bucket refills at
	// the new rate from where it was.
	e.clock.Advance(time.Second)
	want(t, e.post("/apps/3/events", exampleBody), 200, `{}`)
	e.clock.Advance(time.Second)
	for range 3 {
		want(t, e.post("/apps/3/events", exampleBody), 200, `{}`)
	}
	wantError(t, e.post("/apps/3/events", exampleBody), 429, "3 events per second")
}

type swapStore struct {
	mu  sync.Mutex
	app *apps.App
	err error
}

func (s *swapStore) set(a apps.App) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.app = &a
}

func (s *swapStore) ByID(_ context.Context, id string) (*apps.App, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return nil, s.err
	}
	if s.app == nil || s.app.ID != id {
		return nil, fmt.Errorf("looking up %q: %w", id, apps.ErrNotFound)
	}
	return s.app, nil
}

func (s *swapStore) ByKey(context.Context, string) (*apps.App, error) { return nil, apps.ErrNotFound }
func (s *swapStore) All(context.Context) ([]*apps.App, error)         { return nil, nil }

func TestStoreErrors(t *testing.T) {
	store := &swapStore{}
	store.set(testApp())
	c := &clock{t: testNow}
	logs := &syncBuffer{}
	e := &env{t: t, hub: newFakeHub(), clock: c, logs: logs}
	e.h = New(Options{Apps: store, Hub: e.hub, Now: c.Now, Logger: slogTo(logs)})
	want(t, e.post("/apps/3/events", exampleBody), 200, `{}`)
	want(t, e.do(e.signed("POST", "/apps/7/events", nil, []byte(exampleBody))), 404, `{"error":"App 7 not found","code":404}`)
	store.mu.Lock()
	store.err = errors.New("connection refused")
	store.mu.Unlock()
	wantError(t, e.post("/apps/3/events", exampleBody), 503, "could not be looked up")
	if !strings.Contains(logs.String(), "connection refused") {
		t.Fatalf("store error not logged: %s", logs.String())
	}
	long := strings.Repeat("9", 500)
	r := e.do(httptest.NewRequest("GET", "/apps/"+long+"/channels", nil))
	if r.status != 503 || strings.Contains(r.body, long) {
		t.Fatalf("long id echoed in full: %d %s", r.status, r.body)
	}
}

func TestHubErrors(t *testing.T) {
	cases := []struct {
		name   string
		err    error
		status int
		frag   string
	}{
		{"generic", errors.New("redis: connection reset"), 500, "Internal server error"},
		{"api error", &protocol.APIError{Status: 403, Message: "Over quota"}, 403, "Over quota"},
		{"not presence", fmt.Errorf("users: %w", hub.ErrNotPresence), 400, "presence channel"},
		{"deadline", context.DeadlineExceeded, 503, "not completed in time"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := newEnv(t, nil, nil)
			e.hub.err = c.err
			wantError(t, e.post("/apps/3/events", exampleBody), c.status, c.frag)
			wantError(t, e.get("/apps/3/channels", nil), c.status, c.frag)
			wantError(t, e.get("/apps/3/channels/x", nil), c.status, c.frag)
			wantError(t, e.get("/apps/3/channels/presence-x/users", nil), c.status, c.frag)
			wantError(t, e.post("/apps/3/users/1/terminate_connections", "{}"), c.status, c.frag)
			if c.status == 500 && !strings.Contains(e.logs.String(), "connection reset") {
				t.Fatalf("error not logged: %s", e.logs.String())
			}
			if strings.Contains(e.logs.String(), testSecret) {
				t.Fatal("the secret is logged")
			}
		})
	}
}

// Info that cannot be read after a publish is left out, not failed: the
// event is already out.
func TestTriggerInfoHubError(t *testing.T) {
	e := newEnv(t, nil, nil)
	h := &failingChannelHub{fakeHub: e.hub}
	e.h = New(Options{Apps: mustStatic(t, testApp()), Hub: h, Now: e.clock.Now, Logger: slogTo(e.logs)})
	want(t, e.post("/apps/3/events", `{"name":"e","channels":["a"],"data":"x","info":"subscription_count"}`), 200, `{"channels":{}}`)
	want(t, e.post("/apps/3/batch_events", `{"batch":[{"name":"e","channel":"a","data":"x","info":"subscription_count"}]}`), 200, `{"batch":[{}]}`)
	if n := len(e.hub.events()); n != 2 {
		t.Fatalf("hub got %d events", n)
	}
}

type failingChannelHub struct{ *fakeHub }

func (failingChannelHub) Channel(context.Context, *apps.App, string) (hub.ChannelInfo, error) {
	return hub.ChannelInfo{}, errors.New("state unreachable")
}

func TestPanicRecovered(t *testing.T) {
	e := newEnv(t, nil, nil)
	e.hub.panicMsg = "boom in the hub"
	want(t, e.post("/apps/3/events", exampleBody), 500, `{"error":"Internal server error","code":500}`)
	logs := e.logs.String()
	if !strings.Contains(logs, "boom in the hub") || !strings.Contains(logs, "stack=") || !strings.Contains(logs, "fakeHub") {
		t.Fatalf("panic not logged with its stack: %s", logs)
	}
	// The handler still serves.
	e.hub.panicMsg = nil
	want(t, e.post("/apps/3/events", exampleBody), 200, `{}`)
}

func TestPanicAbortHandlerPropagates(t *testing.T) {
	e := newEnv(t, nil, nil)
	e.hub.panicMsg = http.ErrAbortHandler
	defer func() {
		if v := recover(); v != http.ErrAbortHandler {
			t.Fatalf("recovered %v, want http.ErrAbortHandler", v)
		}
	}()
	e.h.ServeHTTP(httptest.NewRecorder(), e.signed("POST", "/apps/3/events", nil, []byte(exampleBody)))
}

func TestNewRequiresStoreAndHub(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Fatal("New without a Hub did not panic")
		}
	}()
	New(Options{Apps: mustStatic(t, testApp())})
}

// Many goroutines over one handler: for the race detector.
func TestConcurrent(t *testing.T) {
	a := testApp()
	a.MaxBackendEventsPerSecond = 1000
	a.MaxReadRequestsPerSecond = 1000
	e := newEnv(t, []apps.App{a}, nil)
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			for range 20 {
				rec := httptest.NewRecorder()
				if i%2 == 0 {
					e.h.ServeHTTP(rec, e.signed("POST", "/apps/3/events", nil, []byte(exampleBody)))
				} else {
					e.h.ServeHTTP(rec, e.signed("GET", "/apps/3/channels", nil, nil))
				}
				if rec.Code != 200 {
					t.Errorf("status %d: %s", rec.Code, rec.Body)
				}
			}
		})
	}
	wg.Wait()
	if n := len(e.hub.events()); n != 80 {
		t.Fatalf("hub got %d events, want 80", n)
	}
}

// A batch that fails part-way in the hub answers the error and logs how
// far it got; nothing after the failure is published.
func TestBatchHubFailsPartWay(t *testing.T) {
	e := newEnv(t, nil, nil)
	fh := &failAfterHub{fakeHub: e.hub, ok: 1}
	e.h = New(Options{Apps: mustStatic(t, testApp()), Hub: fh, Now: e.clock.Now, Logger: slogTo(e.logs)})
	item := `{"name":"e","channel":"c","data":"d"}`
	wantError(t, e.post("/apps/3/batch_events", `{"batch":[`+item+`,`+item+`,`+item+`]}`), 500, "Internal server error")
	if n := len(e.hub.events()); n != 1 {
		t.Fatalf("hub got %d events, want 1", n)
	}
	if !strings.Contains(e.logs.String(), "batch failed part-way") {
		t.Fatalf("partial batch not logged: %s", e.logs.String())
	}
}

type failAfterHub struct {
	*fakeHub
	ok int
}

func (f *failAfterHub) Publish(ctx context.Context, app *apps.App, req hub.PublishRequest) error {
	if len(f.events()) >= f.ok {
		return errors.New("broker down")
	}
	return f.fakeHub.Publish(ctx, app, req)
}

func TestPathPrefixEscapedPath(t *testing.T) {
	e := newEnv(t, nil, func(o *Options) { o.PathPrefix = "/ws" })
	e.hub.set(hubChannel("a,b", true, 1, 0))
	sq := protocol.SignRequest("GET", "/apps/3/channels/a,b", nil, nil, testKey, testSecret, testNow)
	r := httptest.NewRequest("GET", "/ws/apps/3/channels/a%2Cb?"+sq.Encode(), nil)
	if r.URL.RawPath == "" {
		t.Fatal("test request has no RawPath")
	}
	want(t, e.do(r), 200, `{"occupied":true}`)
	sq = protocol.SignRequest("GET", "/apps/3/channels/a%2Cb", nil, nil, testKey, testSecret, testNow)
	r = httptest.NewRequest("GET", "/ws/apps/3/channels/a%2Cb?"+sq.Encode(), nil)
	want(t, e.do(r), 200, `{"occupied":true}`)
}
