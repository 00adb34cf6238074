package transport

import (
	"encoding/binary"

	"github.com/herald-ws/herald/internal/protocol"
)

// WebSocket opcodes (RFC 6455 §5.2) of the frames this package builds.
const (
	opText  = 0x1
	opClose = 0x8
	opPing  = 0x9
	opPong  = 0xA
	finBit  = 0x80
)

// TextFrame builds a complete server-to-client WebSocket text frame (FIN
// set, no mask, no compression) holding payload, in one slice. The hub
// calls it once per message and passes the result to many Conns.
func TextFrame(payload []byte) []byte {
	return appendFrame(nil, opText, payload)
}

// frameHeaderLen is the length of an unmasked server frame header for a
// payload of n bytes.
func frameHeaderLen(n int) int {
	switch {
	case n < 126:
		return 2
	case n <= 0xFFFF:
		return 4
	default:
		return 10
	}
}

// appendFrame appends one unfragmented, unmasked frame to dst; with a nil
// dst it allocates exactly once.
func appendFrame(dst []byte, opcode byte, payload []byte) []byte {
	n := len(payload)
	h := frameHeaderLen(n)
	if dst == nil {
		dst = make([]byte, 0, h+n)
	}
	switch h {
	case 2:
		dst = append(dst, finBit|opcode, byte(n))
	case 4:
		dst = append(dst, finBit|opcode, 126, byte(n>>8), byte(n))
	default:
		dst = append(dst, finBit|opcode, 127)
		dst = binary.BigEndian.AppendUint64(dst, uint64(n))
	}
	return append(dst, payload...)
}

// closeFrame builds a close frame with code and reason (cut to fit the
// 125-byte control frame limit). Code 0 yields a close frame without a
// body (the answer to a close without a status).
func closeFrame(code int, reason string) []byte {
	if code == 0 {
		return []byte{finBit | opClose, 0}
	}
	if !sendableCloseCode(code) {
		code = protocol.CloseNormal
	}
	reason = protocol.TruncateReason(reason)
	b := make([]byte, 0, 4+len(reason))
	b = append(b, finBit|opClose, byte(2+len(reason)), byte(code>>8), byte(code))
	return append(b, reason...)
}

// sendableCloseCode reports whether code may appear in a close frame
// (RFC 6455 §7.4).
func sendableCloseCode(code int) bool {
	switch {
	case code >= 1000 && code <= 1003, code >= 1007 && code <= 1014:
		return true
	case code >= 3000 && code <= 4999:
		return true
	}
	return false
}
