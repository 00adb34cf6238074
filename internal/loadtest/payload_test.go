package loadtest

import (
	"encoding/json"
	"testing"
)

func TestPayloadRoundTripThroughJSON(t *testing.T) {
	for _, size := range []int{40, 100, 1000} {
		data := string(appendPayload(nil, 3, 12345, 1764230400123456789, size))
		if len(data) != size {
			t.Errorf("payload %d bytes, want %d", len(data), size)
		}
		// Whatever JSON encoder the server uses, the data comes back verbatim.
		frame, _ := json.Marshal(map[string]string{"event": "bench", "channel": "bench-0", "data": data})
		pub, seq, ts, ok := findPayload(frame)
		if !ok || pub != 3 || seq != 12345 || ts != 1764230400123456789 {
			t.Errorf("size %d: got %d %d %d %v from %s", size, pub, seq, ts, ok, frame)
		}
	}
	// A payload longer than the requested size is never cut.
	if got := appendPayload(nil, 1, 1, 1764230400123456789, 10); string(got) != "HB1.1.1.1764230400123456789." {
		t.Errorf("payload cut: %q", got)
	}
}

func TestFindPayloadRejects(t *testing.T) {
	for _, f := range []string{
		`{"event":"pusher:connection_established","data":"{}"}`,
		`{"event":"bench","data":"HB1.x.1.2."}`,
		`{"event":"bench","data":"HB1.1.2"}`,
		`{"event":"bench","data":"HB1.1..2."}`,
		`{"event":"bench","data":"HB1.1.2.123456789012345678901234."}`,
		`{"event":"bench","data":"HB1.99999999.2.3."}`,
	} {
		if _, _, _, ok := findPayload([]byte(f)); ok {
			t.Errorf("accepted %s", f)
		}
	}
}

func TestOrderChecker(t *testing.T) {
	var o orderChecker
	steps := []struct {
		pub  int
		seq  uint64
		want bool
	}{
		{0, 1, true}, {0, 2, true}, {1, 1, true}, {0, 5, true}, // gaps are losses, not order violations
		{0, 4, false}, // step back
		{0, 5, false}, // repeat
		{0, 6, true},
		{1, 1, false},
		{7, 3, true}, // publisher beyond the initial size grows the checker
		{7, 2, false},
		{1 << 20, 1, true}, // absurd publisher ids are ignored, not stored
	}
	for i, s := range steps {
		if got := o.check(s.pub, s.seq); got != s.want {
			t.Errorf("step %d: check(%d, %d) = %v, want %v", i, s.pub, s.seq, got, s.want)
		}
	}
	if len(o.last) > 8 {
		t.Errorf("checker grew to %d entries", len(o.last))
	}
}

func BenchmarkFindPayload(b *testing.B) {
	data := string(appendPayload(nil, 3, 12345, 1764230400123456789, 100))
	frame, _ := json.Marshal(map[string]string{"event": "bench", "channel": "bench-17", "data": data})
	for i := 0; i < b.N; i++ {
		findPayload(frame)
	}
}
