package dashboard

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/herald-ws/herald/internal/apps"
	"github.com/herald-ws/herald/internal/hub"
	"github.com/herald-ws/herald/internal/protocol"
)

type fakeHub struct {
	mu        sync.Mutex
	published []hub.PublishRequest
	fail      error
}

func (f *fakeHub) Channels(context.Context, *apps.App, string) ([]hub.ChannelInfo, error) {
	return []hub.ChannelInfo{{Name: "presence-room", Kind: protocol.Presence, Occupied: true, SubscriptionCount: 2, UserCount: 1}}, nil
}

func (f *fakeHub) PresenceUsers(_ context.Context, _ *apps.App, ch string) ([]protocol.Member, error) {
	return []protocol.Member{{ID: "7", Info: []byte(`{"name":"Ada"}`)}}, nil
}

func (f *fakeHub) Publish(_ context.Context, _ *apps.App, req hub.PublishRequest) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.published = append(f.published, req)
	return f.fail
}

const token = "s3cret-admin-token"

func newDash(t *testing.T, mutate func(*Options)) (*Dashboard, *fakeHub) {
	t.Helper()
	a := apps.Defaults()
	a.ID, a.Key, a.Secret = "app-id", "app-key", "app-secret"
	store, err := apps.NewStatic([]apps.App{a})
	if err != nil {
		t.Fatal(err)
	}
	fh := &fakeHub{}
	o := Options{Token: token, Apps: store, Hub: fh, Totals: func(string) Totals { return Totals{Connections: 3} }}
	if mutate != nil {
		mutate(&o)
	}
	d, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	return d, fh
}

// client is a browser: a cookie jar and the server's origin on POSTs.
type client struct {
	t    *testing.T
	srv  *httptest.Server
	http *http.Client
	csrf string
}

func newClient(t *testing.T, d *Dashboard) *client {
	srv := httptest.NewServer(d)
	t.Cleanup(srv.Close)
	jar, _ := cookiejar.New(nil)
	return &client{t: t, srv: srv, http: &http.Client{Jar: jar}}
}

func (c *client) do(method, path, body string, hdr map[string]string) (*http.Response, string) {
	c.t.Helper()
	req, err := http.NewRequest(method, c.srv.URL+path, strings.NewReader(body))
	if err != nil {
		c.t.Fatal(err)
	}
	if method == http.MethodPost {
		req.Header.Set("Origin", c.srv.URL)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp, string(b)
}

func (c *client) login(tok string) (*http.Response, string) {
	return c.do(http.MethodPost, "/dashboard/login", url.Values{"token": {tok}}.Encode(),
		map[string]string{"Content-Type": "application/x-www-form-urlencoded"})
}

// loggedIn logs in and fetches the CSRF token.
func loggedIn(t *testing.T, d *Dashboard) *client {
	c := newClient(t, d)
	if resp, body := c.login(token); resp.StatusCode != 200 || !strings.Contains(body, "app.js") {
		t.Fatalf("login: %d %s", resp.StatusCode, body)
	}
	_, body := c.do(http.MethodGet, "/dashboard/api/session", "", nil)
	var s struct {
		CSRF string `json:"csrf_token"`
	}
	if err := json.Unmarshal([]byte(body), &s); err != nil || len(s.CSRF) != 64 {
		t.Fatalf("session: %s (%v)", body, err)
	}
	c.csrf = s.CSRF
	return c
}

func wantJSONError(t *testing.T, resp *http.Response, body string, status int) {
	t.Helper()
	if resp.StatusCode != status {
		t.Fatalf("status %d, want %d (%s)", resp.StatusCode, status, body)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Fatalf("Content-Type %q", ct)
	}
	var e struct {
		Error string `json:"error"`
		Code  int    `json:"code"`
	}
	if err := json.Unmarshal([]byte(body), &e); err != nil || e.Code != status || e.Error == "" {
		t.Fatalf("body %s: %v", body, err)
	}
}

func TestWrongTokenIsRefused(t *testing.T) {
	d, _ := newDash(t, nil)
	c := newClient(t, d)
	resp, body := c.login("not-the-token")
	if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(body, "Wrong admin token") {
		t.Fatalf("wrong token: %d %s", resp.StatusCode, body)
	}
	u, _ := url.Parse(c.srv.URL + "/dashboard/")
	if len(c.http.Jar.Cookies(u)) != 0 {
		t.Fatal("a cookie was set for a wrong token")
	}
	// A prefix of the token is wrong too.
	if resp, _ := c.login(token[:5]); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("token prefix: %d", resp.StatusCode)
	}
}

