package wire

import (
	"bytes"
	"testing"
)

// FuzzDecrypt: an encrypted event's data comes from the network; opening
// it never panics, and what Encrypt seals opens to the same bytes.
func FuzzDecrypt(f *testing.F) {
	key := SharedSecret("private-encrypted-x", make([]byte, 32))
	sealed, _ := Encrypt(key, []byte(`{"a":1}`))
	f.Add([]byte(sealed), []byte("x"))
	f.Add([]byte(`{"nonce":"","ciphertext":""}`), []byte{})
	f.Fuzz(func(t *testing.T, data, plain []byte) {
		_, _ = Decrypt(key, data)
		env, err := Encrypt(key, plain)
		if err != nil {
			t.Fatal(err)
		}
		got, err := Decrypt(key, []byte(env))
		if err != nil || !bytes.Equal(got, plain) {
			t.Fatalf("round trip: %q %v", got, err)
		}
	})
}
