package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/herald-ws/herald/internal/apps"
	"github.com/herald-ws/herald/internal/hub"
	"github.com/herald-ws/herald/internal/protocol"
)

// checkingHub accepts every valid request and answers one that breaks a
// rule the handler promises to have checked with a 500, which the fuzz
// targets treat as a failure.
type checkingHub struct{}

func (checkingHub) Publish(_ context.Context, app *apps.App, req hub.PublishRequest) error {
	var problems []string
	if req.Name == "" {
		problems = append(problems, "empty name")
	}
	if len(req.Channels) == 0 || len(req.Channels) > app.MaxEventChannelsAtOnce {
		problems = append(problems, fmt.Sprintf("%d channels", len(req.Channels)))
	}
	seen := map[string]bool{}
	for _, ch := range req.Channels {
		if err := protocol.ValidateChannelName(ch, app.MaxChannelNameLength); err != nil {
			problems = append(problems, err.Error())
		}
		if seen[ch] {
			problems = append(problems, "duplicate channel "+ch)
		}
		seen[ch] = true
		if len(req.Channels) > 1 && protocol.Classify(ch).IsEncrypted() {
			problems = append(problems, "encrypted channel not alone")
		}
	}
	if len(req.Data) > app.MaxEventPayloadBytes() {
		problems = append(problems, "data too large")
	}
	if req.ExceptSocketID != "" && !protocol.ValidSocketID(req.ExceptSocketID) {
		problems = append(problems, "bad socket id")
	}
	if len(problems) > 0 {
		return &protocol.APIError{Status: 500, Message: fmt.Sprintf("hub got an invalid request %+v: %s", req, strings.Join(problems, "; "))}
	}
	return nil
}

func (checkingHub) Channel(_ context.Context, _ *apps.App, name string) (hub.ChannelInfo, error) {
	return hub.ChannelInfo{Name: name, Kind: protocol.Classify(name), Occupied: true, SubscriptionCount: 2, UserCount: 1}, nil
}

func (checkingHub) Channels(context.Context, *apps.App, string) ([]hub.ChannelInfo, error) {
	return []hub.ChannelInfo{{Name: "presence-a", Occupied: true, SubscriptionCount: 1, UserCount: 1}}, nil
}

func (checkingHub) PresenceUsers(context.Context, *apps.App, string) ([]protocol.Member, error) {
	return []protocol.Member{{ID: "1"}}, nil
}

func (checkingHub) TerminateUser(context.Context, *apps.App, string) error { return nil }

func fuzzHandler(t testing.TB) http.Handler {
	a := testApp()
	a.MaxEventPayloadKB = 1 // reach the 413 path with small inputs
	a.MaxEventChannelsAtOnce = 5
	a.MaxChannelNameLength = 30
	a.MaxEventNameLength = 20
	return New(Options{Apps: mustStatic(t, a), Hub: checkingHub{}, Now: func() time.Time { return testNow }})
}

// FuzzTriggerBody sends arbitrary bodies, correctly signed, to POST
// /apps/3/events: the handler must answer 200, 400 or 413 with a JSON
// body, and hand the hub only valid events.
func FuzzTriggerBody(f *testing.F) {
	for _, s := range []string{
		exampleBody,
		`{"name":"foo","channel":"a","data":""}`,
		`{"name":"foo","channels":["a","a","private-encrypted-b"],"data":"x","socket_id":"1.2","info":"user_count"}`,
		`{"name":"foo","channels":["#server-to-user-1"],"data":"x","info":"subscription_count,user_count"}`,
		`{"name":"foo","channels":["presence-a"],"data":` + `"` + strings.Repeat("x", 1025) + `"}`,
		`{"name":1}`, `[]`, `null`, ``, `{"data":{}}`, `{"channels":"x"}`, "{\"name\":\"\xff\"}",
	} {
		f.Add([]byte(s))
	}
	h := fuzzHandler(f)
	f.Fuzz(func(t *testing.T, body []byte) {
		q := protocol.SignRequest("POST", "/apps/3/events", nil, body, testKey, testSecret, testNow)
		r := httptest.NewRequest("POST", "/apps/3/events?"+q.Encode(), bytes.NewReader(body))
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, r)
		switch rec.Code {
		case 200, 400, 413:
		default:
			t.Fatalf("status %d for body %q: %s", rec.Code, body, rec.Body)
		}
		if !json.Valid(rec.Body.Bytes()) {
			t.Fatalf("response is not JSON: %q", rec.Body)
		}
	})
}

