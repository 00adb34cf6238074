package protocol

import "encoding/json"

// The fast paths below decode the messages every client sends (its
// subscribes and unsubscribes, pings, client events) without encoding/json's
// reflection: under connection churn, encoding/json was about a tenth of
// the server's CPU (docs/benchmarks.md, "Session 7: churn"). Each either
// returns exactly what the encoding/json path returns for its input, or
// declines (ok false) and leaves the input to that path: it accepts only
// valid JSON (validValue is a strict JSON grammar) whose object keys are
// spelt exactly as the fields they fill, each at most once, and whose
// values have the types the fields want. Every refusal, odd spelling
// (encoding/json folds the case of keys and reads escaped ones), repeated
// key, unknown key and error goes the long way, so errors and their texts
// are encoding/json's. FuzzFastPathsMatchEncodingJSON holds them to it.

// maxFastDepth bounds the nesting the fast validator follows; deeper
// values go to encoding/json (whose own limit is 10,000).
const maxFastDepth = 64

// isSpace reports JSON insignificant whitespace.
func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

func skipSpace(b []byte, i int) int {
	for i < len(b) && isSpace(b[i]) {
		i++
	}
	return i
}

// validString scans the string token at b[i] (a '"'); it returns the index
// after its closing quote and whether it holds an escape, or ok false when
// the token is not a valid JSON string. Bytes of 0x80 and above are taken
// as they are, as encoding/json's scanner does (UTF-8 is the callers'
// business).
func validString(b []byte, i int) (end int, escaped, ok bool) {
	for j := i + 1; j < len(b); j++ {
		switch c := b[j]; {
		case c == '"':
			return j + 1, escaped, true
		case c < 0x20:
			return 0, false, false
		case c == '\\':
			escaped = true
			j++
			if j >= len(b) {
				return 0, false, false
			}
			switch b[j] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
			case 'u':
				if j+4 >= len(b) {
					return 0, false, false
				}
				for _, h := range b[j+1 : j+5] {
					if !isHex(h) {
						return 0, false, false
					}
				}
				j += 4
			default:
				return 0, false, false
			}
		}
	}
	return 0, false, false
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

