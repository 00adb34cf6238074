package deploytest

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// pusherHandshake opens a WebSocket to hostport for app key, checks that
// Herald answers pusher:connection_established, and closes it.
func pusherHandshake(t *testing.T, hostport, key string) {
	t.Helper()
	pusherConnect(t, hostport, key).Close()
}

// pusherConnect is pusherHandshake leaving the connection open.
func pusherConnect(t *testing.T, hostport, key string) *websocket.Conn {
	t.Helper()
	url := "ws://" + hostport + "/app/" + key + "?protocol=7&client=js&version=8.6.0&flash=false"
	d := websocket.Dialer{HandshakeTimeout: 5 * time.Second}
	c, res, err := d.Dial(url, nil)
	if err != nil {
		status := 0
		if res != nil {
			status = res.StatusCode
		}
		t.Fatalf("WebSocket handshake with %s: %v (status %d)", url, err, status)
	}
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, msg, err := c.ReadMessage()
	if err != nil {
		t.Fatalf("reading the first message from %s: %v", url, err)
	}
	var ev struct {
		Event string `json:"event"`
		Data  string `json:"data"`
	}
	if err := json.Unmarshal(msg, &ev); err != nil || ev.Event != "pusher:connection_established" {
		c.Close()
		t.Fatalf("first message from %s is %s, want pusher:connection_established", url, msg)
	}
	_ = c.SetReadDeadline(time.Time{})
	return c
}
