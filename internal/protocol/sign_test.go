package protocol

import (
	"crypto/md5"
	"encoding/hex"
	"errors"
	"math"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Test vectors of the protocol reference (§5, §7.2, §8.1).
const (
	vecKey    = "278d425bdf160c739803"
	vecSecret = "7ad3773142a6692b25b8"
	vecSocket = "1234.1234"

	vecPrivateSig  = "58df8b0c36d6982b82c3ecf6b4662e34fe8c25bba48f5369f135bf843651c3a4"
	vecPresenceCD  = `{"user_id":10,"user_info":{"name":"Mr. Channels"}}`
	vecPresenceSig = "31935e7d86dba64c2a90aed31fdc61869f9b22ba9d8863bba239c03ca481bc80"
	vecUserData    = `{"id":"12345","user_info":{"name":"Ada"},"watchlist":["67","89"]}`
	vecUserSig     = "6ca80c154c719885dfec98578ec04007b6b4b221f61821ba13548203ddaeda48"

	vecTimestamp   = 1353088179
	vecTriggerBody = `{"name":"foo","channels":["project-3"],"data":"{\"some\":\"data\"}"}`
	vecTriggerMD5  = "ec365a775a4cd0599faeb73354201b6f"
	vecTriggerSig  = "da454824c97ba181a32ccc17a72625ba02771f50b50e1e7430e47a1f3f457e6c"
	vecChannelsSig = "16819168891cb5dfd72b5c7a5d3d602605b26c6ba1930033b5e2eeeb65010291"

	vecWebhookBody = `{"time_ms":1327078148132,"events":[{"name":"channel_occupied","channel":"test-channel"}]}`
	vecWebhookSig  = "5dd6562a9f744b72a688bcdfea41c14c2c56d12c44c99e32c08face4cc1e8aeb"
)

var vecNow = time.Unix(vecTimestamp, 0)

func TestSignVectors(t *testing.T) {
	tests := []struct {
		name string
		msg  string
		want string
	}{
		{"5.2 private", ChannelAuthString(vecSocket, "private-foobar", ""), vecPrivateSig},
		{"5.3 presence", ChannelAuthString(vecSocket, "presence-foobar", vecPresenceCD), vecPresenceSig},
		{"5.5 user sign-in", UserAuthString(vecSocket, vecUserData), vecUserSig},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Sign(vecSecret, tt.msg); got != tt.want {
				t.Errorf("Sign(%q) = %s, want %s", tt.msg, got, tt.want)
			}
			if err := VerifyToken(vecKey, vecSecret, vecKey+":"+tt.want, tt.msg); err != nil {
				t.Errorf("VerifyToken(vector) = %v", err)
			}
		})
	}
}

func TestAuthStrings(t *testing.T) {
	if got, want := ChannelAuthString(vecSocket, "private-foobar", ""), "1234.1234:private-foobar"; got != want {
		t.Errorf("ChannelAuthString private = %q, want %q", got, want)
	}
	if got, want := ChannelAuthString(vecSocket, "presence-foobar", vecPresenceCD),
		`1234.1234:presence-foobar:{"user_id":10,"user_info":{"name":"Mr. Channels"}}`; got != want {
		t.Errorf("ChannelAuthString presence = %q, want %q", got, want)
	}
	if got, want := UserAuthString(vecSocket, `{"id":"1"}`), `1234.1234::user::{"id":"1"}`; got != want {
		t.Errorf("UserAuthString = %q, want %q", got, want)
	}
}

func TestSignWebhookVector(t *testing.T) {
	if got := SignBytes(vecSecret, []byte(vecWebhookBody)); got != vecWebhookSig {
		t.Errorf("SignBytes(webhook) = %s, want %s", got, vecWebhookSig)
	}
	if got := Sign(vecSecret, vecWebhookBody); got != vecWebhookSig {
		t.Errorf("Sign(webhook) = %s, want %s", got, vecWebhookSig)
	}
}

func TestSignFormat(t *testing.T) {
	for _, msg := range []string{"", "x", strings.Repeat("é", 1000)} {
		s := Sign("secret", msg)
		if len(s) != 64 || strings.ToLower(s) != s {
			t.Errorf("Sign(%q) = %q: want 64 lower-case hex digits", msg, s)
		}
		if _, err := hex.DecodeString(s); err != nil {
			t.Errorf("Sign(%q) is not hex: %v", msg, err)
		}
	}
}

