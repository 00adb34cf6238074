package client

import (
	"context"
	"testing"

	"github.com/herald-ws/herald/sdk/internal/wire"
)

// FuzzHandleFrame feeds arbitrary server frames to a session with a public,
// a presence, an encrypted channel and a signed-in user: no input may
// panic.
func FuzzHandleFrame(f *testing.F) {
	for _, s := range []string{
		`{"event":"pusher_internal:subscription_succeeded","channel":"presence-r","data":"{\"presence\":{\"ids\":[\"1\"],\"hash\":{\"1\":{\"n\":1}},\"count\":1}}"}`,
		`{"event":"pusher_internal:member_added","channel":"presence-r","data":"{\"user_id\":2,\"user_info\":null}"}`,
		`{"event":"pusher_internal:member_removed","channel":"presence-r","data":"{\"user_id\":\"2\"}"}`,
		`{"event":"x","channel":"private-encrypted-e","data":"{\"nonce\":\"AAAA\",\"ciphertext\":\"AAAA\"}"}`,
		`{"event":"pusher:subscription_error","channel":"room","data":{"type":"AuthError","error":"no","status":401}}`,
		`{"event":"pusher:signin_success","data":"{\"user_data\":\"{\\\"id\\\":\\\"7\\\"}\"}"}`,
		`{"event":"pusher_internal:subscription_succeeded","channel":"#server-to-user-7","data":"{}"}`,
		`{"event":"hello","channel":"#server-to-user-7","data":"hi"}`,
		`{"event":"client-x","channel":"presence-r","data":{"a":1},"user_id":"3"}`,
		`{"event":"pusher:error","data":{"code":4301,"message":"slow"}}`,
		`{"event":"pusher:ping","data":{}}`,
		`{"event":"pusher:cache_miss","channel":"room"}`,
		`{"event":"tick","channel":"room","data":"1","position":{"epoch":"e","offset":7}}`,
		`{"event":"tick","channel":"room","data":"1","position":{"epoch":"e","offset":-1}}`,
		`{"event":"pusher_internal:subscription_succeeded","channel":"room","data":"{}","position":{"epoch":"e","offset":0}}`,
		`{"event":"herald:recovery","channel":"room","data":"{\"recovered\":true,\"replayed\":2,\"position\":{\"epoch\":\"e\",\"offset\":9}}"}`,
		`{"event":"herald:recovery","channel":"room","data":"{\"recovered\":false,\"reason\":\"too_old\",\"position\":\"x\"}"}`,
		`[1,2]`, `{"data":"\"`, `{}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, msg []byte) {
		c, err := New("k", Options{})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancelCause(context.Background())
		defer cancel(nil)
		s := &session{c: c, socketID: "1.1", ctx: ctx, cancel: cancel}
		for _, name := range []string{"room", "presence-r", "private-encrypted-e"} {
			ch := c.channelLocked(name)
			ch.wanted = true
			ch.state = subSucceeded
		}
		enc := c.channels["private-encrypted-e"]
		enc.key, enc.hasKey = wire.SharedSecret("private-encrypted-e", make([]byte, 32)), true
		s.userChan = "#server-to-user-7"
		s.handle(msg)
		s.handle(msg) // a repeat must be as harmless
		s.wg.Wait()
		c.Close()
	})
}