func TestLoginCookieAttributes(t *testing.T) {
	for _, secure := range []bool{false, true} {
		d, _ := newDash(t, func(o *Options) { o.Secure = secure })
		req := httptest.NewRequest(http.MethodPost, "/dashboard/login", strings.NewReader("token="+token))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		w := httptest.NewRecorder()
		d.ServeHTTP(w, req)
		if w.Code != http.StatusSeeOther {
			t.Fatalf("login: %d", w.Code)
		}
		cs := w.Result().Cookies()
		if len(cs) != 1 {
			t.Fatalf("cookies %v", cs)
		}
		ck := cs[0]
		if !ck.HttpOnly || ck.SameSite != http.SameSiteStrictMode || ck.Secure != secure || ck.Path != "/dashboard/" || len(ck.Value) != 64 {
			t.Fatalf("secure=%v: cookie %+v", secure, ck)
		}
	}
}

func TestAdminAPINeedsASession(t *testing.T) {
	d, _ := newDash(t, nil)
	c := newClient(t, d)
	for _, p := range []string{"/dashboard/api/apps", "/dashboard/api/session", "/dashboard/api/apps/app-id/stats", "/dashboard/api/apps/app-id/log"} {
		resp, body := c.do(http.MethodGet, p, "", nil)
		wantJSONError(t, resp, body, http.StatusUnauthorized)
	}
	// A made-up session cookie is no session.
	u, _ := url.Parse(c.srv.URL + "/dashboard/")
	c.http.Jar.SetCookies(u, []*http.Cookie{{Name: cookieName, Value: strings.Repeat("a", 64), Path: "/dashboard/"}})
	resp, body := c.do(http.MethodGet, "/dashboard/api/apps", "", nil)
	wantJSONError(t, resp, body, http.StatusUnauthorized)
	// The page itself shows the login form.
	resp, body = c.do(http.MethodGet, "/dashboard/", "", nil)
	if resp.StatusCode != 200 || !strings.Contains(body, `name="token"`) {
		t.Fatalf("page without a session: %d %s", resp.StatusCode, body)
	}
}

func TestPostsNeedCSRFTokenAndSameOrigin(t *testing.T) {
	d, fh := newDash(t, nil)
	c := loggedIn(t, d)
	ev := `{"channel":"orders","event":"test","data":"{\"a\":1}"}`
	resp, body := c.do(http.MethodPost, "/dashboard/api/apps/app-id/events", ev, nil)
	wantJSONError(t, resp, body, http.StatusForbidden)
	resp, body = c.do(http.MethodPost, "/dashboard/api/apps/app-id/events", ev, map[string]string{"X-CSRF-Token": strings.Repeat("0", 64)})
	wantJSONError(t, resp, body, http.StatusForbidden)
	resp, body = c.do(http.MethodPost, "/dashboard/api/apps/app-id/events", ev, map[string]string{"X-CSRF-Token": c.csrf, "Origin": "https://evil.example"})
	wantJSONError(t, resp, body, http.StatusForbidden)
	if len(fh.published) != 0 {
		t.Fatalf("published without CSRF: %v", fh.published)
	}
	resp, body = c.do(http.MethodPost, "/dashboard/api/apps/app-id/events", ev, map[string]string{"X-CSRF-Token": c.csrf})
	if resp.StatusCode != 200 {
		t.Fatalf("send: %d %s", resp.StatusCode, body)
	}
	if len(fh.published) != 1 || fh.published[0].Name != "test" || fh.published[0].Channels[0] != "orders" || fh.published[0].Data != `{"a":1}` {
		t.Fatalf("published %+v", fh.published)
	}
	// Logging out ends the session.
	if resp, body := c.do(http.MethodPost, "/dashboard/logout", "{}", map[string]string{"X-CSRF-Token": c.csrf}); resp.StatusCode != 200 {
		t.Fatalf("logout: %d %s", resp.StatusCode, body)
	}
	resp, body = c.do(http.MethodGet, "/dashboard/api/apps", "", nil)
	wantJSONError(t, resp, body, http.StatusUnauthorized)
}