// flipHex changes the hex digit at i to another hex digit.
func flipHex(s string, i int) string {
	c := byte('0')
	if s[i] == '0' {
		c = '1'
	}
	return s[:i] + string(c) + s[i+1:]
}

func TestVerifyToken(t *testing.T) {
	msg := ChannelAuthString(vecSocket, "private-foobar", "")
	good := vecKey + ":" + vecPrivateSig
	tests := []struct {
		name  string
		key   string
		token string
		msg   string
		ok    bool
	}{
		{"valid", vecKey, good, msg, true},
		{"wrong key part", vecKey, "278d425bdf160c739804:" + vecPrivateSig, msg, false},
		{"empty key part", vecKey, ":" + vecPrivateSig, msg, false},
		{"key part case", vecKey, strings.ToUpper(vecKey) + ":" + vecPrivateSig, msg, false},
		{"app key differs", "otherkey", good, msg, false},
		{"one hex digit changed first", vecKey, vecKey + ":" + flipHex(vecPrivateSig, 0), msg, false},
		{"one hex digit changed last", vecKey, vecKey + ":" + flipHex(vecPrivateSig, 63), msg, false},
		{"one hex digit changed middle", vecKey, vecKey + ":" + flipHex(vecPrivateSig, 31), msg, false},
		{"upper-case hex", vecKey, vecKey + ":" + strings.ToUpper(vecPrivateSig), msg, false},
		{"truncated signature", vecKey, vecKey + ":" + vecPrivateSig[:63], msg, false},
		{"extra character", vecKey, good + "0", msg, false},
		{"missing colon", vecKey, vecKey + vecPrivateSig, msg, false},
		{"signature only", vecKey, vecPrivateSig, msg, false},
		{"empty", vecKey, "", msg, false},
		{"colon only", vecKey, ":", msg, false},
		{"empty signature", vecKey, vecKey + ":", msg, false},
		{"other channel", vecKey, good, ChannelAuthString(vecSocket, "private-foobaz", ""), false},
		{"other socket", vecKey, good, ChannelAuthString("1234.1235", "private-foobar", ""), false},
		{"second colon kept in signature", vecKey, good + ":", msg, false},
		{"space around", vecKey, " " + good, msg, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := VerifyToken(tt.key, vecSecret, tt.token, tt.msg)
			if tt.ok && err != nil {
				t.Fatalf("VerifyToken(%q) = %v, want nil", tt.token, err)
			}
			if !tt.ok {
				if err == nil {
					t.Fatalf("VerifyToken(%q) = nil, want error", tt.token)
				}
				if !errors.Is(err, ErrAuth) {
					t.Errorf("VerifyToken(%q) = %v, does not wrap ErrAuth", tt.token, err)
				}
			}
		})
	}
}

func TestVerifyTokenWrongSecret(t *testing.T) {
	msg := ChannelAuthString(vecSocket, "private-foobar", "")
	if err := VerifyToken(vecKey, "other-secret", vecKey+":"+vecPrivateSig, msg); !errors.Is(err, ErrAuth) {
		t.Fatalf("wrong secret: err = %v, want ErrAuth", err)
	}
}

func TestVerifyTokenErrorMessages(t *testing.T) {
	msg := ChannelAuthString(vecSocket, "private-foobar", "")
	err := VerifyToken(vecKey, vecSecret, "nokey:"+vecPrivateSig, msg)
	if err == nil || !strings.Contains(err.Error(), "key") {
		t.Errorf("wrong key: err = %v, want a message about the key", err)
	}
	err = VerifyToken(vecKey, vecSecret, vecKey+":"+flipHex(vecPrivateSig, 5), msg)
	if err == nil || !strings.Contains(err.Error(), msg) {
		t.Errorf("bad signature: err = %v, want the string to sign in the message", err)
	}
	if strings.Contains(err.Error(), vecSecret) || strings.Contains(err.Error(), vecPrivateSig) {
		t.Errorf("bad signature: message %q leaks the secret or the expected signature", err)
	}
}

