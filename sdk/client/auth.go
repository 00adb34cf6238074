package client

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/herald-ws/herald/sdk/internal/wire"
)

// ChannelAuth is what a channel authorizer returns, the JSON an auth
// endpoint answers: {"auth": …, "channel_data": …, "shared_secret": …}.
type ChannelAuth struct {
	// Auth is "{app key}:{signature}".
	Auth string `json:"auth"`
	// ChannelData is the presence member, JSON text such as
	// {"user_id":"7","user_info":{"name":"Ada"}} (presence channels only).
	ChannelData string `json:"channel_data,omitempty"`
	// SharedSecret is the base64 key of a private-encrypted- channel.
	SharedSecret string `json:"shared_secret,omitempty"`
}

// UserAuth is what a user authenticator returns, the JSON a user-auth
// endpoint answers: {"auth": …, "user_data": …}.
type UserAuth struct {
	// Auth is "{app key}:{signature}".
	Auth string `json:"auth"`
	// UserData is JSON text with at least a string "id".
	UserData string `json:"user_data"`
}

// ChannelAuthorizer authorizes a subscription to a private, presence or
// encrypted channel for the connection socketID. The client calls it again
// after every reconnection, with the new socket id.
type ChannelAuthorizer interface {
	AuthorizeChannel(ctx context.Context, socketID, channel string) (ChannelAuth, error)
}

// ChannelAuthorizerFunc adapts a function to ChannelAuthorizer.
type ChannelAuthorizerFunc func(ctx context.Context, socketID, channel string) (ChannelAuth, error)

// AuthorizeChannel calls f.
func (f ChannelAuthorizerFunc) AuthorizeChannel(ctx context.Context, socketID, channel string) (ChannelAuth, error) {
	return f(ctx, socketID, channel)
}

// UserAuthenticator signs the connection socketID in (pusher:signin). The
// client calls it again after every reconnection.
type UserAuthenticator interface {
	AuthenticateUser(ctx context.Context, socketID string) (UserAuth, error)
}

// UserAuthenticatorFunc adapts a function to UserAuthenticator.
type UserAuthenticatorFunc func(ctx context.Context, socketID string) (UserAuth, error)

// AuthenticateUser calls f.
func (f UserAuthenticatorFunc) AuthenticateUser(ctx context.Context, socketID string) (UserAuth, error) {
	return f(ctx, socketID)
}

// AuthError is an authorizer's failure; Status is the auth endpoint's HTTP
// status (0 when no HTTP answer was involved).
type AuthError struct {
	Status int
	Body   string
	Err    error
}

func (e *AuthError) Error() string {
	if e.Status != 0 {
		return fmt.Sprintf("auth endpoint answered %d: %s", e.Status, strings.TrimSpace(e.Body))
	}
	return "authorization failed: " + e.Err.Error()
}

func (e *AuthError) Unwrap() error { return e.Err }

// HTTPAuth calls an application's auth endpoint the way pusher-js does: a
// POST of application/x-www-form-urlencoded socket_id and channel_name
// (channel authorization) or socket_id alone (user authentication), plus
// Params, with Headers. It is both a ChannelAuthorizer and a
// UserAuthenticator; use one value per endpoint (Laravel:
// /broadcasting/auth and /broadcasting/user-auth).
type HTTPAuth struct {
	// Endpoint is the URL to POST to.
	Endpoint string
	// Headers are added to every request (Authorization, X-CSRF-TOKEN, …).
	Headers http.Header
	// Params are added to the form body.
	Params url.Values
	// Client sends the requests; nil means http.DefaultClient.
	Client *http.Client
}

// AuthorizeChannel POSTs socket_id and channel_name to the endpoint.
func (h *HTTPAuth) AuthorizeChannel(ctx context.Context, socketID, channel string) (ChannelAuth, error) {
	var out ChannelAuth
	form := url.Values{"socket_id": {socketID}, "channel_name": {channel}}
	if err := h.post(ctx, form, &out); err != nil {
		return ChannelAuth{}, err
	}
	if out.Auth == "" {
		return ChannelAuth{}, &AuthError{Err: errors.New(`auth endpoint answered without "auth"`)}
	}
	return out, nil
}

