package protocol

import (
	"errors"
	"strings"
	"testing"
)

func TestClassify(t *testing.T) {
	tests := []struct {
		name string
		want Kind
	}{
		{"my-channel", Public},
		{"", Public},
		{"private", Public},
		{"private_x", Public},
		{"Private-x", Public},
		{"foo-private-x", Public},
		{"foo-presence-x", Public},
		{"xcache-x", Public},
		{"cachex", Public},
		{"server-to-user-1", Public},
		{"#server-to-user", Public},
		{"#other", Public},
		{" private-x", Public},
		{"private-x", Private},
		{"private-", Private},
		{"private-App.Models.User.1", Private},
		{"private-encrypted", Private},
		{"private-encryptedx", Private},
		{"private-cache", Private},
		{"private-presence-x", Private},
		{"private-encrypted-x", PrivateEncrypted},
		{"private-encrypted-", PrivateEncrypted},
		{"private-encrypted-cachex", PrivateEncrypted},
		{"private-encrypted-cache-x", PrivateEncryptedCache},
		{"private-encrypted-cache-", PrivateEncryptedCache},
		{"private-cache-x", PrivateCache},
		{"private-cache-encrypted-x", PrivateCache},
		{"presence-x", Presence},
		{"presence-chat.42", Presence},
		{"presence-", Presence},
		{"presence-cachex", Presence},
		{"presence-private-x", Presence},
		{"presence-cache-x", PresenceCache},
		{"cache-x", Cache},
		{"cache-", Cache},
		{"cache-private-x", Cache},
		{"#server-to-user-1", ServerToUser},
		{"#server-to-user-", ServerToUser},
		{"#server-to-user-private-x", ServerToUser},
	}
	for _, tt := range tests {
		if got := Classify(tt.name); got != tt.want {
			t.Errorf("Classify(%q) = %v, want %v", tt.name, got, tt.want)
		}
	}
}

func TestKindMethods(t *testing.T) {
	tests := []struct {
		k                                               Kind
		str                                             string
		needsAuth, presence, encrypted, cache, clientEv bool
	}{
		{Public, "public", false, false, false, false, false},
		{Private, "private", true, false, false, false, true},
		{PrivateEncrypted, "private-encrypted", true, false, true, false, false},
		{Presence, "presence", true, true, false, false, true},
		{Cache, "cache", false, false, false, true, false},
		{PrivateCache, "private-cache", true, false, false, true, true},
		{PrivateEncryptedCache, "private-encrypted-cache", true, false, true, true, false},
		{PresenceCache, "presence-cache", true, true, false, true, true},
		{ServerToUser, "server-to-user", false, false, false, false, false},
		{Kind(200), "unknown", false, false, false, false, false},
	}
	for _, tt := range tests {
		if got := tt.k.String(); got != tt.str {
			t.Errorf("Kind(%d).String() = %q, want %q", tt.k, got, tt.str)
		}
		if got := tt.k.NeedsAuth(); got != tt.needsAuth {
			t.Errorf("%v.NeedsAuth() = %v, want %v", tt.k, got, tt.needsAuth)
		}
		if got := tt.k.IsPresence(); got != tt.presence {
			t.Errorf("%v.IsPresence() = %v, want %v", tt.k, got, tt.presence)
		}
		if got := tt.k.IsEncrypted(); got != tt.encrypted {
			t.Errorf("%v.IsEncrypted() = %v, want %v", tt.k, got, tt.encrypted)
		}
		if got := tt.k.IsCache(); got != tt.cache {
			t.Errorf("%v.IsCache() = %v, want %v", tt.k, got, tt.cache)
		}
		if got := tt.k.AllowsClientEvents(); got != tt.clientEv {
			t.Errorf("%v.AllowsClientEvents() = %v, want %v", tt.k, got, tt.clientEv)
		}
	}
}

