package hub

import (
	"fmt"
	"unicode/utf8"

	"github.com/herald-ws/herald/internal/apps"
	"github.com/herald-ws/herald/internal/protocol"
)

// PublishProblem names what is wrong with a publish request.
type PublishProblem uint8

// The problems ValidatePublish finds, in the order it checks them.
const (
	// NoEventName: the event name is empty.
	NoEventName PublishProblem = iota + 1
	// EventNameTooLong: more than the app's max_event_name_length characters.
	EventNameTooLong
	// DataTooLarge: the data is over max_event_payload_kb.
	DataTooLarge
	// NoChannels: the event names no channel.
	NoChannels
	// TooManyChannels: more than max_event_channels_at_once.
	TooManyChannels
	// BadChannelName: a channel name breaks the protocol's rules or is
	// longer than max_channel_name_length (Limit then says so).
	BadChannelName
	// EncryptedNotAlone: an encrypted channel with other channels (its
	// data is encrypted for that channel only).
	EncryptedNotAlone
	// BadSocketID: the excluded socket id is not of the form 123.456.
	BadSocketID
)

// PublishError is why ValidatePublish refused a request. Callers word it
// for their audience (the HTTP API names its JSON fields); Error gives a
// plain sentence.
type PublishError struct {
	Problem PublishProblem
	// Limit is the config key of the app limit that refused the request
	// ("" when the request is malformed rather than over a limit).
	Limit string
	// Index is the position in Channels of the channel at fault
	// (BadChannelName, EncryptedNotAlone).
	Index int
	// Got and Max are the measured size or count and the app's limit
	// (EventNameTooLong in characters, DataTooLarge in bytes,
	// TooManyChannels).
	Got, Max int
	// Err is protocol.ValidateChannelName's error (BadChannelName).
	Err error
}

func (e *PublishError) Error() string {
	switch e.Problem {
	case NoEventName:
		return "the event name is empty"
	case EventNameTooLong:
		return fmt.Sprintf("the event name is too long: %d characters, the maximum is %d", e.Got, e.Max)
	case DataTooLarge:
		return fmt.Sprintf("the event data is %d bytes, the maximum is %d", e.Got, e.Max)
	case NoChannels:
		return "the event names no channel"
	case TooManyChannels:
		return fmt.Sprintf("too many channels: %d, the maximum is %d", e.Got, e.Max)
	case BadChannelName:
		return e.Err.Error()
	case EncryptedNotAlone:
		return "an encrypted channel must be triggered alone"
	case BadSocketID:
		return "the socket id must be of the form 1234.5678"
	}
	return "invalid publish request"
}

func (e *PublishError) Unwrap() error { return e.Err }

// ValidatePublish checks an event from a backend (the HTTP API, Laravel's
// redis broadcaster) against the protocol's rules and the app's limits,
// the same for every way in, so that Publish may assume a valid request.
// It removes repeated channel names from req.Channels in place, keeping the
// first of each, so that no subscriber receives the event twice.
func ValidatePublish(app *apps.App, req *PublishRequest) *PublishError {
	if req.Name == "" {
		return &PublishError{Problem: NoEventName}
	}
	if max := app.MaxEventNameLength; max > 0 && len(req.Name) > max {
		if n := utf8.RuneCountInString(req.Name); n > max {
			return &PublishError{Problem: EventNameTooLong, Limit: LimitEventNameLength, Got: n, Max: max}
		}
	}
	if max := app.MaxEventPayloadBytes(); max > 0 && len(req.Data) > max {
		return &PublishError{Problem: DataTooLarge, Limit: LimitEventPayload, Got: len(req.Data), Max: max}
	}
	if len(req.Channels) == 0 {
		return &PublishError{Problem: NoChannels}
	}
	if max := app.MaxEventChannelsAtOnce; max > 0 && len(req.Channels) > max {
		return &PublishError{Problem: TooManyChannels, Limit: LimitEventChannels, Got: len(req.Channels), Max: max}
	}
	for i, ch := range req.Channels {
		if err := protocol.ValidateChannelName(ch, app.MaxChannelNameLength); err != nil {
			e := &PublishError{Problem: BadChannelName, Index: i, Err: err}
			if max := app.MaxChannelNameLength; max > 0 && len(ch) > max {
				e.Limit = LimitChannelNameLength
			}
			return e
		}
	}
	req.Channels = dedupe(req.Channels)
	if len(req.Channels) > 1 {
		for i, ch := range req.Channels {
			if protocol.Classify(ch).IsEncrypted() {
				return &PublishError{Problem: EncryptedNotAlone, Index: i, Got: len(req.Channels)}
			}
		}
	}
	if req.ExceptSocketID != "" && !protocol.ValidSocketID(req.ExceptSocketID) {
		return &PublishError{Problem: BadSocketID}
	}
	return nil
}

// dedupe removes repeated channel names, keeping the first of each. It
// reuses list when it can.
func dedupe(list []string) []string {
	if len(list) < 2 {
		return list
	}
	out := list[:1]
	if len(list) <= 16 {
	outer:
		for _, ch := range list[1:] {
			for _, seen := range out {
				if seen == ch {
					continue outer
				}
			}
			out = append(out, ch)
		}
		return out
	}
	seen := make(map[string]struct{}, len(list))
	seen[list[0]] = struct{}{}
	for _, ch := range list[1:] {
		if _, dup := seen[ch]; !dup {
			seen[ch] = struct{}{}
			out = append(out, ch)
		}
	}
	return out
}