// triggerRequest is the §7.2 POST vector.
func triggerRequest() SignedRequest {
	return SignedRequest{
		Method: "POST",
		Path:   "/apps/3/events",
		Query: url.Values{
			"auth_key":       {vecKey},
			"auth_timestamp": {strconv.Itoa(vecTimestamp)},
			"auth_version":   {"1.0"},
			"body_md5":       {vecTriggerMD5},
			"auth_signature": {vecTriggerSig},
		},
		Body: []byte(vecTriggerBody),
	}
}

// channelsRequest is the §7.2 GET vector.
func channelsRequest() SignedRequest {
	return SignedRequest{
		Method: "GET",
		Path:   "/apps/3/channels",
		Query: url.Values{
			"auth_key":         {vecKey},
			"auth_timestamp":   {strconv.Itoa(vecTimestamp)},
			"auth_version":     {"1.0"},
			"filter_by_prefix": {"presence-"},
			"info":             {"user_count"},
			"auth_signature":   {vecChannelsSig},
		},
	}
}

// cloneReq deep-copies r so that a test case can tamper with it.
func cloneReq(r SignedRequest) SignedRequest {
	q := url.Values{}
	for k, v := range r.Query {
		q[k] = append([]string(nil), v...)
	}
	r.Query = q
	r.Body = append([]byte(nil), r.Body...)
	return r
}

func TestRequestVectors(t *testing.T) {
	sum := md5.Sum([]byte(vecTriggerBody))
	if got := hex.EncodeToString(sum[:]); got != vecTriggerMD5 {
		t.Fatalf("md5(body) = %s, want %s", got, vecTriggerMD5)
	}

	post := triggerRequest()
	wantPost := "POST\n/apps/3/events\nauth_key=278d425bdf160c739803&auth_timestamp=1353088179&auth_version=1.0&body_md5=ec365a775a4cd0599faeb73354201b6f"
	if got := post.StringToSign(); got != wantPost {
		t.Errorf("POST StringToSign =\n%q\nwant\n%q", got, wantPost)
	}
	if got := Sign(vecSecret, post.StringToSign()); got != vecTriggerSig {
		t.Errorf("POST signature = %s, want %s", got, vecTriggerSig)
	}
	if err := VerifyRequest(post, vecKey, vecSecret, vecNow, 600*time.Second); err != nil {
		t.Errorf("VerifyRequest(POST vector) = %v", err)
	}

	get := channelsRequest()
	wantGet := "GET\n/apps/3/channels\nauth_key=278d425bdf160c739803&auth_timestamp=1353088179&auth_version=1.0&filter_by_prefix=presence-&info=user_count"
	if got := get.StringToSign(); got != wantGet {
		t.Errorf("GET StringToSign =\n%q\nwant\n%q", got, wantGet)
	}
	if got := Sign(vecSecret, get.StringToSign()); got != vecChannelsSig {
		t.Errorf("GET signature = %s, want %s", got, vecChannelsSig)
	}
	if err := VerifyRequest(get, vecKey, vecSecret, vecNow, 600*time.Second); err != nil {
		t.Errorf("VerifyRequest(GET vector) = %v", err)
	}
}

func TestSignRequestReproducesVectors(t *testing.T) {
	q := SignRequest("POST", "/apps/3/events", nil, []byte(vecTriggerBody), vecKey, vecSecret, vecNow)
	if got := q.Get("body_md5"); got != vecTriggerMD5 {
		t.Errorf("body_md5 = %s, want %s", got, vecTriggerMD5)
	}
	if got := q.Get("auth_signature"); got != vecTriggerSig {
		t.Errorf("POST auth_signature = %s, want %s", got, vecTriggerSig)
	}
	in := url.Values{"filter_by_prefix": {"presence-"}, "info": {"user_count"}}
	q = SignRequest("get", "/apps/3/channels", in, nil, vecKey, vecSecret, vecNow)
	if got := q.Get("auth_signature"); got != vecChannelsSig {
		t.Errorf("GET auth_signature = %s, want %s", got, vecChannelsSig)
	}
	if q.Has("body_md5") {
		t.Errorf("GET without a body got body_md5 %q", q.Get("body_md5"))
	}
	if len(in) != 2 || in.Has("auth_signature") {
		t.Errorf("SignRequest modified its input: %v", in)
	}
}

