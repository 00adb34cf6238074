// Package server is a Go server library for Herald and any other server
// that speaks the Pusher HTTP API (Pusher Channels, soketi, Laravel Reverb):
// services publish events (Trigger, TriggerMulti, TriggerBatch, SendToUser),
// query channels (Channels, Channel, GetChannelUsers), terminate a user's
// connections, authorize private, presence and encrypted channels, sign
// users in, and verify webhooks. Its names follow the official
// pusher-http-go library, with a context.Context on every network call.
//
// Requests are signed as the Pusher HTTP API asks (auth_version 1.0). A
// request that fails with a network error or a 5xx answer is retried with
// exponential back-off (see Client.Retries); a 4xx answer is not. An error
// answer comes back as an *Error carrying the status and body.
package server

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/herald-ws/herald/sdk/internal/wire"
)

// Client publishes to and queries one app on a Pusher-compatible server.
// Set the fields, then use it from any number of goroutines; do not change
// the fields after the first call.
type Client struct {
	// AppID, Key and Secret are the app's credentials.
	AppID  string
	Key    string
	Secret string
	// Host is "host" or "host:port" of the server's HTTP API
	// (e.g. "127.0.0.1:6001" for Herald, "api-eu.pusher.com" for Pusher).
	Host string
	// Secure selects https.
	Secure bool
	// PathPrefix goes before /apps/{id} when the server is mounted under a
	// prefix (Herald's path_prefix). Signatures cover the path without it.
	PathPrefix string
	// EncryptionMasterKey is the 32-byte master key of end-to-end
	// encrypted channels (private-encrypted-*). Each channel's key is
	// sha256(channelName ‖ masterKey), as in the official libraries.
	EncryptionMasterKey []byte
	// HTTPClient sends the requests; nil means a client with a 10 s
	// timeout per attempt.
	HTTPClient *http.Client
	// Retries is how many times a request that failed with a network
	// error or a 5xx answer is sent again [2; -1: never]. A retried
	// trigger whose first attempt reached the server but whose answer was
	// lost is delivered twice: set -1 where that matters more than a lost
	// event.
	Retries int
	// RetryBackoff is the first delay between attempts, doubled each time
	// and jittered [100ms].
	RetryBackoff time.Duration
	// Now returns the current time for auth_timestamp [time.Now].
	Now func() time.Time
}

// Error is an error answer from the server.
type Error struct {
	// Status is the HTTP status (400, 401, 403, 404, 413, 429, 5xx).
	Status int
	// Body is the answer's body.
	Body string
	// Method and Path say which request failed.
	Method, Path string
}

func (e *Error) Error() string {
	return fmt.Sprintf("%s %s: HTTP %d: %s", e.Method, e.Path, e.Status, strings.TrimSpace(e.Body))
}

// TriggerParams are the optional parameters of a trigger.
type TriggerParams struct {
	// SocketID excludes that connection from the recipients (the sender).
	SocketID string
	// Info asks for channel attributes in the answer: "user_count"
	// (presence channels), "subscription_count", or both comma separated.
	Info string
}

// ChannelInfo is what the server reports about one channel.
type ChannelInfo struct {
	// Occupied is set by Channel (a trigger's info leaves it false).
	Occupied          bool `json:"occupied"`
	UserCount         int  `json:"user_count,omitempty"`
	SubscriptionCount int  `json:"subscription_count,omitempty"`
	// Cache is the last cached event of a cache channel (info=cache).
	Cache *CachedEvent `json:"cache,omitempty"`
}

// CachedEvent is a cache channel's cached data and its time to live.
type CachedEvent struct {
	Data string `json:"data"`
	TTL  int    `json:"ttl"`
}

// TriggerChannelsList is a trigger's answer when Info was asked for.
type TriggerChannelsList struct {
	Channels map[string]ChannelInfo `json:"channels"`
}

// Event is one event of a batch.
type Event struct {
	Channel  string `json:"channel"`
	Name     string `json:"name"`
	Data     any    `json:"-"`
	SocketID string `json:"socket_id,omitempty"`
	Info     string `json:"info,omitempty"`
}

// TriggerBatchChannelsList is a batch's answer: one entry per event, in
// order, when any event asked for Info.
type TriggerBatchChannelsList struct {
	Batch []ChannelInfo `json:"batch"`
}

// ChannelsParams filter Channels.
type ChannelsParams struct {
	// FilterByPrefix keeps channels whose name starts with it.
	FilterByPrefix string
	// Info is "user_count" (with FilterByPrefix "presence-") or
	// "subscription_count" where the server supports it.
	Info string
}

