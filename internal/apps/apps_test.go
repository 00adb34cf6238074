package apps

import (
	"context"
	"errors"
	"testing"
)

func TestStaticFindsAppsByIDAndKey(t *testing.T) {
	a, b := Defaults(), Defaults()
	a.ID, a.Key, a.Secret = "1", "key-1", "s1"
	b.ID, b.Key, b.Secret = "2", "key-2", "s2"
	s, err := NewStatic([]App{a, b})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if got, err := s.ByID(ctx, "2"); err != nil || got.Key != "key-2" {
		t.Fatalf("ByID: %+v %v", got, err)
	}
	if got, err := s.ByKey(ctx, "key-1"); err != nil || got.ID != "1" {
		t.Fatalf("ByKey: %+v %v", got, err)
	}
	if _, err := s.ByID(ctx, "3"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("unknown id: %v", err)
	}
	if _, err := s.ByKey(ctx, "nope"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("unknown key: %v", err)
	}
	all, _ := s.All(ctx)
	if len(all) != 2 {
		t.Fatalf("All: %d", len(all))
	}
}

func TestStaticRejectsDuplicates(t *testing.T) {
	a := Defaults()
	a.ID, a.Key = "1", "k"
	b := a
	b.Key = "other"
	if _, err := NewStatic([]App{a, b}); err == nil {
		t.Fatal("duplicate id accepted")
	}
	b = a
	b.ID = "2"
	if _, err := NewStatic([]App{a, b}); err == nil {
		t.Fatal("duplicate key accepted")
	}
}

func TestDefaultsMatchTheProtocolReference(t *testing.T) {
	d := Defaults()
	if !d.Enabled || d.MaxConnections != -1 || d.ClientEventsPerSecond != 10 || d.MaxPresenceMembers != 100 ||
		d.MaxChannelNameLength != 200 || d.MaxEventBatchSize != 10 || d.ActivityTimeout.Seconds() != 120 {
		t.Fatalf("defaults drifted: %+v", d)
	}
	if d.MaxEventPayloadBytes() != 100*1024 || d.MaxPresenceMemberBytes() != 2*1024 {
		t.Fatal("byte limits")
	}
}
