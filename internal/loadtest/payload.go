package loadtest

import (
	"bytes"
	"strconv"
)

// An event's data is plain ASCII that no JSON encoder escapes, so every
// Pusher server relays it byte for byte inside the frame's "data" string:
//
//	HB1.<publisher>.<sequence>.<send time, Unix ns>.xxxxxxxx…
//
// padded with 'x' to the requested payload size. Receivers find it with one
// bytes.Index and parse it without allocating.
const payloadMagic = "HB1."

var payloadMarker = []byte(`"` + payloadMagic)

// appendPayload appends the data string of one event to b.
func appendPayload(b []byte, pub int, seq uint64, sendNano int64, size int) []byte {
	start := len(b)
	b = append(b, payloadMagic...)
	b = strconv.AppendInt(b, int64(pub), 10)
	b = append(b, '.')
	b = strconv.AppendUint(b, seq, 10)
	b = append(b, '.')
	b = strconv.AppendInt(b, sendNano, 10)
	b = append(b, '.')
	for len(b)-start < size {
		b = append(b, 'x')
	}
	return b
}

// findPayload locates an event payload in a received frame and parses it.
// ok is false when the frame carries none (a protocol message).
func findPayload(frame []byte) (pub int, seq uint64, sendNano int64, ok bool) {
	i := bytes.Index(frame, payloadMarker)
	if i < 0 {
		return 0, 0, 0, false
	}
	return parsePayload(frame[i+len(payloadMarker):])
}

// parsePayload parses "<pub>.<seq>.<ns>." (the part after the magic).
func parsePayload(b []byte) (pub int, seq uint64, sendNano int64, ok bool) {
	var p, s, t uint64
	if p, b, ok = parseDot(b); !ok || p > 1<<20 {
		return 0, 0, 0, false
	}
	if s, b, ok = parseDot(b); !ok {
		return 0, 0, 0, false
	}
	if t, _, ok = parseDot(b); !ok || t > 1<<62 {
		return 0, 0, 0, false
	}
	return int(p), s, int64(t), true
}

// parseDot parses decimal digits terminated by '.', returning the rest.
func parseDot(b []byte) (v uint64, rest []byte, ok bool) {
	n := 0
	for n < len(b) && n < 20 {
		c := b[n]
		if c == '.' {
			return v, b[n+1:], n > 0
		}
		if c < '0' || c > '9' {
			return 0, nil, false
		}
		v = v*10 + uint64(c-'0')
		n++
	}
	return 0, nil, false
}

// orderChecker checks that, on one connection, the sequence numbers of each
// publisher strictly increase. It belongs to one connection's reader and is
// not safe for concurrent use.
type orderChecker struct {
	last []uint64
}

// check records seq from publisher pub and reports whether it is in order
// (a repeat or a step back is a violation). Publishers outside the range
// the checker was sized for grow it.
func (o *orderChecker) check(pub int, seq uint64) bool {
	if pub >= len(o.last) {
		if pub > 1<<16 {
			return true // not one of ours; nothing to compare with
		}
		grown := make([]uint64, pub+1)
		copy(grown, o.last)
		o.last = grown
	}
	if seq <= o.last[pub] {
		return false
	}
	o.last[pub] = seq
	return true
}
