package protocol

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"
)

// Event names of the protocol.
const (
	EventConnectionEstablished = "pusher:connection_established"
	EventError                 = "pusher:error"
	EventPing                  = "pusher:ping"
	EventPong                  = "pusher:pong"
	EventSubscribe             = "pusher:subscribe"
	EventUnsubscribe           = "pusher:unsubscribe"
	EventSignin                = "pusher:signin"
	EventSigninSuccess         = "pusher:signin_success"
	EventCacheMiss             = "pusher:cache_miss"
	EventSubscriptionError     = "pusher:subscription_error"
	EventSubscriptionSucceeded = "pusher_internal:subscription_succeeded"
	EventMemberAdded           = "pusher_internal:member_added"
	EventMemberRemoved         = "pusher_internal:member_removed"
	EventSubscriptionCount     = "pusher_internal:subscription_count"
	EventWatchlist             = "pusher_internal:watchlist_events"

	PrefixPusherEvent = "pusher:"
	PrefixInternal    = "pusher_internal:"
	PrefixClientEvent = "client-"
)

// Message is one decoded client → server frame.
type Message struct {
	Event   string
	Channel string
	// Data is the raw JSON of the data field (nil when absent), kept
	// byte-for-byte so that client events are relayed unchanged.
	Data json.RawMessage
}

// ErrMessage is wrapped by every client-message decoding error; its text is
// what the client is told in a pusher:error frame.
var ErrMessage = errors.New("invalid message")

type wireMessage struct {
	Event   json.RawMessage `json:"event"`
	Channel json.RawMessage `json:"channel"`
	Data    json.RawMessage `json:"data"`
}

// DecodeMessage parses a client frame: a JSON object with a string event, an
// optional string channel and any data. The frame must be valid UTF-8
// (RFC 8259 §8.1): Data is relayed byte-for-byte to other clients, whose
// WebSocket stacks fail the connection on a text frame that is not.
func DecodeMessage(b []byte) (Message, error) {
	b = bytes.TrimSpace(b)
	if len(b) == 0 || b[0] != '{' || !utf8.Valid(b) {
		return Message{}, fmt.Errorf("%w: not valid JSON", ErrMessage)
	}
	if m, ok := decodeMessageFast(b); ok {
		return m, nil
	}
	return decodeMessageJSON(b)
}

// decodeMessageJSON is DecodeMessage through encoding/json, for what the
// fast path declines (fastjson.go).
func decodeMessageJSON(b []byte) (Message, error) {
	var w wireMessage
	if err := json.Unmarshal(b, &w); err != nil {
		return Message{}, fmt.Errorf("%w: not valid JSON", ErrMessage)
	}
	var m Message
	var ok bool
	if m.Event, ok = jsonString(w.Event); !ok || m.Event == "" {
		return Message{}, fmt.Errorf("%w: the event field must be a non-empty string", ErrMessage)
	}
	if len(w.Channel) > 0 && !isNull(w.Channel) {
		if m.Channel, ok = jsonString(w.Channel); !ok {
			return Message{}, fmt.Errorf("%w: the channel field must be a string", ErrMessage)
		}
	}
	if len(w.Data) > 0 && !isNull(w.Data) {
		m.Data = w.Data
	}
	return m, nil
}

func isNull(b json.RawMessage) bool { return string(b) == "null" }

// jsonString decodes raw, one JSON value already validated by
// json.Unmarshal, when it is a string. Without escapes and in valid UTF-8
// its bytes between the quotes are the string (valid JSON has no raw
// control characters), which spares a second decoder for every event and
// channel name; invalid UTF-8 goes to encoding/json, which replaces it
// with U+FFFD as it does everywhere else.
func jsonString(raw json.RawMessage) (string, bool) {
	if len(raw) < 2 || raw[0] != '"' {
		return "", false
	}
	if in := raw[1 : len(raw)-1]; bytes.IndexByte(in, '\\') < 0 && utf8.Valid(in) {
		return string(in), true
	}
	var s string
	if json.Unmarshal(raw, &s) != nil {
		return "", false
	}
	return s, true
}

// objectData returns the data as a JSON object: either the object itself or
// a string whose content is a JSON object (some clients double-encode).
func objectData(data json.RawMessage, into any) error {
	if len(data) == 0 {
		return fmt.Errorf("%w: data is required", ErrMessage)
	}
	if data[0] == '"' {
		var s string
		if err := json.Unmarshal(data, &s); err != nil {
			return fmt.Errorf("%w: data is not valid JSON", ErrMessage)
		}
		data = json.RawMessage(s)
	}
	data = bytes.TrimSpace(data)
	if len(data) == 0 || data[0] != '{' {
		return fmt.Errorf("%w: data must be a JSON object", ErrMessage)
	}
	if err := json.Unmarshal(data, into); err != nil {
		return fmt.Errorf("%w: data has a field of the wrong type", ErrMessage)
	}
	return nil
}

// Subscribe is the data of pusher:subscribe.
type Subscribe struct {
	Channel string
	Auth    string
	// ChannelData is the exact presence channel_data string the signature
	// covers; empty when absent.
	ChannelData string
	// ChannelDataNotString is set when channel_data arrived as something
	// other than a string, which no signature can cover.
	ChannelDataNotString bool
	// Recover, when not nil, asks for the events missed since a position
	// (Herald's channel history, history.go).
	Recover *Recover
}

// DecodeSubscribe decodes the data of pusher:subscribe.
func DecodeSubscribe(data json.RawMessage) (Subscribe, error) {
	if s, ok := decodeSubscribeFast(data); ok {
		return s, nil
	}
	return decodeSubscribeJSON(data)
}

