package protocol

import (
	"encoding/json"
	"testing"
)

// TestJSONStringMatchesDecoder: the fast path gives what encoding/json
// gives for every string token, escaped or not, and refuses non-strings.
func TestJSONStringMatchesDecoder(t *testing.T) {
	for _, raw := range []string{`"pusher:subscribe"`, `""`, `"caf\u00e9 \"q\" \\ \n"`, `"é 🎉"`, `"a\/b"`, "\"\xfc\"", "\"ab\xe2\x82\"", `null`, `12`, `{"a":1}`, `"`} {
		got, ok := jsonString(json.RawMessage(raw))
		var want string
		werr := json.Unmarshal([]byte(raw), &want)
		wantOK := werr == nil && len(raw) > 0 && raw[0] == '"'
		if ok != wantOK || (ok && got != want) {
			t.Errorf("jsonString(%s) = %q, %v; encoding/json: %q, %v", raw, got, ok, want, wantOK)
		}
	}
}
