package protocol

import (
	"encoding/json"
	"strconv"
	"unicode/utf8"
)

// Server → client messages. Every function returns a fresh JSON object
// ready to be framed; data is a JSON string for every pusher: and
// pusher_internal: event except pusher:error, pusher:ping and pusher:pong
// (protocol reference §2).

const hexDigits = "0123456789abcdef"

// AppendString appends s as a JSON string literal. Invalid UTF-8 becomes
// U+FFFD, as encoding/json does; U+2028 and U+2029 are escaped so that the
// output is also safe inside JavaScript source.
func AppendString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch c {
			case '"', '\\':
				dst = append(dst, '\\', c)
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hexDigits[r&0xF])
			i += size
			start = i
			continue
		}
		i += size
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

func head(event, channel string, extra int) []byte {
	b := make([]byte, 0, len(event)+len(channel)+extra+40)
	b = append(b, `{"event":`...)
	b = AppendString(b, event)
	if channel != "" {
		b = append(b, `,"channel":`...)
		b = AppendString(b, channel)
	}
	return b
}

// Event encodes an event whose data is a string sent as a JSON string
// (app events from the HTTP API, and most pusher: events).
func Event(event, channel, data string) []byte {
	b := head(event, channel, len(data)+len(data)/8+12)
	b = append(b, `,"data":`...)
	b = AppendString(b, data)
	return append(b, '}')
}

// EventRaw encodes an event whose data is relayed byte-for-byte as the
// client sent it (client events); userID, when not empty, is added as the
// top-level user_id of presence client events.
func EventRaw(event, channel string, data json.RawMessage, userID string) []byte {
	b := head(event, channel, len(data)+len(userID)+24)
	if len(data) > 0 {
		b = append(b, `,"data":`...)
		b = append(b, data...)
	}
	if userID != "" {
		b = append(b, `,"user_id":`...)
		b = AppendString(b, userID)
	}
	return append(b, '}')
}

// ConnectionEstablished is the handshake message.
func ConnectionEstablished(socketID string, activityTimeoutSeconds int) []byte {
	inner := make([]byte, 0, 64)
	inner = append(inner, `{"socket_id":`...)
	inner = AppendString(inner, socketID)
	inner = append(inner, `,"activity_timeout":`...)
	inner = strconv.AppendInt(inner, int64(activityTimeoutSeconds), 10)
	inner = append(inner, '}')
	return Event(EventConnectionEstablished, "", string(inner))
}

// Error encodes pusher:error with object data. A code of 0 is sent as null
// (Pusher does so for errors that carry no code).
func Error(code int, message string) []byte {
	return ErrorOnChannel(code, message, "")
}

// ErrorOnChannel is Error with a channel field, for channel-scoped errors.
func ErrorOnChannel(code int, message, channel string) []byte {
	b := head(EventError, channel, len(message)+40)
	b = append(b, `,"data":{"code":`...)
	if code == 0 {
		b = append(b, "null"...)
	} else {
		b = strconv.AppendInt(b, int64(code), 10)
	}
	b = append(b, `,"message":`...)
	b = AppendString(b, message)
	return append(b, "}}"...)
}

// Ping and Pong are the emulated ping messages.
func Ping() []byte { return []byte(`{"event":"pusher:ping","data":{}}`) }

// Pong answers pusher:ping.
func Pong() []byte { return []byte(`{"event":"pusher:pong","data":{}}`) }

// SubscriptionSucceeded is the success of a non-presence subscription.
func SubscriptionSucceeded(channel string) []byte {
	return Event(EventSubscriptionSucceeded, channel, "{}")
}

