package protocol

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"
)

// Frames of the fast paths' shapes, as clients send them, and near misses
// that must go the long way (or fail the same way).
var fastSeeds = []string{
	`{"event":"pusher:subscribe","data":{"auth":"","channel":"bench-3"}}`,
	`{"event":"pusher:unsubscribe","data":{"channel":"bench-3"}}`,
	`{"event":"pusher:subscribe","data":{"channel":"private-a","auth":"k:s","channel_data":null}}`,
	`{"event":"pusher:subscribe","data":{"channel":"presence-a","auth":"k:s","channel_data":"{\"user_id\":1}"}}`,
	`{"event":"pusher:subscribe","data":{"channel":"a","channel":"b"}}`,
	`{"event":"pusher:subscribe","data":{"Channel":"a"}}`,
	`{"event":"pusher:subscribe","data":{"\u0063hannel":"a"}}`,
	`{"event":"pusher:subscribe","data":{"channel":"a","auth":7}}`,
	`{"event":"pusher:subscribe","data":{"channel":"a","recover":{"epoch":"e","offset":3}}}`,
	`{"event":"pusher:subscribe","data":{"channel":"caf\u00e9\n"} }`,
	`{"event":"pusher:ping","data":{}}`,
	`{"event" : "pusher:pong" , "data" : null , "channel" : null}`,
	`{"event":"client-x","channel":"private-a","data":{"a":[1,-2.5e+3,true,false,null,"\"\\\/\b\f\n\r\t\u00fF"],"b":{}}}`,
	`{"event":"client-x","channel":"private-a","data":"{\"a\":1}"}`,
	`{"event":"client-x","data":[1,2,]}`,
	`{"event":"client-x","data":01}`,
	`{"event":"client-x","data":-}`,
	`{"event":"client-x","data":1.}`,
	`{"event":"client-x","data":1e}`,
	`{"event":"client-x","data":"\x"}`,
	`{"event":"client-x","data":"\u12g4"}`,
	"{\"event\":\"client-x\",\"data\":\"\t\"}",
	`{"event":"client-x","data":nul}`,
	`{"event":"client-x","data":{"a" 1}}`,
	`{"event":"client-x","data":{"a":1,}}`,
	`{"event":"client-x","data":{1:1}}`,
	`{"event":"client-x","data":1}x`,
	`{"event":"client-x","data":1,}`,
	`{"event":"","data":1}`,
	`{"event":"x","event":"y"}`,
	`{"EVENT":"x"}`,
	`{"event":"x","other":1}`,
	`{"event":"x","channel":1}`,
	`{"event":null}`,
	`{}`,
	`{ }`,
	`{"event":"` + strings.Repeat("[", 70) + `"}`,
	`{"event":"x","data":` + strings.Repeat("[", 70) + strings.Repeat("]", 70) + `}`,
	`{"event":"x","data":` + strings.Repeat("[", 10) + strings.Repeat("]", 10) + `}`,
	`{"channel":"a"}`,
	`{"channel":"a","auth":null,"channel_data":7}`,
	`"{\"channel\":\"a\"}"`,
	` {"channel":"a"} `,
	"{\"channel\":\"\xff\"}",
}

// FuzzFastPathsMatchEncodingJSON holds DecodeMessage, DecodeSubscribe and
// DecodeChannelOnly, whose fast paths serve the messages clients send
// most, to what encoding/json alone gives for the same input: the same
// result or the same error. The validator they rest on accepts only valid
// JSON, and all of it short of its depth bound.
func FuzzFastPathsMatchEncodingJSON(f *testing.F) {
	for _, s := range fastSeeds {
		f.Add([]byte(s))
	}
	for _, s := range seedFrames {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		checkFastMessage(t, b)
		checkFastData(t, b)
		// The same bytes as the data of a subscribe and an unsubscribe.
		for _, ev := range []string{EventSubscribe, EventUnsubscribe} {
			frame := append([]byte(`{"event":"`+ev+`","data":`), b...)
			frame = append(frame, '}')
			checkFastMessage(t, frame)
			if m, err := DecodeMessage(frame); err == nil {
				checkFastData(t, m.Data)
			}
		}
		end, ok := validValue(b, 0, 0)
		if ok && end == len(b) && !json.Valid(b) {
			t.Fatalf("validValue accepts %q, which is not valid JSON", b)
		}
		if json.Valid(b) && bytes.Count(b, []byte("["))+bytes.Count(b, []byte("{")) < maxFastDepth {
			tb := bytes.TrimSpace(b)
			if end, ok := validValue(tb, 0, 0); !ok || end != len(tb) {
				t.Fatalf("validValue refuses %q, valid JSON", tb)
			}
		}
	})
}

