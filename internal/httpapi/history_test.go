package httpapi

import (
	"net/url"
	"testing"

	"github.com/herald-ws/herald/internal/hub"
)

func TestHistoryEndpoint(t *testing.T) {
	e := channelsEnv(t)
	e.hub.history = map[string]hub.HistoryPage{"orders-1": {Epoch: "ep", Top: 9, First: 3, Entries: []hub.HistoryEntry{
		{Offset: 4, Payload: []byte(`{"event":"created","channel":"orders-1","data":"{\"id\":4}"}`)},
		{Offset: 5, Payload: []byte(`{"event":"client-typing","channel":"orders-1","data":{"x":1},"user_id":"u7"}`)},
	}}}
	want(t, e.get("/apps/3/channels/orders-1/history", url.Values{"after": {"3"}, "limit": {"2"}}), 200,
		`{"channel":"orders-1","epoch":"ep","first_offset":3,"last_offset":9,"events":[`+
			`{"offset":4,"event":"created","data":"{\"id\":4}"},`+
			`{"offset":5,"event":"client-typing","data":"{\"x\":1}","user_id":"u7"}]}`)
	if e.hub.asked != [2]uint64{3, 2} {
		t.Fatalf("asked %v", e.hub.asked)
	}
	want(t, e.get("/apps/3/channels/orders-1/history", nil), 200, "")
	if e.hub.asked != [2]uint64{0, 100} {
		t.Fatalf("defaults: asked %v", e.hub.asked)
	}
	want(t, e.get("/apps/3/channels/orders-1/history", url.Values{"limit": {"1000"}, "after": {"18446744073709551615"}}), 200, "")
	want(t, e.get("/apps/3/channels/news/history", nil), 404, `{"error":"The channel has no history: no history rule of the app matches it","code":404}`)
	for _, q := range []url.Values{
		{"limit": {"0"}}, {"limit": {"1001"}}, {"limit": {"-1"}}, {"limit": {"x"}},
		{"after": {"-1"}}, {"after": {"1e3"}}, {"after": {"18446744073709551616"}}, {"after": {"+1"}},
	} {
		wantError(t, e.get("/apps/3/channels/orders-1/history", q), 400, "must be")
	}
	wantError(t, e.get("/apps/3/channels/orders-%21/history", nil), 400, "Invalid channel name")
}

// FuzzParseHistoryQuery: after and limit are accepted only as plain
// digits within range, and never panic.
func FuzzParseHistoryQuery(f *testing.F) {
	for _, s := range [][2]string{{"", ""}, {"3", "2"}, {"-1", "0"}, {"18446744073709551615", "1000"}, {"1e3", "+1"}} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, after, limit string) {
		a, l, err := parseHistoryQuery(after, limit)
		if err != nil {
			return
		}
		if l < 1 || l > hub.MaxHistoryPage || (after != "" && !digits(after)) || (limit != "" && !digits(limit)) {
			t.Fatalf("accepted after %q limit %q as %d, %d", after, limit, a, l)
		}
	})
}
