package protocol

import (
	"bytes"
	"encoding/json"
	"math/rand/v2"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"
)

// decodeFrame parses an encoded frame, checking that it is one valid UTF-8
// JSON object, and returns its fields as raw JSON.
func decodeFrame(t *testing.T, b []byte) map[string]json.RawMessage {
	t.Helper()
	if !utf8.Valid(b) {
		t.Fatalf("frame is not valid UTF-8: %q", b)
	}
	if !json.Valid(b) {
		t.Fatalf("frame is not valid JSON: %s", b)
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("frame is not a JSON object: %s: %v", b, err)
	}
	return m
}

// fieldString decodes the raw JSON string field f.
func fieldString(t *testing.T, m map[string]json.RawMessage, f string) string {
	t.Helper()
	raw, ok := m[f]
	if !ok {
		t.Fatalf("field %q missing", f)
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		t.Fatalf("field %q = %s is not a JSON string", f, raw)
	}
	return s
}

// dataObject decodes the data field, which must be a JSON string whose
// content is a JSON object (pusher: and pusher_internal: events).
func dataObject(t *testing.T, m map[string]json.RawMessage) map[string]any {
	t.Helper()
	s := fieldString(t, m, "data")
	var v map[string]any
	d := json.NewDecoder(strings.NewReader(s))
	d.UseNumber()
	if err := d.Decode(&v); err != nil || v == nil {
		t.Fatalf("data string %q is not a JSON object: %v", s, err)
	}
	return v
}

// keys returns the top-level keys of m, sorted.
func keys(m map[string]json.RawMessage) string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return strings.Join(ks, ",")
}

