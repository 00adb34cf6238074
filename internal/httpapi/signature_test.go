package httpapi

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/herald-ws/herald/internal/apps"
	"github.com/herald-ws/herald/internal/protocol"
)

// The worked examples of protocol §7.2, sent byte for byte.
const (
	exampleBody     = `{"name":"foo","channels":["project-3"],"data":"{\"some\":\"data\"}"}`
	exampleTrigger  = "/apps/3/events?auth_key=278d425bdf160c739803&auth_timestamp=1353088179&auth_version=1.0&body_md5=ec365a775a4cd0599faeb73354201b6f&auth_signature=da454824c97ba181a32ccc17a72625ba02771f50b50e1e7430e47a1f3f457e6c"
	exampleChannels = "/apps/3/channels?auth_key=278d425bdf160c739803&auth_timestamp=1353088179&auth_version=1.0&filter_by_prefix=presence-&info=user_count&auth_signature=16819168891cb5dfd72b5c7a5d3d602605b26c6ba1930033b5e2eeeb65010291"
)

func exampleRequest(target, body string) *http.Request {
	if body == "" {
		return httptest.NewRequest(http.MethodGet, target, nil)
	}
	r := httptest.NewRequest(http.MethodPost, target, strings.NewReader(body))
	r.Header.Set("Content-Type", "application/json")
	return r
}

func TestWorkedExampleTrigger(t *testing.T) {
	e := newEnv(t, nil, nil)
	want(t, e.do(exampleRequest(exampleTrigger, exampleBody)), 200, `{}`)
	got := e.hub.events()
	if len(got) != 1 {
		t.Fatalf("hub got %d events, want 1", len(got))
	}
	ev := got[0]
	if ev.Name != "foo" || len(ev.Channels) != 1 || ev.Channels[0] != "project-3" || ev.Data != `{"some":"data"}` || ev.ExceptSocketID != "" {
		t.Fatalf("hub got %+v", ev)
	}
}

func TestWorkedExampleTriggerAtRealTime(t *testing.T) {
	e := newEnv(t, nil, func(o *Options) { o.Now = time.Now })
	wantError(t, e.do(exampleRequest(exampleTrigger, exampleBody)), 401, "Timestamp expired")
	if n := len(e.hub.events()); n != 0 {
		t.Fatalf("hub got %d events", n)
	}
}

func TestWorkedExampleTriggerWindowDisabled(t *testing.T) {
	e := newEnv(t, nil, func(o *Options) {
		o.Now = time.Now
		o.TimestampWindow = -1
	})
	want(t, e.do(exampleRequest(exampleTrigger, exampleBody)), 200, `{}`)
}

func TestWorkedExampleTamperedBody(t *testing.T) {
	e := newEnv(t, nil, nil)
	tampered := strings.Replace(exampleBody, "project-3", "project-4", 1)
	wantError(t, e.do(exampleRequest(exampleTrigger, tampered)), 401, "body_md5")

	// The same tampering with body_md5 recomputed still fails on the signature.
	q := url.Values{}
	u, _ := url.Parse(exampleTrigger)
	for k, v := range u.Query() {
		q[k] = v
	}
	q.Set("body_md5", "0b6b2fb3bd5c4fb2c8b0dc8b1e7ea4e3")
	r := e.do(exampleRequest("/apps/3/events?"+q.Encode(), tampered))
	if r.status != 401 {
		t.Fatalf("status %d, want 401", r.status)
	}
	if n := len(e.hub.events()); n != 0 {
		t.Fatalf("hub got %d events", n)
	}
}

func TestWorkedExampleTamperedSignature(t *testing.T) {
	e := newEnv(t, nil, nil)
	bad := strings.Replace(exampleTrigger, "auth_signature=da45", "auth_signature=da46", 1)
	wantError(t, e.do(exampleRequest(bad, exampleBody)), 401, "Invalid signature")
}

func TestWorkedExampleGetChannels(t *testing.T) {
	e := newEnv(t, nil, nil)
	e.hub.set(hubChannel("presence-foobar", true, 51, 42))
	e.hub.set(hubChannel("presence-another", true, 130, 123))
	e.hub.set(hubChannel("project-3", true, 7, 0))
	want(t, e.do(exampleRequest(exampleChannels, "")), 200,
		`{"channels":{"presence-another":{"user_count":123},"presence-foobar":{"user_count":42}}}`)
}

