package protocol

import (
	"errors"
	"fmt"
	"strings"
)

// Kind is the type of a channel, decided by its name prefix alone.
type Kind uint8

// Channel kinds, in the order their prefixes are tested (§4.2).
const (
	Public Kind = iota
	Private
	PrivateEncrypted
	Presence
	Cache
	PrivateCache
	PrivateEncryptedCache
	PresenceCache
	ServerToUser
)

// Channel name prefixes.
const (
	PrefixPrivateEncryptedCache = "private-encrypted-cache-"
	PrefixPrivateEncrypted      = "private-encrypted-"
	PrefixPrivateCache          = "private-cache-"
	PrefixPrivate               = "private-"
	PrefixPresenceCache         = "presence-cache-"
	PrefixPresence              = "presence-"
	PrefixCache                 = "cache-"
	PrefixServerToUser          = "#server-to-user-"
)

// Classify returns the kind of the channel called name. Prefixes are anchored
// at the start of the name ("foo-private-x" is public).
func Classify(name string) Kind {
	switch {
	case strings.HasPrefix(name, PrefixPrivateEncryptedCache):
		return PrivateEncryptedCache
	case strings.HasPrefix(name, PrefixPrivateEncrypted):
		return PrivateEncrypted
	case strings.HasPrefix(name, PrefixPrivateCache):
		return PrivateCache
	case strings.HasPrefix(name, PrefixPrivate):
		return Private
	case strings.HasPrefix(name, PrefixPresenceCache):
		return PresenceCache
	case strings.HasPrefix(name, PrefixPresence):
		return Presence
	case strings.HasPrefix(name, PrefixCache):
		return Cache
	case strings.HasPrefix(name, PrefixServerToUser):
		return ServerToUser
	}
	return Public
}

// NeedsAuth reports whether subscribing requires a channel signature.
func (k Kind) NeedsAuth() bool {
	switch k {
	case Private, PrivateEncrypted, Presence, PrivateCache, PrivateEncryptedCache, PresenceCache:
		return true
	}
	return false
}

// IsPresence reports whether the channel keeps a member roster.
func (k Kind) IsPresence() bool { return k == Presence || k == PresenceCache }

// IsEncrypted reports whether payloads are end-to-end encrypted.
func (k Kind) IsEncrypted() bool { return k == PrivateEncrypted || k == PrivateEncryptedCache }

// IsCache reports whether the channel remembers its last API event.
func (k Kind) IsCache() bool {
	switch k {
	case Cache, PrivateCache, PrivateEncryptedCache, PresenceCache:
		return true
	}
	return false
}

// AllowsClientEvents reports whether client-* events may be sent on the
// channel (private and presence, never encrypted).
func (k Kind) AllowsClientEvents() bool {
	switch k {
	case Private, PrivateCache, Presence, PresenceCache:
		return true
	}
	return false
}

// String names the kind as the dashboard and metrics label it.
func (k Kind) String() string {
	switch k {
	case Public:
		return "public"
	case Private:
		return "private"
	case PrivateEncrypted:
		return "private-encrypted"
	case Presence:
		return "presence"
	case Cache:
		return "cache"
	case PrivateCache:
		return "private-cache"
	case PrivateEncryptedCache:
		return "private-encrypted-cache"
	case PresenceCache:
		return "presence-cache"
	case ServerToUser:
		return "server-to-user"
	}
	return "unknown"
}

// ErrChannelName is wrapped by every channel-name validation error.
var ErrChannelName = errors.New("invalid channel name")

// ValidateChannelName checks a channel name against Pusher's rules: the
// characters [-a-zA-Z0-9_=@,.;], at most maxLen bytes, and a leading '#'
// only for #server-to-user-{id}.
func ValidateChannelName(name string, maxLen int) error {
	if name == "" {
		return fmt.Errorf("%w: empty", ErrChannelName)
	}
	if maxLen > 0 && len(name) > maxLen {
		return fmt.Errorf("%w: longer than %d characters", ErrChannelName, maxLen)
	}
	rest := name
	if name[0] == '#' {
		if !strings.HasPrefix(name, PrefixServerToUser) || len(name) == len(PrefixServerToUser) {
			return fmt.Errorf("%w: %q: only #server-to-user-{id} may start with #", ErrChannelName, name)
		}
		rest = name[1:]
	}
	for i := 0; i < len(rest); i++ {
		if !channelChar(rest[i]) {
			return fmt.Errorf("%w: %q: character %q is not allowed (allowed: A-Z a-z 0-9 _ - = @ , . ;)", ErrChannelName, name, rest[i])
		}
	}
	return nil
}

func channelChar(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	switch c {
	case '-', '_', '=', '@', ',', '.', ';':
		return true
	}
	return false
}

// ServerToUserChannel returns the channel on which user id receives
// server-to-user events.
func ServerToUserChannel(userID string) string { return PrefixServerToUser + userID }

// ValidSocketID reports whether id has the form \d+\.\d+ that the server
// SDKs require.
func ValidSocketID(id string) bool {
	dot := strings.IndexByte(id, '.')
	if dot <= 0 || dot == len(id)-1 || len(id) > 64 {
		return false
	}
	for i := 0; i < len(id); i++ {
		if i != dot && (id[i] < '0' || id[i] > '9') {
			return false
		}
	}
	return true
}
