package server

import (
	"log/slog"
	"net"
	"net/http"
	"testing"

	"github.com/gorilla/websocket"
	"github.com/herald-ws/herald/internal/config"
	"github.com/herald-ws/herald/internal/protocol"
)

// TestRelayJoinsTwoProcessesOfOneNode: two single nodes joined by a relay
// (as the two processes of a restart in place are): an event published
// through either one's HTTP API reaches the subscribers of both, each
// once.
func TestRelayJoinsTwoProcessesOfOneNode(t *testing.T) {
	pa, pb := net.Pipe()
	ra, rb := make(chan net.Conn, 1), make(chan net.Conn, 1)
	ra <- pa
	rb <- pb
	addrA, _ := startServer(t, nil, WithRelay(ra))
	addrB, _ := startServer(t, nil, WithRelay(rb))

	ca := dial(t, addrA, "app-key")
	cb := dial(t, addrB, "app-key")
	socketID(t, ca)
	socketID(t, cb)
	subscribe(t, ca, "news", "", "")
	subscribe(t, cb, "news", "", "")
	readUntil(t, ca, protocol.EventSubscriptionSucceeded)
	readUntil(t, cb, protocol.EventSubscriptionSucceeded)

	for i, addr := range []string{addrB, addrA, addrB} {
		name := []string{"first", "second", "third"}[i]
		if resp := publish(t, addr, `{"name":"`+name+`","channel":"news","data":"{}"}`); resp.StatusCode != http.StatusOK {
			t.Fatalf("publish %s: %d", name, resp.StatusCode)
		}
		// The next event on each side is this one: none came twice.
		for _, c := range []struct {
			side string
			f    frame
		}{{"A", nextEvent(t, ca)}, {"B", nextEvent(t, cb)}} {
			if c.f.Event != name || c.f.Channel != "news" {
				t.Fatalf("after publishing %q: %s got %q on %q", name, c.side, c.f.Event, c.f.Channel)
			}
		}
	}
}

// TestNoRelayInACluster: with Redis the relay is not used (Redis carries
// the events), even when asked for.
func TestNoRelayInACluster(t *testing.T) {
	ch := make(chan net.Conn, 1)
	cfg := config.Default()
	clusterConfig(t)(cfg)
	srv, err := New(cfg, slog.New(slog.DiscardHandler), WithRelay(ch))
	if err != nil {
		t.Fatal(err)
	}
	if srv.relay != nil {
		t.Fatal("a clustered node runs a relay")
	}
}

// nextEvent reads the next frame that is not a subscription count (the
// development app sends them).
func nextEvent(t *testing.T, c *websocket.Conn) frame {
	t.Helper()
	for {
		if f := read(t, c); f.Event != "pusher_internal:subscription_count" {
			return f
		}
	}
}