// ChannelsList is the occupied channels and the attributes asked for.
type ChannelsList struct {
	Channels map[string]ChannelInfo `json:"channels"`
}

// ChannelParams ask Channel for attributes: "user_count",
// "subscription_count", "cache", comma separated.
type ChannelParams struct {
	Info string
}

// Users is a presence channel's users.
type Users struct {
	List []User `json:"users"`
}

// User is one presence channel user.
type User struct {
	ID string `json:"id"`
}

// Trigger publishes event with data on channel. data is sent as is when a
// string or []byte, else marshalled to JSON; on a private-encrypted-
// channel it is encrypted with the channel's key first.
func (c *Client) Trigger(ctx context.Context, channel, event string, data any) error {
	_, err := c.TriggerMultiWithParams(ctx, []string{channel}, event, data, TriggerParams{})
	return err
}

// TriggerWithParams is Trigger with a socket to exclude and info to return.
func (c *Client) TriggerWithParams(ctx context.Context, channel, event string, data any, p TriggerParams) (*TriggerChannelsList, error) {
	return c.TriggerMultiWithParams(ctx, []string{channel}, event, data, p)
}

// TriggerMulti publishes one event on several channels (at most 100, none
// encrypted).
func (c *Client) TriggerMulti(ctx context.Context, channels []string, event string, data any) error {
	_, err := c.TriggerMultiWithParams(ctx, channels, event, data, TriggerParams{})
	return err
}

// TriggerMultiWithParams is TriggerMulti with a socket to exclude and info
// to return (nil when no Info was asked for).
func (c *Client) TriggerMultiWithParams(ctx context.Context, channels []string, event string, data any, p TriggerParams) (*TriggerChannelsList, error) {
	if len(channels) == 0 {
		return nil, errors.New("trigger: no channel")
	}
	if len(channels) > 100 {
		return nil, fmt.Errorf("trigger: %d channels, at most 100", len(channels))
	}
	for _, ch := range channels {
		if !wire.ValidChannel(ch) {
			return nil, fmt.Errorf("trigger: invalid channel name %q", ch)
		}
		if wire.IsEncrypted(ch) && len(channels) > 1 {
			return nil, fmt.Errorf("trigger: encrypted channel %q cannot share a trigger with other channels", ch)
		}
	}
	if p.SocketID != "" && !wire.ValidSocketID(p.SocketID) {
		return nil, fmt.Errorf("trigger: invalid socket id %q", p.SocketID)
	}
	payload, err := c.payload(channels[0], data)
	if err != nil {
		return nil, err
	}
	body := struct {
		Name     string   `json:"name"`
		Channels []string `json:"channels"`
		Data     string   `json:"data"`
		SocketID string   `json:"socket_id,omitempty"`
		Info     string   `json:"info,omitempty"`
	}{event, channels, payload, p.SocketID, p.Info}
	b, err := json.Marshal(body)
	if err != nil {
		return nil, err
	}
	var out TriggerChannelsList
	if err := c.do(ctx, http.MethodPost, "/events", nil, b, &out); err != nil {
		return nil, err
	}
	if p.Info == "" {
		return nil, nil
	}
	return &out, nil
}

// TriggerBatch publishes several events in one request (at most 10 on
// Pusher and by default on Herald). The answer has one entry per event
// when any asked for Info, else it is nil.
func (c *Client) TriggerBatch(ctx context.Context, batch []Event) (*TriggerBatchChannelsList, error) {
	type item struct {
		Channel  string `json:"channel"`
		Name     string `json:"name"`
		Data     string `json:"data"`
		SocketID string `json:"socket_id,omitempty"`
		Info     string `json:"info,omitempty"`
	}
	items := make([]item, 0, len(batch))
	info := false
	for i, e := range batch {
		if !wire.ValidChannel(e.Channel) {
			return nil, fmt.Errorf("batch event %d: invalid channel name %q", i, e.Channel)
		}
		payload, err := c.payload(e.Channel, e.Data)
		if err != nil {
			return nil, fmt.Errorf("batch event %d: %w", i, err)
		}
		items = append(items, item{e.Channel, e.Name, payload, e.SocketID, e.Info})
		info = info || e.Info != ""
	}
	b, err := json.Marshal(map[string]any{"batch": items})
	if err != nil {
		return nil, err
	}
	var out TriggerBatchChannelsList
	if err := c.do(ctx, http.MethodPost, "/batch_events", nil, b, &out); err != nil {
		return nil, err
	}
	if !info {
		return nil, nil
	}
	return &out, nil
}