// PresenceSucceeded is the success of a presence subscription with the
// roster: ids, hash (id → user_info, null when absent) and count.
func PresenceSucceeded(channel string, members []Member) []byte {
	inner := make([]byte, 0, 64+len(members)*32)
	inner = append(inner, `{"presence":{"ids":[`...)
	for i, m := range members {
		if i > 0 {
			inner = append(inner, ',')
		}
		inner = AppendString(inner, m.ID)
	}
	inner = append(inner, `],"hash":{`...)
	for i, m := range members {
		if i > 0 {
			inner = append(inner, ',')
		}
		inner = AppendString(inner, m.ID)
		inner = append(inner, ':')
		if len(m.Info) > 0 {
			inner = append(inner, m.Info...)
		} else {
			inner = append(inner, "null"...)
		}
	}
	inner = append(inner, `},"count":`...)
	inner = strconv.AppendInt(inner, int64(len(members)), 10)
	inner = append(inner, "}}"...)
	return Event(EventSubscriptionSucceeded, channel, string(inner))
}

// SubscriptionError is the soketi-style channel-scoped subscription failure
// that pusher-js and Echo's .error() understand.
func SubscriptionError(channel, typ, message string, status int) []byte {
	b := head(EventSubscriptionError, channel, len(message)+64)
	b = append(b, `,"data":{"type":`...)
	b = AppendString(b, typ)
	b = append(b, `,"error":`...)
	b = AppendString(b, message)
	b = append(b, `,"status":`...)
	b = strconv.AppendInt(b, int64(status), 10)
	return append(b, "}}"...)
}

// MemberAdded announces a new presence member to the others.
func MemberAdded(channel string, m Member) []byte {
	inner := make([]byte, 0, 32+len(m.RawID)+len(m.Info))
	inner = append(inner, `{"user_id":`...)
	inner = append(inner, rawID(m)...)
	if len(m.Info) > 0 {
		inner = append(inner, `,"user_info":`...)
		inner = append(inner, m.Info...)
	}
	inner = append(inner, '}')
	return Event(EventMemberAdded, channel, string(inner))
}

// MemberRemoved announces that a member's last socket left.
func MemberRemoved(channel string, m Member) []byte {
	inner := make([]byte, 0, 16+len(m.RawID))
	inner = append(inner, `{"user_id":`...)
	inner = append(inner, rawID(m)...)
	inner = append(inner, '}')
	return Event(EventMemberRemoved, channel, string(inner))
}

func rawID(m Member) []byte {
	if len(m.RawID) > 0 {
		return m.RawID
	}
	return AppendString(nil, m.ID)
}

// CacheMiss tells a cache-channel subscriber that nothing is cached.
func CacheMiss(channel string) []byte {
	b := head(EventCacheMiss, channel, 1)
	return append(b, '}')
}

// SubscriptionCount reports the cluster-wide number of subscriptions.
func SubscriptionCount(channel string, n int) []byte {
	inner := strconv.AppendInt([]byte(`{"subscription_count":`), int64(n), 10)
	inner = append(inner, '}')
	return Event(EventSubscriptionCount, channel, string(inner))
}

// SigninSuccess echoes the signed user_data.
func SigninSuccess(userData string) []byte {
	inner := AppendString([]byte(`{"user_data":`), userData)
	inner = append(inner, '}')
	return Event(EventSigninSuccess, "", string(inner))
}

// WatchlistEvent is one online/offline notice.
type WatchlistEvent struct {
	Name    string // "online" or "offline"
	UserIDs []string
}

// Watchlist encodes pusher_internal:watchlist_events.
func Watchlist(events []WatchlistEvent) []byte {
	inner := []byte(`{"events":[`)
	for i, e := range events {
		if i > 0 {
			inner = append(inner, ',')
		}
		inner = append(inner, `{"name":`...)
		inner = AppendString(inner, e.Name)
		inner = append(inner, `,"user_ids":[`...)
		for j, id := range e.UserIDs {
			if j > 0 {
				inner = append(inner, ',')
			}
			inner = AppendString(inner, id)
		}
		inner = append(inner, "]}"...)
	}
	inner = append(inner, "]}"...)
	return Event(EventWatchlist, "", string(inner))
}
