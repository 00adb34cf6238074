package server

import (
	"crypto/hmac"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"

	"github.com/herald-ws/herald/sdk/internal/wire"
)

// MemberData is a presence channel member: the user's id and the
// user_info the other members see.
type MemberData struct {
	UserID   string `json:"user_id"`
	UserInfo any    `json:"user_info,omitempty"`
}

// authParams reads socket_id and channel_name from an auth request body
// (application/x-www-form-urlencoded, as pusher-js sends it).
func authParams(params []byte, needChannel bool) (socketID, channel string, err error) {
	v, err := url.ParseQuery(string(params))
	if err != nil {
		return "", "", fmt.Errorf("auth request body is not a form: %w", err)
	}
	socketID, channel = v.Get("socket_id"), v.Get("channel_name")
	if !wire.ValidSocketID(socketID) {
		return "", "", fmt.Errorf("invalid socket_id %q", socketID)
	}
	if needChannel && !wire.ValidChannel(channel) {
		return "", "", fmt.Errorf("invalid channel_name %q", channel)
	}
	return socketID, channel, nil
}

// AuthorizePrivateChannel answers an auth endpoint request for a private-
// or private-encrypted- channel: params is the request body (socket_id and
// channel_name, form encoded) and the result is the JSON to answer with.
// On an encrypted channel it includes the channel's shared_secret (needs
// EncryptionMasterKey). Check that the user may join the channel first.
func (c *Client) AuthorizePrivateChannel(params []byte) ([]byte, error) {
	socketID, channel, err := authParams(params, true)
	if err != nil {
		return nil, err
	}
	if !wire.IsPrivate(channel) {
		return nil, fmt.Errorf("channel %q is not private", channel)
	}
	out := map[string]string{"auth": wire.ChannelAuth(c.Key, c.Secret, socketID, channel, "")}
	if wire.IsEncrypted(channel) {
		if len(c.EncryptionMasterKey) != 32 {
			return nil, fmt.Errorf("channel %q is encrypted: EncryptionMasterKey must be 32 bytes", channel)
		}
		k := wire.SharedSecret(channel, c.EncryptionMasterKey)
		out["shared_secret"] = base64.StdEncoding.EncodeToString(k[:])
	}
	return json.Marshal(out)
}

// AuthorizePresenceChannel answers an auth endpoint request for a
// presence- channel with member as the joining user.
func (c *Client) AuthorizePresenceChannel(params []byte, member MemberData) ([]byte, error) {
	socketID, channel, err := authParams(params, true)
	if err != nil {
		return nil, err
	}
	if !wire.IsPresence(channel) {
		return nil, fmt.Errorf("channel %q is not a presence channel", channel)
	}
	if member.UserID == "" {
		return nil, errors.New("presence member has no user id")
	}
	cd, err := json.Marshal(member)
	if err != nil {
		return nil, fmt.Errorf("presence member: %w", err)
	}
	return json.Marshal(map[string]string{
		"auth":         wire.ChannelAuth(c.Key, c.Secret, socketID, channel, string(cd)),
		"channel_data": string(cd),
	})
}

// AuthenticateUser answers a user-auth endpoint request (params: the body
// with socket_id) for userData, which must have a non-empty string "id"
// (and may have "user_info" and "watchlist").
func (c *Client) AuthenticateUser(params []byte, userData map[string]any) ([]byte, error) {
	socketID, _, err := authParams(params, false)
	if err != nil {
		return nil, err
	}
	if id, ok := userData["id"].(string); !ok || id == "" {
		return nil, errors.New(`user data must have a non-empty string "id"`)
	}
	ud, err := json.Marshal(userData)
	if err != nil {
		return nil, fmt.Errorf("user data: %w", err)
	}
	return json.Marshal(map[string]string{
		"auth":      wire.UserAuth(c.Key, c.Secret, socketID, string(ud)),
		"user_data": string(ud),
	})
}

// Webhook is a verified webhook request.
type Webhook struct {
	// TimeMs is when the server made it (Unix milliseconds).
	TimeMs int64 `json:"time_ms"`
	// Events are its events, oldest first.
	Events []WebhookEvent `json:"events"`
}

// WebhookEvent is one webhook event: channel_occupied, channel_vacated,
// member_added, member_removed, client_event, cache_miss,
// subscription_count.
type WebhookEvent struct {
	Name              string `json:"name"`
	Channel           string `json:"channel"`
	Event             string `json:"event,omitempty"`
	Data              string `json:"data,omitempty"`
	SocketID          string `json:"socket_id,omitempty"`
	UserID            string `json:"user_id,omitempty"`
	SubscriptionCount int    `json:"subscription_count,omitempty"`
}

// UnmarshalJSON accepts user_id as a JSON string or number (servers emit
// it as the auth endpoint gave it) and data as a string or any JSON value.
func (e *WebhookEvent) UnmarshalJSON(b []byte) error {
	type plain WebhookEvent
	var v struct {
		plain
		UserID json.RawMessage `json:"user_id"`
		Data   json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	*e = WebhookEvent(v.plain)
	e.UserID = rawText(v.UserID)
	e.Data = rawText(v.Data)
	return nil
}

// rawText is a JSON string's content, or the JSON text of any other value.
func rawText(raw json.RawMessage) string {
	if len(raw) == 0 || string(raw) == "null" {
		return ""
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	return string(raw)
}

// ErrWebhookSignature is returned for a webhook whose key or signature
// does not match the app's.
var ErrWebhookSignature = errors.New("webhook: invalid key or signature")

// Webhook verifies a webhook request (X-Pusher-Key equals Key and
// X-Pusher-Signature is the HMAC-SHA256 of body with Secret) and decodes
// it. Pass the raw body, exactly as received.
func (c *Client) Webhook(header http.Header, body []byte) (*Webhook, error) {
	if header.Get("X-Pusher-Key") != c.Key {
		return nil, ErrWebhookSignature
	}
	want := wire.HMAC(c.Secret, string(body))
	if !hmac.Equal([]byte(want), []byte(header.Get("X-Pusher-Signature"))) {
		return nil, ErrWebhookSignature
	}
	var w Webhook
	if err := json.Unmarshal(body, &w); err != nil {
		return nil, fmt.Errorf("webhook body: %w", err)
	}
	return &w, nil
}