func TestAuthFailures(t *testing.T) {
	e := newEnv(t, nil, nil)
	body := []byte(exampleBody)
	cases := []struct {
		name string
		r    *http.Request
		frag string
	}{
		{"no auth params", exampleRequest("/apps/3/events", exampleBody), "Missing authentication parameters"},
		{"wrong key", e.signedWith("otherkey", testSecret, "POST", "/apps/3/events", nil, body), "Invalid auth_key"},
		{"wrong secret", e.signedWith(testKey, "othersecret", "POST", "/apps/3/events", nil, body), "Invalid signature"},
		{"signed for another path", func() *http.Request {
			r := e.signed("POST", "/apps/3/batch_events", nil, body)
			r.URL.Path = "/apps/3/events"
			return r
		}(), "Invalid signature"},
		{"signed for another method", func() *http.Request {
			r := e.signed("GET", "/apps/3/channels", nil, nil)
			r.Method = "HEAD"
			return r
		}(), "Invalid signature"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			wantError(t, e.do(c.r), 401, c.frag)
		})
	}
	if n := len(e.hub.events()); n != 0 {
		t.Fatalf("hub got %d events", n)
	}
}

func TestTimestampWindow(t *testing.T) {
	e := newEnv(t, nil, func(o *Options) { o.TimestampWindow = time.Minute })
	r := e.signed("POST", "/apps/3/events", nil, []byte(exampleBody))
	e.clock.Advance(59 * time.Second)
	want(t, e.do(r), 200, `{}`)
	r = e.signed("POST", "/apps/3/events", nil, []byte(exampleBody))
	e.clock.Advance(61 * time.Second)
	wantError(t, e.do(r), 401, "Timestamp expired")
}

func TestPathPrefix(t *testing.T) {
	for _, prefix := range []string{"/ws", "/ws/", "ws"} {
		t.Run(prefix, func(t *testing.T) {
			e := newEnv(t, nil, func(o *Options) { o.PathPrefix = prefix })
			// Signed for /apps/3/events, sent to /ws/apps/3/events.
			r := e.signed("POST", "/apps/3/events", nil, []byte(exampleBody))
			if r.URL.Path != "/ws/apps/3/events" {
				t.Fatalf("request path %q", r.URL.Path)
			}
			want(t, e.do(r), 200, `{}`)
			// The worked example at /ws/...
			want(t, e.do(exampleRequest("/ws"+exampleTrigger, exampleBody)), 200, `{}`)
			// Signed with the prefix: refused.
			r = e.signed("POST", "/ws/apps/3/events", nil, []byte(exampleBody))
			r.URL.Path = "/ws/apps/3/events"
			wantError(t, e.do(r), 401, "Invalid signature")
			// Outside the prefix: not found.
			want(t, e.do(exampleRequest(exampleTrigger, exampleBody)), 404, "")
			want(t, e.do(exampleRequest("/wsapps/3/events", exampleBody)), 404, "")
			// Health checks at the root and under the prefix.
			want(t, e.do(httptest.NewRequest("GET", "/up", nil)), 200, `{"status":"ok"}`)
			want(t, e.do(httptest.NewRequest("GET", "/ws/up", nil)), 200, `{"status":"ok"}`)
			want(t, e.do(httptest.NewRequest("GET", "/ws/ready", nil)), 200, `{"status":"ready"}`)
			if n := len(e.hub.events()); n != 2 {
				t.Fatalf("hub got %d events, want 2", n)
			}
		})
	}
}

func TestEscapedPathSignature(t *testing.T) {
	e := newEnv(t, nil, nil)
	e.hub.set(hubChannel("#server-to-user-7", true, 2, 0))
	// Signed over the decoded path (as pusher-http-php builds it) or over
	// the escaped one: both verify.
	for _, signedPath := range []string{"/apps/3/channels/#server-to-user-7", "/apps/3/channels/%23server-to-user-7"} {
		sq := protocol.SignRequest("GET", signedPath, nil, nil, testKey, testSecret, testNow)
		r := httptest.NewRequest("GET", "/apps/3/channels/%23server-to-user-7?"+sq.Encode(), nil)
		want(t, e.do(r), 200, `{"occupied":true}`)
	}
}

func TestUnknownApp(t *testing.T) {
	e := newEnv(t, nil, nil)
	r := e.signed("POST", "/apps/4/events", nil, []byte(exampleBody))
	want(t, e.do(r), 404, `{"error":"App 4 not found","code":404}`)
	r = e.signed("GET", "/apps/4/channels", nil, nil)
	want(t, e.do(r), 404, `{"error":"App 4 not found","code":404}`)
}

func TestDisabledApp(t *testing.T) {
	a := testApp()
	a.Enabled = false
	e := newEnv(t, []apps.App{a}, nil)
	wantError(t, e.post("/apps/3/events", exampleBody), 403, "disabled")
	wantError(t, e.get("/apps/3/channels", nil), 403, "disabled")
	// An unsigned caller learns nothing of the app's state.
	wantError(t, e.do(exampleRequest("/apps/3/events", exampleBody)), 401, "Missing authentication")
	if n := len(e.hub.events()); n != 0 {
		t.Fatalf("hub got %d events", n)
	}
}
