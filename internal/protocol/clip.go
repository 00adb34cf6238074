package protocol

import "unicode/utf8"

// Clip shortens s, a string a client or a backend sent, to at most max
// bytes for an error message, a log line or a preview, marking the cut
// with "…". It cuts on a UTF-8 boundary: a message that quotes s stays
// valid UTF-8 when s was (a JSON encoder would otherwise turn the split
// character into U+FFFD, and a browser fails a close reason that is not
// UTF-8).
func Clip(s string, max int) string {
	if len(s) <= max {
		return s
	}
	return s[:runeCut(s, max)] + "…"
}

// runeCut returns the largest n <= max at which s can be cut without
// splitting a character. It looks back at most utf8.UTFMax-1 bytes: in
// invalid UTF-8 no boundary may be near.
func runeCut(s string, max int) int {
	switch {
	case max >= len(s):
		return len(s)
	case max <= 0:
		return 0
	}
	for n := max; n > max-utf8.UTFMax; n-- {
		if n == 0 || utf8.RuneStart(s[n]) {
			return n
		}
	}
	return max
}
