package httpapi

import (
	"encoding/json"
	"net/url"
	"testing"

	"github.com/herald-ws/herald/internal/hub"
	"github.com/herald-ws/herald/internal/protocol"
)

func channelsEnv(t *testing.T) *env {
	e := newEnv(t, nil, nil)
	e.hub.set(hubChannel("presence-foobar", true, 51, 42))
	e.hub.set(hubChannel("presence-cache-room", true, 3, 2))
	e.hub.set(hubChannel("project-3", true, 7, 0))
	e.hub.set(hubChannel("private-x", true, 1, 0))
	e.hub.set(hubChannel("cache-btc", false, 0, 0)) // cached but unoccupied
	return e
}

func TestChannels(t *testing.T) {
	e := channelsEnv(t)
	cases := []struct {
		name string
		q    url.Values
		body string
	}{
		{"all", nil, `{"channels":{"presence-cache-room":{},"presence-foobar":{},"private-x":{},"project-3":{}}}`},
		{"prefix", url.Values{"filter_by_prefix": {"pr"}}, `{"channels":{"presence-cache-room":{},"presence-foobar":{},"private-x":{},"project-3":{}}}`},
		{"private prefix", url.Values{"filter_by_prefix": {"private-"}}, `{"channels":{"private-x":{}}}`},
		{"nothing matches", url.Values{"filter_by_prefix": {"nope-"}}, `{"channels":{}}`},
		{"user_count", url.Values{"filter_by_prefix": {"presence-"}, "info": {"user_count"}},
			`{"channels":{"presence-cache-room":{"user_count":2},"presence-foobar":{"user_count":42}}}`},
		{"user_count narrower presence prefix", url.Values{"filter_by_prefix": {"presence-foo"}, "info": {"user_count"}},
			`{"channels":{"presence-foobar":{"user_count":42}}}`},
		{"subscription_count", url.Values{"info": {"subscription_count"}},
			`{"channels":{"presence-cache-room":{"subscription_count":3},"presence-foobar":{"subscription_count":51},"private-x":{"subscription_count":1},"project-3":{"subscription_count":7}}}`},
		{"both as repeated params", url.Values{"filter_by_prefix": {"presence-"}, "info": {"user_count", "subscription_count"}},
			`{"channels":{"presence-cache-room":{"user_count":2,"subscription_count":3},"presence-foobar":{"user_count":42,"subscription_count":51}}}`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			want(t, e.get("/apps/3/channels", c.q), 200, c.body)
		})
	}
}

func TestChannelsInvalid(t *testing.T) {
	e := channelsEnv(t)
	wantError(t, e.get("/apps/3/channels", url.Values{"info": {"user_count"}}), 400, "filter_by_prefix")
	wantError(t, e.get("/apps/3/channels", url.Values{"info": {"user_count"}, "filter_by_prefix": {"private-"}}), 400, "filter_by_prefix")
	wantError(t, e.get("/apps/3/channels", url.Values{"info": {"cache"}}), 400, `Unknown info attribute "cache"`)
	wantError(t, e.get("/apps/3/channels", url.Values{"info": {"occupied"}}), 400, "Unknown info attribute")
}

func TestChannel(t *testing.T) {
	e := channelsEnv(t)
	e.hub.set(hub.ChannelInfo{Name: "cache-btc", Occupied: true, SubscriptionCount: 2,
		Cache: &hub.CacheInfo{Event: "price", Data: `{"usd":64000}`, TTL: 1800}})
	cases := []struct {
		name, channel, info, body string
	}{
		{"occupied", "project-3", "", `{"occupied":true}`},
		{"unknown", "nobody-here", "", `{"occupied":false}`},
		{"unknown with counts", "nobody-here", "subscription_count", `{"occupied":false,"subscription_count":0}`},
		{"subscription_count", "project-3", "subscription_count", `{"occupied":true,"subscription_count":7}`},
		{"presence counts", "presence-foobar", "user_count,subscription_count", `{"occupied":true,"user_count":42,"subscription_count":51}`},
		{"cache", "cache-btc", "cache", `{"occupied":true,"cache":{"data":"{\"usd\":64000}","ttl":1800}}`},
		{"cache and count", "cache-btc", "subscription_count,cache", `{"occupied":true,"subscription_count":2,"cache":{"data":"{\"usd\":64000}","ttl":1800}}`},
		{"nothing cached", "presence-cache-room", "cache,user_count", `{"occupied":true,"user_count":2}`},
		{"server to user", "#server-to-user-5", "", `{"occupied":false}`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var q url.Values
			if c.info != "" {
				q = url.Values{"info": {c.info}}
			}
			want(t, e.get("/apps/3/channels/"+url.PathEscape(c.channel), q), 200, c.body)
		})
	}
}

func TestChannelInvalid(t *testing.T) {
	e := channelsEnv(t)
	wantError(t, e.get("/apps/3/channels/project-3", url.Values{"info": {"user_count"}}), 400, "only available for presence channels")
	wantError(t, e.get("/apps/3/channels/project-3", url.Values{"info": {"cache"}}), 400, "only available for cache channels")
	wantError(t, e.get("/apps/3/channels/project-3", url.Values{"info": {"members"}}), 400, `Unknown info attribute "members"`)
	wantError(t, e.get("/apps/3/channels/"+url.PathEscape("bad name"), nil), 400, "Invalid channel name")
	wantError(t, e.get("/apps/3/channels/"+url.PathEscape("a/b"), nil), 400, "Invalid channel name")
	wantError(t, e.get("/apps/3/channels/x%21", nil), 400, "Invalid channel name")
}

func TestUsers(t *testing.T) {
	e := channelsEnv(t)
	e.hub.members["presence-foobar"] = []protocol.Member{
		{ID: "10", RawID: json.RawMessage(`10`), Info: json.RawMessage(`{"name":"a"}`)},
		{ID: "11", RawID: json.RawMessage(`"11"`)},
	}
	want(t, e.get("/apps/3/channels/presence-foobar/users", nil), 200, `{"users":[{"id":"10"},{"id":"11"}]}`)
	want(t, e.get("/apps/3/channels/presence-empty/users", nil), 200, `{"users":[]}`)
	want(t, e.get("/apps/3/channels/project-3/users", nil), 400, `{"error":"The channel must be a presence channel","code":400}`)
	wantError(t, e.get("/apps/3/channels/private-x/users", nil), 400, "presence channel")
	wantError(t, e.get("/apps/3/channels/presence-%21/users", nil), 400, "Invalid channel name")
}

func TestTerminate(t *testing.T) {
	e := newEnv(t, nil, nil)
	want(t, e.post("/apps/3/users/12345/terminate_connections", `{}`), 200, `{}`)
	// An empty body, as a bare SDK call may send.
	want(t, e.do(e.signed("POST", "/apps/3/users/abc/terminate_connections", nil, nil)), 200, `{}`)
	want(t, e.post("/apps/3/users/"+url.PathEscape("user@example.com")+"/terminate_connections", ` { "reason": "x" } `), 200, `{}`)
	wantError(t, e.post("/apps/3/users/1/terminate_connections", `[]`), 400, "JSON object")
	wantError(t, e.post("/apps/3/users/1/terminate_connections", `{`), 400, "JSON object")
	e.hub.mu.Lock()
	got := e.hub.terminated
	e.hub.mu.Unlock()
	if len(got) != 3 || got[0] != "12345" || got[1] != "abc" || got[2] != "user@example.com" {
		t.Fatalf("terminated %q", got)
	}
}