// decodeSubscribeJSON is DecodeSubscribe through encoding/json, for what
// the fast path declines.
func decodeSubscribeJSON(data json.RawMessage) (Subscribe, error) {
	var w struct {
		Channel     *string         `json:"channel"`
		Auth        json.RawMessage `json:"auth"`
		ChannelData json.RawMessage `json:"channel_data"`
		Recover     json.RawMessage `json:"recover"`
	}
	if err := objectData(data, &w); err != nil {
		return Subscribe{}, err
	}
	if w.Channel == nil {
		return Subscribe{}, fmt.Errorf("%w: data.channel is required", ErrMessage)
	}
	s := Subscribe{Channel: *w.Channel}
	if len(w.Auth) > 0 && !isNull(w.Auth) {
		if json.Unmarshal(w.Auth, &s.Auth) != nil {
			return Subscribe{}, fmt.Errorf("%w: data.auth must be a string", ErrMessage)
		}
	}
	if len(w.ChannelData) > 0 && !isNull(w.ChannelData) {
		if w.ChannelData[0] != '"' || json.Unmarshal(w.ChannelData, &s.ChannelData) != nil {
			s.ChannelDataNotString = true
		}
	}
	if len(w.Recover) > 0 && !isNull(w.Recover) {
		s.Recover = decodeRecover(w.Recover)
	}
	return s, nil
}

// DecodeChannelOnly decodes data of the form {"channel": "..."}
// (pusher:unsubscribe).
func DecodeChannelOnly(data json.RawMessage) (string, error) {
	if name, ok := decodeChannelOnlyFast(data); ok {
		return name, nil
	}
	return decodeChannelOnlyJSON(data)
}

// decodeChannelOnlyJSON is DecodeChannelOnly through encoding/json, for
// what the fast path declines.
func decodeChannelOnlyJSON(data json.RawMessage) (string, error) {
	var w struct {
		Channel *string `json:"channel"`
	}
	if err := objectData(data, &w); err != nil {
		return "", err
	}
	if w.Channel == nil {
		return "", fmt.Errorf("%w: data.channel is required", ErrMessage)
	}
	return *w.Channel, nil
}

// Signin is the data of pusher:signin.
type Signin struct {
	Auth     string
	UserData string
}

// DecodeSignin decodes the data of pusher:signin.
func DecodeSignin(data json.RawMessage) (Signin, error) {
	var w struct {
		Auth     *string `json:"auth"`
		UserData *string `json:"user_data"`
	}
	if err := objectData(data, &w); err != nil {
		return Signin{}, err
	}
	if w.Auth == nil || w.UserData == nil {
		return Signin{}, fmt.Errorf("%w: data.auth and data.user_data are required strings", ErrMessage)
	}
	return Signin{Auth: *w.Auth, UserData: *w.UserData}, nil
}

// Member is one presence member as given in channel_data.
type Member struct {
	// ID is the user id in string form: the roster key.
	ID string
	// RawID is user_id as received (a JSON string or number), echoed in
	// member_added and member_removed.
	RawID json.RawMessage
	// Info is user_info as raw JSON, or nil when absent.
	Info json.RawMessage
}

// ParseChannelData decodes presence channel_data:
// {"user_id": string|number, "user_info": any}.
func ParseChannelData(s string) (Member, error) {
	var w struct {
		UserID   json.RawMessage `json:"user_id"`
		UserInfo json.RawMessage `json:"user_info"`
	}
	t := strings.TrimSpace(s)
	if len(t) == 0 || t[0] != '{' || json.Unmarshal([]byte(t), &w) != nil {
		return Member{}, fmt.Errorf("%w: channel_data must be a JSON object", ErrMessage)
	}
	id, ok := userIDString(w.UserID)
	if !ok {
		return Member{}, fmt.Errorf("%w: channel_data.user_id must be a non-empty string or a number", ErrMessage)
	}
	m := Member{ID: id, RawID: w.UserID}
	if len(w.UserInfo) > 0 && !isNull(w.UserInfo) {
		m.Info = w.UserInfo
	}
	return m, nil
}

func userIDString(raw json.RawMessage) (string, bool) {
	if len(raw) == 0 {
		return "", false
	}
	switch raw[0] {
	case '"':
		var s string
		if json.Unmarshal(raw, &s) != nil || s == "" {
			return "", false
		}
		return s, true
	case '-', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9':
		var n json.Number
		if json.Unmarshal(raw, &n) != nil {
			return "", false
		}
		return n.String(), true
	}
	return "", false
}

// UserData is the signed-in user as given in pusher:signin user_data.
type UserData struct {
	ID        string
	Info      json.RawMessage
	Watchlist []string
}

// ParseUserData decodes sign-in user_data; id must be a non-empty string
// (pusher-js rejects anything else).
func ParseUserData(s string) (UserData, error) {
	var w struct {
		ID        json.RawMessage `json:"id"`
		UserInfo  json.RawMessage `json:"user_info"`
		Watchlist []string        `json:"watchlist"`
	}
	t := strings.TrimSpace(s)
	if len(t) == 0 || t[0] != '{' || json.Unmarshal([]byte(t), &w) != nil {
		return UserData{}, fmt.Errorf("%w: user_data must be a JSON object", ErrMessage)
	}
	if len(w.ID) == 0 || w.ID[0] != '"' {
		return UserData{}, fmt.Errorf("%w: user_data.id must be a non-empty string", ErrMessage)
	}
	var id string
	if json.Unmarshal(w.ID, &id) != nil || id == "" {
		return UserData{}, fmt.Errorf("%w: user_data.id must be a non-empty string", ErrMessage)
	}
	u := UserData{ID: id, Watchlist: w.Watchlist}
	if len(w.UserInfo) > 0 && !isNull(w.UserInfo) {
		u.Info = w.UserInfo
	}
	return u, nil
}
