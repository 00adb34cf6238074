package protocol

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestClip(t *testing.T) {
	tests := []struct {
		name string
		s    string
		max  int
		want string
	}{
		{"short", "abc", 5, "abc"},
		{"exact", "abcde", 5, "abcde"},
		{"ascii cut", "abcdef", 5, "abcde…"},
		{"empty", "", 0, ""},
		{"max 0", "abc", 0, "…"},
		{"negative max", "abc", -1, "…"},
		// "é" is 2 bytes, "€" 3, "😀" 4: the cut at 5 falls inside each.
		{"2-byte at cut", "abcdé", 5, "abcd…"},
		{"2-byte ends at cut", "abcé", 5, "abcé"},
		{"2-byte ends at cut, more after", "abcéx", 5, "abcé…"},
		{"3-byte at cut, 1 in", "abcd€", 5, "abcd…"},
		{"3-byte at cut, 2 in", "abc€", 5, "abc…"},
		{"4-byte at cut, 1 in", "abcd😀", 5, "abcd…"},
		{"4-byte at cut, 2 in", "abc😀", 5, "abc…"},
		{"4-byte at cut, 3 in", "ab😀", 5, "ab…"},
		{"only multi-byte", "😀😀", 5, "😀…"},
		{"first character longer than max", "😀", 3, "…"},
		// Invalid input: no boundary within UTFMax-1 bytes, cut at max.
		{"continuation bytes only", "\x80\x80\x80\x80\x80\x80", 5, "\x80\x80\x80\x80\x80…"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Clip(tt.s, tt.max); got != tt.want {
				t.Errorf("Clip(%q, %d) = %q, want %q", tt.s, tt.max, got, tt.want)
			}
		})
	}
}

func TestTruncateReasonMultiByteAtCut(t *testing.T) {
	for _, r := range []string{"é", "€", "😀"} {
		for pad := range utf8.UTFMax {
			s := strings.Repeat("a", 123-pad) + strings.Repeat(r, 3)
			got := TruncateReason(s)
			if len(got) > 123 || !utf8.ValidString(got) || !strings.HasPrefix(s, got) || len(got) < 123-utf8.UTFMax+1 {
				t.Errorf("TruncateReason(%d a's + %q...) = %d bytes %q", 123-pad, r, len(got), got[len(got)-8:])
			}
		}
	}
}

func FuzzClip(f *testing.F) {
	for _, s := range []string{"", "abc", "abcdé", "abc€", "ab😀", "\xff\xfe", "é€😀é€😀", "\x80\x80\x80\x80"} {
		f.Add(s, 5)
	}
	f.Add("😀😀", 0)
	f.Add("abc", -3)
	f.Fuzz(func(t *testing.T, s string, max int) {
		got := Clip(s, max)
		if len(s) <= max {
			if got != s {
				t.Fatalf("Clip(%q, %d) = %q: changed a string that fits", s, max, got)
			}
			return
		}
		kept, ok := strings.CutSuffix(got, "…")
		if !ok || !strings.HasPrefix(s, kept) {
			t.Fatalf("Clip(%q, %d) = %q: not a prefix of s then …", s, max, got)
		}
		if max < 0 {
			max = 0
		}
		if len(kept) > max || len(kept) < max-utf8.UTFMax+1 {
			t.Fatalf("Clip(%q, %d) kept %d bytes", s, max, len(kept))
		}
		if utf8.ValidString(s) && !utf8.ValidString(got) {
			t.Fatalf("Clip(%q, %d) = %q: cut inside a character", s, max, got)
		}
	})
}