// TestKindInvariants checks relations that must hold whatever the table
// above says.
func TestKindInvariants(t *testing.T) {
	for k := Public; k <= ServerToUser; k++ {
		if k.IsPresence() && !k.NeedsAuth() {
			t.Errorf("%v: presence without auth", k)
		}
		if k.IsEncrypted() && (!k.NeedsAuth() || k.AllowsClientEvents()) {
			t.Errorf("%v: encrypted must need auth and refuse client events", k)
		}
		if k.AllowsClientEvents() && !k.NeedsAuth() {
			t.Errorf("%v: client events on a channel without auth", k)
		}
		// The kind's name, used as a prefix, classifies back to the kind.
		if k != Public && k != ServerToUser {
			if got := Classify(k.String() + "-x"); got != k {
				t.Errorf("Classify(%q) = %v, want %v", k.String()+"-x", got, k)
			}
		}
	}
	if got := Classify(ServerToUserChannel("12345")); got != ServerToUser {
		t.Errorf("Classify(ServerToUserChannel) = %v", got)
	}
	if got, want := ServerToUserChannel("12345"), "#server-to-user-12345"; got != want {
		t.Errorf("ServerToUserChannel = %q, want %q", got, want)
	}
}

func TestValidateChannelName(t *testing.T) {
	const max = 200
	valid := []string{
		"a",
		"my-channel",
		"private-App.Models.User.1",
		"presence-chat.42",
		"private-encrypted-cache-x",
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-=@,.;",
		"-", "_", "=", "@", ",", ".", ";",
		"#server-to-user-1",
		"#server-to-user-abc@example.com",
	}
	for _, name := range valid {
		if err := ValidateChannelName(name, max); err != nil {
			t.Errorf("ValidateChannelName(%q) = %v, want nil", name, err)
		}
	}

	invalid := []struct{ name, why string }{
		{"", "empty"},
		{"a b", "space"},
		{"a\tb", "tab"},
		{"a\nb", "newline"},
		{"a\x00b", "NUL"},
		{"a\x7fb", "DEL"},
		{"a/b", "slash"},
		{"a\\b", "backslash"},
		{"a:b", "colon"},
		{"a#b", "hash inside"},
		{"a*b", "star"},
		{"a?b", "question mark"},
		{"a&b", "ampersand"},
		{"a%b", "percent"},
		{"a+b", "plus"},
		{`a"b`, "quote"},
		{"a'b", "apostrophe"},
		{"a!b", "bang"},
		{"a$b", "dollar"},
		{"a(b)", "parens"},
		{"a[b]", "brackets"},
		{"a{b}", "braces"},
		{"a<b>", "angle brackets"},
		{"a|b", "pipe"},
		{"a~b", "tilde"},
		{"a^b", "caret"},
		{"a`b", "backtick"},
		{"é", "non-ASCII letter"},
		{"private-\u2028", "line separator"},
		{"a\xffb", "invalid UTF-8"},
		{"#", "bare hash"},
		{"#foo", "hash not server-to-user"},
		{"#server-to-user", "hash prefix without dash"},
		{"#server-to-user-", "hash with empty user id"},
		{"#private-x", "hash on private"},
		{"##server-to-user-1", "double hash"},
		{"#server-to-user-a#b", "hash in user id"},
		{"#server-to-user-a b", "space in user id"},
		{"#Server-to-user-1", "hash prefix case"},
		{" my-channel", "leading space"},
		{"my-channel ", "trailing space"},
	}
	for _, tt := range invalid {
		err := ValidateChannelName(tt.name, max)
		if err == nil {
			t.Errorf("ValidateChannelName(%q) [%s] = nil, want error", tt.name, tt.why)
			continue
		}
		if !errors.Is(err, ErrChannelName) {
			t.Errorf("ValidateChannelName(%q) = %v, does not wrap ErrChannelName", tt.name, err)
		}
	}
}

