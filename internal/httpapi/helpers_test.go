package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/herald-ws/herald/internal/apps"
	"github.com/herald-ws/herald/internal/hub"
	"github.com/herald-ws/herald/internal/protocol"
)

// The app of the worked examples of protocol §7.2.
const (
	testID     = "3"
	testKey    = "278d425bdf160c739803"
	testSecret = "7ad3773142a6692b25b8"
	testTS     = 1353088179
)

var testNow = time.Unix(testTS, 0)

// fakeHub records what it is asked and answers from its maps.
type fakeHub struct {
	mu         sync.Mutex
	published  []hub.PublishRequest
	terminated []string
	channels   map[string]hub.ChannelInfo
	members    map[string][]protocol.Member
	history    map[string]hub.HistoryPage // channels with history
	asked      [2]uint64                  // History's last after and limit
	err        error                      // returned by every method when set
	panicMsg   any                        // Publish panics with it when set
}

func newFakeHub() *fakeHub {
	return &fakeHub{channels: map[string]hub.ChannelInfo{}, members: map[string][]protocol.Member{}}
}

func (f *fakeHub) Publish(_ context.Context, _ *apps.App, req hub.PublishRequest) error {
	if f.panicMsg != nil {
		panic(f.panicMsg)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return f.err
	}
	req.Channels = append([]string(nil), req.Channels...)
	f.published = append(f.published, req)
	return nil
}

func (f *fakeHub) Channel(_ context.Context, _ *apps.App, name string) (hub.ChannelInfo, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return hub.ChannelInfo{}, f.err
	}
	ci, ok := f.channels[name]
	if !ok {
		return hub.ChannelInfo{Name: name, Kind: protocol.Classify(name)}, nil
	}
	return ci, nil
}

func (f *fakeHub) Channels(_ context.Context, _ *apps.App, prefix string) ([]hub.ChannelInfo, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return nil, f.err
	}
	var out []hub.ChannelInfo
	for name, ci := range f.channels {
		if strings.HasPrefix(name, prefix) && ci.Occupied {
			out = append(out, ci)
		}
	}
	return out, nil
}

func (f *fakeHub) History(_ context.Context, _ *apps.App, channel string, after uint64, limit int) (hub.HistoryPage, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return hub.HistoryPage{}, f.err
	}
	p, ok := f.history[channel]
	if !ok {
		return hub.HistoryPage{}, hub.ErrNoHistory
	}
	f.asked = [2]uint64{after, uint64(limit)}
	return p, nil
}

func (f *fakeHub) PresenceUsers(_ context.Context, _ *apps.App, channel string) ([]protocol.Member, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return nil, f.err
	}
	return f.members[channel], nil
}

func (f *fakeHub) TerminateUser(_ context.Context, _ *apps.App, userID string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return f.err
	}
	f.terminated = append(f.terminated, userID)
	return nil
}

func (f *fakeHub) events() []hub.PublishRequest {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]hub.PublishRequest(nil), f.published...)
}

func (f *fakeHub) set(ci hub.ChannelInfo) {
	f.mu.Lock()
	defer f.mu.Unlock()
	ci.Kind = protocol.Classify(ci.Name)
	f.channels[ci.Name] = ci
}

// testApp is the worked-example app with Herald's default limits.
func testApp() apps.App {
	a := apps.Defaults()
	a.ID, a.Key, a.Secret = testID, testKey, testSecret
	return a
}

// clock is a settable Options.Now.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// env is a handler under test with its fake hub and clock.
type env struct {
	t     testing.TB
	h     http.Handler
	hub   *fakeHub
	clock *clock
	logs  *syncBuffer
	// prefix is prepended to request paths (not to signed paths).
	prefix string
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// newEnv builds a handler over the given apps (testApp when none), after
// letting edit change the options.
func newEnv(t testing.TB, list []apps.App, edit func(*Options)) *env {
	t.Helper()
	if list == nil {
		list = []apps.App{testApp()}
	}
	store, err := apps.NewStatic(list)
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, hub: newFakeHub(), clock: &clock{t: testNow}, logs: &syncBuffer{}}
	o := Options{
		Apps:   store,
		Hub:    e.hub,
		Now:    e.clock.Now,
		Logger: slog.New(slog.NewTextHandler(e.logs, nil)),
	}
	if edit != nil {
		edit(&o)
	}
	e.prefix = normalizePrefix(o.PathPrefix)
	e.h = New(o)
	return e
}

