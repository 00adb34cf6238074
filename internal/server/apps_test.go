package server

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/herald-ws/herald/internal/apps"
	"github.com/herald-ws/herald/internal/apps/sqlstore"
	"github.com/herald-ws/herald/internal/config"
	"github.com/herald-ws/herald/internal/protocol"
	"github.com/herald-ws/herald/internal/testwait"
)

// A node on a SQLite apps store: the schema is made on start, an app
// created afterwards is served within the TTL, and disabling it closes its
// open connection with 4003 (the re-check goroutine).
func TestDatabaseStoreAppliesChangesWithoutRestart(t *testing.T) {
	store := "sqlite://" + filepath.Join(t.TempDir(), "apps.db")
	addr, _ := startServer(t, func(c *config.Config) {
		c.AppsStore, c.AppsCacheTTL, c.Apps = store, 200*time.Millisecond, nil
	})
	u, err := apps.ParseStoreURL(store)
	if err != nil {
		t.Fatal(err)
	}
	db, err := sqlstore.Open(u, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ctx := context.Background()
	if v, err := db.SchemaVersion(ctx); err != nil || v != sqlstore.LatestSchema(apps.DialectSQLite) {
		t.Fatalf("schema made on start: version %d, %v", v, err)
	}
	if f := read(t, dial(t, addr, "live-key")); !strings.Contains(string(f.Data), "4001") {
		t.Fatalf("before create: %+v %s", f, f.Data)
	}
	a := apps.Defaults()
	a.ID, a.Key, a.Secret = "live", "live-key", "live-secret"
	if err := db.Create(ctx, &a); err != nil {
		t.Fatal(err)
	}
	// The unknown key was remembered for the TTL; then the app is served.
	var c *websocket.Conn
	testwait.For(t, 10*time.Second, "the new app served", func() bool {
		c = dial(t, addr, "live-key")
		return read(t, c).Event == protocol.EventConnectionEstablished
	})
	a.Enabled = false
	if err := db.Update(ctx, &a); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	for {
		_, _, err := c.ReadMessage()
		if err == nil {
			continue // the pusher:error frame before the close
		}
		var ce *websocket.CloseError
		if !errors.As(err, &ce) || ce.Code != protocol.CodeAppDisabled {
			t.Fatalf("open connection of a disabled app: %v, want close 4003", err)
		}
		break
	}
	if got := get(t, addr, "/ready"); !strings.Contains(got, `"ready"`) || strings.Contains(got, "degraded") {
		t.Fatalf("/ready = %s", got)
	}
}
