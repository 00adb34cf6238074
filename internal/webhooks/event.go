package webhooks

import (
	"bytes"
	"encoding/json"
	"strconv"
	"strings"

	"github.com/herald-ws/herald/internal/protocol"
)

// kind is a webhook event type.
type kind uint8

const (
	kindChannelOccupied kind = iota
	kindChannelVacated
	kindMemberAdded
	kindMemberRemoved
	kindClientEvent
	kindCacheMiss
	kindSubscriptionCount
	numKinds
)

// kindNames are the event type names, as in the body and in event_types.
var kindNames = [numKinds]string{
	"channel_occupied", "channel_vacated", "member_added", "member_removed",
	"client_event", "cache_miss", "subscription_count",
}

func (k kind) String() string { return kindNames[k] }

func (k kind) bit() uint32 { return 1 << k }

// kindMask returns the set of event types named in types (unknown names are
// ignored: the config validates them).
func kindMask(types []string) uint32 {
	var m uint32
	for _, t := range types {
		for k, name := range kindNames {
			if t == name {
				m |= kind(k).bit()
			}
		}
	}
	return m
}

// event is one observed event, as it waits in the intake queue. It is
// passed by value: queueing it does not allocate.
type event struct {
	kind    kind
	timeMs  int64
	appID   string
	channel string
	userID  string
	// client_event only
	name     string
	data     string // raw JSON as the client sent it ("" when absent)
	socketID string
	// subscription_count only
	count int
}

// size is what an event holds in memory, roughly: its strings and a
// fixed overhead.
func (e *event) size() int64 {
	return int64(96 + len(e.appID) + len(e.channel) + len(e.userID) + len(e.name) + len(e.data) + len(e.socketID))
}

// appendJSON appends the event's webhook object (§8.2) to b.
func (e *event) appendJSON(b []byte) []byte {
	b = append(b, `{"name":"`...)
	b = append(b, kindNames[e.kind]...)
	b = append(b, `","channel":`...)
	b = protocol.AppendString(b, e.channel)
	switch e.kind {
	case kindMemberAdded, kindMemberRemoved:
		b = append(b, `,"user_id":`...)
		b = protocol.AppendString(b, e.userID)
	case kindClientEvent:
		b = append(b, `,"event":`...)
		b = protocol.AppendString(b, e.name)
		if e.data != "" {
			b = append(b, `,"data":`...)
			b = appendDataString(b, e.data)
		}
		b = append(b, `,"socket_id":`...)
		b = protocol.AppendString(b, e.socketID)
		if e.userID != "" && strings.HasPrefix(e.channel, "presence-") {
			b = append(b, `,"user_id":`...)
			b = protocol.AppendString(b, e.userID)
		}
	case kindSubscriptionCount:
		b = append(b, `,"subscription_count":`...)
		b = strconv.AppendInt(b, int64(e.count), 10)
	}
	return append(b, '}')
}

// appendDataString appends client event data as a JSON string: a JSON
// string is kept as it is, any other JSON value is encoded into a string
// (Pusher documents data as a string; clients often send an object).
func appendDataString(b []byte, raw string) []byte {
	t := strings.TrimSpace(raw)
	if len(t) >= 2 && t[0] == '"' && t[len(t)-1] == '"' {
		return append(b, t...)
	}
	var c bytes.Buffer
	return protocol.AppendString(b, compactJSON(&c, t))
}

// compactJSON removes insignificant whitespace from a JSON text; it
// returns s unchanged when it is not valid JSON.
func compactJSON(buf *bytes.Buffer, s string) string {
	if !strings.ContainsAny(s, " \t\r\n") {
		return s
	}
	if err := json.Compact(buf, []byte(s)); err != nil {
		return s
	}
	return buf.String()
}

// encodeBody builds the request body for a batch (§8.1).
func encodeBody(timeMs int64, events []event) []byte {
	n := 32
	for i := range events {
		n += 64 + len(events[i].channel) + len(events[i].data) + len(events[i].name)
	}
	b := make([]byte, 0, n)
	b = append(b, `{"time_ms":`...)
	b = strconv.AppendInt(b, timeMs, 10)
	b = append(b, `,"events":[`...)
	for i := range events {
		if i > 0 {
			b = append(b, ',')
		}
		b = events[i].appendJSON(b)
	}
	return append(b, "]}"...)
}