// SendToUser sends event to every connection signed in as userID (the
// #server-to-user-{id} channel).
func (c *Client) SendToUser(ctx context.Context, userID, event string, data any) error {
	if userID == "" {
		return errors.New("send to user: empty user id")
	}
	return c.Trigger(ctx, wire.PrefixServerToUser+userID, event, data)
}

// Channels lists the occupied channels.
func (c *Client) Channels(ctx context.Context, p ChannelsParams) (*ChannelsList, error) {
	q := url.Values{}
	if p.FilterByPrefix != "" {
		q.Set("filter_by_prefix", p.FilterByPrefix)
	}
	if p.Info != "" {
		q.Set("info", p.Info)
	}
	var out ChannelsList
	if err := c.do(ctx, http.MethodGet, "/channels", q, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Channel reports one channel's state.
func (c *Client) Channel(ctx context.Context, name string, p ChannelParams) (*ChannelInfo, error) {
	q := url.Values{}
	if p.Info != "" {
		q.Set("info", p.Info)
	}
	var out ChannelInfo
	if err := c.do(ctx, http.MethodGet, "/channels/"+url.PathEscape(name), q, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// GetChannelUsers lists the users of a presence channel.
func (c *Client) GetChannelUsers(ctx context.Context, name string) (*Users, error) {
	var out Users
	if err := c.do(ctx, http.MethodGet, "/channels/"+url.PathEscape(name)+"/users", nil, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// HistoryParams page through a channel's history.
type HistoryParams struct {
	// After is the offset to start after: the events with a larger offset
	// are returned (0: from the oldest kept).
	After uint64
	// Limit is the most events returned (0: the server's default, 100 on
	// Herald; at most 1000).
	Limit int
}

// History is a page of a channel's history (Herald's channel history,
// docs/recovery.md): the events kept after HistoryParams.After, oldest
// first.
type History struct {
	Channel string `json:"channel"`
	// Epoch names the unbroken history the offsets count in; a new one
	// when the history was lost.
	Epoch string `json:"epoch"`
	// FirstOffset is the oldest event still kept (0 when none), LastOffset
	// the last assigned (0 when none yet): a client subscribing with
	// recover {Epoch, LastOffset} continues right after this page's state.
	FirstOffset uint64         `json:"first_offset"`
	LastOffset  uint64         `json:"last_offset"`
	Events      []HistoryEvent `json:"events"`
}

// HistoryEvent is one kept event.
type HistoryEvent struct {
	Offset uint64 `json:"offset"`
	Event  string `json:"event"`
	// Data is the event's data as sent (a client event's JSON as text).
	Data string `json:"data"`
	// UserID is the sender of a client event on a presence channel.
	UserID string `json:"user_id,omitempty"`
}

// More reports whether events after this page are kept: ask again with
// After set to the last event's offset.
func (h *History) More() bool {
	return len(h.Events) > 0 && h.Events[len(h.Events)-1].Offset < h.LastOffset
}

// History reads the events of a channel with history after p.After
// (GET /apps/{id}/channels/{name}/history, Herald only). A channel no
// history rule matches is a 404 *Error.
func (c *Client) History(ctx context.Context, channel string, p HistoryParams) (*History, error) {
	if channel == "" {
		return nil, errors.New("history: empty channel name")
	}
	if p.Limit < 0 {
		return nil, fmt.Errorf("history: negative limit %d", p.Limit)
	}
	q := url.Values{}
	if p.After > 0 {
		q.Set("after", strconv.FormatUint(p.After, 10))
	}
	if p.Limit > 0 {
		q.Set("limit", strconv.Itoa(p.Limit))
	}
	var out History
	if err := c.do(ctx, http.MethodGet, "/channels/"+url.PathEscape(channel)+"/history", q, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// TerminateUserConnections closes every connection signed in as userID.
func (c *Client) TerminateUserConnections(ctx context.Context, userID string) error {
	if userID == "" {
		return errors.New("terminate: empty user id")
	}
	return c.do(ctx, http.MethodPost, "/users/"+url.PathEscape(userID)+"/terminate_connections", nil, []byte("{}"), nil)
}

// payload turns data into the string the API carries, encrypted on an
// encrypted channel.
func (c *Client) payload(channel string, data any) (string, error) {
	var raw []byte
	switch d := data.(type) {
	case string:
		raw = []byte(d)
	case []byte:
		raw = d
	default:
		b, err := json.Marshal(data)
		if err != nil {
			return "", fmt.Errorf("event data: %w", err)
		}
		raw = b
	}
	if !wire.IsEncrypted(channel) {
		return string(raw), nil
	}
	if len(c.EncryptionMasterKey) != 32 {
		return "", fmt.Errorf("channel %q is encrypted: EncryptionMasterKey must be 32 bytes", channel)
	}
	return wire.Encrypt(wire.SharedSecret(channel, c.EncryptionMasterKey), raw)
}

func (c *Client) scheme() string {
	if c.Secure {
		return "https"
	}
	return "http"
}

func (c *Client) httpClient() *http.Client {
	if c.HTTPClient != nil {
		return c.HTTPClient
	}
	return &http.Client{Timeout: 10 * time.Second}
}

// Sign returns the query of a signed request: q plus auth_key,
// auth_timestamp, auth_version, body_md5 (when body is not empty) and
// auth_signature, as the Pusher HTTP API asks. path starts at /apps/.
func (c *Client) Sign(method, path string, q url.Values, body []byte) url.Values {
	now := time.Now
	if c.Now != nil {
		now = c.Now
	}
	out := url.Values{}
	for k, v := range q {
		out[k] = append([]string(nil), v...)
	}
	out.Set("auth_key", c.Key)
	out.Set("auth_timestamp", strconv.FormatInt(now().Unix(), 10))
	out.Set("auth_version", "1.0")
	if len(body) > 0 {
		sum := md5.Sum(body)
		out.Set("body_md5", hex.EncodeToString(sum[:]))
	}
	out.Set("auth_signature", wire.HMAC(c.Secret, method+"\n"+path+"\n"+canonicalQuery(out)))
	return out
}

// canonicalQuery joins the parameters except auth_signature, keys
// lower-cased and sorted, values unescaped.
func canonicalQuery(q url.Values) string {
	keys := make([]string, 0, len(q))
	vals := make(map[string]string, len(q))
	for k, v := range q {
		lk := strings.ToLower(k)
		if lk == "auth_signature" {
			continue
		}
		keys = append(keys, lk)
		vals[lk] = strings.Join(v, ",")
	}
	sort.Strings(keys)
	var b strings.Builder
	for i, k := range keys {
		if i > 0 {
			b.WriteByte('&')
		}
		b.WriteString(k)
		b.WriteByte('=')
		b.WriteString(vals[k])
	}
	return b.String()
}

// do sends a signed request, with retries on network errors and 5xx, and
// decodes a 2xx answer into out.
func (c *Client) do(ctx context.Context, method, sub string, q url.Values, body []byte, out any) error {
	if c.AppID == "" || c.Key == "" || c.Secret == "" || c.Host == "" {
		return errors.New("server.Client: AppID, Key, Secret and Host must be set")
	}
	path := "/apps/" + url.PathEscape(c.AppID) + sub
	retries := c.Retries
	if retries == 0 {
		retries = 2
	}
	if retries < 0 {
		retries = 0
	}
	backoff := c.RetryBackoff
	if backoff <= 0 {
		backoff = 100 * time.Millisecond
	}
	hc := c.httpClient()
	var lastErr error
	for attempt := 0; ; attempt++ {
		err := c.once(ctx, hc, method, path, q, body, out)
		if err == nil {
			return nil
		}
		lastErr = err
		var he *Error
		if errors.As(err, &he) && he.Status < 500 {
			return err // a 4xx answer will not change
		}
		if ctx.Err() != nil || attempt >= retries {
			break
		}
		d := backoff << attempt
		d = d/2 + rand.N(d/2+1) // jitter between half and all of it
		t := time.NewTimer(d)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("%w (gave up waiting to retry: %w)", lastErr, ctx.Err())
		}
	}
	return lastErr
}

func (c *Client) once(ctx context.Context, hc *http.Client, method, path string, q url.Values, body []byte, out any) error {
	signed := c.Sign(method, path, q, body)
	u := c.scheme() + "://" + c.Host + c.PathPrefix + path + "?" + signed.Encode()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return fmt.Errorf("%s %s: reading answer: %w", method, path, err)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return &Error{Status: resp.StatusCode, Body: string(b), Method: method, Path: path}
	}
	if out == nil || len(bytes.TrimSpace(b)) == 0 {
		return nil
	}
	if err := json.Unmarshal(b, out); err != nil {
		return fmt.Errorf("%s %s: answer is not the expected JSON: %w", method, path, err)
	}
	return nil
}
