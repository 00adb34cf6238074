package protocol

import (
	"bytes"
	"encoding/json"
	"strconv"
)

// Herald's channel history (docs/recovery.md): fields that Pusher clients
// ignore. An event on a channel with history carries a top-level
// "position"; a subscription may ask for the events it missed with a
// "recover" field in its data, and is answered with herald:recovery.

// EventRecovery reports the outcome of a recovery request.
const EventRecovery = "herald:recovery"

// Reasons a recovery fails (the "reason" of herald:recovery).
const (
	RecoveryEpochChanged = "epoch_changed"
	RecoveryTooOld       = "too_old"
	RecoveryInvalid      = "invalid"
	RecoveryNoHistory    = "no_history"
	// RecoveryUnavailable: the history could not be read (the cluster's
	// Redis is down); the client should refetch.
	RecoveryUnavailable = "unavailable"
)

// MaxEpochLength bounds the epoch a client sends back; Herald's own are 16
// characters.
const MaxEpochLength = 64

// Recover is the "recover" field of pusher:subscribe: the position of the
// last event the client received on the channel. Valid is false when the
// field was present but malformed (missing or empty epoch, an offset that
// is not a non-negative integer); the subscription goes on and the client
// is told its request was invalid.
type Recover struct {
	Epoch  string
	Offset uint64
	Valid  bool
}

// decodeRecover reads a recover field: {"epoch":"…","offset":n}.
func decodeRecover(raw json.RawMessage) *Recover {
	var w struct {
		Epoch  json.RawMessage `json:"epoch"`
		Offset json.RawMessage `json:"offset"`
	}
	r := &Recover{}
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || raw[0] != '{' || json.Unmarshal(raw, &w) != nil {
		return r
	}
	epoch, ok := jsonString(w.Epoch)
	if !ok || epoch == "" || len(epoch) > MaxEpochLength {
		return r
	}
	// Digits only: no sign, fraction or exponent, and within uint64.
	off := string(bytes.TrimSpace(w.Offset))
	if off == "" || len(off) > 20 || off[0] == '-' || off[0] == '+' {
		return r
	}
	n, err := strconv.ParseUint(off, 10, 64)
	if err != nil {
		return r
	}
	return &Recover{Epoch: epoch, Offset: n, Valid: true}
}

// WithPosition returns a copy of the JSON object message with a top-level
// "position":{"epoch":…,"offset":…} added at its end.
func WithPosition(msg []byte, epoch string, offset uint64) []byte {
	if len(msg) == 0 || msg[len(msg)-1] != '}' {
		return msg
	}
	b := make([]byte, 0, len(msg)+len(epoch)+48)
	b = append(b, msg[:len(msg)-1]...)
	b = append(b, `,"position":`...)
	b = appendPosition(b, epoch, offset)
	return append(b, '}')
}

func appendPosition(b []byte, epoch string, offset uint64) []byte {
	b = append(b, `{"epoch":`...)
	b = AppendString(b, epoch)
	b = append(b, `,"offset":`...)
	b = strconv.AppendUint(b, offset, 10)
	return append(b, '}')
}

// Recovery is herald:recovery: the outcome of a recovery request, its data
// a JSON string as for app events. reason is "" on success (replayed
// events were sent); position is the top the live events continue from.
func Recovery(channel string, recovered bool, reason string, replayed int, epoch string, offset uint64) []byte {
	inner := make([]byte, 0, 96+len(epoch))
	inner = append(inner, `{"recovered":`...)
	inner = strconv.AppendBool(inner, recovered)
	if recovered {
		inner = append(inner, `,"replayed":`...)
		inner = strconv.AppendInt(inner, int64(replayed), 10)
	} else {
		inner = append(inner, `,"reason":`...)
		inner = AppendString(inner, reason)
	}
	inner = append(inner, `,"position":`...)
	inner = appendPosition(inner, epoch, offset)
	inner = append(inner, '}')
	return Event(EventRecovery, channel, string(inner))
}
