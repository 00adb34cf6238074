package ingest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/herald-ws/herald/internal/protocol"
)

// Message is one event as Laravel's RedisBroadcaster published it,
// ready for hub.PublishRequest.
type Message struct {
	// Channel is the channel name without the Redis prefix.
	Channel string
	// Event is the event name (the broadcastAs name or the class name).
	Event string
	// Data is the event's payload as clients receive it: the JSON text of
	// data, without the "socket" member Laravel leaves in it, exactly as
	// the pusher broadcaster sends it.
	Data string
	// Socket is the socket id that must not receive the event
	// (broadcast(...)->toOthers()), "" for none.
	Socket string
}

// Parse problems, each a value of the result label of the metrics.
var (
	// ErrNotJSON: the payload is not a JSON object.
	ErrNotJSON = errors.New("not a JSON object")
	// ErrBadPayload: a field is missing or of the wrong type.
	ErrBadPayload = errors.New("bad payload")
)

// wireMessage is RedisBroadcaster::broadcast's json_encode of
// ['event' => $event, 'data' => $payload, 'socket' => $socket].
type wireMessage struct {
	Event  *string         `json:"event"`
	Data   json.RawMessage `json:"data"`
	Socket *string         `json:"socket"`
}

// Parse reads one message that arrived on redisChannel (prefix included).
// It checks the shape only; the protocol's rules and the app's limits are
// hub.ValidatePublish's.
func Parse(prefix, redisChannel string, payload []byte) (Message, error) {
	var m Message
	ch, ok := strings.CutPrefix(redisChannel, prefix)
	if !ok {
		return m, fmt.Errorf("%w: channel %q lacks the prefix %q", ErrBadPayload, clip(redisChannel), prefix)
	}
	m.Channel = ch
	t := bytes.TrimLeft(payload, " \t\r\n")
	if len(t) == 0 || t[0] != '{' {
		return m, ErrNotJSON
	}
	var w wireMessage
	if err := json.Unmarshal(t, &w); err != nil {
		if _, ok := errors.AsType[*json.UnmarshalTypeError](err); ok {
			return m, fmt.Errorf("%w: %v", ErrBadPayload, err)
		}
		return m, fmt.Errorf("%w: %v", ErrNotJSON, err)
	}
	if w.Event == nil {
		return m, fmt.Errorf("%w: no \"event\" string", ErrBadPayload)
	}
	m.Event = *w.Event
	if w.Socket != nil {
		m.Socket = *w.Socket
	}
	data := bytes.TrimSpace(w.Data)
	if len(data) == 0 || (data[0] != '{' && data[0] != '[') {
		return m, fmt.Errorf("%w: \"data\" must be an object or an array (the event's broadcastWith)", ErrBadPayload)
	}
	if data[0] == '{' {
		d, err := withoutSocket(data)
		if err != nil {
			return m, fmt.Errorf("%w: %v", ErrNotJSON, err)
		}
		data = d
	}
	m.Data = string(data)
	return m, nil
}

// withoutSocket returns the JSON object obj without its "socket" member,
// every other member byte for byte. Laravel's BroadcastEvent adds socket to
// the payload, the redis broadcaster leaves it in data while the pusher
// broadcaster takes it out; clients get what the pusher broadcaster sends,
// including PHP's "[]" for an array left empty.
func withoutSocket(obj []byte) ([]byte, error) {
	dec := json.NewDecoder(bytes.NewReader(obj))
	if _, err := dec.Token(); err != nil { // {
		return nil, err
	}
	out := make([]byte, 0, len(obj))
	out = append(out, '{')
	found, n := false, 0
	for dec.More() {
		start := dec.InputOffset()
		tok, err := dec.Token()
		if err != nil {
			return nil, err
		}
		key, _ := tok.(string)
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return nil, err
		}
		if key == "socket" {
			found = true
			continue
		}
		member := bytes.TrimLeft(obj[start:dec.InputOffset()], " \t\r\n,")
		if n > 0 {
			out = append(out, ',')
		}
		out = append(out, member...)
		n++
	}
	if _, err := dec.Token(); err != nil { // }
		return nil, err
	}
	if !found {
		return obj, nil
	}
	if n == 0 {
		return []byte("[]"), nil
	}
	return append(out, '}'), nil
}

// clip shortens s for a log line.
func clip(s string) string {
	return protocol.Clip(s, 64)
}