func TestCanonicalQuery(t *testing.T) {
	emptyMD5 := "d41d8cd98f00b204e9800998ecf8427e"
	tests := []struct {
		name string
		q    url.Values
		body string
		want string
	}{
		{"empty", url.Values{}, "", ""},
		{"sorted and lower-cased", url.Values{"b": {"2"}, "A": {"1"}, "C_x": {"3"}}, "", "a=1&b=2&c_x=3"},
		{"auth_signature dropped in any case", url.Values{"a": {"1"}, "auth_signature": {"x"}, "AUTH_SIGNATURE": {"y"}}, "", "a=1"},
		{"values not escaped", url.Values{"filter_by_prefix": {"presence-a b&c=d"}}, "", "filter_by_prefix=presence-a b&c=d"},
		{"repeated values joined", url.Values{"channels[]": {"a", "b", "c"}}, "", "channels[]=a,b,c"},
		{"body_md5 recomputed", url.Values{"body_md5": {"bogus"}}, vecTriggerBody, "body_md5=" + vecTriggerMD5},
		{"body_md5 added for a body", url.Values{"a": {"1"}}, vecTriggerBody, "a=1&body_md5=" + vecTriggerMD5},
		{"body_md5 of empty body kept", url.Values{"BODY_MD5": {"x"}}, "", "body_md5=" + emptyMD5},
		{"empty value", url.Values{"a": {""}}, "", "a="},
		{"byte order", url.Values{"a_b": {"1"}, "a-b": {"2"}, "ab": {"3"}, "a": {"4"}}, "", "a=4&a-b=2&a_b=1&ab=3"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := CanonicalQuery(tt.q, []byte(tt.body)); got != tt.want {
				t.Errorf("CanonicalQuery = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestStringToSignUpperCasesMethod(t *testing.T) {
	r := SignedRequest{Method: "post", Path: "/apps/1/events", Query: url.Values{"a": {"1"}}}
	if got, want := r.StringToSign(), "POST\n/apps/1/events\na=1"; got != want {
		t.Errorf("StringToSign = %q, want %q", got, want)
	}
}

// signed returns a correctly signed request for the given method, query and
// body at vecNow.
func signed(method, path string, q url.Values, body string) SignedRequest {
	var b []byte
	if body != "" {
		b = []byte(body)
	}
	return SignedRequest{Method: method, Path: path, Query: SignRequest(method, path, q, b, vecKey, vecSecret, vecNow), Body: b}
}

// resign recomputes auth_signature over r as it now stands (so that only
// the property under test is wrong).
func resign(r SignedRequest) SignedRequest {
	r.Query.Set("auth_signature", Sign(vecSecret, r.StringToSign()))
	return r
}

func TestVerifyRequestFailures(t *testing.T) {
	const window = 600 * time.Second
	tests := []struct {
		name    string
		req     func() SignedRequest
		now     time.Time
		window  time.Duration // used when setWin
		setWin  bool
		ok      bool
		message string // substring of the error message
	}{
		{name: "POST vector", req: triggerRequest, ok: true},
		{name: "GET vector", req: channelsRequest, ok: true},
		{name: "missing auth_key", req: func() SignedRequest {
			r := cloneReq(triggerRequest())
			r.Query.Del("auth_key")
			return r
		}, message: "Missing"},
		{name: "missing auth_signature", req: func() SignedRequest {
			r := cloneReq(triggerRequest())
			r.Query.Del("auth_signature")
			return r
		}, message: "Missing"},
		{name: "empty auth_signature", req: func() SignedRequest {
			r := cloneReq(triggerRequest())
			r.Query.Set("auth_signature", "")
			return r
		}, message: "Missing"},
		{name: "missing auth_timestamp", req: func() SignedRequest {
			r := cloneReq(triggerRequest())
			r.Query.Del("auth_timestamp")
			return resign(r)
		}, message: "Missing"},
		{name: "no query at all", req: func() SignedRequest {
			return SignedRequest{Method: "GET", Path: "/apps/3/channels"}
		}, message: "Missing"},
		{name: "wrong key", req: func() SignedRequest {
			r := cloneReq(triggerRequest())
			r.Query.Set("auth_key", "278d425bdf160c739804")
			return resign(r)
		}, message: "auth_key"},
		{name: "bad version", req: func() SignedRequest {
			r := cloneReq(triggerRequest())
			r.Query.Set("auth_version", "2.0")
			return resign(r)
		}, message: "auth_version"},
		{name: "version 1", req: func() SignedRequest {
			r := cloneReq(triggerRequest())
			r.Query.Set("auth_version", "1")
			return resign(r)
		}, message: "auth_version"},
		{name: "timestamp not an integer", req: func() SignedRequest {
			r := cloneReq(triggerRequest())
			r.Query.Set("auth_timestamp", "1353088179.5")
			return resign(r)
		}, message: "auth_timestamp"},
		{name: "timestamp in milliseconds", req: func() SignedRequest {
			r := cloneReq(triggerRequest())
			r.Query.Set("auth_timestamp", "1353088179000")
			return resign(r)
		}, message: "Timestamp expired"},
		{name: "timestamp at window past edge", req: triggerRequest, now: vecNow.Add(window), ok: true},
		{name: "timestamp at window future edge", req: triggerRequest, now: vecNow.Add(-window), ok: true},
		{name: "timestamp too old", req: triggerRequest, now: vecNow.Add(window + time.Second), message: "Timestamp expired"},
		{name: "timestamp in the future", req: triggerRequest, now: vecNow.Add(-window - time.Second), message: "Timestamp expired"},
		{name: "timestamp at real time", req: triggerRequest, now: time.Date(2026, 11, 27, 7, 0, 0, 0, time.UTC), message: "Timestamp expired"},
		{name: "window disabled (0)", req: triggerRequest, now: time.Date(2026, 11, 27, 7, 0, 0, 0, time.UTC), window: 0, setWin: true, ok: true},
		{name: "window disabled (negative)", req: triggerRequest, now: vecNow.Add(-1000 * time.Hour), window: -1, setWin: true, ok: true},
		{name: "far-future timestamp", req: func() SignedRequest {
			r := cloneReq(triggerRequest())
			r.Query.Set("auth_timestamp", strconv.FormatInt(math.MaxInt64, 10))
			return resign(r)
		}, message: "Timestamp expired"},
		{name: "far-past timestamp", req: func() SignedRequest {
			r := cloneReq(triggerRequest())
			r.Query.Set("auth_timestamp", strconv.FormatInt(math.MinInt64, 10))
			return resign(r)
		}, message: "Timestamp expired"},
		{name: "year 9999 timestamp", req: func() SignedRequest {
			r := cloneReq(triggerRequest())
			r.Query.Set("auth_timestamp", "253402300799")
			return resign(r)
		}, message: "Timestamp expired"},
		{name: "missing body_md5 with a body", req: func() SignedRequest {
			r := cloneReq(triggerRequest())
			r.Query.Del("body_md5")
			return resign(r)
		}, message: "body_md5"},
		{name: "wrong body_md5", req: func() SignedRequest {
			r := cloneReq(triggerRequest())
			r.Query.Set("body_md5", flipHex(vecTriggerMD5, 0))
			return resign(r)
		}, message: "body_md5"},
		{name: "tampered body", req: func() SignedRequest {
			r := cloneReq(triggerRequest())
			r.Body = []byte(strings.Replace(vecTriggerBody, "project-3", "project-4", 1))
			return r
		}, message: "body_md5"},
		{name: "tampered body with matching body_md5", req: func() SignedRequest {
			r := cloneReq(triggerRequest())
			r.Body = []byte(strings.Replace(vecTriggerBody, "project-3", "project-4", 1))
			sum := md5.Sum(r.Body)
			r.Query.Set("body_md5", hex.EncodeToString(sum[:]))
			return r
		}, message: "Invalid signature"},
		{name: "body added to a GET", req: func() SignedRequest {
			r := cloneReq(channelsRequest())
			r.Body = []byte("{}")
			sum := md5.Sum(r.Body)
			r.Query.Set("body_md5", hex.EncodeToString(sum[:]))
			return r
		}, message: "Invalid signature"},
		{name: "body_md5 upper-case hex", req: func() SignedRequest {
			r := cloneReq(triggerRequest())
			r.Query.Set("body_md5", strings.ToUpper(vecTriggerMD5))
			return resign(r)
		}, ok: true},
		{name: "tampered query param", req: func() SignedRequest {
			r := cloneReq(channelsRequest())
			r.Query.Set("filter_by_prefix", "private-")
			return r
		}, message: "Invalid signature"},
		{name: "added query param", req: func() SignedRequest {
			r := cloneReq(channelsRequest())
			r.Query.Set("extra", "1")
			return r
		}, message: "Invalid signature"},
		{name: "removed query param", req: func() SignedRequest {
			r := cloneReq(channelsRequest())
			r.Query.Del("info")
			return r
		}, message: "Invalid signature"},
		{name: "tampered path", req: func() SignedRequest {
			r := cloneReq(channelsRequest())
			r.Path = "/apps/4/channels"
			return r
		}, message: "Invalid signature"},
		{name: "tampered method", req: func() SignedRequest {
			r := cloneReq(channelsRequest())
			r.Method = "POST"
			return r
		}, message: "Invalid signature"},
		{name: "lower-case method is the same request", req: func() SignedRequest {
			r := cloneReq(channelsRequest())
			r.Method = "get"
			return r
		}, ok: true},
		{name: "signature upper-case hex", req: func() SignedRequest {
			r := cloneReq(channelsRequest())
			r.Query.Set("auth_signature", strings.ToUpper(vecChannelsSig))
			return r
		}, message: "Invalid signature"},
		{name: "signature one digit changed", req: func() SignedRequest {
			r := cloneReq(channelsRequest())
			r.Query.Set("auth_signature", flipHex(vecChannelsSig, 10))
			return r
		}, message: "Invalid signature"},
		{name: "signed with another secret", req: func() SignedRequest {
			r := cloneReq(channelsRequest())
			r.Query.Set("auth_signature", Sign("other", r.StringToSign()))
			return r
		}, message: "Invalid signature"},
		{name: "param key in upper case, signed lower-cased", req: func() SignedRequest {
			r := cloneReq(channelsRequest())
			r.Query.Del("filter_by_prefix")
			r.Query.Set("FILTER_BY_PREFIX", "presence-")
			return r // canonical query lower-cases keys: same string to sign
		}, ok: true},
		{name: "param key in mixed case", req: func() SignedRequest {
			r := cloneReq(channelsRequest())
			r.Query.Del("info")
			r.Query.Set("Info", "user_count")
			return r
		}, ok: true},
		{name: "auth params in upper case", req: func() SignedRequest {
			r := cloneReq(triggerRequest())
			for _, k := range []string{"auth_key", "auth_timestamp", "auth_version", "body_md5", "auth_signature"} {
				v := r.Query.Get(k)
				r.Query.Del(k)
				r.Query.Set(strings.ToUpper(k), v)
			}
			return r
		}, ok: true},
		{name: "body_md5 in upper case, wrong", req: func() SignedRequest {
			r := cloneReq(triggerRequest())
			r.Query.Del("body_md5")
			r.Query.Set("BODY_MD5", flipHex(vecTriggerMD5, 3))
			return resign(r)
		}, message: "body_md5"},
		{name: "auth_version in upper case, bad", req: func() SignedRequest {
			r := cloneReq(triggerRequest())
			r.Query.Del("auth_version")
			r.Query.Set("Auth_Version", "2.0")
			return resign(r)
		}, message: "auth_version"},
		{name: "array params reordered", req: func() SignedRequest {
			r := signed("GET", "/apps/3/channels", url.Values{"channels[]": {"a", "b"}}, "")
			r.Query["channels[]"] = []string{"b", "a"}
			return r
		}, message: "Invalid signature"},
		{name: "escaped values are decoded before signing", req: func() SignedRequest {
			q, err := url.ParseQuery("filter_by_prefix=presence%2Dx%20y&info=user_count")
			if err != nil {
				panic(err)
			}
			return signed("GET", "/apps/3/channels", q, "")
		}, ok: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			now := tt.now
			if now.IsZero() {
				now = vecNow
			}
			w := window
			if tt.setWin {
				w = tt.window
			}
			err := VerifyRequest(tt.req(), vecKey, vecSecret, now, w)
			if tt.ok {
				if err != nil {
					t.Fatalf("VerifyRequest = %v, want nil", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("VerifyRequest = nil, want an error containing %q", tt.message)
			}
			var ae *APIError
			if !errors.As(err, &ae) {
				t.Fatalf("VerifyRequest error %T %v is not *APIError", err, err)
			}
			if ae.Status != 401 {
				t.Errorf("status = %d, want 401", ae.Status)
			}
			if !strings.Contains(ae.Message, tt.message) || ae.Error() != ae.Message {
				t.Errorf("message = %q, want it to contain %q", ae.Message, tt.message)
			}
			if strings.Contains(ae.Message, vecSecret) {
				t.Errorf("message %q leaks the secret", ae.Message)
			}
		})
	}
}

// TestVerifyRequestArrayParams: channels[]=a&channels[]=b is signed as
// "channels[]=a,b" (§7.2).
func TestVerifyRequestArrayParams(t *testing.T) {
	q := SignRequest("GET", "/apps/3/channels", url.Values{"channels[]": {"a", "b"}}, nil, vecKey, vecSecret, vecNow)
	r := SignedRequest{Method: "GET", Path: "/apps/3/channels", Query: q}
	want := "GET\n/apps/3/channels\nauth_key=" + vecKey + "&auth_timestamp=1353088179&auth_version=1.0&channels[]=a,b"
	if got := r.StringToSign(); got != want {
		t.Errorf("StringToSign = %q, want %q", got, want)
	}
	if err := VerifyRequest(r, vecKey, vecSecret, vecNow, 600*time.Second); err != nil {
		t.Errorf("SignRequest with array params: %v", err)
	}

	// A client that signs "channels[]=a,b" and sends the repeated form.
	base := url.Values{"auth_key": {vecKey}, "auth_timestamp": {strconv.Itoa(vecTimestamp)}, "auth_version": {"1.0"}}
	toSign := "GET\n/apps/3/channels\n" + CanonicalQuery(base, nil) + "&channels[]=a,b"
	raw := base.Encode() + "&channels%5B%5D=a&channels%5B%5D=b&auth_signature=" + Sign(vecSecret, toSign)
	parsed, err := url.ParseQuery(raw)
	if err != nil {
		t.Fatal(err)
	}
	r = SignedRequest{Method: "GET", Path: "/apps/3/channels", Query: parsed}
	if err := VerifyRequest(r, vecKey, vecSecret, vecNow, 600*time.Second); err != nil {
		t.Errorf("repeated channels[] signed joined: %v", err)
	}
	// Order matters: b,a is another request.
	r.Query["channels[]"] = []string{"b", "a"}
	if err := VerifyRequest(r, vecKey, vecSecret, vecNow, 600*time.Second); err == nil {
		t.Error("reordered channels[] verifies")
	}
}

func TestVerifyRequestInvalidSignatureMessage(t *testing.T) {
	r := cloneReq(channelsRequest())
	r.Query.Set("auth_signature", flipHex(vecChannelsSig, 0))
	err := VerifyRequest(r, vecKey, vecSecret, vecNow, 600*time.Second)
	if err == nil {
		t.Fatal("want an error")
	}
	// Pusher tells the caller what it should have signed.
	if want := strconv.Quote(r.StringToSign()); !strings.Contains(err.Error(), want) {
		t.Errorf("message %q does not contain the string to sign %s", err, want)
	}
	if strings.Contains(err.Error(), vecChannelsSig) {
		t.Errorf("message %q leaks the expected signature", err)
	}
}

func TestSignVerifyRoundTrip(t *testing.T) {
	now := time.Date(2026, 11, 27, 6, 30, 0, 0, time.UTC)
	tests := []struct {
		method, path string
		q            url.Values
		body         string
	}{
		{"POST", "/apps/42/events", nil, `{"name":"x","channel":"c","data":"{}"}`},
		{"POST", "/apps/42/batch_events", url.Values{}, `{"batch":[]}`},
		{"POST", "/apps/42/users/u1/terminate_connections", nil, `{}`},
		{"GET", "/apps/42/channels", url.Values{"filter_by_prefix": {"presence-"}, "info": {"user_count"}}, ""},
		{"GET", "/apps/42/channels/presence-a/users", nil, ""},
		{"GET", "/apps/42/channels/private-é", url.Values{"info": {"subscription_count,cache"}, "X": {"a b", "c&d"}}, ""},
		{"POST", "/apps/42/events", nil, ""},
	}
	for _, tt := range tests {
		var body []byte
		if tt.body != "" {
			body = []byte(tt.body)
		}
		q := SignRequest(tt.method, tt.path, tt.q, body, "app-key", "app-secret", now)
		for _, k := range []string{"auth_key", "auth_timestamp", "auth_version", "auth_signature"} {
			if q.Get(k) == "" {
				t.Errorf("%s %s: SignRequest did not set %s", tt.method, tt.path, k)
			}
		}
		if got := q.Has("body_md5"); got != (len(body) > 0) {
			t.Errorf("%s %s: body_md5 present = %v with body %q", tt.method, tt.path, got, tt.body)
		}
		// Through the wire: encode, parse back.
		parsed, err := url.ParseQuery(q.Encode())
		if err != nil {
			t.Fatal(err)
		}
		r := SignedRequest{Method: tt.method, Path: tt.path, Query: parsed, Body: body}
		if err := VerifyRequest(r, "app-key", "app-secret", now.Add(599*time.Second), 600*time.Second); err != nil {
			t.Errorf("%s %s: round trip: %v", tt.method, tt.path, err)
		}
		if err := VerifyRequest(r, "app-key", "other-secret", now, 600*time.Second); err == nil {
			t.Errorf("%s %s: verifies with another secret", tt.method, tt.path)
		}
		if err := VerifyRequest(r, "other-key", "app-secret", now, 600*time.Second); err == nil {
			t.Errorf("%s %s: verifies with another key", tt.method, tt.path)
		}
	}
}

// flipByte changes the byte at i (low bit: never only its letter case,
// which the method's signing ignores).
func flipByte(s string, i int) string {
	b := []byte(s)
	b[i] ^= 1
	return string(b)
}

// TestRequestVectorByteFlips: the §7.2 vectors of the Pusher docs verify,
// and changing any one byte of what they sign (method, path, a query
// parameter's name or value, the body) or of their signature fails them.
func TestRequestVectorByteFlips(t *testing.T) {
	for _, base := range []SignedRequest{triggerRequest(), channelsRequest()} {
		if err := VerifyRequest(base, vecKey, vecSecret, vecNow, 600*time.Second); err != nil {
			t.Fatalf("%s %s: vector does not verify: %v", base.Method, base.Path, err)
		}
		type mutant struct {
			what string
			r    SignedRequest
		}
		var ms []mutant
		for i := range len(base.Method) {
			r := cloneReq(base)
			r.Method = flipByte(r.Method, i)
			ms = append(ms, mutant{"method " + r.Method, r})
		}
		for i := range len(base.Path) {
			r := cloneReq(base)
			r.Path = flipByte(r.Path, i)
			ms = append(ms, mutant{"path " + r.Path, r})
		}
		for i := range len(base.Body) {
			r := cloneReq(base)
			r.Body[i] ^= 1
			ms = append(ms, mutant{"body byte " + strconv.Itoa(i), r})
		}
		for k, vs := range base.Query {
			for i := range len(k) {
				r := cloneReq(base)
				delete(r.Query, k)
				r.Query[flipByte(k, i)] = vs
				ms = append(ms, mutant{"name " + flipByte(k, i), r})
			}
			for i := range len(vs[0]) {
				r := cloneReq(base)
				r.Query[k] = []string{flipByte(vs[0], i)}
				ms = append(ms, mutant{k + "=" + r.Query[k][0], r})
			}
		}
		for _, m := range ms {
			if err := VerifyRequest(m.r, vecKey, vecSecret, vecNow, 600*time.Second); err == nil {
				t.Errorf("%s %s: verified with %s changed", base.Method, base.Path, m.what)
			}
		}
	}
}

// TestChannelAuthVectorByteFlips: the §5 private-foobar example fails with
// any one byte of its token, socket id or channel changed.
func TestChannelAuthVectorByteFlips(t *testing.T) {
	token := vecKey + ":" + vecPrivateSig
	msg := ChannelAuthString(vecSocket, "private-foobar", "")
	if err := VerifyToken(vecKey, vecSecret, token, msg); err != nil {
		t.Fatalf("vector does not verify: %v", err)
	}
	for i := range len(token) {
		if err := VerifyToken(vecKey, vecSecret, flipByte(token, i), msg); !errors.Is(err, ErrAuth) {
			t.Errorf("token byte %d changed: err = %v, want ErrAuth", i, err)
		}
	}
	for i := range len(msg) {
		if err := VerifyToken(vecKey, vecSecret, token, flipByte(msg, i)); !errors.Is(err, ErrAuth) {
			t.Errorf("signed string byte %d changed: err = %v, want ErrAuth", i, err)
		}
	}
}
