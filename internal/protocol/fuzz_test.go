package protocol

import (
	"bytes"
	"crypto/md5"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

// Seeds shared by the fuzz targets: what pusher-js, Echo and other clients
// really send, plus malformed variants.
var seedFrames = []string{
	`{"event":"pusher:subscribe","data":{"auth":"","channel":"my-channel"}}`,
	`{"event":"pusher:subscribe","data":{"auth":"278d425bdf160c739803:58df8b0c36d6982b82c3ecf6b4662e34fe8c25bba48f5369f135bf843651c3a4","channel":"private-foobar"}}`,
	`{"event":"pusher:subscribe","data":{"auth":"278d425bdf160c739803:31935e7d86dba64c2a90aed31fdc61869f9b22ba9d8863bba239c03ca481bc80","channel_data":"{\"user_id\":10,\"user_info\":{\"name\":\"Mr. Channels\"}}","channel":"presence-foobar"}}`,
	`{"event":"pusher:subscribe","data":"{\"channel\":\"private-foobar\",\"auth\":\"k:s\"}"}`,
	`{"event":"pusher:subscribe","data":{"channel":"presence-a","channel_data":{"user_id":1}}}`,
	`{"event":"pusher:unsubscribe","data":{"channel":"presence-foobar"}}`,
	`{"event":"pusher:signin","data":{"auth":"278d425bdf160c739803:6ca80c154c719885dfec98578ec04007b6b4b221f61821ba13548203ddaeda48","user_data":"{\"id\":\"12345\",\"user_info\":{\"name\":\"Ada\"},\"watchlist\":[\"67\",\"89\"]}"}}`,
	`{"event":"pusher:ping","data":{}}`,
	`{"event":"pusher:pong"}`,
	`{"event":"client-typing","channel":"presence-room.1","data":{"name":"Ada"}}`,
	`{"event":"client-x","channel":"private-a","data":"{\"a\":1}"}`,
	`{"event":"client-x","channel":null,"data":null}`,
	" \n{ \"event\" : \"e\" , \"data\" : [ 1 , 2.5e3 , \"\\u2028\" ] }\n",
	`{"event":"pusher:\u0070ing","channel":"caf\u00e9"}`,
	`{"event":1}`,
	`{"event":"x","channel":2}`,
	`{"channel":"x"}`,
	`[{"event":"x"}]`,
	`"x"`,
	`null`,
	`{`,
	``,
	"{\"event\":\"client-x\",\"data\":\"\xff\"}",
	`{"event":"e","event":"f"}`,
}

func FuzzDecodeMessage(f *testing.F) {
	for _, s := range seedFrames {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := DecodeMessage(b)
		if err != nil {
			if !errors.Is(err, ErrMessage) {
				t.Fatalf("error %v does not wrap ErrMessage", err)
			}
			if m.Event != "" || m.Channel != "" || m.Data != nil {
				t.Fatalf("non-zero Message on error: %+v", m)
			}
			return
		}
		if m.Event == "" {
			t.Fatal("accepted an empty event")
		}
		if m.Data != nil && (!json.Valid(m.Data) || string(m.Data) == "null") {
			t.Fatalf("Data %q is not valid non-null JSON", m.Data)
		}
		if !json.Valid(b) || !utf8.Valid(b) {
			t.Fatalf("accepted %q, which is not valid UTF-8 JSON", b)
		}
		for _, uid := range []string{"", "11"} {
			out := EventRaw(m.Event, m.Channel, m.Data, uid)
			if !utf8.Valid(out) || !json.Valid(out) {
				t.Fatalf("EventRaw(%+v) = %q: not valid UTF-8 JSON", m, out)
			}
			m2, err := DecodeMessage(out)
			if err != nil {
				t.Fatalf("re-decoding %q: %v", out, err)
			}
			if m2.Event != m.Event || m2.Channel != m.Channel || !bytes.Equal(m2.Data, m.Data) {
				t.Fatalf("round trip changed the message:\n%+v\n%+v\nvia %q", m, m2, out)
			}
		}
		// The data decoders must not panic on anything DecodeMessage lets through.
		_, _ = DecodeSubscribe(m.Data)
		_, _ = DecodeSignin(m.Data)
		_, _ = DecodeChannelOnly(m.Data)
	})
}

