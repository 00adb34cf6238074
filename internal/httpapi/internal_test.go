package httpapi

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestClip(t *testing.T) {
	if got := clip("short"); got != "short" {
		t.Fatalf("clip(short) = %q", got)
	}
	long := strings.Repeat("a", 63) + "éééé"
	got := clip(long)
	if !utf8.ValidString(got) || !strings.HasSuffix(got, "…") || len(got) > 64+len("…") {
		t.Fatalf("clip(long) = %q", got)
	}
}

func TestIsClean(t *testing.T) {
	for p, want := range map[string]bool{
		"/": true, "/apps/3/events": true, "/apps/3/": true, "": false, "apps": false, "*": false,
		"/apps//events": false, "/apps/./events": false, "/apps/../up": false, "/apps/3/channels/..": false,
	} {
		if got := isClean(p); got != want {
			t.Errorf("isClean(%q) = %v, want %v", p, got, want)
		}
	}
}

func TestNormalizePrefix(t *testing.T) {
	for in, want := range map[string]string{"": "", "/": "", "/ws": "/ws", "/ws/": "/ws", "ws": "/ws", "/a/b//": "/a/b"} {
		if got := normalizePrefix(in); got != want {
			t.Errorf("normalizePrefix(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestParseInfo(t *testing.T) {
	all := infoUserCount | infoSubscriptionCount | infoCache
	cases := []struct {
		in   string
		want infoSet
		ok   bool
	}{
		{"", 0, true},
		{" , ,", 0, true},
		{"user_count", infoUserCount, true},
		{"user_count, subscription_count,cache", all, true},
		{"user_count,user_count", infoUserCount, true},
		{"USER_COUNT", 0, false},
		{"members", 0, false},
	}
	for _, c := range cases {
		got, err := parseInfo(c.in, all, "info")
		if (err == nil) != c.ok || got != c.want {
			t.Errorf("parseInfo(%q) = %v, %v", c.in, got, err)
		}
	}
	if _, err := parseInfo("cache", infoUserCount|infoSubscriptionCount, "info"); err == nil ||
		!strings.Contains(err.Error(), "allowed: user_count, subscription_count") {
		t.Errorf("cache accepted where not allowed: %v", err)
	}
}
