package client

import (
	"testing"
	"time"
)

func TestActionFor(t *testing.T) {
	for code, want := range map[int]closeAction{
		1000: actReconnect, 1006: actReconnect, 3999: actReconnect,
		4000: actRefused, 4001: actRefused, 4009: actRefused, 4099: actRefused,
		4100: actBackoff, 4199: actBackoff,
		4200: actRetry, 4201: actRetry, 4299: actRetry,
		4300: actRefused, 4301: actRefused,
	} {
		if got := actionFor(code); got != want {
			t.Errorf("close %d: action %d, want %d", code, got, want)
		}
	}
}

func TestBackoffIsJitteredAndCapped(t *testing.T) {
	c, err := New("k", Options{BackoffMin: 100 * time.Millisecond, BackoffMax: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for n, ceil := range map[int]time.Duration{1: 100 * time.Millisecond, 2: 200 * time.Millisecond, 4: 800 * time.Millisecond, 5: time.Second, 50: time.Second} {
		var top time.Duration
		for i := 0; i < 2000; i++ {
			d := c.backoff(n)
			if d < 0 || d >= ceil {
				t.Fatalf("attempt %d: delay %s outside [0, %s)", n, d, ceil)
			}
			top = max(top, d)
		}
		// Full jitter spreads over the whole range.
		if top < ceil*8/10 {
			t.Errorf("attempt %d: largest of 2000 delays %s, want close to %s", n, top, ceil)
		}
	}
}