func TestSendEventValidates(t *testing.T) {
	d, fh := newDash(t, nil)
	c := loggedIn(t, d)
	h := map[string]string{"X-CSRF-Token": c.csrf}
	for _, tc := range []struct {
		body   string
		status int
	}{
		{`{"channel":"bad channel!","event":"e","data":""}`, 400},
		{`{"channel":"private-encrypted-x","event":"e","data":""}`, 400},
		{`{"channel":"ok","event":"","data":""}`, 400},
		{`{"channel":"ok","event":"e","data":"` + strings.Repeat("x", 101<<10) + `"}`, 413},
		{`not json`, 400},
		{`{"channel":"ok","event":"e","data":"","extra":1}`, 400},
	} {
		resp, body := c.do(http.MethodPost, "/dashboard/api/apps/app-id/events", tc.body, h)
		wantJSONError(t, resp, body, tc.status)
	}
	resp, body := c.do(http.MethodPost, "/dashboard/api/apps/nope/events", `{"channel":"a","event":"e","data":""}`, h)
	wantJSONError(t, resp, body, 404)
	fh.fail = hub.ErrUnavailable
	resp, body = c.do(http.MethodPost, "/dashboard/api/apps/app-id/events", `{"channel":"a","event":"e","data":""}`, h)
	wantJSONError(t, resp, body, 503)
}

func TestFailedLoginsAreRateLimited(t *testing.T) {
	d, _ := newDash(t, nil)
	c := newClient(t, d)
	limited := false
	for range 30 {
		resp, _ := c.login("wrong")
		if resp.StatusCode == http.StatusTooManyRequests {
			limited = true
			break
		}
	}
	if !limited {
		t.Fatal("30 wrong tokens in a row were never rate limited")
	}
}

// testClientOf takes the client address and TLS from test headers, as
// the server's trusted-proxy rules would from X-Forwarded-*.
func testClientOf(r *http.Request) (netip.Addr, bool) {
	a, _ := netip.ParseAddr(r.Header.Get("X-Test-Client"))
	return a, r.Header.Get("X-Test-Proto") == "https"
}

func TestLoginThrottleIsPerClientAndComesFirst(t *testing.T) {
	d, _ := newDash(t, func(o *Options) { o.ClientOf = testClientOf })
	c := newClient(t, d)
	as := func(ip, tok string) int {
		resp, _ := c.do(http.MethodPost, "/dashboard/login", url.Values{"token": {tok}}.Encode(),
			map[string]string{"Content-Type": "application/x-www-form-urlencoded", "X-Test-Client": ip})
		return resp.StatusCode
	}
	// Right tokens cost nothing.
	for range 3 * throttleBurst {
		if code := as("203.0.113.7", token); code != http.StatusOK {
			t.Fatalf("right token: %d", code)
		}
	}
	failed := 0
	for as("203.0.113.7", "wrong") == http.StatusUnauthorized {
		failed++
		if failed > 3*throttleBurst {
			t.Fatal("wrong tokens were never throttled")
		}
	}
	if failed < throttleBurst-1 {
		t.Fatalf("throttled after %d failures, want about %d", failed, throttleBurst)
	}
	// Out of failures, the right token is refused too: the token is not
	// even compared, so the throttle says nothing about it.
	if code := as("203.0.113.7", token); code != http.StatusTooManyRequests {
		t.Fatalf("right token from a throttled address: %d, want 429", code)
	}
	// Another address, and the same host's IPv6 neighbour in another /64,
	// are not locked out; one in the same /64 is.
	if code := as("198.51.100.9", token); code != http.StatusOK {
		t.Fatalf("another address: %d", code)
	}
	for range 3 * throttleBurst {
		as("2001:db8:1:2::1", "wrong")
	}
	if code := as("2001:db8:1:2::ffff", token); code != http.StatusTooManyRequests {
		t.Fatalf("same /64: %d, want 429", code)
	}
	if code := as("2001:db8:1:3::1", token); code != http.StatusOK {
		t.Fatalf("another /64: %d", code)
	}
}

func TestCookieSecureWhenTheRequestCameOverTLS(t *testing.T) {
	d, _ := newDash(t, func(o *Options) { o.ClientOf = testClientOf })
	for _, proto := range []string{"http", "https"} {
		req := httptest.NewRequest(http.MethodPost, "/dashboard/login", strings.NewReader("token="+token))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("X-Test-Proto", proto)
		w := httptest.NewRecorder()
		d.ServeHTTP(w, req)
		cs := w.Result().Cookies()
		if w.Code != http.StatusSeeOther || len(cs) != 1 || cs[0].Secure != (proto == "https") {
			t.Fatalf("%s: %d %+v", proto, w.Code, cs)
		}
	}
}

