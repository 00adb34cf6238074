package server

import (
	"net/http"
	"testing"

	"github.com/herald-ws/herald/sdk/internal/wire"
)

// FuzzWebhook: any body, correctly signed or not, is decoded or refused
// with an error, never a panic.
func FuzzWebhook(f *testing.F) {
	f.Add([]byte(`{"time_ms":1,"events":[{"name":"member_added","channel":"presence-x","user_id":"1"}]}`), true)
	f.Add([]byte(`{"events":[{"user_id":1}]}`), true)
	f.Add([]byte(`nope`), false)
	c := &Client{Key: "k", Secret: "s"}
	f.Fuzz(func(t *testing.T, body []byte, sign bool) {
		h := http.Header{"X-Pusher-Key": {"k"}}
		if sign {
			h.Set("X-Pusher-Signature", wire.HMAC("s", string(body)))
		}
		wh, err := c.Webhook(h, body)
		if !sign && err == nil {
			t.Fatal("unsigned webhook accepted")
		}
		if err == nil && wh == nil {
			t.Fatal("nil webhook without an error")
		}
	})
}

// FuzzAuthorize: auth request bodies from the outside never panic and a
// success always carries a signature for the channel asked for.
func FuzzAuthorize(f *testing.F) {
	f.Add([]byte("socket_id=1.1&channel_name=private-a"))
	f.Add([]byte("socket_id=1.1&channel_name=presence-a"))
	f.Add([]byte("socket_id=1.1&channel_name=private-encrypted-a"))
	f.Add([]byte("socket_id=%zz"))
	c := &Client{Key: "k", Secret: "s", EncryptionMasterKey: make([]byte, 32)}
	f.Fuzz(func(t *testing.T, body []byte) {
		if out, err := c.AuthorizePrivateChannel(body); err == nil && len(out) == 0 {
			t.Fatal("empty answer")
		}
		_, _ = c.AuthorizePresenceChannel(body, MemberData{UserID: "1"})
		_, _ = c.AuthenticateUser(body, map[string]any{"id": "1"})
	})
}
