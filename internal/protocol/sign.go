package protocol

import (
	"crypto/hmac"
	"crypto/md5"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Sign returns the lower-case hex HMAC-SHA256 of msg keyed with secret, the
// form of every Pusher signature.
func Sign(secret, msg string) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(msg))
	return hex.EncodeToString(m.Sum(nil))
}

// SignBytes is Sign over raw bytes (webhook bodies).
func SignBytes(secret string, msg []byte) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write(msg)
	return hex.EncodeToString(m.Sum(nil))
}

// ChannelAuthString is what a channel signature covers: "socket:channel" for
// private channels and "socket:channel:channel_data" for presence channels.
func ChannelAuthString(socketID, channel, channelData string) string {
	if channelData == "" {
		return socketID + ":" + channel
	}
	return socketID + ":" + channel + ":" + channelData
}

// UserAuthString is what a sign-in signature covers.
func UserAuthString(socketID, userData string) string {
	return socketID + "::user::" + userData
}

// ErrAuth is wrapped by every signature verification failure.
var ErrAuth = errors.New("invalid signature")

// VerifyToken checks an auth token "key:hexsignature" against the app key
// and the HMAC of msg, in constant time.
func VerifyToken(key, secret, token, msg string) error {
	gotKey, sig, ok := strings.Cut(token, ":")
	if !ok || token == "" {
		return fmt.Errorf("%w: auth must be \"<app key>:<signature>\"", ErrAuth)
	}
	if subtle(gotKey, key) != 1 {
		return fmt.Errorf("%w: invalid key in auth data", ErrAuth)
	}
	want := Sign(secret, msg)
	if subtle(sig, want) != 1 {
		return fmt.Errorf("%w: expected HMAC SHA256 hex digest of %q", ErrAuth, msg)
	}
	return nil
}

func subtle(a, b string) int {
	if hmac.Equal([]byte(a), []byte(b)) {
		return 1
	}
	return 0
}

// APIError is an HTTP API request verification failure with the status it
// must be answered with.
type APIError struct {
	Status  int
	Message string
}

func (e *APIError) Error() string { return e.Message }

// SignedRequest is the part of an HTTP API request covered by its signature.
type SignedRequest struct {
	Method string
	// Path starts at /apps/...; any server prefix is already removed.
	Path  string
	Query url.Values
	Body  []byte
}

// CanonicalQuery builds the signed query string: every parameter except
// auth_signature, keys lower-cased and sorted, decoded values, repeated
// values joined with ",", and body_md5 replaced by the MD5 of the body
// actually received.
func CanonicalQuery(q url.Values, body []byte) string {
	type kv struct{ k, v string }
	pairs := make([]kv, 0, len(q)+1)
	hasMD5 := false
	for k, vs := range q {
		lk := strings.ToLower(k)
		if lk == "auth_signature" {
			continue
		}
		if lk == "body_md5" {
			hasMD5 = true
			continue
		}
		pairs = append(pairs, kv{lk, strings.Join(vs, ",")})
	}
	if hasMD5 || len(body) > 0 {
		sum := md5.Sum(body)
		pairs = append(pairs, kv{"body_md5", hex.EncodeToString(sum[:])})
	}
	sort.Slice(pairs, func(i, j int) bool {
		if pairs[i].k != pairs[j].k {
			return pairs[i].k < pairs[j].k
		}
		return pairs[i].v < pairs[j].v
	})
	var b strings.Builder
	for i, p := range pairs {
		if i > 0 {
			b.WriteByte('&')
		}
		b.WriteString(p.k)
		b.WriteByte('=')
		b.WriteString(p.v)
	}
	return b.String()
}

// StringToSign is "METHOD\npath\ncanonical query".
func (r SignedRequest) StringToSign() string {
	return strings.ToUpper(r.Method) + "\n" + r.Path + "\n" + CanonicalQuery(r.Query, r.Body)
}

// VerifyRequest checks an HTTP API request signed with auth_version 1.0:
// the key, the version, the timestamp window (window <= 0 disables it), the
// body MD5 and the signature (constant time). It returns an *APIError with
// status 401 on failure.
func VerifyRequest(r SignedRequest, key, secret string, now time.Time, window time.Duration) error {
	q := r.Query
	authKey, authSig, authTS := param(q, "auth_key"), param(q, "auth_signature"), param(q, "auth_timestamp")
	if authKey == "" || authSig == "" || authTS == "" {
		return &APIError{401, "Missing authentication parameters: auth_key, auth_timestamp, auth_version and auth_signature are required"}
	}
	if subtle(authKey, key) != 1 {
		return &APIError{401, "Invalid auth_key"}
	}
	if v := param(q, "auth_version"); v != "" && v != "1.0" {
		return &APIError{401, "Unsupported auth_version " + strconv.Quote(v) + ": only 1.0 is supported"}
	}
	ts, err := strconv.ParseInt(authTS, 10, 64)
	if err != nil {
		return &APIError{401, "Invalid auth_timestamp: must be Unix time in seconds"}
	}
	if window > 0 {
		d := now.Sub(time.Unix(ts, 0))
		if d < 0 {
			d = -d
		}
		// now.Sub saturates for timestamps centuries away; negating the
		// minimum Duration overflows and stays negative.
		if d < 0 || d > window {
			return &APIError{401, fmt.Sprintf("Timestamp expired: given timestamp (%s) not within %ds of server time (%s)",
				time.Unix(ts, 0).UTC().Format(time.RFC3339), int(window.Seconds()), now.UTC().Format(time.RFC3339))}
		}
	}
	if len(r.Body) > 0 {
		md := param(q, "body_md5")
		if md == "" {
			return &APIError{401, "Missing body_md5 for a request with a body"}
		}
		sum := md5.Sum(r.Body)
		if subtle(strings.ToLower(md), hex.EncodeToString(sum[:])) != 1 {
			return &APIError{401, "body_md5 does not match the request body"}
		}
	}
	toSign := r.StringToSign()
	if subtle(authSig, Sign(secret, toSign)) != 1 {
		return &APIError{401, fmt.Sprintf("Invalid signature: you should have sent HmacSHA256Hex(%q, your_secret_key)", toSign)}
	}
	return nil
}

// param returns the first value of the query parameter name, matching the
// key case-insensitively as CanonicalQuery does (an exact match wins; among
// other spellings the smallest key wins, so the result is deterministic).
func param(q url.Values, name string) string {
	if vs, ok := q[name]; ok {
		if len(vs) == 0 {
			return ""
		}
		return vs[0]
	}
	best, found := "", false
	for k := range q {
		if strings.EqualFold(k, name) && (!found || k < best) {
			best, found = k, true
		}
	}
	if !found || len(q[best]) == 0 {
		return ""
	}
	return q[best][0]
}

// SignRequest adds auth_key, auth_timestamp, auth_version, body_md5 (when
// there is a body) and auth_signature to q, as the Pusher server SDKs do.
func SignRequest(method, path string, q url.Values, body []byte, key, secret string, now time.Time) url.Values {
	out := url.Values{}
	for k, v := range q {
		out[k] = append([]string(nil), v...)
	}
	out.Set("auth_key", key)
	out.Set("auth_timestamp", strconv.FormatInt(now.Unix(), 10))
	out.Set("auth_version", "1.0")
	if len(body) > 0 {
		sum := md5.Sum(body)
		out.Set("body_md5", hex.EncodeToString(sum[:]))
	}
	r := SignedRequest{Method: method, Path: path, Query: out, Body: body}
	out.Set("auth_signature", Sign(secret, r.StringToSign()))
	return out
}
