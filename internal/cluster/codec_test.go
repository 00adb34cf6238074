package cluster

import (
	"bytes"
	"testing"

	"github.com/herald-ws/herald/internal/hub"
)

func TestCodecRoundTrip(t *testing.T) {
	for _, m := range []hub.BrokerMessage{
		{AppID: "1", Channel: "presence-room", Payload: []byte(`{"event":"e","data":"{}"}`), ExceptSocketID: "12.34"},
		{AppID: "1", ToUser: "ü\n:x", Payload: []byte("p")},
		{AppID: "1", TerminateUser: "u"},
	} {
		b := EncodeMessage(nil, "node-1", m)
		origin, got, err := DecodeMessage(b)
		if err != nil || origin != "node-1" || got.AppID != m.AppID || got.Channel != m.Channel || got.ExceptSocketID != m.ExceptSocketID ||
			got.ToUser != m.ToUser || got.TerminateUser != m.TerminateUser || !bytes.Equal(got.Payload, m.Payload) {
			t.Fatalf("%+v → %q → %+v %v", m, b, got, err)
		}
	}
	for _, bad := range [][]byte{nil, {}, {2}, {1}, {1, 0, 0, 0, 0, 0, 0}, {1, 0xff}, {1, 5, 'a'}} {
		if _, _, err := DecodeMessage(bad); err == nil {
			t.Fatalf("%q decoded", bad)
		}
	}
	if ev, ok := decodeCache(encodeCache(hub.CachedEvent{Event: "e", Data: "d"})); !ok || ev.Event != "e" || ev.Data != "d" {
		t.Fatalf("cache %+v", ev)
	}
	for _, bad := range []string{"", "\x05ab", "\xff"} {
		if _, ok := decodeCache(bad); ok {
			t.Fatalf("cache %q decoded", bad)
		}
	}
}

func FuzzDecodeBrokerMessage(f *testing.F) {
	f.Add(EncodeMessage(nil, "n", hub.BrokerMessage{AppID: "1", Channel: "c", Payload: []byte("{}"), ExceptSocketID: "1.2"}))
	f.Add(EncodeMessage(nil, "", hub.BrokerMessage{AppID: "1", TerminateUser: "u"}))
	f.Add([]byte{1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01})
	f.Fuzz(func(t *testing.T, b []byte) {
		origin, m, err := DecodeMessage(b)
		if err != nil {
			return
		}
		// What decodes encodes back to the same bytes.
		if again := EncodeMessage(nil, origin, m); !bytes.Equal(again, b) {
			t.Fatalf("%q re-encodes as %q", b, again)
		}
	})
}

func FuzzDecodeCache(f *testing.F) {
	f.Add(encodeCache(hub.CachedEvent{Event: "e", Data: "d"}))
	f.Fuzz(func(t *testing.T, s string) {
		decodeCache(s) // must not panic
	})
}
