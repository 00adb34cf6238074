package protocol

import (
	"encoding/json"
	"strconv"
	"strings"
	"testing"
	"time"
)

var (
	sinkBytes []byte
	sinkMsg   Message
	sinkSub   Subscribe
	sinkErr   error
)

func BenchmarkDecodeMessage(b *testing.B) {
	b.Run("client-event", func(b *testing.B) {
		frame := []byte(`{"event":"client-typing","channel":"presence-room.1","data":{"name":"Ada","typing":true,"at":1764224400}}`)
		b.ReportAllocs()
		b.SetBytes(int64(len(frame)))
		for b.Loop() {
			sinkMsg, sinkErr = DecodeMessage(frame)
		}
		if sinkErr != nil {
			b.Fatal(sinkErr)
		}
	})
	b.Run("subscribe", func(b *testing.B) {
		frame := []byte(seedFrames[2]) // §4.3 presence subscribe
		b.ReportAllocs()
		b.SetBytes(int64(len(frame)))
		for b.Loop() {
			sinkMsg, sinkErr = DecodeMessage(frame)
			if sinkErr == nil {
				sinkSub, sinkErr = DecodeSubscribe(sinkMsg.Data)
			}
		}
		if sinkErr != nil || sinkSub.ChannelData == "" {
			b.Fatal(sinkErr)
		}
	})
	// A connection's churn: the load tool's (and pusher-js's) subscribe
	// and unsubscribe of a public channel.
	b.Run("churn", func(b *testing.B) {
		sub := []byte(`{"event":"pusher:subscribe","data":{"auth":"","channel":"bench-3"}}`)
		unsub := []byte(`{"event":"pusher:unsubscribe","data":{"channel":"bench-3"}}`)
		b.ReportAllocs()
		b.SetBytes(int64(len(sub) + len(unsub)))
		for b.Loop() {
			sinkMsg, sinkErr = DecodeMessage(sub)
			if sinkErr == nil {
				sinkSub, sinkErr = DecodeSubscribe(sinkMsg.Data)
			}
			if sinkErr == nil {
				sinkMsg, sinkErr = DecodeMessage(unsub)
			}
			if sinkErr == nil {
				sinkSub.Channel, sinkErr = DecodeChannelOnly(sinkMsg.Data)
			}
		}
		if sinkErr != nil || sinkSub.Channel != "bench-3" {
			b.Fatal(sinkErr)
		}
	})
}

// data100 is 100 bytes of typical app-event JSON.
var data100 = func() string {
	s := `{"id":42,"status":"shipped","items":[{"sku":"A-1","qty":2}],"note":"leave at the door"`
	return s + strings.Repeat(" ", 99-len(s)) + "}"
}()

func BenchmarkEvent(b *testing.B) {
	if len(data100) != 100 {
		b.Fatalf("data is %d bytes", len(data100))
	}
	b.ReportAllocs()
	b.SetBytes(int64(len(data100)))
	for b.Loop() {
		sinkBytes = Event(`App\Events\OrderShipped`, "private-App.Models.User.1", data100)
	}
}

func BenchmarkEventRaw(b *testing.B) {
	data := json.RawMessage(data100)
	b.ReportAllocs()
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		sinkBytes = EventRaw("client-typing", "presence-room.1", data, "11")
	}
}

func BenchmarkVerifyToken(b *testing.B) {
	token := vecKey + ":" + vecPrivateSig
	msg := ChannelAuthString(vecSocket, "private-foobar", "")
	b.ReportAllocs()
	for b.Loop() {
		sinkErr = VerifyToken(vecKey, vecSecret, token, msg)
	}
	if sinkErr != nil {
		b.Fatal(sinkErr)
	}
}

func BenchmarkVerifyRequest(b *testing.B) {
	r := triggerRequest()
	b.ReportAllocs()
	for b.Loop() {
		sinkErr = VerifyRequest(r, vecKey, vecSecret, vecNow, 600*time.Second)
	}
	if sinkErr != nil {
		b.Fatal(sinkErr)
	}
}

func BenchmarkPresenceSucceeded(b *testing.B) {
	members := make([]Member, 100)
	for i := range members {
		id := strconv.Itoa(100000 + i)
		members[i] = Member{ID: id, RawID: json.RawMessage(`"` + id + `"`), Info: json.RawMessage(`{"name":"User ` + id + `"}`)}
	}
	b.ReportAllocs()
	for b.Loop() {
		sinkBytes = PresenceSucceeded("presence-room.1", members)
	}
	b.SetBytes(int64(len(sinkBytes)))
}