// TestSpecFrames compares encoders byte for byte with the frames printed in
// the protocol reference.
func TestSpecFrames(t *testing.T) {
	tests := []struct {
		name string
		got  []byte
		want string
	}{
		{"3.1 connection_established", ConnectionEstablished("208836.27464492", 120),
			`{"event":"pusher:connection_established","data":"{\"socket_id\":\"208836.27464492\",\"activity_timeout\":120}"}`},
		{"1.2 error 4001", Error(CodeAppNotFound, "Application does not exist"),
			`{"event":"pusher:error","data":{"code":4001,"message":"Application does not exist"}}`},
		{"3.4 error 4301", Error(CodeClientEventRejected, "Client event rejected due to rate limit"),
			`{"event":"pusher:error","data":{"code":4301,"message":"Client event rejected due to rate limit"}}`},
		{"3.3 error 4201", Error(CodePongNotReceived, "Pong reply not received in time"),
			`{"event":"pusher:error","data":{"code":4201,"message":"Pong reply not received in time"}}`},
		{"3.2 ping", Ping(), `{"event":"pusher:ping","data":{}}`},
		{"3.2 pong", Pong(), `{"event":"pusher:pong","data":{}}`},
		{"4.4 subscription_succeeded", SubscriptionSucceeded("private-foobar"),
			`{"event":"pusher_internal:subscription_succeeded","channel":"private-foobar","data":"{}"}`},
		{"4.4 presence subscription_succeeded", PresenceSucceeded("presence-foobar", []Member{
			{ID: "10", RawID: json.RawMessage(`10`), Info: json.RawMessage(`{"name":"Mr. Channels"}`)},
			{ID: "11", RawID: json.RawMessage(`"11"`), Info: json.RawMessage(`{"name":"Ada"}`)},
		}), `{"event":"pusher_internal:subscription_succeeded","channel":"presence-foobar","data":"{\"presence\":{\"ids\":[\"10\",\"11\"],\"hash\":{\"10\":{\"name\":\"Mr. Channels\"},\"11\":{\"name\":\"Ada\"}},\"count\":2}}"}`},
		{"4.4 subscription_error", SubscriptionError("private-foobar", "AuthError", "The connection is unauthorized.", 401),
			`{"event":"pusher:subscription_error","channel":"private-foobar","data":{"type":"AuthError","error":"The connection is unauthorized.","status":401}}`},
		{"4.6 member_added", MemberAdded("presence-foobar", Member{ID: "11", RawID: json.RawMessage(`"11"`), Info: json.RawMessage(`{"name":"Ada"}`)}),
			`{"event":"pusher_internal:member_added","channel":"presence-foobar","data":"{\"user_id\":\"11\",\"user_info\":{\"name\":\"Ada\"}}"}`},
		{"4.6 member_removed", MemberRemoved("presence-foobar", Member{ID: "11", RawID: json.RawMessage(`"11"`)}),
			`{"event":"pusher_internal:member_removed","channel":"presence-foobar","data":"{\"user_id\":\"11\"}"}`},
		{"4.7 cached event", Event("price-updated", "cache-btc", `{"usd":64000}`),
			`{"event":"price-updated","channel":"cache-btc","data":"{\"usd\":64000}"}`},
		{"4.7 cache_miss", CacheMiss("cache-btc"), `{"event":"pusher:cache_miss","channel":"cache-btc"}`},
		{"4.8 subscription_count", SubscriptionCount("my-channel", 42),
			`{"event":"pusher_internal:subscription_count","channel":"my-channel","data":"{\"subscription_count\":42}"}`},
		{"4.10 watchlist", Watchlist([]WatchlistEvent{{Name: "online", UserIDs: []string{"id1"}}, {Name: "offline", UserIDs: []string{"id2"}}}),
			`{"event":"pusher_internal:watchlist_events","data":"{\"events\":[{\"name\":\"online\",\"user_ids\":[\"id1\"]},{\"name\":\"offline\",\"user_ids\":[\"id2\"]}]}"}`},
		{"5.5 signin_success", SigninSuccess(vecUserData),
			`{"event":"pusher:signin_success","data":"{\"user_data\":\"{\\\"id\\\":\\\"12345\\\",\\\"user_info\\\":{\\\"name\\\":\\\"Ada\\\"},\\\"watchlist\\\":[\\\"67\\\",\\\"89\\\"]}\"}"}`},
		{"6 client event on presence", EventRaw("client-typing", "presence-room.1", json.RawMessage(`{"name":"Ada"}`), "11"),
			`{"event":"client-typing","channel":"presence-room.1","data":{"name":"Ada"},"user_id":"11"}`},
		{"7.3 trigger", Event("foo", "project-3", `{"some":"data"}`),
			`{"event":"foo","channel":"project-3","data":"{\"some\":\"data\"}"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if string(tt.got) != tt.want {
				t.Errorf("got\n%s\nwant\n%s", tt.got, tt.want)
			}
			decodeFrame(t, tt.got)
		})
	}
}

func TestEvent(t *testing.T) {
	for _, data := range []string{"", "plain text", `{"a":1}`, `"quoted"`, "line\nbreak\ttab\x00nul", "é😀\u2028\u2029", "bad\xffutf8", `\u0000`} {
		for _, ch := range []string{"", "my-channel", `we"ird\chan`} {
			b := Event("my-event", ch, data)
			m := decodeFrame(t, b)
			if got := fieldString(t, m, "event"); got != "my-event" {
				t.Errorf("event = %q", got)
			}
			if ch == "" {
				if _, ok := m["channel"]; ok {
					t.Errorf("empty channel encoded: %s", b)
				}
			} else if got := fieldString(t, m, "channel"); got != ch {
				t.Errorf("channel = %q, want %q", got, ch)
			}
			if got, want := fieldString(t, m, "data"), strings.ToValidUTF8(data, "\uFFFD"); got != want {
				t.Errorf("data = %q, want %q", got, want)
			}
			if k := keys(m); k != "channel,data,event" && k != "data,event" {
				t.Errorf("keys = %s", k)
			}
			if !bytes.HasPrefix(b, []byte(`{"event":`)) {
				t.Errorf("event is not the first key: %s", b)
			}
		}
	}
}