// FuzzVerifyRequest sends arbitrary methods, targets and bodies: the
// handler must never panic, never fail with a 5xx, and never answer 200
// under /apps/ unless the request carries a valid signature.
func FuzzVerifyRequest(f *testing.F) {
	f.Add("POST", exampleTrigger, []byte(exampleBody))
	f.Add("GET", exampleChannels, []byte(nil))
	f.Add("POST", strings.Replace(exampleTrigger, "da45", "da46", 1), []byte(exampleBody))
	f.Add("POST", exampleTrigger, []byte(exampleBody+" "))
	f.Add("GET", "/apps/3/channels?auth_key=278d425bdf160c739803&auth_timestamp=1353088179&auth_signature=x", []byte(nil))
	f.Add("GET", "/apps/3/channels/presence-a/users?auth_key=278d425bdf160c739803&auth_timestamp=1353088179&auth_version=1.0&auth_signature=0", []byte(nil))
	f.Add("POST", "/apps/3/users/1/terminate_connections?auth_key=278d425bdf160c739803&auth_timestamp=99999999999999999999", []byte("{}"))
	f.Add("GET", "/up", []byte(nil))
	f.Add("GET", "/apps/%33/channels/%23server-to-user-1?AUTH_KEY=278d425bdf160c739803&auth_timestamp=1353088179&auth_signature=&auth_signature=a", []byte(nil))
	for _, m := range []string{"GET", "POST"} {
		for _, p := range []string{"/apps/3/channels/presence-a", "/apps/3/channels/presence-a/users", "/apps/3/users/u%201/terminate_connections", "/apps/3/batch_events"} {
			var body []byte
			if m == "POST" {
				body = []byte(`{"batch":[{"name":"a","channel":"b","data":"c","info":"user_count"}]}`)
			}
			q := protocol.SignRequest(m, p, url.Values{"info": {"subscription_count"}}, body, testKey, testSecret, testNow)
			f.Add(m, p+"?"+q.Encode(), body)
		}
	}
	h := fuzzHandler(f)
	f.Fuzz(func(t *testing.T, method, target string, body []byte) {
		u, err := url.ParseRequestURI(target)
		if err != nil || method == "" || strings.ContainsAny(method, " \r\n") {
			return
		}
		r := &http.Request{
			Method:        method,
			URL:           u,
			Proto:         "HTTP/1.1",
			ProtoMajor:    1,
			ProtoMinor:    1,
			Header:        http.Header{},
			Body:          io.NopCloser(bytes.NewReader(body)),
			ContentLength: int64(len(body)),
			Host:          "example.com",
			RequestURI:    target,
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, r)
		if rec.Code >= 500 {
			t.Fatalf("%s %s: status %d: %s", method, target, rec.Code, rec.Body)
		}
		if rec.Code == 200 && strings.HasPrefix(u.Path, "/apps/") {
			sr := protocol.SignedRequest{Method: method, Path: u.Path, Query: u.Query(), Body: body}
			err := protocol.VerifyRequest(sr, testKey, testSecret, testNow, DefaultTimestampWindow)
			if err != nil {
				sr.Path = u.EscapedPath()
				err = protocol.VerifyRequest(sr, testKey, testSecret, testNow, DefaultTimestampWindow)
			}
			if err != nil {
				t.Fatalf("%s %s body %q: 200 without a valid signature (%v): %s", method, target, body, err, rec.Body)
			}
		}
	})
}

func (checkingHub) History(context.Context, *apps.App, string, uint64, int) (hub.HistoryPage, error) {
	return hub.HistoryPage{}, hub.ErrNoHistory
}
