package hub

import "testing"

func TestSubSet(t *testing.T) {
	var s subSet
	a, b, c := &subscription{}, &subscription{}, &subscription{}
	s.add("a", a)
	s.add("b", b)
	s.add("c", c)
	if s.get("b") != b || s.get("zz") != nil || len(s) != 3 {
		t.Fatalf("get: %v", s)
	}
	if got := s.remove("b"); got != b {
		t.Fatalf("remove returned %v", got)
	}
	if s.remove("b") != nil {
		t.Fatal("removed twice")
	}
	if len(s) != 2 || s[0].name != "a" || s[1].name != "c" {
		t.Fatalf("order after remove: %v", s)
	}
	// The slot freed at the end holds nothing that could keep memory alive.
	if tail := s[:3][2]; tail.sub != nil || tail.name != "" {
		t.Fatalf("stale entry left behind: %+v", tail)
	}
	s.remove("a")
	s.remove("c")
	if len(s) != 0 || s.get("a") != nil {
		t.Fatalf("not empty: %v", s)
	}
}
