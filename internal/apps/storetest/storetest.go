// Package storetest is the conformance suite every apps.Store passes:
// the config store for its read-only part, each SQL store for all of it.
package storetest

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/herald-ws/herald/internal/apps"
)

// Harness is one store under test.
type Harness struct {
	Store apps.Store
	// Writer is the store's write side; nil for a read-only store.
	Writer apps.Writer
	// Raw inserts a row as given, bypassing validation (hostile rows);
	// nil for a store without rows.
	Raw func(t *testing.T, id, key, secret string, enabled bool, settings string)
}

// Open makes a fresh, empty-but-for-seed store for one test; it cleans up
// with t.Cleanup.
type Open func(t *testing.T, seed []apps.App) Harness

// Seed returns two apps with settings away from the defaults.
func Seed() []apps.App {
	a := apps.Defaults()
	a.ID, a.Key, a.Secret = "seed-1", "seed-key-1", "seed-secret-1"
	a.MaxConnections = 42
	a.EnableClientMessages = true
	a.AllowedOrigins = []string{"https://a.example", "*.b.example"}
	a.ActivityTimeout = 30 * time.Second
	a.Webhooks = []apps.Webhook{{URL: "https://hooks.example/h", EventTypes: []string{"channel_occupied"},
		Headers: map[string]string{"X-Token": "t"}, Filter: apps.WebhookFilter{ChannelNameStartsWith: "private-"},
		Timeout: 3 * time.Second}}
	b := apps.Defaults()
	b.ID, b.Key, b.Secret = "seed-2", "seed-key-2", "seed-secret-2"
	b.Enabled = false
	return []apps.App{a, b}
}

