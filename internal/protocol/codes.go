package protocol

import (
	"strings"
	"unicode/utf8"
)

// Close and error codes (protocol reference §1.3). The 4000-4099 range makes
// pusher-js give up, 4100-4199 makes it back off, 4200-4299 makes it
// reconnect at once.
const (
	CodeSSLOnly               = 4000
	CodeAppNotFound           = 4001
	CodeAppDisabled           = 4003
	CodeOverQuota             = 4004
	CodePathNotFound          = 4005
	CodeInvalidVersion        = 4006
	CodeUnsupportedProtocol   = 4007
	CodeNoProtocol            = 4008
	CodeUnauthorized          = 4009
	CodeOverCapacity          = 4100
	CodeReconnect             = 4200
	CodePongNotReceived       = 4201
	CodeClosedAfterInactivity = 4202
	CodeClientEventRejected   = 4301
)

// Close codes from RFC 6455 that Herald uses.
const (
	CloseNormal        = 1000
	CloseGoingAway     = 1001
	CloseMessageTooBig = 1009
)

// Lowest and highest protocol versions accepted at the upgrade.
const (
	MinProtocolVersion = 4
	MaxProtocolVersion = 7
)

// TruncateReason shortens a close reason to what fits a close frame (125
// bytes less the 2-byte code), cutting on a UTF-8 boundary. Invalid UTF-8
// is replaced by U+FFFD first: RFC 6455 requires the reason to be UTF-8 and
// browsers fail the connection (losing the close code) when it is not.
func TruncateReason(s string) string {
	const max = 123
	if !utf8.ValidString(s) {
		s = strings.ToValidUTF8(s, "\uFFFD")
	}
	return s[:runeCut(s, max)]
}