func TestStatsMembersAndApps(t *testing.T) {
	d, _ := newDash(t, nil)
	c := loggedIn(t, d)
	_, body := c.do(http.MethodGet, "/dashboard/api/apps", "", nil)
	if body != `[{"id":"app-id","key":"app-key","enabled":true}]`+"\n" {
		t.Fatalf("apps: %s", body)
	}
	_, body = c.do(http.MethodGet, "/dashboard/api/apps/app-id/stats", "", nil)
	var st statsView
	if err := json.Unmarshal([]byte(body), &st); err != nil {
		t.Fatal(err)
	}
	if st.Connections != 3 || len(st.Channels) != 1 || st.Channels[0].Kind != "presence" || st.Channels[0].UserCount != 1 {
		t.Fatalf("stats %s", body)
	}
	_, body = c.do(http.MethodGet, "/dashboard/api/apps/app-id/channels/presence-room/members", "", nil)
	if body != `{"channel":"presence-room","members":[{"id":"7","info":{"name":"Ada"}}]}`+"\n" {
		t.Fatalf("members: %s", body)
	}
	resp, body := c.do(http.MethodGet, "/dashboard/api/apps/app-id/channels/orders/members", "", nil)
	wantJSONError(t, resp, body, 400)
	resp, body = c.do(http.MethodGet, "/dashboard/api/apps/nope/stats", "", nil)
	wantJSONError(t, resp, body, 404)
	resp, body = c.do(http.MethodGet, "/dashboard/api/apps/app-id/log?after=x", "", nil)
	wantJSONError(t, resp, body, 400)
}

func TestGraphsSampleRates(t *testing.T) {
	var tot Totals
	d, _ := newDash(t, func(o *Options) { o.Totals = func(string) Totals { return tot } })
	t0 := time.Unix(1000, 0)
	d.sample(t0)
	tot = Totals{Connections: 5, MessagesIn: 10, MessagesOut: 40}
	d.sample(t0.Add(2 * time.Second))
	got := d.samples("app-id")
	if len(got) != 2 {
		t.Fatalf("samples %+v", got)
	}
	if s := got[1]; s.Connections != 5 || s.InPerSec != 5 || s.OutPerSec != 20 {
		t.Fatalf("second sample %+v", s)
	}
	// The ring keeps History seconds.
	for i := range 400 {
		d.sample(t0.Add(time.Duration(3+i) * time.Second))
	}
	if n := len(d.samples("app-id")); n != 300 {
		t.Fatalf("%d samples kept, want 300", n)
	}
}

func TestConsoleRecordsOnlyWhileWatched(t *testing.T) {
	d, _ := newDash(t, nil)
	d.ClientEvent("app-id", "private-chat", "client-a", []byte(`{}`), "1.1", "")
	if entries, last := d.logs.since("app-id", 0); len(entries) != 0 || last != 0 {
		t.Fatalf("recorded while nobody watched: %v", entries)
	}
	// since marked the app watched.
	d.ClientEvent("app-id", "private-chat", "client-b", []byte(`{"x":1}`), "1.1", "7")
	d.APIEvent("app-id", hub.PublishRequest{Name: "created", Channels: []string{"a", "b"}, Data: "{}"})
	d.ChannelOccupied("other-app", "x")
	entries, last := d.logs.since("app-id", 0)
	if len(entries) != 3 || last != 3 {
		t.Fatalf("entries %+v last %d", entries, last)
	}
	if e := entries[0]; e.Type != "client_event" || e.Event != "client-b" || e.Data != `{"x":1}` || e.UserID != "7" {
		t.Fatalf("first %+v", e)
	}
	if e := entries[2]; e.Type != "api_event" || e.Channel != "b" {
		t.Fatalf("third %+v", e)
	}
	if entries, _ := d.logs.since("app-id", 2); len(entries) != 1 || entries[0].Seq != 3 {
		t.Fatalf("after 2: %+v", entries)
	}
	// The ring keeps the last logSize entries, oldest first.
	for range logSize + 10 {
		d.ConnectionOpened("app-id")
	}
	entries, last = d.logs.since("app-id", 0)
	if len(entries) != logSize || entries[0].Seq != last-logSize+1 || entries[logSize-1].Seq != last {
		t.Fatalf("ring: %d entries, first %d, last %d/%d", len(entries), entries[0].Seq, entries[logSize-1].Seq, last)
	}
}

func TestNewNeedsAToken(t *testing.T) {
	if _, err := New(Options{}); err == nil {
		t.Fatal("New without a token succeeded")
	}
}
