package protocol

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
)

func TestDecodeMessageValid(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		event   string
		channel string
		data    string // raw JSON; "" means nil
	}{
		{"client event", `{"event":"client-typing","channel":"presence-room.1","data":{"name":"Ada"}}`,
			"client-typing", "presence-room.1", `{"name":"Ada"}`},
		{"subscribe", `{"event":"pusher:subscribe","data":{"auth":"","channel":"my-channel"}}`,
			"pusher:subscribe", "", `{"auth":"","channel":"my-channel"}`},
		{"ping with empty object", `{"event":"pusher:ping","data":{}}`, "pusher:ping", "", `{}`},
		{"data absent", `{"event":"pusher:ping"}`, "pusher:ping", "", ""},
		{"data null", `{"event":"pusher:ping","data":null}`, "pusher:ping", "", ""},
		{"data string", `{"event":"client-x","channel":"private-a","data":"{\"a\":1}"}`,
			"client-x", "private-a", `"{\"a\":1}"`},
		{"data array", `{"event":"client-x","data":[1,2]}`, "client-x", "", `[1,2]`},
		{"data number", `{"event":"client-x","data":-1.5e3}`, "client-x", "", `-1.5e3`},
		{"data false", `{"event":"client-x","data":false}`, "client-x", "", `false`},
		{"data empty string", `{"event":"client-x","data":""}`, "client-x", "", `""`},
		{"channel null", `{"event":"client-x","channel":null,"data":1}`, "client-x", "", `1`},
		{"channel empty", `{"event":"client-x","channel":""}`, "client-x", "", ""},
		{"field order", `{"data":{"b":2},"channel":"c","event":"e"}`, "e", "c", `{"b":2}`},
		{"unknown fields ignored", `{"event":"e","user_id":"x","extra":{"a":[1]}}`, "e", "", ""},
		{"whitespace everywhere", " \r\n\t{ \"event\" : \"e\" ,\n \"channel\" : \"c\" , \"data\" : { \"a\" : [ 1 , 2 ] } }\n ",
			"e", "c", `{ "a" : [ 1 , 2 ] }`},
		{"escaped event", `{"event":"pusher:\u0070ing"}`, "pusher:ping", "", ""},
		{"unicode channel kept", `{"event":"e","channel":"caf\u00e9"}`, "e", "café", ""},
		{"data with escapes kept verbatim", `{"event":"e","data":"\u2028\ud83d\ude00\/"}`, "e", "", `"\u2028\ud83d\ude00\/"`},
		{"data with raw UTF-8", `{"event":"e","data":{"n":"Zoë 😀"}}`, "e", "", `{"n":"Zoë 😀"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := DecodeMessage([]byte(tt.in))
			if err != nil {
				t.Fatalf("DecodeMessage(%s) = %v", tt.in, err)
			}
			if m.Event != tt.event || m.Channel != tt.channel {
				t.Errorf("event, channel = %q, %q; want %q, %q", m.Event, m.Channel, tt.event, tt.channel)
			}
			if tt.data == "" {
				if m.Data != nil {
					t.Errorf("Data = %s, want nil", m.Data)
				}
			} else if string(m.Data) != tt.data {
				t.Errorf("Data = %s, want %s", m.Data, tt.data)
			}
		})
	}
}

func TestDecodeMessageDataIsACopy(t *testing.T) {
	in := []byte(`{"event":"client-x","data":{"a":1}}`)
	m, err := DecodeMessage(in)
	if err != nil {
		t.Fatal(err)
	}
	for i := range in {
		in[i] = 'x'
	}
	if string(m.Data) != `{"a":1}` {
		t.Errorf("Data aliases the input buffer: %s", m.Data)
	}
}

func TestDecodeMessageInvalid(t *testing.T) {
	tests := []struct {
		name string
		in   string
		msg  string // substring of the error
	}{
		{"empty", "", "not valid JSON"},
		{"whitespace", " \n\t", "not valid JSON"},
		{"not JSON", "hello", "not valid JSON"},
		{"truncated", `{"event":"x"`, "not valid JSON"},
		{"trailing garbage", `{"event":"x"} x`, "not valid JSON"},
		{"two objects", `{"event":"x"}{"event":"y"}`, "not valid JSON"},
		{"array", `[{"event":"x"}]`, "not valid JSON"},
		{"string", `"{\"event\":\"x\"}"`, "not valid JSON"},
		{"number", `42`, "not valid JSON"},
		{"null", `null`, "not valid JSON"},
		{"true", `true`, "not valid JSON"},
		{"single quotes", `{'event':'x'}`, "not valid JSON"},
		{"trailing comma", `{"event":"x",}`, "not valid JSON"},
		{"invalid UTF-8 in data", "{\"event\":\"client-x\",\"data\":\"\xff\"}", "not valid JSON"},
		{"invalid UTF-8 in event", "{\"event\":\"client-\xc3\"}", "not valid JSON"},
		{"overlong encoding", "{\"event\":\"e\",\"data\":\"\xc0\xaf\"}", "not valid JSON"},
		{"UTF-16 surrogate bytes", "{\"event\":\"e\",\"data\":\"\xed\xa0\x80\"}", "not valid JSON"},
		{"control char in string", "{\"event\":\"a\nb\"}", "not valid JSON"},
		{"missing event", `{"channel":"c","data":{}}`, "event"},
		{"empty object", `{}`, "event"},
		{"event null", `{"event":null}`, "event"},
		{"event number", `{"event":1}`, "event"},
		{"event bool", `{"event":true}`, "event"},
		{"event object", `{"event":{"name":"x"}}`, "event"},
		{"event array", `{"event":["x"]}`, "event"},
		{"event empty", `{"event":""}`, "event"},
		{"channel number", `{"event":"e","channel":1}`, "channel"},
		{"channel bool", `{"event":"e","channel":false}`, "channel"},
		{"channel object", `{"event":"e","channel":{"name":"c"}}`, "channel"},
		{"channel array", `{"event":"e","channel":["c"]}`, "channel"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := DecodeMessage([]byte(tt.in))
			if err == nil {
				t.Fatalf("DecodeMessage(%q) = %+v, want error", tt.in, m)
			}
			if !errors.Is(err, ErrMessage) {
				t.Errorf("error %v does not wrap ErrMessage", err)
			}
			if !strings.Contains(err.Error(), tt.msg) {
				t.Errorf("error %q does not mention %q", err, tt.msg)
			}
			if !reflect.DeepEqual(m, Message{}) {
				t.Errorf("on error got a non-zero Message %+v", m)
			}
		})
	}
}

func TestDecodeSubscribe(t *testing.T) {
	tests := []struct {
		name string
		data string
		want Subscribe
	}{
		{"public", `{"auth":"","channel":"my-channel"}`, Subscribe{Channel: "my-channel"}},
		{"auth absent", `{"channel":"my-channel"}`, Subscribe{Channel: "my-channel"}},
		{"auth null", `{"channel":"my-channel","auth":null}`, Subscribe{Channel: "my-channel"}},
		{"private", `{"auth":"k:s","channel":"private-foobar"}`, Subscribe{Channel: "private-foobar", Auth: "k:s"}},
		{"as JSON string", `"{\"channel\":\"private-foobar\",\"auth\":\"k:s\"}"`, Subscribe{Channel: "private-foobar", Auth: "k:s"}},
		{"as JSON string with whitespace", `" \n{\"channel\":\"x\"} "`, Subscribe{Channel: "x"}},
		{"presence channel_data string", `{"auth":"k:s","channel_data":"{\"user_id\":10}","channel":"presence-foobar"}`,
			Subscribe{Channel: "presence-foobar", Auth: "k:s", ChannelData: `{"user_id":10}`}},
		{"channel_data kept byte for byte", `{"channel":"presence-a","channel_data":"{ \"user_id\" : \"1\" ,\"user_info\":{\"n\":\"\u00e9\"} }"}`,
			Subscribe{Channel: "presence-a", ChannelData: `{ "user_id" : "1" ,"user_info":{"n":"é"} }`}},
		{"channel_data object", `{"auth":"k:s","channel_data":{"user_id":10},"channel":"presence-foobar"}`,
			Subscribe{Channel: "presence-foobar", Auth: "k:s", ChannelDataNotString: true}},
		{"channel_data number", `{"channel":"presence-a","channel_data":10}`, Subscribe{Channel: "presence-a", ChannelDataNotString: true}},
		{"channel_data array", `{"channel":"presence-a","channel_data":[]}`, Subscribe{Channel: "presence-a", ChannelDataNotString: true}},
		{"channel_data bool", `{"channel":"presence-a","channel_data":true}`, Subscribe{Channel: "presence-a", ChannelDataNotString: true}},
		{"channel_data null", `{"channel":"presence-a","channel_data":null}`, Subscribe{Channel: "presence-a"}},
		{"channel_data empty string", `{"channel":"presence-a","channel_data":""}`, Subscribe{Channel: "presence-a"}},
		{"empty channel", `{"channel":""}`, Subscribe{}},
		{"extra fields", `{"channel":"c","auth":"","shared_secret":"x","other":[1]}`, Subscribe{Channel: "c"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := DecodeSubscribe(json.RawMessage(tt.data))
			if err != nil {
				t.Fatalf("DecodeSubscribe(%s) = %v", tt.data, err)
			}
			if got != tt.want {
				t.Errorf("DecodeSubscribe(%s) = %+v, want %+v", tt.data, got, tt.want)
			}
		})
	}
}

func TestDecodeSubscribeInvalid(t *testing.T) {
	tests := []struct {
		name string
		data string // "" means nil
		msg  string
	}{
		{"data absent", "", "required"},
		{"data array", `[{"channel":"c"}]`, "object"},
		{"data number", `1`, "object"},
		{"data bool", `true`, "object"},
		{"data string not JSON", `"channel=c"`, "object"},
		{"data string empty", `""`, "object"},
		{"data string of array", `"[1]"`, "object"},
		{"data string of string", `"\"{}\""`, "object"},
		{"data string truncated", `"{\"channel\":\"c\""`, "data"},
		{"channel missing", `{"auth":""}`, "channel"},
		{"channel null", `{"channel":null}`, "channel"},
		{"channel number", `{"channel":1}`, "wrong type"},
		{"channel object", `{"channel":{}}`, "wrong type"},
		{"auth number", `{"channel":"private-a","auth":1}`, "auth"},
		{"auth object", `{"channel":"private-a","auth":{"k":"s"}}`, "auth"},
		{"auth bool", `{"channel":"private-a","auth":false}`, "auth"},
		{"auth array", `{"channel":"private-a","auth":["k:s"]}`, "auth"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var data json.RawMessage
			if tt.data != "" {
				data = json.RawMessage(tt.data)
			}
			got, err := DecodeSubscribe(data)
			if err == nil {
				t.Fatalf("DecodeSubscribe(%s) = %+v, want error", tt.data, got)
			}
			if !errors.Is(err, ErrMessage) {
				t.Errorf("error %v does not wrap ErrMessage", err)
			}
			if !strings.Contains(err.Error(), tt.msg) {
				t.Errorf("error %q does not mention %q", err, tt.msg)
			}
		})
	}
}

// TestSubscribeVectors runs the §4.3 frames through decoding and signature
// verification, as the hub does.
func TestSubscribeVectors(t *testing.T) {
	frames := []struct {
		frame string
		kind  Kind
	}{
		{`{"event":"pusher:subscribe","data":{"auth":"","channel":"my-channel"}}`, Public},
		{`{"event":"pusher:subscribe","data":{"auth":"278d425bdf160c739803:58df8b0c36d6982b82c3ecf6b4662e34fe8c25bba48f5369f135bf843651c3a4","channel":"private-foobar"}}`, Private},
		{`{"event":"pusher:subscribe","data":{"auth":"278d425bdf160c739803:31935e7d86dba64c2a90aed31fdc61869f9b22ba9d8863bba239c03ca481bc80","channel_data":"{\"user_id\":10,\"user_info\":{\"name\":\"Mr. Channels\"}}","channel":"presence-foobar"}}`, Presence},
	}
	for _, f := range frames {
		m, err := DecodeMessage([]byte(f.frame))
		if err != nil || m.Event != EventSubscribe {
			t.Fatalf("DecodeMessage(%s) = %+v, %v", f.frame, m, err)
		}
		s, err := DecodeSubscribe(m.Data)
		if err != nil {
			t.Fatalf("DecodeSubscribe: %v", err)
		}
		if err := ValidateChannelName(s.Channel, 200); err != nil {
			t.Errorf("channel %q: %v", s.Channel, err)
		}
		k := Classify(s.Channel)
		if k != f.kind {
			t.Errorf("Classify(%q) = %v, want %v", s.Channel, k, f.kind)
		}
		if !k.NeedsAuth() {
			continue
		}
		msg := ChannelAuthString(vecSocket, s.Channel, s.ChannelData)
		if err := VerifyToken(vecKey, vecSecret, s.Auth, msg); err != nil {
			t.Errorf("%s: VerifyToken: %v", s.Channel, err)
		}
		if err := VerifyToken(vecKey, vecSecret, s.Auth, ChannelAuthString("1234.1235", s.Channel, s.ChannelData)); err == nil {
			t.Errorf("%s: verifies for another socket", s.Channel)
		}
		if k.IsPresence() {
			mem, err := ParseChannelData(s.ChannelData)
			if err != nil {
				t.Fatalf("ParseChannelData: %v", err)
			}
			if mem.ID != "10" || string(mem.RawID) != "10" || string(mem.Info) != `{"name":"Mr. Channels"}` {
				t.Errorf("member = %+v", mem)
			}
		}
	}
}

func TestDecodeSignin(t *testing.T) {
	frame := `{"event":"pusher:signin","data":{"auth":"278d425bdf160c739803:6ca80c154c719885dfec98578ec04007b6b4b221f61821ba13548203ddaeda48","user_data":"{\"id\":\"12345\",\"user_info\":{\"name\":\"Ada\"},\"watchlist\":[\"67\",\"89\"]}"}}`
	m, err := DecodeMessage([]byte(frame))
	if err != nil || m.Event != EventSignin {
		t.Fatalf("DecodeMessage = %+v, %v", m, err)
	}
	s, err := DecodeSignin(m.Data)
	if err != nil {
		t.Fatalf("DecodeSignin: %v", err)
	}
	if s.Auth != vecKey+":"+vecUserSig || s.UserData != vecUserData {
		t.Errorf("DecodeSignin = %+v", s)
	}
	if err := VerifyToken(vecKey, vecSecret, s.Auth, UserAuthString(vecSocket, s.UserData)); err != nil {
		t.Errorf("VerifyToken(sign-in vector): %v", err)
	}

	// data double-encoded as a string.
	enc, _ := json.Marshal(`{"auth":"k:s","user_data":"{\"id\":\"1\"}"}`)
	s, err = DecodeSignin(enc)
	if err != nil || s != (Signin{Auth: "k:s", UserData: `{"id":"1"}`}) {
		t.Errorf("DecodeSignin(string data) = %+v, %v", s, err)
	}
	// Empty strings are strings; the signature check rejects them later.
	s, err = DecodeSignin(json.RawMessage(`{"auth":"","user_data":""}`))
	if err != nil || s != (Signin{}) {
		t.Errorf("DecodeSignin(empty strings) = %+v, %v", s, err)
	}

	bad := []string{
		``,
		`{}`,
		`{"auth":"k:s"}`,
		`{"user_data":"{}"}`,
		`{"auth":null,"user_data":"{}"}`,
		`{"auth":"k:s","user_data":null}`,
		`{"auth":"k:s","user_data":{"id":"1"}}`,
		`{"auth":1,"user_data":"{}"}`,
		`[]`,
		`"x"`,
	}
	for _, d := range bad {
		var data json.RawMessage
		if d != "" {
			data = json.RawMessage(d)
		}
		if s, err := DecodeSignin(data); err == nil || !errors.Is(err, ErrMessage) {
			t.Errorf("DecodeSignin(%s) = %+v, %v; want ErrMessage", d, s, err)
		}
	}
}

func TestDecodeChannelOnly(t *testing.T) {
	good := map[string]string{
		`{"channel":"presence-foobar"}`:               "presence-foobar",
		`"{\"channel\":\"presence-foobar\"}"`:         "presence-foobar",
		`{"channel":"x","auth":"ignored","extra":[]}`: "x",
		`{"channel":""}`:                              "",
	}
	for d, want := range good {
		got, err := DecodeChannelOnly(json.RawMessage(d))
		if err != nil || got != want {
			t.Errorf("DecodeChannelOnly(%s) = %q, %v; want %q", d, got, err, want)
		}
	}
	for _, d := range []string{``, `{}`, `{"channel":null}`, `{"channel":1}`, `[]`, `"x"`, `1`} {
		var data json.RawMessage
		if d != "" {
			data = json.RawMessage(d)
		}
		if got, err := DecodeChannelOnly(data); err == nil || !errors.Is(err, ErrMessage) {
			t.Errorf("DecodeChannelOnly(%s) = %q, %v; want ErrMessage", d, got, err)
		}
	}
}

func TestParseChannelData(t *testing.T) {
	tests := []struct {
		name  string
		in    string
		id    string
		rawID string
		info  string // "" means nil
	}{
		{"string id", `{"user_id":"10","user_info":{"name":"Ada"}}`, "10", `"10"`, `{"name":"Ada"}`},
		{"numeric id", `{"user_id":10,"user_info":{"name":"Mr. Channels"}}`, "10", `10`, `{"name":"Mr. Channels"}`},
		{"zero id", `{"user_id":0}`, "0", `0`, ""},
		{"negative id", `{"user_id":-7}`, "-7", `-7`, ""},
		{"large id kept exactly", `{"user_id":12345678901234567890123}`, "12345678901234567890123", `12345678901234567890123`, ""},
		{"uuid id", `{"user_id":"550e8400-e29b-41d4-a716-446655440000"}`, "550e8400-e29b-41d4-a716-446655440000", `"550e8400-e29b-41d4-a716-446655440000"`, ""},
		{"escaped id", `{"user_id":"\u0031\u0032"}`, "12", `"\u0031\u0032"`, ""},
		{"user_info absent", `{"user_id":"1"}`, "1", `"1"`, ""},
		{"user_info null", `{"user_id":"1","user_info":null}`, "1", `"1"`, ""},
		{"user_info object", `{"user_id":"1","user_info":{"a":[1,{"b":null}]}}`, "1", `"1"`, `{"a":[1,{"b":null}]}`},
		{"user_info string", `{"user_id":"1","user_info":"Ada"}`, "1", `"1"`, `"Ada"`},
		{"user_info number", `{"user_id":"1","user_info":5}`, "1", `"1"`, `5`},
		{"user_info empty object", `{"user_id":"1","user_info":{}}`, "1", `"1"`, `{}`},
		{"whitespace", " \n{ \"user_id\" : \"1\" } \n", "1", `"1"`, ""},
		{"extra keys", `{"user_id":"1","other":true}`, "1", `"1"`, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := ParseChannelData(tt.in)
			if err != nil {
				t.Fatalf("ParseChannelData(%s) = %v", tt.in, err)
			}
			if m.ID != tt.id || string(m.RawID) != tt.rawID {
				t.Errorf("ID, RawID = %q, %s; want %q, %s", m.ID, m.RawID, tt.id, tt.rawID)
			}
			if tt.info == "" && m.Info != nil {
				t.Errorf("Info = %s, want nil", m.Info)
			}
			if tt.info != "" && string(m.Info) != tt.info {
				t.Errorf("Info = %s, want %s", m.Info, tt.info)
			}
		})
	}
}

func TestParseChannelDataInvalid(t *testing.T) {
	for _, in := range []string{
		``,
		` `,
		`{`,
		`null`,
		`[]`,
		`"x"`,
		`10`,
		`{}`,
		`{"user_info":{"name":"Ada"}}`,
		`{"user_id":""}`,
		`{"user_id":null}`,
		`{"user_id":true}`,
		`{"user_id":false}`,
		`{"user_id":{}}`,
		`{"user_id":{"id":1}}`,
		`{"user_id":[1]}`,
		`{"user_id":"1"} x`,
		`{"user_id":"1",}`,
	} {
		m, err := ParseChannelData(in)
		if err == nil {
			t.Errorf("ParseChannelData(%q) = %+v, want error", in, m)
			continue
		}
		if !errors.Is(err, ErrMessage) {
			t.Errorf("ParseChannelData(%q): %v does not wrap ErrMessage", in, err)
		}
	}
}

func TestParseUserData(t *testing.T) {
	u, err := ParseUserData(vecUserData)
	if err != nil {
		t.Fatalf("ParseUserData(vector) = %v", err)
	}
	if u.ID != "12345" || string(u.Info) != `{"name":"Ada"}` || !reflect.DeepEqual(u.Watchlist, []string{"67", "89"}) {
		t.Errorf("ParseUserData(vector) = %+v", u)
	}

	good := []struct {
		in        string
		id        string
		info      string
		watchlist []string
	}{
		{`{"id":"1"}`, "1", "", nil},
		{`{"id":"1","user_info":null}`, "1", "", nil},
		{`{"id":"1","watchlist":null}`, "1", "", nil},
		{`{"id":"1","watchlist":[]}`, "1", "", []string{}},
		{`{"id":"a@b.c","user_info":"x","email":"ignored"}`, "a@b.c", `"x"`, nil},
		{` {"id":"\u00e9"} `, "é", "", nil},
	}
	for _, tt := range good {
		u, err := ParseUserData(tt.in)
		if err != nil {
			t.Errorf("ParseUserData(%s) = %v", tt.in, err)
			continue
		}
		if u.ID != tt.id || string(u.Info) != tt.info || (tt.info == "" && u.Info != nil) || !reflect.DeepEqual(u.Watchlist, tt.watchlist) {
			t.Errorf("ParseUserData(%s) = %+v", tt.in, u)
		}
	}

	for _, in := range []string{
		``,
		`null`,
		`[]`,
		`"12345"`,
		`{}`,
		`{"id":12345}`,
		`{"id":0}`,
		`{"id":""}`,
		`{"id":null}`,
		`{"id":true}`,
		`{"id":{"v":"1"}}`,
		`{"id":["1"]}`,
		`{"user_id":"1"}`,
		`{"id":"1","watchlist":"67"}`,
		`{"id":"1","watchlist":[67]}`,
		`{"id":"1","watchlist":{"a":"67"}}`,
		`{"id":"1"`,
	} {
		if u, err := ParseUserData(in); err == nil || !errors.Is(err, ErrMessage) {
			t.Errorf("ParseUserData(%q) = %+v, %v; want ErrMessage", in, u, err)
		}
	}
}

func TestDecodeSubscribeRecover(t *testing.T) {
	for _, tc := range []struct {
		data string
		want *Recover
	}{
		{`{"channel":"c"}`, nil},
		{`{"channel":"c","recover":null}`, nil},
		{`{"channel":"c","recover":{"epoch":"e1","offset":42}}`, &Recover{Epoch: "e1", Offset: 42, Valid: true}},
		{`"{\"channel\":\"c\",\"recover\":{\"epoch\":\"e1\",\"offset\":0}}"`, &Recover{Epoch: "e1", Valid: true}},
		{`{"channel":"c","recover":{"epoch":"e1","offset":18446744073709551615}}`, &Recover{Epoch: "e1", Offset: 1<<64 - 1, Valid: true}},
		{`{"channel":"c","recover":{"epoch":"e1","offset":18446744073709551616}}`, &Recover{}},
		{`{"channel":"c","recover":{"epoch":"e1","offset":-1}}`, &Recover{}},
		{`{"channel":"c","recover":{"epoch":"e1","offset":1.5}}`, &Recover{}},
		{`{"channel":"c","recover":{"epoch":"e1","offset":1e2}}`, &Recover{}},
		{`{"channel":"c","recover":{"epoch":"e1","offset":"7"}}`, &Recover{}},
		{`{"channel":"c","recover":{"offset":7}}`, &Recover{}},
		{`{"channel":"c","recover":{"epoch":"","offset":7}}`, &Recover{}},
		{`{"channel":"c","recover":{"epoch":7,"offset":7}}`, &Recover{}},
		{`{"channel":"c","recover":[1]}`, &Recover{}},
		{`{"channel":"c","recover":"x"}`, &Recover{}},
	} {
		s, err := DecodeSubscribe(json.RawMessage(tc.data))
		if err != nil {
			t.Fatalf("%s: %v", tc.data, err)
		}
		if (s.Recover == nil) != (tc.want == nil) || (s.Recover != nil && *s.Recover != *tc.want) {
			t.Errorf("%s: Recover = %+v, want %+v", tc.data, s.Recover, tc.want)
		}
	}
}

func TestWithPositionAndRecovery(t *testing.T) {
	got := string(WithPosition(Event("ev", "orders-1", "x"), "ab", 7))
	want := `{"event":"ev","channel":"orders-1","data":"x","position":{"epoch":"ab","offset":7}}`
	if got != want {
		t.Fatalf("WithPosition = %s", got)
	}
	got = string(Recovery("orders-1", true, "", 17, "e", 59))
	want = `{"event":"herald:recovery","channel":"orders-1","data":"{\"recovered\":true,\"replayed\":17,\"position\":{\"epoch\":\"e\",\"offset\":59}}"}`
	if got != want {
		t.Fatalf("Recovery = %s", got)
	}
	got = string(Recovery("orders-1", false, RecoveryTooOld, 0, "e", 59))
	want = `{"event":"herald:recovery","channel":"orders-1","data":"{\"recovered\":false,\"reason\":\"too_old\",\"position\":{\"epoch\":\"e\",\"offset\":59}}"}`
	if got != want {
		t.Fatalf("Recovery failure = %s", got)
	}
}