func TestEventRaw(t *testing.T) {
	tests := []struct {
		data   string // "" means nil
		userID string
	}{
		{`{"name":"Ada"}`, ""},
		{`{"name":"Ada"}`, "11"},
		{`{ "spaced" : [ 1 , 2 ] }`, "u\"1"},
		{`"a string"`, ""},
		{`"\u2028\ud83d\ude00"`, ""},
		{`12.50e1`, "x"},
		{`[]`, ""},
		{`null`, ""},
		{"", ""},
		{"", "11"},
	}
	for _, tt := range tests {
		var data json.RawMessage
		if tt.data != "" {
			data = json.RawMessage(tt.data)
		}
		b := EventRaw("client-x", "presence-a", data, tt.userID)
		m := decodeFrame(t, b)
		if fieldString(t, m, "event") != "client-x" || fieldString(t, m, "channel") != "presence-a" {
			t.Errorf("bad event/channel: %s", b)
		}
		if tt.data == "" {
			if _, ok := m["data"]; ok {
				t.Errorf("nil data encoded: %s", b)
			}
		} else if !bytes.Contains(b, []byte(`"data":`+tt.data)) || string(m["data"]) != tt.data {
			t.Errorf("data not kept byte for byte: %s (want %s)", b, tt.data)
		}
		if tt.userID == "" {
			if _, ok := m["user_id"]; ok {
				t.Errorf("empty user_id encoded: %s", b)
			}
		} else if got := fieldString(t, m, "user_id"); got != tt.userID {
			t.Errorf("user_id = %q, want %q", got, tt.userID)
		}
	}
	if got, want := string(EventRaw("client-x", "", json.RawMessage(`1`), "")), `{"event":"client-x","data":1}`; got != want {
		t.Errorf("EventRaw without channel = %s, want %s", got, want)
	}
}