// AuthenticateUser POSTs socket_id to the endpoint.
func (h *HTTPAuth) AuthenticateUser(ctx context.Context, socketID string) (UserAuth, error) {
	var out UserAuth
	if err := h.post(ctx, url.Values{"socket_id": {socketID}}, &out); err != nil {
		return UserAuth{}, err
	}
	if out.Auth == "" || out.UserData == "" {
		return UserAuth{}, &AuthError{Err: errors.New(`user auth endpoint answered without "auth" and "user_data"`)}
	}
	return out, nil
}

func (h *HTTPAuth) post(ctx context.Context, form url.Values, out any) error {
	for k, vs := range h.Params {
		for _, v := range vs {
			form.Add(k, v)
		}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, h.Endpoint, strings.NewReader(form.Encode()))
	if err != nil {
		return &AuthError{Err: fmt.Errorf("auth request: %w", err)}
	}
	for k, vs := range h.Headers {
		for _, v := range vs {
			req.Header.Add(k, v)
		}
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	hc := h.Client
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		return &AuthError{Err: fmt.Errorf("auth endpoint %s: %w", h.Endpoint, err)}
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return &AuthError{Status: resp.StatusCode, Err: fmt.Errorf("auth endpoint %s: reading body: %w", h.Endpoint, err)}
	}
	if resp.StatusCode != http.StatusOK {
		return &AuthError{Status: resp.StatusCode, Body: string(body), Err: errors.New(http.StatusText(resp.StatusCode))}
	}
	if err := json.Unmarshal(body, out); err != nil {
		return &AuthError{Status: resp.StatusCode, Body: string(body), Err: fmt.Errorf("auth endpoint %s: answer is not JSON: %w", h.Endpoint, err)}
	}
	return nil
}

// LocalAuth signs subscriptions and sign-ins in the process with the app
// secret, for trusted services (workers, tests) that hold the secret
// anyway. Never ship the secret to an untrusted device; use HTTPAuth there.
type LocalAuth struct {
	// Key and Secret are the app's credentials.
	Key, Secret string
	// EncryptionMasterKey (32 bytes) derives each private-encrypted-
	// channel's key, as the server SDKs do; needed only for those channels.
	EncryptionMasterKey []byte
	// Member is the identity used on presence channels.
	Member Member
	// UserData is the sign-in identity, marshalled to JSON; it must have
	// a string "id" (e.g. map[string]any{"id": "worker-1"}).
	UserData any
}

// AuthorizeChannel signs channel for socketID.
func (l *LocalAuth) AuthorizeChannel(_ context.Context, socketID, channel string) (ChannelAuth, error) {
	var out ChannelAuth
	if wire.IsPresence(channel) {
		if l.Member.ID == "" {
			return out, &AuthError{Err: fmt.Errorf("LocalAuth.Member.ID is empty: cannot join presence channel %q", channel)}
		}
		cd, err := json.Marshal(struct {
			UserID   string          `json:"user_id"`
			UserInfo json.RawMessage `json:"user_info,omitempty"`
		}{l.Member.ID, l.Member.Info})
		if err != nil {
			return out, &AuthError{Err: fmt.Errorf("presence member: %w", err)}
		}
		out.ChannelData = string(cd)
	}
	if wire.IsEncrypted(channel) {
		if len(l.EncryptionMasterKey) != 32 {
			return out, &AuthError{Err: fmt.Errorf("LocalAuth.EncryptionMasterKey must be 32 bytes for %q", channel)}
		}
		k := wire.SharedSecret(channel, l.EncryptionMasterKey)
		out.SharedSecret = base64.StdEncoding.EncodeToString(k[:])
	}
	out.Auth = wire.ChannelAuth(l.Key, l.Secret, socketID, channel, out.ChannelData)
	return out, nil
}

// AuthenticateUser signs UserData in for socketID.
func (l *LocalAuth) AuthenticateUser(_ context.Context, socketID string) (UserAuth, error) {
	b, err := json.Marshal(l.UserData)
	if err != nil {
		return UserAuth{}, &AuthError{Err: fmt.Errorf("user data: %w", err)}
	}
	var probe struct {
		ID any `json:"id"`
	}
	if json.Unmarshal(b, &probe) != nil {
		return UserAuth{}, &AuthError{Err: errors.New("LocalAuth.UserData must be a JSON object with a string id")}
	}
	if id, ok := probe.ID.(string); !ok || id == "" {
		return UserAuth{}, &AuthError{Err: errors.New("LocalAuth.UserData must be a JSON object with a string id")}
	}
	return UserAuth{Auth: wire.UserAuth(l.Key, l.Secret, socketID, string(b)), UserData: string(b)}, nil
}