// Run runs the suite.
func Run(t *testing.T, open Open) {
	ctx := context.Background()
	t.Run("Lookup", func(t *testing.T) {
		h := open(t, Seed())
		for _, want := range Seed() {
			got, err := h.Store.ByID(ctx, want.ID)
			if err != nil {
				t.Fatalf("ByID(%s): %v", want.ID, err)
			}
			same(t, got, &want)
			got, err = h.Store.ByKey(ctx, want.Key)
			if err != nil {
				t.Fatalf("ByKey(%s): %v", want.Key, err)
			}
			same(t, got, &want)
		}
		for _, k := range []string{"nope", "SEED-KEY-1", "seed-key-1 ", strings.Repeat("k", 300), "", "'; DROP TABLE herald_apps; --"} {
			if _, err := h.Store.ByKey(ctx, k); !errors.Is(err, apps.ErrNotFound) {
				t.Errorf("ByKey(%.20q) = %v, want ErrNotFound", k, err)
			}
			if _, err := h.Store.ByID(ctx, k); !errors.Is(err, apps.ErrNotFound) {
				t.Errorf("ByID(%.20q) = %v, want ErrNotFound", k, err)
			}
		}
		all, err := h.Store.All(ctx)
		if err != nil || len(all) != 2 {
			t.Fatalf("All = %d apps, %v; want 2", len(all), err)
		}
	})
	t.Run("ReadOnly", func(t *testing.T) {
		h := open(t, Seed())
		if h.Writer != nil {
			t.Skip("writable store")
		}
		if _, ok := h.Store.(apps.Writer); ok {
			t.Fatal("a read-only store implements apps.Writer")
		}
	})
	t.Run("CreateUpdateDelete", func(t *testing.T) {
		h := open(t, nil)
		if h.Writer == nil {
			t.Skip("read-only store")
		}
		w := h.Writer
		a := Seed()[0]
		a.ID, a.Key = "c-1", "c-key-1"
		if err := w.Create(ctx, &a); err != nil {
			t.Fatalf("Create: %v", err)
		}
		got, err := w.ByKey(ctx, "c-key-1")
		if err != nil {
			t.Fatal(err)
		}
		same(t, got, &a)

		dupID, dupKey := a, a
		dupID.Key = "other-key"
		dupKey.ID = "other-id"
		for _, d := range []apps.App{dupID, dupKey} {
			if err := w.Create(ctx, &d); !errors.Is(err, apps.ErrExists) {
				t.Errorf("Create duplicate (%s/%s) = %v, want ErrExists", d.ID, d.Key, err)
			}
		}
		bad := apps.Defaults()
		bad.ID, bad.Key, bad.Secret, bad.MaxConnections = "bad", "bad-key", "s", -5
		err = w.Create(ctx, &bad)
		var ie *apps.InvalidError
		if !errors.As(err, &ie) || !strings.Contains(err.Error(), "max_connections") {
			t.Fatalf("Create invalid = %v, want an InvalidError naming max_connections", err)
		}
		if _, err := w.ByID(ctx, "bad"); !errors.Is(err, apps.ErrNotFound) {
			t.Fatalf("an invalid app was written: %v", err)
		}

		a.Secret, a.Enabled, a.MaxConnections, a.Webhooks = "rotated", false, 7, nil
		a.EnableSubscriptionCount = true
		if err := w.Update(ctx, &a); err != nil {
			t.Fatalf("Update: %v", err)
		}
		if err := w.Update(ctx, &a); err != nil {
			t.Fatalf("Update without a change: %v", err)
		}
		got, err = w.ByID(ctx, "c-1")
		if err != nil {
			t.Fatal(err)
		}
		same(t, got, &a)
		ghost := a
		ghost.ID, ghost.Key = "ghost", "ghost-key"
		if err := w.Update(ctx, &ghost); !errors.Is(err, apps.ErrNotFound) {
			t.Errorf("Update unknown = %v, want ErrNotFound", err)
		}
		if err := w.Delete(ctx, "c-1"); err != nil {
			t.Fatalf("Delete: %v", err)
		}
		if _, err := w.ByID(ctx, "c-1"); !errors.Is(err, apps.ErrNotFound) {
			t.Errorf("after Delete: %v, want ErrNotFound", err)
		}
		if err := w.Delete(ctx, "c-1"); !errors.Is(err, apps.ErrNotFound) {
			t.Errorf("Delete twice = %v, want ErrNotFound", err)
		}
	})
	t.Run("KeysAreCaseSensitive", func(t *testing.T) {
		h := open(t, nil)
		if h.Writer == nil {
			t.Skip("read-only store")
		}
		for _, k := range []string{"abc", "ABC"} {
			a := apps.Defaults()
			a.ID, a.Key, a.Secret = "id-"+k, k, "s-"+k
			if err := h.Writer.Create(ctx, &a); err != nil {
				t.Fatalf("Create %s: %v", k, err)
			}
		}
		got, err := h.Store.ByKey(ctx, "ABC")
		if err != nil || got.ID != "id-ABC" {
			t.Fatalf("ByKey(ABC) = %v, %v", got, err)
		}
	})
	t.Run("HostileRows", func(t *testing.T) {
		h := open(t, Seed())
		if h.Raw == nil {
			t.Skip("no rows")
		}
		many := make([]string, apps.MaxOrigins+1)
		for i := range many {
			many[i] = fmt.Sprintf("%q", fmt.Sprintf("https://o%d.example", i))
		}
		rows := []struct{ id, settings, field string }{
			{"bad-json", `{"max_connections": 5`, "settings"},
			{"not-object", `[1,2]`, "settings"},
			{"negative", `{"max_connections": -5}`, "max_connections"},
			{"zero-batch", `{"max_event_batch_size": 0}`, "max_event_batch_size"},
			{"wrong-type", `{"enable_client_messages": "maybe"}`, "enable_client_messages"},
			{"unknown", `{"max_conections": 5}`, "max_conections"},
			{"huge-origins", `{"allowed_origins": [` + strings.Join(many, ",") + `]}`, "allowed_origins"},
			{"bad-duration", `{"activity_timeout": "forever"}`, "activity_timeout"},
			{"bad-webhook", `{"webhooks": [{"url": "ftp://x", "event_types": ["nope"]}]}`, "webhooks[0].url"},
			{"overflow", `{"max_connections": 1e400}`, "max_connections"},
			{"secret-column", `{"secret": "x"}`, "secret"},
		}
		for _, r := range rows {
			h.Raw(t, r.id, "key-"+r.id, "secret-"+r.id, true, r.settings)
		}
		h.Raw(t, "empty-secret", "key-empty-secret", "", true, "{}")
		h.Raw(t, "null-settings", "key-null-settings", "s", true, "")
		for _, r := range rows {
			_, err := h.Store.ByID(ctx, r.id)
			var ie *apps.InvalidError
			if !errors.As(err, &ie) {
				t.Errorf("row %s: ByID = %v, want an InvalidError", r.id, err)
				continue
			}
			if ie.App != r.id || !strings.Contains(err.Error(), r.field) {
				t.Errorf("row %s: %v; want the app and %q named", r.id, err, r.field)
			}
			if strings.Contains(err.Error(), "secret-"+r.id) {
				t.Errorf("row %s: the error shows the secret: %v", r.id, err)
			}
			if _, err := h.Store.ByKey(ctx, "key-"+r.id); !errors.As(err, &ie) {
				t.Errorf("row %s: ByKey = %v, want an InvalidError", r.id, err)
			}
		}
		if _, err := h.Store.ByID(ctx, "empty-secret"); err == nil || !strings.Contains(err.Error(), "secret") {
			t.Errorf("empty secret: %v", err)
		}
		got, err := h.Store.ByID(ctx, "null-settings")
		if err != nil {
			t.Fatalf("a row without settings takes the defaults: %v", err)
		}
		want := apps.Defaults()
		want.ID, want.Key, want.Secret = "null-settings", "key-null-settings", "s"
		same(t, got, &want)
		all, err := h.Store.All(ctx)
		if err != nil {
			t.Fatalf("All with bad rows: %v", err)
		}
		if len(all) != 3 { // the two seeds and null-settings
			t.Errorf("All = %d apps, want the 3 valid ones", len(all))
		}
		if _, err := h.Store.ByID(ctx, "seed-1"); err != nil {
			t.Errorf("a good app next to bad rows: %v", err)
		}
	})
}

// same fails t unless got and want have the same settings.
func same(t *testing.T, got *apps.App, want *apps.App) {
	t.Helper()
	g, w := *got, *want
	if len(g.Webhooks) == 0 {
		g.Webhooks = nil
	}
	if len(w.Webhooks) == 0 {
		w.Webhooks = nil
	}
	if !reflect.DeepEqual(g, w) {
		t.Fatalf("app %s:\n got %+v\nwant %+v", want.ID, g, w)
	}
}
