package cluster

import (
	"bytes"
	"encoding/binary"
	"errors"
	"strconv"
	"strings"

	"github.com/herald-ws/herald/internal/hub"
	"github.com/herald-ws/herald/internal/protocol"
)

// codecVersion is the first byte of an encoded broker message. A node that
// receives another version (a newer release during a rolling upgrade)
// drops the message rather than misreading it.
const codecVersion = 1

// maxField bounds every length-prefixed field of a broker message.
const maxField = 1 << 20

var errBadMessage = errors.New("cluster: malformed broker message")

// EncodeMessage appends the wire form of m, published by node origin, to
// dst: a version byte, six uvarint-length-prefixed strings (origin, app,
// channel, except socket, to user, terminate user) and the payload as the
// rest.
func EncodeMessage(dst []byte, origin string, m hub.BrokerMessage) []byte {
	dst = append(dst, codecVersion)
	for _, s := range [...]string{origin, m.AppID, m.Channel, m.ExceptSocketID, m.ToUser, m.TerminateUser} {
		dst = binary.AppendUvarint(dst, uint64(len(s)))
		dst = append(dst, s...)
	}
	return append(dst, m.Payload...)
}

// positionedVersion is the first byte of a history event (m.Position
// set), which the history script publishes: the byte, the epoch, a space,
// the offset in decimal, a newline, then EncodeMessage's form without its
// version byte. The script builds the prefix, so it stays plain text.
const positionedVersion = 2

// DecodeMessage is the inverse of EncodeMessage, and reads what the
// history script publishes. It never panics; garbage gives an error. The
// returned Payload aliases b.
func DecodeMessage(b []byte) (origin string, m hub.BrokerMessage, err error) {
	if len(b) == 0 {
		return "", hub.BrokerMessage{}, errBadMessage
	}
	if b[0] == positionedVersion {
		nl := bytes.IndexByte(b, '\n')
		if nl < 0 {
			return "", hub.BrokerMessage{}, errBadMessage
		}
		epoch, off, ok := strings.Cut(string(b[1:nl]), " ")
		n, perr := strconv.ParseUint(off, 10, 64)
		if !ok || epoch == "" || perr != nil || n == 0 {
			return "", hub.BrokerMessage{}, errBadMessage
		}
		origin, m, err = decodeBody(b[nl+1:])
		if err != nil || m.Channel == "" {
			return "", hub.BrokerMessage{}, errBadMessage
		}
		m.Position = hub.Position{Epoch: epoch, Offset: n}
		return origin, m, nil
	}
	if b[0] != codecVersion {
		return "", hub.BrokerMessage{}, errBadMessage
	}
	return decodeBody(b[1:])
}

// decodeBody decodes EncodeMessage's form after the version byte.
func decodeBody(b []byte) (origin string, m hub.BrokerMessage, err error) {
	var f [6]string
	for i := range f {
		n, k := binary.Uvarint(b)
		if k <= 0 || k != uvarintLen(n) || n > maxField || n > uint64(len(b)-k) {
			return "", hub.BrokerMessage{}, errBadMessage
		}
		f[i] = string(b[k : k+int(n)])
		b = b[k+int(n):]
	}
	m = hub.BrokerMessage{AppID: f[1], Channel: f[2], ExceptSocketID: f[3], ToUser: f[4], TerminateUser: f[5], Payload: b}
	if m.AppID == "" || (m.Channel == "" && m.ToUser == "" && m.TerminateUser == "") {
		return "", hub.BrokerMessage{}, errBadMessage
	}
	return f[0], m, nil
}

// uvarintLen is the length of the minimal encoding of n: decoding accepts
// only that, so that a message has one encoding.
func uvarintLen(n uint64) int {
	k := 1
	for ; n >= 0x80; n >>= 7 {
		k++
	}
	return k
}

// encodeMember stores a presence member as raw user_id "\n" user_info. A
// JSON string or number token never holds a raw newline.
func encodeMember(m *protocol.Member) string {
	return string(m.RawID) + "\n" + string(m.Info)
}

func decodeMember(id, blob string) protocol.Member {
	raw, info, _ := strings.Cut(blob, "\n")
	m := protocol.Member{ID: id}
	if raw != "" {
		m.RawID = []byte(raw)
	} else {
		m.RawID = protocol.AppendString(nil, id)
	}
	if info != "" {
		m.Info = []byte(info)
	}
	return m
}

// encodeCache stores a cache event as uvarint len(event), event, data.
func encodeCache(ev hub.CachedEvent) string {
	b := binary.AppendUvarint(make([]byte, 0, 2+len(ev.Event)+len(ev.Data)), uint64(len(ev.Event)))
	b = append(b, ev.Event...)
	return string(append(b, ev.Data...))
}

func decodeCache(s string) (hub.CachedEvent, bool) {
	n, k := binary.Uvarint([]byte(s[:min(len(s), binary.MaxVarintLen64)]))
	if k <= 0 || n > uint64(len(s)-k) {
		return hub.CachedEvent{}, false
	}
	return hub.CachedEvent{Event: s[k : k+int(n)], Data: s[k+int(n):]}, true
}