// validNumber scans the number token at b[i] (RFC 8259 §6) and returns the
// index after it.
func validNumber(b []byte, i int) (int, bool) {
	if i < len(b) && b[i] == '-' {
		i++
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case i < len(b) && '1' <= b[i] && b[i] <= '9':
		for i++; i < len(b) && isDigit(b[i]); i++ {
		}
	default:
		return 0, false
	}
	if i < len(b) && b[i] == '.' {
		i++
		if i >= len(b) || !isDigit(b[i]) {
			return 0, false
		}
		for i++; i < len(b) && isDigit(b[i]); i++ {
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		if i >= len(b) || !isDigit(b[i]) {
			return 0, false
		}
		for i++; i < len(b) && isDigit(b[i]); i++ {
		}
	}
	return i, true
}

// validValue scans the JSON value starting at b[i] (no leading space) and
// returns the index after it; ok is false when it is not valid JSON or
// nests deeper than maxFastDepth.
func validValue(b []byte, i, depth int) (int, bool) {
	if i >= len(b) {
		return 0, false
	}
	switch c := b[i]; {
	case c == '"':
		end, _, ok := validString(b, i)
		return end, ok
	case c == '{', c == '[':
		if depth >= maxFastDepth {
			return 0, false
		}
		closer := byte('}')
		if c == '[' {
			closer = ']'
		}
		i = skipSpace(b, i+1)
		if i < len(b) && b[i] == closer {
			return i + 1, true
		}
		for {
			var ok bool
			if c == '{' {
				if i >= len(b) || b[i] != '"' {
					return 0, false
				}
				if i, _, ok = validString(b, i); !ok {
					return 0, false
				}
				i = skipSpace(b, i)
				if i >= len(b) || b[i] != ':' {
					return 0, false
				}
				i = skipSpace(b, i+1)
			}
			if i, ok = validValue(b, i, depth+1); !ok {
				return 0, false
			}
			i = skipSpace(b, i)
			if i >= len(b) {
				return 0, false
			}
			if b[i] == closer {
				return i + 1, true
			}
			if b[i] != ',' {
				return 0, false
			}
			i = skipSpace(b, i+1)
		}
	case c == '-' || isDigit(c):
		return validNumber(b, i)
	case c == 't':
		return literal(b, i, "true")
	case c == 'f':
		return literal(b, i, "false")
	case c == 'n':
		return literal(b, i, "null")
	}
	return 0, false
}

func literal(b []byte, i int, lit string) (int, bool) {
	if len(b)-i < len(lit) || string(b[i:i+len(lit)]) != lit {
		return 0, false
	}
	return i + len(lit), true
}

// fastObject walks the JSON object that is the whole of b (no space
// around it), calling field with each key that has no escape and the raw
// bytes of its value (valid JSON, no space around it). It returns false
// when b is not such an object, when a key has an escape, or when field
// returns false.
func fastObject(b []byte, field func(key, value []byte) bool) bool {
	if len(b) < 2 || b[0] != '{' {
		return false
	}
	i := skipSpace(b, 1)
	if i < len(b) && b[i] == '}' {
		return i+1 == len(b)
	}
	for {
		if i >= len(b) || b[i] != '"' {
			return false
		}
		kend, escaped, ok := validString(b, i)
		if !ok || escaped {
			return false
		}
		key := b[i+1 : kend-1]
		i = skipSpace(b, kend)
		if i >= len(b) || b[i] != ':' {
			return false
		}
		i = skipSpace(b, i+1)
		vstart := i
		if i, ok = validValue(b, i, 1); !ok {
			return false
		}
		if !field(key, b[vstart:i]) {
			return false
		}
		i = skipSpace(b, i)
		if i >= len(b) {
			return false
		}
		if b[i] == '}' {
			return i+1 == len(b)
		}
		if b[i] != ',' {
			return false
		}
		i = skipSpace(b, i+1)
	}
}

// decodeMessageFast is DecodeMessage's fast path for b, already trimmed,
// starting with '{' and valid UTF-8.
func decodeMessageFast(b []byte) (Message, bool) {
	var event, channel, data []byte
	ok := fastObject(b, func(key, v []byte) bool {
		switch string(key) {
		case "event":
			if event != nil || v[0] != '"' {
				return false
			}
			event = v
		case "channel":
			if channel != nil || (v[0] != '"' && string(v) != "null") {
				return false
			}
			channel = v
		case "data":
			if data != nil {
				return false
			}
			data = v
		default:
			return false
		}
		return true
	})
	if !ok || len(event) <= 2 {
		return Message{}, false
	}
	var m Message
	if m.Event, ok = knownEvent(event); !ok {
		return Message{}, false
	}
	if channel != nil && channel[0] == '"' {
		if m.Channel, ok = jsonString(channel); !ok {
			return Message{}, false
		}
	}
	if data != nil && string(data) != "null" {
		// A copy, as encoding/json's RawMessage makes: the caller may
		// reuse the frame.
		m.Data = append(json.RawMessage(nil), data...)
	}
	return m, m.Event != ""
}

// knownEvent decodes the event name token raw; the protocol's own names
// come without a copy.
func knownEvent(raw []byte) (string, bool) {
	switch string(raw) {
	case `"` + EventSubscribe + `"`:
		return EventSubscribe, true
	case `"` + EventUnsubscribe + `"`:
		return EventUnsubscribe, true
	case `"` + EventPing + `"`:
		return EventPing, true
	case `"` + EventPong + `"`:
		return EventPong, true
	}
	return jsonString(raw)
}

// decodeSubscribeFast is DecodeSubscribe's fast path: data an object of
// channel, auth and channel_data, each a string (auth and channel_data may
// be null).
func decodeSubscribeFast(data json.RawMessage) (Subscribe, bool) {
	var channel, auth, channelData []byte
	ok := fastObject(data, func(key, v []byte) bool {
		switch string(key) {
		case "channel":
			if channel != nil || v[0] != '"' {
				return false
			}
			channel = v
		case "auth":
			if auth != nil || (v[0] != '"' && string(v) != "null") {
				return false
			}
			auth = v
		case "channel_data":
			if channelData != nil || (v[0] != '"' && string(v) != "null") {
				return false
			}
			channelData = v
		default:
			return false
		}
		return true
	})
	if !ok || channel == nil {
		return Subscribe{}, false
	}
	var s Subscribe
	if s.Channel, ok = jsonString(channel); !ok {
		return Subscribe{}, false
	}
	if auth != nil && auth[0] == '"' {
		if s.Auth, ok = jsonString(auth); !ok {
			return Subscribe{}, false
		}
	}
	if channelData != nil && channelData[0] == '"' {
		if s.ChannelData, ok = jsonString(channelData); !ok {
			return Subscribe{}, false
		}
	}
	return s, true
}

// decodeChannelOnlyFast is DecodeChannelOnly's fast path: data exactly
// {"channel":"…"}.
func decodeChannelOnlyFast(data json.RawMessage) (string, bool) {
	var channel []byte
	ok := fastObject(data, func(key, v []byte) bool {
		if string(key) != "channel" || channel != nil || v[0] != '"' {
			return false
		}
		channel = v
		return true
	})
	if !ok || channel == nil {
		return "", false
	}
	return jsonString(channel)
}
