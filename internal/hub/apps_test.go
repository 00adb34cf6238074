package hub

import (
	"slices"
	"testing"

	"github.com/herald-ws/herald/internal/protocol"
)

func TestUpdateAppRotatesTheSecretOfOpenConnections(t *testing.T) {
	e := newEnv(t, nil)
	c, fc := e.connect()
	oldAuth := e.auth(c.SocketID(), "private-a", "")
	next := *e.app
	next.Secret = "rotated-secret"
	if n := e.h.UpdateApp(&next); n != 1 {
		t.Fatalf("UpdateApp updated %d connections, want 1", n)
	}
	// Signed with the old secret: refused.
	msg(c, subscribeMsg("private-a", oldAuth, ""))
	if f := fc.next(t); f.Event != protocol.EventSubscriptionError && f.Event != protocol.EventError {
		t.Fatalf("old secret: %s", f.raw)
	}
	// Signed with the new one: accepted.
	e.app = &next
	e.sub(c, fc, "private-b", "")
	if c.App().Secret != "rotated-secret" {
		t.Fatal("the client does not hold the new app")
	}
}

func TestCloseAppClosesOnlyThatAppsConnections(t *testing.T) {
	e := newEnv(t, nil)
	_, fc1 := e.connect()
	_, fc2 := e.connect()
	other := *e.app
	other.ID, other.Key = "2", "other-key"
	e.app = &other
	_, fc3 := e.connect()
	ids := e.h.ConnectedApps()
	slices.Sort(ids)
	if !slices.Equal(ids, []string{"1", "2"}) {
		t.Fatalf("ConnectedApps = %v", ids)
	}
	if n := e.h.CloseApp("1", protocol.CodeAppDisabled, "Application disabled"); n != 2 {
		t.Fatalf("CloseApp closed %d, want 2", n)
	}
	for _, fc := range []*fakeConn{fc1, fc2} {
		fc.mu.Lock()
		closed, code := fc.closed, fc.code
		fc.mu.Unlock()
		if !closed || code != protocol.CodeAppDisabled {
			t.Fatalf("closed %v code %d, want 4003", closed, code)
		}
	}
	fc3.mu.Lock()
	defer fc3.mu.Unlock()
	if fc3.closed {
		t.Fatal("another app's connection was closed")
	}
}