func FuzzDecodeSubscribe(f *testing.F) {
	for _, s := range seedFrames {
		if m, err := DecodeMessage([]byte(s)); err == nil && m.Data != nil {
			f.Add([]byte(m.Data))
		}
	}
	for _, s := range []string{
		`{"channel":"c","auth":1}`,
		`{"channel":null}`,
		`{"channel":"c","channel_data":""}`,
		`{"channel":"c","channel_data":"{\"user_id\":\"\u2028\"}"}`,
		`"{\"channel\":\"c\"}"`,
		`" {\"channel\":\"c\"} "`,
		`{"channel":"c","recover":{"epoch":"e","offset":42}}`,
		`{"channel":"c","recover":{"epoch":"","offset":-1}}`,
		`{"channel":"c","recover":{"epoch":"e","offset":1e3}}`,
		`{"channel":"c","recover":"x"}`,
		`"[1]"`,
		`[]`,
		` {"channel":"c"}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := DecodeSubscribe(json.RawMessage(b))
		if err != nil {
			if !errors.Is(err, ErrMessage) {
				t.Fatalf("error %v does not wrap ErrMessage", err)
			}
			if !sameSubscribe(s, Subscribe{}) {
				t.Fatalf("non-zero Subscribe on error: %+v", s)
			}
			return
		}
		if s.ChannelDataNotString && s.ChannelData != "" {
			t.Fatalf("ChannelData %q set with ChannelDataNotString", s.ChannelData)
		}
		if !utf8.Valid(b) {
			return
		}
		// Re-encode what was understood: the decoder gives the same back,
		// whether the object is sent as is or double-encoded.
		w := map[string]any{"channel": s.Channel, "auth": s.Auth}
		if r := s.Recover; r != nil && r.Valid {
			w["recover"] = map[string]any{"epoch": r.Epoch, "offset": r.Offset}
		} else if r != nil {
			w["recover"] = map[string]any{"epoch": ""}
		}
		if s.ChannelDataNotString {
			w["channel_data"] = map[string]any{"user_id": 1}
		} else if s.ChannelData != "" {
			w["channel_data"] = s.ChannelData
		}
		obj, err := json.Marshal(w)
		if err != nil {
			t.Fatal(err)
		}
		str, _ := json.Marshal(string(obj))
		for _, enc := range [][]byte{obj, str} {
			s2, err := DecodeSubscribe(enc)
			if err != nil || !sameSubscribe(s2, s) {
				t.Fatalf("re-decoding %s = %+v, %v; want %+v", enc, s2, err, s)
			}
		}
		// The same data inside a frame.
		frame := EventRaw(EventSubscribe, "", json.RawMessage(obj), "")
		m, err := DecodeMessage(frame)
		if err != nil {
			t.Fatalf("frame %s: %v", frame, err)
		}
		if s2, err := DecodeSubscribe(m.Data); err != nil || !sameSubscribe(s2, s) {
			t.Fatalf("subscribe via frame = %+v, %v; want %+v", s2, err, s)
		}
	})
}

// sameSubscribe compares two decoded subscriptions, Recover by value.
func sameSubscribe(a, b Subscribe) bool {
	ra, rb := a.Recover, b.Recover
	a.Recover, b.Recover = nil, nil
	if a != b || (ra == nil) != (rb == nil) {
		return false
	}
	return ra == nil || *ra == *rb
}

// FuzzDecodeRecover holds the recover field's parser to its promise: a
// valid request has a non-empty epoch of at most MaxEpochLength bytes and
// an offset given as plain digits; anything else is marked invalid, never
// an error or a panic.
func FuzzDecodeRecover(f *testing.F) {
	for _, s := range []string{
		`{"epoch":"e","offset":42}`,
		`{"epoch":"e","offset":18446744073709551615}`,
		`{"epoch":"e","offset":18446744073709551616}`,
		`{"epoch":"e","offset":-1}`,
		`{"epoch":"e","offset":4.2}`,
		`{"epoch":"e","offset":"42"}`,
		`{"epoch":1,"offset":1}`,
		`{"offset":1}`,
		`[]`,
		`"x"`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		r := decodeRecover(json.RawMessage(b))
		if r == nil {
			t.Fatal("nil Recover")
		}
		if !r.Valid {
			if r.Epoch != "" || r.Offset != 0 {
				t.Fatalf("invalid request with fields set: %+v", r)
			}
			return
		}
		if r.Epoch == "" || len(r.Epoch) > MaxEpochLength {
			t.Fatalf("valid request with epoch %q", r.Epoch)
		}
		// What was understood re-encodes to the same request.
		enc, _ := json.Marshal(map[string]any{"epoch": r.Epoch, "offset": r.Offset})
		if r2 := decodeRecover(enc); *r2 != *r {
			t.Fatalf("re-decoding %s = %+v, want %+v", enc, r2, r)
		}
	})
}

func FuzzParseChannelData(f *testing.F) {
	for _, s := range []string{
		vecPresenceCD,
		`{"user_id":"10","user_info":{"name":"Ada"}}`,
		`{"user_id":"1"}`,
		`{"user_id":-7,"user_info":null}`,
		`{"user_id":1.5e3,"user_info":"x"}`,
		`{"user_id":12345678901234567890123}`,
		`{"user_id":"\u2028\ud800","user_info":[1,{"a":null}]}`,
		` {"user_id":"1"} `,
		`{"user_id":""}`,
		`{"user_id":true}`,
		`{"user_id":null}`,
		`{"user_info":{}}`,
		`[]`,
		`"x"`,
		``,
		`{"USER_ID":"1"}`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		m, err := ParseChannelData(s)
		if err != nil {
			if !errors.Is(err, ErrMessage) {
				t.Fatalf("error %v does not wrap ErrMessage", err)
			}
			return
		}
		if m.ID == "" {
			t.Fatal("accepted an empty user id")
		}
		if !json.Valid(m.RawID) || (m.RawID[0] != '"' && m.RawID[0] != '-' && (m.RawID[0] < '0' || m.RawID[0] > '9')) {
			t.Fatalf("RawID %q is not a JSON string or number", m.RawID)
		}
		if m.Info != nil && (!json.Valid(m.Info) || string(m.Info) == "null") {
			t.Fatalf("Info %q is not valid non-null JSON", m.Info)
		}
		// Every encoder that carries the member produces valid frames.
		added := MemberAdded("presence-x", m)
		frames := [][]byte{added, MemberRemoved("presence-x", m), PresenceSucceeded("presence-x", []Member{m})}
		for _, fr := range frames {
			if !utf8.Valid(fr) || !json.Valid(fr) {
				t.Fatalf("frame for %+v is not valid UTF-8 JSON: %q", m, fr)
			}
		}
		var pd presenceData
		var outer struct{ Data string }
		if err := json.Unmarshal(frames[2], &outer); err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal([]byte(outer.Data), &pd); err != nil {
			t.Fatalf("roster data %q: %v", outer.Data, err)
		}
		if pd.Presence.Count != 1 || len(pd.Presence.IDs) != 1 || pd.Presence.IDs[0] != m.ID {
			t.Fatalf("roster %+v for member %q", pd, m.ID)
		}
		if _, ok := pd.Presence.Hash[m.ID]; !ok {
			t.Fatalf("roster hash lacks %q", m.ID)
		}
		if !utf8.ValidString(s) {
			return
		}
		// member_added data is channel_data again: it parses to the same member.
		if err := json.Unmarshal(added, &outer); err != nil {
			t.Fatal(err)
		}
		m2, err := ParseChannelData(outer.Data)
		if err != nil || m2.ID != m.ID || !bytes.Equal(m2.RawID, m.RawID) || !bytes.Equal(m2.Info, m.Info) {
			t.Fatalf("member_added data %q parses to %+v, %v; want %+v", outer.Data, m2, err, m)
		}
	})
}

var channelNameRE = regexp.MustCompile(`^#?[-a-zA-Z0-9_=@,.;]+$`)

// refClassify is an independent statement of §4.2.
func refClassify(name string) Kind {
	for _, p := range []struct {
		prefix string
		kind   Kind
	}{
		{"private-encrypted-cache-", PrivateEncryptedCache},
		{"private-encrypted-", PrivateEncrypted},
		{"private-cache-", PrivateCache},
		{"private-", Private},
		{"presence-cache-", PresenceCache},
		{"presence-", Presence},
		{"cache-", Cache},
		{"#server-to-user-", ServerToUser},
	} {
		if len(name) >= len(p.prefix) && name[:len(p.prefix)] == p.prefix {
			return p.kind
		}
	}
	return Public
}

var socketIDRE = regexp.MustCompile(`^[0-9]+\.[0-9]+$`)

func FuzzValidateChannelName(f *testing.F) {
	for _, s := range []string{
		"my-channel", "private-foobar", "presence-foobar", "private-encrypted-cache-x", "presence-cache-x", "cache-btc",
		"private-App.Models.User.1", "#server-to-user-12345", "#server-to-user-", "#foo", "foo-private-x",
		"a b", "é", "\xff", "", "-_=@,.;", "1234.1234", "1.2.3", strings.Repeat("a", 200), strings.Repeat("a", 201),
	} {
		f.Add(s, 200)
	}
	f.Add("private-x", 0)
	f.Add("private-x", -5)
	f.Add("private-x", 9)
	f.Fuzz(func(t *testing.T, name string, maxLen int) {
		err := ValidateChannelName(name, maxLen)
		k := Classify(name)
		if rk := refClassify(name); k != rk {
			t.Fatalf("Classify(%q) = %v, want %v", name, k, rk)
		}
		if (k == ServerToUser) != strings.HasPrefix(name, "#") && (err == nil) {
			t.Fatalf("accepted %q classified %v", name, k)
		}
		want := channelNameRE.MatchString(name) &&
			(name[0] != '#' || (strings.HasPrefix(name, PrefixServerToUser) && len(name) > len(PrefixServerToUser))) &&
			(maxLen <= 0 || len(name) <= maxLen)
		if (err == nil) != want {
			t.Fatalf("ValidateChannelName(%q, %d) = %v, want accepted=%v", name, maxLen, err, want)
		}
		if err != nil {
			if !errors.Is(err, ErrChannelName) {
				t.Fatalf("error %v does not wrap ErrChannelName", err)
			}
			if !utf8.ValidString(err.Error()) {
				t.Fatalf("error message %q is not valid UTF-8", err)
			}
		} else {
			for i := 0; i < len(name); i++ {
				c := name[i]
				if c == '#' && i == 0 {
					continue
				}
				if !strings.ContainsRune("-_=@,.;", rune(c)) && !('a' <= c && c <= 'z') && !('A' <= c && c <= 'Z') && !('0' <= c && c <= '9') {
					t.Fatalf("accepted %q with byte %#x", name, c)
				}
			}
		}
		// Socket ids share the fuzz input.
		if got, want := ValidSocketID(name), socketIDRE.MatchString(name) && len(name) <= 64; got != want {
			t.Fatalf("ValidSocketID(%q) = %v, want %v", name, got, want)
		}
	})
}

// fold returns the first value of name, matching the key case-insensitively;
// ok is false when several spellings of the key are present.
func fold(q url.Values, name string) (v string, ok bool) {
	n := 0
	for k, vs := range q {
		if strings.EqualFold(k, name) {
			n++
			if len(vs) > 0 {
				v = vs[0]
			}
		}
	}
	return v, n <= 1
}

// hasParam reports whether q has name under any spelling.
func hasParam(q url.Values, name string) bool {
	for k := range q {
		if strings.EqualFold(k, name) {
			return true
		}
	}
	return false
}

// withParam returns r with its query parameter name (matched without
// regard to case, every spelling) replaced by the one value v.
func withParam(r SignedRequest, name, v string) SignedRequest {
	q := url.Values{}
	for k, vs := range r.Query {
		if !strings.EqualFold(k, name) {
			q[k] = vs
		}
	}
	q.Set(name, v)
	r.Query = q
	return r
}

func FuzzVerifyRequest(f *testing.F) {
	post := triggerRequest()
	get := channelsRequest()
	f.Add("POST", post.Path, post.Query.Encode(), []byte(vecTriggerBody), int64(0))
	f.Add("GET", get.Path, get.Query.Encode(), []byte(nil), int64(0))
	f.Add("GET", get.Path, get.Query.Encode(), []byte(nil), int64(601))
	f.Add("POST", post.Path, post.Query.Encode(), []byte(vecTriggerBody+" "), int64(-30))
	f.Add("get", "/apps/3/channels", "auth_key=278d425bdf160c739803&auth_timestamp=1353088179&auth_version=1.0&auth_signature=00", []byte(nil), int64(0))
	f.Add("POST", "/apps/3/events", "AUTH_KEY=278d425bdf160c739803&channels[]=a&channels[]=b&body_md5=x", []byte(`{}`), int64(5))
	f.Add("GET", "/apps/3/channels/presence-a%20b/users", "info=user_count&auth_timestamp=-9223372036854775808", []byte(nil), int64(1<<62))
	f.Add("", "", "", []byte(nil), int64(0))
	f.Add("DELETE", "/", "%zz&&==&a=1;b=2", []byte{0xff, 0}, int64(0))
	f.Fuzz(func(t *testing.T, method, path, rawQuery string, body []byte, skew int64) {
		q, _ := url.ParseQuery(rawQuery) // keep what parsed
		if len(body) == 0 {
			body = nil
		}
		now := vecNow.Add(time.Duration(skew%(1<<33)) * time.Second)
		const window = 600 * time.Second
		r := SignedRequest{Method: method, Path: path, Query: q, Body: body}
		err := VerifyRequest(r, vecKey, vecSecret, now, window)
		if err != nil {
			var ae *APIError
			if !errors.As(err, &ae) || ae.Status != 401 || ae.Message == "" {
				t.Fatalf("error %T %v is not a 401 *APIError", err, err)
			}
			if strings.Contains(ae.Message, vecSecret) {
				t.Fatalf("message %q leaks the secret", ae.Message)
			}
		} else {
			// It verified: it must really be signed by us, in time. What
			// the signature covers is pinned by the known answers of the
			// Pusher docs (sign_test.go: TestRequestVectors and
			// TestRequestVectorByteFlips); here, properties only: the
			// signature is bound to the secret and to every byte of itself,
			// and a parameter added afterwards is signed too. (Checks are
			// skipped for a parameter sent under several spellings.)
			if err := VerifyRequest(r, vecKey, vecSecret+"x", now, window); err == nil {
				t.Fatal("verified with another secret")
			}
			if sig, ok := fold(q, "auth_signature"); ok {
				for i := range len(sig) {
					if err := VerifyRequest(withParam(r, "auth_signature", flipByte(sig, i)), vecKey, vecSecret, now, window); err == nil {
						t.Fatalf("verified with byte %d of the signature %q changed", i, sig)
					}
				}
				if !hasParam(q, "zz_added") {
					if err := VerifyRequest(withParam(r, "zz_added", "1"), vecKey, vecSecret, now, window); err == nil {
						t.Fatal("verified with a parameter added after signing")
					}
				}
			}
			if key, ok := fold(q, "auth_key"); ok && key != vecKey {
				t.Fatalf("verified with auth_key %q", key)
			}
			if tsStr, ok := fold(q, "auth_timestamp"); ok {
				ts, perr := strconv.ParseInt(tsStr, 10, 64)
				if perr != nil || ts < now.Unix()-601 || ts > now.Unix()+601 {
					t.Fatalf("verified with auth_timestamp %q at %d", tsStr, now.Unix())
				}
			}
			if md, ok := fold(q, "body_md5"); ok && len(body) > 0 {
				sum := md5.Sum(body)
				if !strings.EqualFold(md, hex.EncodeToString(sum[:])) {
					t.Fatalf("verified with body_md5 %q for body %q", md, body)
				}
			}
		}

		// Whatever the input, signing it makes it verify, and any change to
		// the body, method or path afterwards breaks it.
		sq := SignRequest(method, path, q, body, vecKey, vecSecret, now)
		parsed, perr := url.ParseQuery(sq.Encode())
		if perr != nil {
			t.Fatalf("SignRequest output does not parse: %v", perr)
		}
		sr := SignedRequest{Method: method, Path: path, Query: parsed, Body: body}
		if err := VerifyRequest(sr, vecKey, vecSecret, now, window); err != nil {
			t.Fatalf("SignRequest(%q %q %q %q) does not verify: %v", method, path, rawQuery, body, err)
		}
		if err := VerifyRequest(sr, vecKey, vecSecret, now.Add(window+time.Second), window); err == nil {
			t.Fatal("verified outside the window")
		}
		if len(body) > 0 {
			tb := append([]byte(nil), body...)
			tb[0] ^= 1
			if err := VerifyRequest(SignedRequest{Method: method, Path: path, Query: parsed, Body: tb}, vecKey, vecSecret, now, window); err == nil {
				t.Fatal("verified a tampered body")
			}
		}
		if err := VerifyRequest(SignedRequest{Method: method, Path: path + "x", Query: parsed, Body: body}, vecKey, vecSecret, now, window); err == nil {
			t.Fatal("verified a tampered path")
		}
		if err := VerifyRequest(SignedRequest{Method: method + "X", Path: path, Query: parsed, Body: body}, vecKey, vecSecret, now, window); err == nil {
			t.Fatal("verified a tampered method")
		}
	})
}

func FuzzAppendString(f *testing.F) {
	for _, s := range []string{
		"", "plain", `{"some":"data"}`, `"\`, "\x00\x1f\x7f", "\n\r\t\b\f", "é€😀", "\u2028\u2029", "\uFFFD",
		"\xff", "\xc3", "\xe2\x82", "\xed\xa0\x80", "\xc0\xaf", "\xf4\x90\x80\x80", "</script>&", "1234.1234:private-foobar",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		prefix := []byte(`{"x":`)
		out := AppendString(append([]byte(nil), prefix...), s)
		if !bytes.HasPrefix(out, prefix) {
			t.Fatalf("AppendString clobbered dst: %q", out)
		}
		lit := out[len(prefix):]
		if !utf8.Valid(lit) || !json.Valid(lit) || lit[0] != '"' {
			t.Fatalf("AppendString(%q) = %q: not a valid UTF-8 JSON string", s, lit)
		}
		for _, c := range lit {
			if c < 0x20 {
				t.Fatalf("AppendString(%q) = %q: raw control byte", s, lit)
			}
		}
		if bytes.Contains(lit, []byte("\u2028")) || bytes.Contains(lit, []byte("\u2029")) {
			t.Fatalf("AppendString(%q) = %q: raw U+2028/9", s, lit)
		}
		var got string
		if err := json.Unmarshal(lit, &got); err != nil {
			t.Fatal(err)
		}
		if want := replaceInvalid(s); got != want {
			t.Fatalf("AppendString(%q) decodes to %q, want %q", s, got, want)
		}
		ref, _ := json.Marshal(s)
		var want string
		if err := json.Unmarshal(ref, &want); err != nil || got != want {
			t.Fatalf("AppendString(%q) decodes to %q; encoding/json round trip gives %q", s, got, want)
		}
		if utf8.ValidString(s) && got != s {
			t.Fatalf("valid %q decodes to %q", s, got)
		}
	})
}

// FuzzChannelAuth checks channel and user auth tokens by their properties:
// what the server signs verifies, and it fails with any byte of the token
// changed, for another socket, channel or channel_data, or another secret.
// The seeds include the Pusher docs' examples, whose known signatures the
// target checks too (§5).
func FuzzChannelAuth(f *testing.F) {
	f.Add(vecSocket, "private-foobar", "", false)
	f.Add(vecSocket, "presence-foobar", vecPresenceCD, false)
	f.Add(vecSocket, "", vecUserData, true)
	f.Add("1.1", "private-é", "\xff", false)
	f.Add("", "", "", true)
	known := map[string]string{
		ChannelAuthString(vecSocket, "private-foobar", ""):             vecPrivateSig,
		ChannelAuthString(vecSocket, "presence-foobar", vecPresenceCD): vecPresenceSig,
		UserAuthString(vecSocket, vecUserData):                         vecUserSig,
	}
	f.Fuzz(func(t *testing.T, socket, channel, data string, user bool) {
		msg := ChannelAuthString(socket, channel, data)
		if user {
			msg = UserAuthString(socket, data)
		}
		sig := Sign(vecSecret, msg)
		if want, ok := known[msg]; ok && sig != want {
			t.Fatalf("Sign(%q) = %s, want the documented %s", msg, sig, want)
		}
		token := vecKey + ":" + sig
		if err := VerifyToken(vecKey, vecSecret, token, msg); err != nil {
			t.Fatalf("VerifyToken(own token for %q) = %v", msg, err)
		}
		for i := range len(token) {
			if err := VerifyToken(vecKey, vecSecret, flipByte(token, i), msg); !errors.Is(err, ErrAuth) {
				t.Fatalf("byte %d of token %q changed: err = %v, want ErrAuth", i, token, err)
			}
		}
		if err := VerifyToken(vecKey, vecSecret+"x", token, msg); !errors.Is(err, ErrAuth) {
			t.Fatalf("another secret: err = %v, want ErrAuth", err)
		}
		for _, other := range []string{
			ChannelAuthString(socket+"1", channel, data),
			ChannelAuthString(socket, channel+"x", data),
			UserAuthString(socket, data+"x"),
			ChannelAuthString(socket, channel, data+"x"),
		} {
			if other == msg {
				continue
			}
			if err := VerifyToken(vecKey, vecSecret, token, other); !errors.Is(err, ErrAuth) {
				t.Fatalf("token for %q verified %q: err = %v", msg, other, err)
			}
		}
	})
}