// TestEventRawRelaysDecodedData is the client-event path: decode, relay.
func TestEventRawRelaysDecodedData(t *testing.T) {
	in := `{"event":"client-typing","channel":"presence-room.1","data":{"name":"Ada", "n" : [1,2.50]}}`
	msg, err := DecodeMessage([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	out := EventRaw(msg.Event, msg.Channel, msg.Data, "11")
	want := `{"event":"client-typing","channel":"presence-room.1","data":{"name":"Ada", "n" : [1,2.50]},"user_id":"11"}`
	if string(out) != want {
		t.Errorf("relayed\n%s\nwant\n%s", out, want)
	}
}

func TestConnectionEstablished(t *testing.T) {
	b := ConnectionEstablished("1234.5678", 30)
	m := decodeFrame(t, b)
	if k := keys(m); k != "data,event" {
		t.Errorf("keys = %s", k)
	}
	if fieldString(t, m, "event") != EventConnectionEstablished {
		t.Errorf("event = %s", m["event"])
	}
	d := dataObject(t, m)
	if !reflect.DeepEqual(d, map[string]any{"socket_id": "1234.5678", "activity_timeout": json.Number("30")}) {
		t.Errorf("data = %v", d)
	}
	if !ValidSocketID(d["socket_id"].(string)) {
		t.Errorf("socket_id %v invalid", d["socket_id"])
	}
}

func TestError(t *testing.T) {
	tests := []struct {
		code    int
		msg     string
		channel string
		want    string // raw code
	}{
		{0, "Invalid message: not valid JSON", "", "null"},
		{4001, "Application does not exist", "", "4001"},
		{4301, "rate", "private-a", "4301"},
		{0, "Unknown event: pusher:foo", "presence-x", "null"},
		{-1, `quote " backslash \ newline` + "\n" + "bad \xff", "", "-1"},
	}
	for _, tt := range tests {
		var b []byte
		if tt.channel == "" {
			b = Error(tt.code, tt.msg)
		} else {
			b = ErrorOnChannel(tt.code, tt.msg, tt.channel)
		}
		m := decodeFrame(t, b)
		if fieldString(t, m, "event") != EventError {
			t.Errorf("event = %s", m["event"])
		}
		if tt.channel == "" {
			if k := keys(m); k != "data,event" {
				t.Errorf("keys = %s", k)
			}
		} else if fieldString(t, m, "channel") != tt.channel {
			t.Errorf("channel = %s", m["channel"])
		}
		var d map[string]json.RawMessage
		if err := json.Unmarshal(m["data"], &d); err != nil {
			t.Fatalf("pusher:error data is not an object: %s", m["data"])
		}
		if string(d["code"]) != tt.want {
			t.Errorf("code = %s, want %s", d["code"], tt.want)
		}
		if got := fieldString(t, d, "message"); got != strings.ToValidUTF8(tt.msg, "\uFFFD") {
			t.Errorf("message = %q, want %q", got, tt.msg)
		}
		if len(d) != 2 {
			t.Errorf("data has extra fields: %s", m["data"])
		}
	}
}

func TestPingPongFresh(t *testing.T) {
	p := Ping()
	p[2] = 'X'
	if string(Ping()) != `{"event":"pusher:ping","data":{}}` {
		t.Error("Ping returns a shared buffer")
	}
	q := Pong()
	q[2] = 'X'
	if string(Pong()) != `{"event":"pusher:pong","data":{}}` {
		t.Error("Pong returns a shared buffer")
	}
}

func TestSubscriptionSucceeded(t *testing.T) {
	m := decodeFrame(t, SubscriptionSucceeded("cache-x"))
	if fieldString(t, m, "event") != EventSubscriptionSucceeded || fieldString(t, m, "channel") != "cache-x" {
		t.Errorf("frame = %v", m)
	}
	if d := dataObject(t, m); len(d) != 0 {
		t.Errorf("data = %v, want {}", d)
	}
}

type presenceData struct {
	Presence struct {
		IDs   []string                   `json:"ids"`
		Hash  map[string]json.RawMessage `json:"hash"`
		Count int                        `json:"count"`
	} `json:"presence"`
}

func TestPresenceSucceeded(t *testing.T) {
	members := []Member{
		{ID: "10", RawID: json.RawMessage(`10`), Info: json.RawMessage(`{"name":"Mr. Channels"}`)},
		{ID: "11", RawID: json.RawMessage(`"11"`)},
		{ID: `we"ird\id`, Info: json.RawMessage(`"just a string"`)},
		{ID: "-3", RawID: json.RawMessage(`-3`), Info: json.RawMessage(`[1,{"a":null}]`)},
	}
	b := PresenceSucceeded("presence-room", members)
	m := decodeFrame(t, b)
	if fieldString(t, m, "event") != EventSubscriptionSucceeded || fieldString(t, m, "channel") != "presence-room" {
		t.Fatalf("frame = %s", b)
	}
	var pd presenceData
	if err := json.Unmarshal([]byte(fieldString(t, m, "data")), &pd); err != nil {
		t.Fatalf("data: %v", err)
	}
	p := pd.Presence
	if want := []string{"10", "11", `we"ird\id`, "-3"}; !reflect.DeepEqual(p.IDs, want) {
		t.Errorf("ids = %q, want %q (strings, in order)", p.IDs, want)
	}
	if p.Count != len(members) || len(p.Hash) != len(members) {
		t.Errorf("count = %d, hash size = %d, want %d", p.Count, len(p.Hash), len(members))
	}
	wantHash := map[string]string{"10": `{"name":"Mr. Channels"}`, "11": "null", `we"ird\id`: `"just a string"`, "-3": `[1,{"a":null}]`}
	for id, info := range wantHash {
		raw, ok := p.Hash[id]
		if !ok {
			t.Errorf("hash lacks member %q", id)
			continue
		}
		if string(raw) != info {
			t.Errorf("hash[%q] = %s, want %s", id, raw, info)
		}
	}
	// ids are strings even when user_id arrived as a number.
	var raw struct {
		Presence struct {
			IDs []json.RawMessage `json:"ids"`
		} `json:"presence"`
	}
	if err := json.Unmarshal([]byte(fieldString(t, m, "data")), &raw); err != nil {
		t.Fatal(err)
	}
	for _, id := range raw.Presence.IDs {
		if id[0] != '"' {
			t.Errorf("id %s is not a JSON string", id)
		}
	}
}

func TestPresenceSucceededEmptyAndLarge(t *testing.T) {
	m := decodeFrame(t, PresenceSucceeded("presence-x", nil))
	if got, want := fieldString(t, m, "data"), `{"presence":{"ids":[],"hash":{},"count":0}}`; got != want {
		t.Errorf("empty roster data = %s, want %s", got, want)
	}
	members := make([]Member, 100)
	for i := range members {
		members[i] = Member{ID: strconv.Itoa(i)}
		if i%2 == 0 {
			members[i].Info = json.RawMessage(`{"n":` + strconv.Itoa(i) + `}`)
		}
	}
	m = decodeFrame(t, PresenceSucceeded("presence-x", members))
	var pd presenceData
	if err := json.Unmarshal([]byte(fieldString(t, m, "data")), &pd); err != nil {
		t.Fatal(err)
	}
	if pd.Presence.Count != 100 || len(pd.Presence.IDs) != 100 || len(pd.Presence.Hash) != 100 {
		t.Errorf("count %d ids %d hash %d", pd.Presence.Count, len(pd.Presence.IDs), len(pd.Presence.Hash))
	}
	for i, id := range pd.Presence.IDs {
		if id != strconv.Itoa(i) {
			t.Fatalf("ids[%d] = %q", i, id)
		}
		want := "null"
		if i%2 == 0 {
			want = `{"n":` + id + `}`
		}
		if got := string(pd.Presence.Hash[id]); got != want {
			t.Errorf("hash[%s] = %s, want %s", id, got, want)
		}
	}
}

func TestMemberAddedRemoved(t *testing.T) {
	tests := []struct {
		name        string
		m           Member
		wantAdded   string
		wantRemoved string
	}{
		{"string id with info", Member{ID: "11", RawID: json.RawMessage(`"11"`), Info: json.RawMessage(`{"name":"Ada"}`)},
			`{"user_id":"11","user_info":{"name":"Ada"}}`, `{"user_id":"11"}`},
		{"numeric id echoed as received", Member{ID: "10", RawID: json.RawMessage(`10`), Info: json.RawMessage(`{"name":"Mr. Channels"}`)},
			`{"user_id":10,"user_info":{"name":"Mr. Channels"}}`, `{"user_id":10}`},
		{"no info", Member{ID: "12", RawID: json.RawMessage(`"12"`)},
			`{"user_id":"12"}`, `{"user_id":"12"}`},
		{"no raw id", Member{ID: `a"b`},
			`{"user_id":"a\"b"}`, `{"user_id":"a\"b"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := decodeFrame(t, MemberAdded("presence-foobar", tt.m))
			if fieldString(t, m, "event") != EventMemberAdded || fieldString(t, m, "channel") != "presence-foobar" {
				t.Errorf("frame = %v", m)
			}
			if got := fieldString(t, m, "data"); got != tt.wantAdded {
				t.Errorf("member_added data = %s, want %s", got, tt.wantAdded)
			}
			dataObject(t, m)
			m = decodeFrame(t, MemberRemoved("presence-foobar", tt.m))
			if fieldString(t, m, "event") != EventMemberRemoved || fieldString(t, m, "channel") != "presence-foobar" {
				t.Errorf("frame = %v", m)
			}
			if got := fieldString(t, m, "data"); got != tt.wantRemoved {
				t.Errorf("member_removed data = %s, want %s", got, tt.wantRemoved)
			}
		})
	}
}

// TestMemberFromChannelData follows a presence join through the package:
// channel_data in, roster and member_added out.
func TestMemberFromChannelData(t *testing.T) {
	mem, err := ParseChannelData(vecPresenceCD)
	if err != nil {
		t.Fatal(err)
	}
	m := decodeFrame(t, MemberAdded("presence-foobar", mem))
	if got, want := fieldString(t, m, "data"), vecPresenceCD; got != want {
		t.Errorf("member_added data = %s, want %s", got, want)
	}
	m = decodeFrame(t, PresenceSucceeded("presence-foobar", []Member{mem}))
	if got, want := fieldString(t, m, "data"), `{"presence":{"ids":["10"],"hash":{"10":{"name":"Mr. Channels"}},"count":1}}`; got != want {
		t.Errorf("roster = %s, want %s", got, want)
	}
}

func TestSubscriptionError(t *testing.T) {
	m := decodeFrame(t, SubscriptionError("presence-x", "LimitReached", "Presence channel is full \"x\"", 4100))
	if fieldString(t, m, "event") != EventSubscriptionError || fieldString(t, m, "channel") != "presence-x" {
		t.Errorf("frame = %v", m)
	}
	var d struct {
		Type   string `json:"type"`
		Error  string `json:"error"`
		Status int    `json:"status"`
	}
	if err := json.Unmarshal(m["data"], &d); err != nil {
		t.Fatalf("data is not an object: %s", m["data"])
	}
	if d.Type != "LimitReached" || d.Error != `Presence channel is full "x"` || d.Status != 4100 {
		t.Errorf("data = %+v", d)
	}
}

func TestSubscriptionCount(t *testing.T) {
	for _, n := range []int{0, 1, 42, 1 << 40} {
		m := decodeFrame(t, SubscriptionCount("my-channel", n))
		if fieldString(t, m, "event") != EventSubscriptionCount || fieldString(t, m, "channel") != "my-channel" {
			t.Errorf("frame = %v", m)
		}
		d := dataObject(t, m)
		if d["subscription_count"] != json.Number(strconv.Itoa(n)) || len(d) != 1 {
			t.Errorf("data = %v, want subscription_count %d", d, n)
		}
	}
}

func TestSigninSuccess(t *testing.T) {
	for _, ud := range []string{vecUserData, `{"id":"a\"b\\c\u2028"}`, ""} {
		m := decodeFrame(t, SigninSuccess(ud))
		if fieldString(t, m, "event") != EventSigninSuccess {
			t.Errorf("event = %s", m["event"])
		}
		if k := keys(m); k != "data,event" {
			t.Errorf("keys = %s", k)
		}
		d := dataObject(t, m)
		if d["user_data"] != ud || len(d) != 1 {
			t.Errorf("data = %v, want user_data %q", d, ud)
		}
	}
}

func TestWatchlist(t *testing.T) {
	m := decodeFrame(t, Watchlist(nil))
	if got := fieldString(t, m, "data"); got != `{"events":[]}` {
		t.Errorf("empty watchlist data = %s", got)
	}
	events := []WatchlistEvent{{Name: "online", UserIDs: []string{"1", "2", `"3"`}}, {Name: "offline"}}
	m = decodeFrame(t, Watchlist(events))
	if k := keys(m); k != "data,event" {
		t.Errorf("keys = %s", k)
	}
	var d struct {
		Events []struct {
			Name    string   `json:"name"`
			UserIDs []string `json:"user_ids"`
		} `json:"events"`
	}
	if err := json.Unmarshal([]byte(fieldString(t, m, "data")), &d); err != nil {
		t.Fatal(err)
	}
	if len(d.Events) != 2 || d.Events[0].Name != "online" || !reflect.DeepEqual(d.Events[0].UserIDs, []string{"1", "2", `"3"`}) ||
		d.Events[1].Name != "offline" || d.Events[1].UserIDs == nil || len(d.Events[1].UserIDs) != 0 {
		t.Errorf("data = %+v", d)
	}
}

// TestEncodersHostileInput feeds every encoder strings that need escaping
// or are not UTF-8: the output must stay one valid JSON object.
func TestEncodersHostileInput(t *testing.T) {
	nasty := []string{"", `"`, `\`, "\x00\x1f\x7f", "\xff\xfe", "\u2028\u2029", `</script>&<`, "é😀", "\xed\xa0\x80", `{"a":`}
	for _, s := range nasty {
		frames := [][]byte{
			Event(s, s, s),
			EventRaw(s, s, json.RawMessage(`{}`), s),
			ConnectionEstablished(s, 120),
			Error(1, s),
			ErrorOnChannel(0, s, s),
			SubscriptionSucceeded(s),
			PresenceSucceeded(s, []Member{{ID: s}, {ID: s + "x", Info: json.RawMessage(`{"n":1}`)}}),
			SubscriptionError(s, s, s, 401),
			MemberAdded(s, Member{ID: s}),
			MemberRemoved(s, Member{ID: s}),
			CacheMiss(s),
			SubscriptionCount(s, 3),
			SigninSuccess(s),
			Watchlist([]WatchlistEvent{{Name: s, UserIDs: []string{s}}}),
		}
		for i, b := range frames {
			m := decodeFrame(t, b)
			if bytes.Contains(b, []byte("\u2028")) || bytes.Contains(b, []byte("\u2029")) {
				t.Errorf("frame %d for %q has a raw U+2028/9: %q", i, s, b)
			}
			if _, ok := m["event"]; !ok {
				t.Errorf("frame %d has no event: %s", i, b)
			}
			// Double-encoded data must itself be valid JSON.
			if raw, ok := m["data"]; ok && raw[0] == '"' && i != 0 {
				var inner string
				if err := json.Unmarshal(raw, &inner); err != nil || !json.Valid([]byte(inner)) {
					t.Errorf("frame %d for %q: data string is not JSON: %s", i, s, raw)
				}
			}
		}
	}
}

// jsonDecodeString decodes a JSON string literal.
func jsonDecodeString(t testing.TB, b []byte) string {
	t.Helper()
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		t.Fatalf("%q is not a JSON string: %v", b, err)
	}
	return s
}

// replaceInvalid replaces every byte that is not part of a valid UTF-8
// sequence by U+FFFD, one per byte, as encoding/json does.
func replaceInvalid(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && n == 1 {
			b.WriteString("\uFFFD")
		} else {
			b.WriteString(s[i : i+n])
		}
		i += n
	}
	return b.String()
}

func TestAppendStringFixed(t *testing.T) {
	tests := []struct {
		in, want string
	}{
		{"", `""`},
		{"abc", `"abc"`},
		{`"`, `"\""`},
		{`\`, `"\\"`},
		{"\n\r\t", `"\n\r\t"`},
		{"\x00", `"\u0000"`},
		{"\x01\x08\x0c\x1f", `"\u0001\u0008\u000c\u001f"`},
		{"\x7f", "\"\x7f\""},
		{"/", `"/"`},
		{"é😀", `"é😀"`},
		{"\u2028", `"\u2028"`},
		{"\u2029", `"\u2029"`},
		{"a\u2028b\u2029c", `"a\u2028b\u2029c"`},
		{"\xff", `"\ufffd"`},
		{"a\xc3", `"a\ufffd"`},
		{"\xe2\x80", `"\ufffd\ufffd"`},
		{"\xed\xa0\x80", `"\ufffd\ufffd\ufffd"`}, // surrogate half
		{"\xc0\xaf", `"\ufffd\ufffd"`},           // overlong
		{"\uFFFD", "\"\uFFFD\""},                 // a real U+FFFD is kept as is
		{"<>&", `"<>&"`},
	}
	for _, tt := range tests {
		if got := string(AppendString(nil, tt.in)); got != tt.want {
			t.Errorf("AppendString(%q) = %s, want %s", tt.in, got, tt.want)
		}
	}
	// It appends.
	if got := string(AppendString([]byte("x:"), "y")); got != `x:"y"` {
		t.Errorf("AppendString(dst) = %s", got)
	}
}

func TestAppendStringEveryRune(t *testing.T) {
	// Every control char, and a sample of every plane.
	for r := rune(0); r < 0x10FFFF; r++ {
		if r > 0x3000 && r%97 != 0 && r != 0xFFFD && r != 0xFEFF && r != 0x10FFFF-1 {
			continue
		}
		s := string(r)
		out := AppendString(nil, s)
		if got, want := jsonDecodeString(t, out), replaceInvalid(s); got != want {
			t.Fatalf("rune %U: decoded %q, want %q", r, got, want)
		}
		for _, c := range out {
			if c < 0x20 {
				t.Fatalf("rune %U: raw control byte in %q", r, out)
			}
		}
	}
}

// randomString mixes ASCII, escapes, control chars, multi-byte runes,
// U+2028/9 and invalid bytes.
func randomString(rng *rand.Rand) string {
	pieces := []string{"a", "Z", "0", " ", `"`, `\`, "/", "\n", "\r", "\t", "\x00", "\x01", "\x1f", "\x7f",
		"é", "€", "😀", "\u2028", "\u2029", "\uFFFD", "\uFEFF", "\xff", "\xc3", "\xe2\x82", "\xf0\x9f\x98", "\xed\xa0\x80", "<", ">", "&"}
	n := rng.IntN(40)
	var b strings.Builder
	for range n {
		if rng.IntN(4) == 0 {
			b.WriteByte(byte(rng.IntN(256)))
		} else {
			b.WriteString(pieces[rng.IntN(len(pieces))])
		}
	}
	return b.String()
}

func TestAppendStringMatchesEncodingJSON(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < 20000; i++ {
		s := randomString(rng)
		out := AppendString(nil, s)
		if !utf8.Valid(out) || !json.Valid(out) {
			t.Fatalf("AppendString(%q) = %q: not valid UTF-8 JSON", s, out)
		}
		if bytes.Contains(out, []byte("\u2028")) || bytes.Contains(out, []byte("\u2029")) {
			t.Fatalf("AppendString(%q) = %q: raw U+2028/9", s, out)
		}
		got := jsonDecodeString(t, out)
		ref, err := json.Marshal(s)
		if err != nil {
			t.Fatal(err)
		}
		want := jsonDecodeString(t, ref)
		if got != want {
			t.Fatalf("AppendString(%q) decodes to %q; encoding/json gives %q", s, got, want)
		}
		if got != replaceInvalid(s) {
			t.Fatalf("AppendString(%q) decodes to %q, want %q", s, got, replaceInvalid(s))
		}
		if utf8.ValidString(s) && got != s {
			t.Fatalf("valid %q decodes to %q", s, got)
		}
	}
}

func TestTruncateReason(t *testing.T) {
	if got := TruncateReason(""); got != "" {
		t.Errorf("TruncateReason(\"\") = %q", got)
	}
	short := "Application does not exist"
	if got := TruncateReason(short); got != short {
		t.Errorf("short reason changed: %q", got)
	}
	exact := strings.Repeat("a", 123)
	if got := TruncateReason(exact); got != exact {
		t.Errorf("123-byte reason changed to %d bytes", len(got))
	}
	if got := TruncateReason(exact + "b"); got != exact {
		t.Errorf("124-byte reason = %q", got)
	}
	// Multi-byte runes straddling the limit at every offset.
	for _, r := range []string{"é", "€", "😀"} {
		for pad := 0; pad < 8; pad++ {
			s := strings.Repeat("a", pad) + strings.Repeat(r, 200)
			got := TruncateReason(s)
			if len(got) > 123 || len(got) < 123-(len(r)-1) {
				t.Errorf("rune %q pad %d: length %d", r, pad, len(got))
			}
			if !utf8.ValidString(got) || !strings.HasPrefix(s, got) {
				t.Errorf("rune %q pad %d: %q is not a valid prefix", r, pad, got)
			}
		}
	}
	// Invalid UTF-8 never reaches a close frame.
	for _, s := range []string{"App key \xff not found", strings.Repeat("\x80", 300), strings.Repeat("a", 122) + "\xe2\x82\xac\xff", "\xc3"} {
		got := TruncateReason(s)
		if len(got) > 123 || !utf8.ValidString(got) {
			t.Errorf("TruncateReason(%q) = %q: %d bytes, valid %v", s, got, len(got), utf8.ValidString(got))
		}
	}
	rng := rand.New(rand.NewPCG(3, 4))
	for range 5000 {
		s := randomString(rng) + randomString(rng) + randomString(rng) + randomString(rng) + randomString(rng)
		got := TruncateReason(s)
		if len(got) > 123 || !utf8.ValidString(got) {
			t.Fatalf("TruncateReason(%q) = %q", s, got)
		}
		if utf8.ValidString(s) && !strings.HasPrefix(s, got) {
			t.Fatalf("TruncateReason(%q) = %q is not a prefix", s, got)
		}
		if utf8.ValidString(s) && len(s) > 123 && len(got) < 120 {
			t.Fatalf("TruncateReason(%q) cut too much: %d bytes", s, len(got))
		}
	}
}

func TestCodes(t *testing.T) {
	// §1.3: the ranges drive pusher-js's reconnection logic.
	refused := []int{CodeSSLOnly, CodeAppNotFound, CodeAppDisabled, CodeOverQuota, CodePathNotFound, CodeInvalidVersion, CodeUnsupportedProtocol, CodeNoProtocol, CodeUnauthorized}
	for _, c := range refused {
		if c < 4000 || c > 4099 {
			t.Errorf("code %d outside 4000-4099", c)
		}
	}
	if CodeOverCapacity/100 != 41 || CodeReconnect/100 != 42 || CodePongNotReceived/100 != 42 || CodeClosedAfterInactivity/100 != 42 || CodeClientEventRejected/100 != 43 {
		t.Error("reconnect-range codes misplaced")
	}
	want := map[int]int{CodeSSLOnly: 4000, CodeAppNotFound: 4001, CodeAppDisabled: 4003, CodeOverQuota: 4004, CodePathNotFound: 4005,
		CodeInvalidVersion: 4006, CodeUnsupportedProtocol: 4007, CodeNoProtocol: 4008, CodeUnauthorized: 4009, CodeOverCapacity: 4100,
		CodeReconnect: 4200, CodePongNotReceived: 4201, CodeClosedAfterInactivity: 4202, CodeClientEventRejected: 4301}
	for got, w := range want {
		if got != w {
			t.Errorf("code %d, want %d", got, w)
		}
	}
	if MinProtocolVersion != 4 || MaxProtocolVersion != 7 {
		t.Errorf("protocol versions %d..%d, want 4..7", MinProtocolVersion, MaxProtocolVersion)
	}
}