// signed builds a request signed as the SDKs do, at the env's clock, for
// path (without prefix) and sends it at prefix+path.
func (e *env) signed(method, path string, q url.Values, body []byte) *http.Request {
	return e.signedWith(testKey, testSecret, method, path, q, body)
}

func (e *env) signedWith(key, secret, method, path string, q url.Values, body []byte) *http.Request {
	sq := protocol.SignRequest(method, path, q, body, key, secret, e.clock.Now())
	target := e.prefix + path + "?" + sq.Encode()
	var rd *bytes.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	var r *http.Request
	if rd != nil {
		r = httptest.NewRequest(method, target, rd)
		r.Header.Set("Content-Type", "application/json")
	} else {
		r = httptest.NewRequest(method, target, nil)
	}
	return r
}

// resp is a decoded response.
type resp struct {
	status int
	header http.Header
	body   string
}

func (r resp) json(t testing.TB) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(r.body), &m); err != nil {
		t.Fatalf("response is not a JSON object: %v: %q", err, r.body)
	}
	return m
}

// do serves r and checks what every response must satisfy: a JSON body
// with Content-Type application/json, the error shape for statuses >= 400
// and no trace of the secret.
func (e *env) do(r *http.Request) resp {
	e.t.Helper()
	rec := httptest.NewRecorder()
	e.h.ServeHTTP(rec, r)
	out := resp{status: rec.Code, header: rec.Header(), body: rec.Body.String()}
	if ct := out.header.Get("Content-Type"); ct != "application/json" {
		e.t.Errorf("%s %s: Content-Type %q, want application/json", r.Method, r.URL.Path, ct)
	}
	if strings.Contains(out.body, testSecret) {
		e.t.Errorf("%s %s: the response echoes the secret: %s", r.Method, r.URL.Path, out.body)
	}
	if !json.Valid([]byte(out.body)) {
		e.t.Errorf("%s %s: body is not JSON: %q", r.Method, r.URL.Path, out.body)
	}
	if out.status >= 400 && !strings.HasSuffix(r.URL.Path, "/ready") {
		var er struct {
			Error *string `json:"error"`
			Code  int     `json:"code"`
		}
		if err := json.Unmarshal([]byte(out.body), &er); err != nil || er.Error == nil || *er.Error == "" || er.Code != out.status {
			e.t.Errorf("%s %s: error body %q does not match {\"error\":..., \"code\":%d}", r.Method, r.URL.Path, out.body, out.status)
		}
	}
	return out
}

// post signs and sends a JSON body.
func (e *env) post(path, body string) resp {
	e.t.Helper()
	return e.do(e.signed(http.MethodPost, path, nil, []byte(body)))
}

// get signs and sends a GET with query q.
func (e *env) get(path string, q url.Values) resp {
	e.t.Helper()
	return e.do(e.signed(http.MethodGet, path, q, nil))
}

// want checks the status and, when body is not empty, the exact body.
func want(t testing.TB, r resp, status int, body string) {
	t.Helper()
	if r.status != status {
		t.Fatalf("status %d, want %d; body %s", r.status, status, r.body)
	}
	if body != "" && r.body != body {
		t.Fatalf("body %s\nwant %s", r.body, body)
	}
}

// wantError checks the status and that the error message contains frag.
func wantError(t testing.TB, r resp, status int, frag string) {
	t.Helper()
	if r.status != status {
		t.Fatalf("status %d, want %d; body %s", r.status, status, r.body)
	}
	msg, _ := r.json(t)["error"].(string)
	if !strings.Contains(msg, frag) {
		t.Fatalf("error %q does not contain %q", msg, frag)
	}
}

// hubChannel is a ChannelInfo for the fake hub.
func hubChannel(name string, occupied bool, subs, users int) hub.ChannelInfo {
	return hub.ChannelInfo{Name: name, Occupied: occupied, SubscriptionCount: subs, UserCount: users}
}

func slogTo(w *syncBuffer) *slog.Logger { return slog.New(slog.NewTextHandler(w, nil)) }

func mustStatic(t testing.TB, list ...apps.App) *apps.Static {
	t.Helper()
	s, err := apps.NewStatic(list)
	if err != nil {
		t.Fatal(err)
	}
	return s
}