func checkFastMessage(t *testing.T, b []byte) {
	t.Helper()
	got, err := DecodeMessage(b)
	tb := bytes.TrimSpace(b)
	if len(tb) == 0 || tb[0] != '{' || !utf8.Valid(tb) {
		if err == nil {
			t.Fatalf("DecodeMessage(%q) accepted a frame the checks refuse", b)
		}
		return
	}
	want, werr := decodeMessageJSON(tb)
	if (err == nil) != (werr == nil) || (err != nil && err.Error() != werr.Error()) {
		t.Fatalf("DecodeMessage(%q): error %v, encoding/json: %v", b, err, werr)
	}
	if got.Event != want.Event || got.Channel != want.Channel || !bytes.Equal(got.Data, want.Data) || (got.Data == nil) != (want.Data == nil) {
		t.Fatalf("DecodeMessage(%q) = %+v, encoding/json: %+v", b, got, want)
	}
}

func checkFastData(t *testing.T, b []byte) {
	t.Helper()
	s, err := DecodeSubscribe(b)
	ws, werr := decodeSubscribeJSON(b)
	if (err == nil) != (werr == nil) || (err != nil && err.Error() != werr.Error()) || !sameSubscribe(s, ws) {
		t.Fatalf("DecodeSubscribe(%q) = %+v, %v; encoding/json: %+v, %v", b, s, err, ws, werr)
	}
	c, err := DecodeChannelOnly(b)
	wc, werr := decodeChannelOnlyJSON(b)
	if (err == nil) != (werr == nil) || (err != nil && err.Error() != werr.Error()) || c != wc {
		t.Fatalf("DecodeChannelOnly(%q) = %q, %v; encoding/json: %q, %v", b, c, err, wc, werr)
	}
}

// TestFastPathsServeClientFrames: what pusher-js, Echo and the load tool
// send for a subscription's life takes the fast paths (decodeSubscribeFast
// and the others accept it) and gives what encoding/json gives.
func TestFastPathsServeClientFrames(t *testing.T) {
	for _, s := range []string{
		`{"event":"pusher:subscribe","data":{"auth":"","channel":"bench-3"}}`,
		`{"event":"pusher:subscribe","data":{"channel":"my-channel"}}`,
		seedFrames[1], // private
		seedFrames[2], // presence, channel_data escaped
		`{"event":"pusher:unsubscribe","data":{"channel":"presence-foobar"}}`,
		`{"event":"pusher:ping","data":{}}`,
		`{"event":"client-typing","channel":"presence-room.1","data":{"name":"Ada"}}`,
	} {
		b := []byte(s)
		m, ok := decodeMessageFast(b)
		if !ok {
			t.Errorf("the fast path declines %s", s)
			continue
		}
		checkFastMessage(t, b)
		var dataOK bool
		switch m.Event {
		case EventSubscribe:
			_, dataOK = decodeSubscribeFast(m.Data)
		case EventUnsubscribe:
			_, dataOK = decodeChannelOnlyFast(m.Data)
		default:
			dataOK = true
		}
		if !dataOK {
			t.Errorf("the fast path declines the data of %s", s)
		}
		checkFastData(t, m.Data)
	}
}

// TestSubscriptionDecodeAllocs: decoding the subscribe and unsubscribe of a
// public channel allocates the channel name and the data's copy, no more
// (through encoding/json alone: 19 and 16).
func TestSubscriptionDecodeAllocs(t *testing.T) {
	sub := []byte(`{"event":"pusher:subscribe","data":{"auth":"","channel":"bench-3"}}`)
	unsub := []byte(`{"event":"pusher:unsubscribe","data":{"channel":"bench-3"}}`)
	for _, tc := range []struct {
		name  string
		frame []byte
		data  func(json.RawMessage) error
	}{
		{"subscribe", sub, func(d json.RawMessage) error { _, err := DecodeSubscribe(d); return err }},
		{"unsubscribe", unsub, func(d json.RawMessage) error { _, err := DecodeChannelOnly(d); return err }},
	} {
		var err error
		n := testing.AllocsPerRun(200, func() {
			var m Message
			if m, err = DecodeMessage(tc.frame); err == nil {
				err = tc.data(m.Data)
			}
		})
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if n > 2 {
			t.Errorf("%s: %.0f allocations to decode, want at most 2", tc.name, n)
		}
	}
}