func TestValidateChannelNameMessageIsPrintable(t *testing.T) {
	// The message reaches clients: control bytes and invalid UTF-8 are quoted.
	err := ValidateChannelName("a\x00\xff\nb", 200)
	if err == nil {
		t.Fatal("want error")
	}
	for _, c := range []byte(err.Error()) {
		if c < 0x20 || c >= 0x7f {
			t.Fatalf("message %q contains byte %#x", err, c)
		}
	}
}

func TestValidateChannelNameLength(t *testing.T) {
	for _, max := range []int{1, 20, 164, 200} {
		exact := strings.Repeat("a", max)
		if err := ValidateChannelName(exact, max); err != nil {
			t.Errorf("max %d: name of exactly max bytes: %v", max, err)
		}
		over := strings.Repeat("a", max+1)
		if err := ValidateChannelName(over, max); !errors.Is(err, ErrChannelName) {
			t.Errorf("max %d: name of max+1 bytes: err = %v, want ErrChannelName", max, err)
		}
		// The limit includes prefixes.
		p := "presence-" + strings.Repeat("x", max)
		if err := ValidateChannelName(p[:max], max); err != nil {
			t.Errorf("max %d: prefixed name of exactly max: %v", max, err)
		}
		if err := ValidateChannelName(p[:max+1], max); err == nil {
			t.Errorf("max %d: prefixed name of max+1 accepted", max)
		}
	}
	// #server-to-user- names count the '#'.
	id := strings.Repeat("1", 200-len(PrefixServerToUser))
	if err := ValidateChannelName(PrefixServerToUser+id, 200); err != nil {
		t.Errorf("#server-to-user at exactly 200: %v", err)
	}
	if err := ValidateChannelName(PrefixServerToUser+id+"1", 200); err == nil {
		t.Error("#server-to-user at 201 accepted")
	}
	// maxLen <= 0 disables the limit.
	long := strings.Repeat("a", 100000)
	for _, max := range []int{0, -1} {
		if err := ValidateChannelName(long, max); err != nil {
			t.Errorf("maxLen %d: %v", max, err)
		}
	}
	// The length is checked in bytes, before the characters.
	if err := ValidateChannelName(strings.Repeat("a", 10)+" ", 10); err == nil || !strings.Contains(err.Error(), "longer") {
		t.Errorf("too long and bad char: err = %v, want the length error", err)
	}
}

func TestValidateChannelNameEveryByte(t *testing.T) {
	allowed := "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-=@,.;"
	for c := 0; c < 256; c++ {
		name := "private-a" + string([]byte{byte(c)}) + "b"
		err := ValidateChannelName(name, 200)
		want := strings.IndexByte(allowed, byte(c)) >= 0
		if (err == nil) != want {
			t.Errorf("byte %#x: err = %v, want allowed=%v", c, err, want)
		}
	}
}

func TestValidSocketID(t *testing.T) {
	valid := []string{
		"1.1",
		"0.0",
		"1234.1234",
		"208836.27464492",
		"4294967295.4294967295",
		"00001.00002",
		strings.Repeat("1", 31) + "." + strings.Repeat("2", 32), // 64 bytes
	}
	for _, id := range valid {
		if !ValidSocketID(id) {
			t.Errorf("ValidSocketID(%q) = false, want true", id)
		}
	}
	invalid := []string{
		"",
		".",
		"1.",
		".1",
		"1",
		"12",
		"1..2",
		"1.2.3",
		"a.b",
		"abc.def",
		"1.2a",
		"1a.2",
		"-1.2",
		"1.-2",
		"+1.2",
		" 1.2",
		"1.2 ",
		"1.2\n",
		"1,2",
		"1_2",
		"１.２", // full-width digits
		"550e8400-e29b-41d4-a716-446655440000",
		strings.Repeat("1", 32) + "." + strings.Repeat("2", 32), // 65 bytes
	}
	for _, id := range invalid {
		if ValidSocketID(id) {
			t.Errorf("ValidSocketID(%q) = true, want false", id)
		}
	}
}
