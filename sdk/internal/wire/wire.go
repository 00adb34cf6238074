// Package wire holds what the client and server packages share about the
// Pusher protocol: the HMAC signatures of channel authorization and user
// authentication, the per-channel key of end-to-end encrypted channels and
// the NaCl secretbox envelope their events travel in. It does no I/O.
package wire

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strings"

	"golang.org/x/crypto/nacl/secretbox"
)

// HMAC returns the lower-case hex HMAC-SHA256 of msg keyed with secret, the
// form every Pusher signature takes.
func HMAC(secret, msg string) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(msg))
	return hex.EncodeToString(m.Sum(nil))
}

// ChannelAuth is the "auth" token of a private or presence subscription:
// "{key}:{hmac(socketID:channel[:channelData])}".
func ChannelAuth(key, secret, socketID, channel, channelData string) string {
	msg := socketID + ":" + channel
	if channelData != "" {
		msg += ":" + channelData
	}
	return key + ":" + HMAC(secret, msg)
}

// UserAuth is the "auth" token of a sign-in: "{key}:{hmac(socketID::user::userData)}".
func UserAuth(key, secret, socketID, userData string) string {
	return key + ":" + HMAC(secret, socketID+"::user::"+userData)
}

var socketIDRe = regexp.MustCompile(`\A\d+\.\d+\z`)

// ValidSocketID reports whether id has the "digits.digits" form the
// official SDKs require.
func ValidSocketID(id string) bool { return socketIDRe.MatchString(id) }

var channelRe = regexp.MustCompile(`\A#?[-a-zA-Z0-9_=@,.;]+\z`)

// ValidChannel reports whether name is a legal channel name (at most 200
// bytes, Pusher's character set).
func ValidChannel(name string) bool { return len(name) <= 200 && channelRe.MatchString(name) }

// Channel kinds by prefix, tested in this order (pusher-protocol §4.2).
const (
	PrefixPrivateEncrypted = "private-encrypted-"
	PrefixPrivate          = "private-"
	PrefixPresence         = "presence-"
	PrefixServerToUser     = "#server-to-user-"
)

// IsEncrypted reports whether channel is end-to-end encrypted.
func IsEncrypted(channel string) bool { return strings.HasPrefix(channel, PrefixPrivateEncrypted) }

// IsPresence reports whether channel is a presence channel.
func IsPresence(channel string) bool { return strings.HasPrefix(channel, PrefixPresence) }

// IsPrivate reports whether channel needs a private-channel signature
// (private-, private-cache-, private-encrypted-).
func IsPrivate(channel string) bool { return strings.HasPrefix(channel, PrefixPrivate) }

// SharedSecret derives an encrypted channel's key from the master key the
// way pusher-http-node and pusher-http-php do: sha256(channel ‖ masterKey).
func SharedSecret(channel string, masterKey []byte) [32]byte {
	h := sha256.New()
	h.Write([]byte(channel))
	h.Write(masterKey)
	var k [32]byte
	copy(k[:], h.Sum(nil))
	return k
}

// Envelope is the JSON form of an encrypted event's data.
type Envelope struct {
	Nonce      string `json:"nonce"`
	Ciphertext string `json:"ciphertext"`
}

// Encrypt seals plaintext with key and returns the JSON envelope.
func Encrypt(key [32]byte, plaintext []byte) (string, error) {
	var nonce [24]byte
	if _, err := rand.Read(nonce[:]); err != nil {
		return "", fmt.Errorf("nonce: %w", err)
	}
	box := secretbox.Seal(nil, plaintext, &nonce, &key)
	b, err := json.Marshal(Envelope{
		Nonce:      base64.StdEncoding.EncodeToString(nonce[:]),
		Ciphertext: base64.StdEncoding.EncodeToString(box),
	})
	if err != nil {
		return "", err
	}
	return string(b), nil
}

// ErrDecrypt is returned when an encrypted event cannot be opened with the
// channel's key (wrong or rotated key, or a tampered payload).
var ErrDecrypt = errors.New("cannot decrypt event (wrong key or tampered data)")

// Decrypt opens the JSON envelope data with key.
func Decrypt(key [32]byte, data []byte) ([]byte, error) {
	var env Envelope
	if err := json.Unmarshal(data, &env); err != nil {
		return nil, fmt.Errorf("encrypted event data is not a {nonce, ciphertext} object: %w", err)
	}
	nonce, err := base64.StdEncoding.DecodeString(env.Nonce)
	if err != nil || len(nonce) != 24 {
		return nil, fmt.Errorf("encrypted event nonce is not 24 bytes of base64")
	}
	box, err := base64.StdEncoding.DecodeString(env.Ciphertext)
	if err != nil {
		return nil, fmt.Errorf("encrypted event ciphertext is not base64: %w", err)
	}
	var n [24]byte
	copy(n[:], nonce)
	out, ok := secretbox.Open(nil, box, &n, &key)
	if !ok {
		return nil, ErrDecrypt
	}
	return out, nil
}

// DecodeKey decodes a base64 32-byte key (a shared_secret or a master key).
func DecodeKey(b64 string) ([32]byte, error) {
	var k [32]byte
	raw, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		return k, fmt.Errorf("key is not base64: %w", err)
	}
	if len(raw) != 32 {
		return k, fmt.Errorf("key is %d bytes, want 32", len(raw))
	}
	copy(k[:], raw)
	return k, nil
}
