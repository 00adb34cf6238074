package server_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/herald-ws/herald/sdk/client"
	"github.com/herald-ws/herald/sdk/internal/heraldtest"
	"github.com/herald-ws/herald/sdk/server"
)

// herald is the herald binary, built on first use (or $HERALD_BIN).
var herald heraldtest.Binary

func TestMain(m *testing.M) {
	code := m.Run()
	herald.Cleanup()
	os.Exit(code)
}

var masterKey, _ = base64.StdEncoding.DecodeString("AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=")

func api(port int) *server.Client {
	return &server.Client{
		AppID: heraldtest.AppID, Key: heraldtest.Key, Secret: heraldtest.Secret,
		Host: "127.0.0.1:" + strconv.Itoa(port), EncryptionMasterKey: masterKey,
	}
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	heraldtest.Eventually(t, 10*time.Second, what, cond)
}

// subscriber connects a client as user to channels and waits for them.
func subscriber(t *testing.T, port int, user string, channels ...string) (*client.Client, *events) {
	t.Helper()
	c, err := client.New(heraldtest.Key, client.Options{
		Host: "127.0.0.1", Port: port,
		ChannelAuthorizer: &client.LocalAuth{Key: heraldtest.Key, Secret: heraldtest.Secret, EncryptionMasterKey: masterKey, Member: client.Member{ID: user}, UserData: map[string]any{"id": user}},
		UserAuthenticator: &client.LocalAuth{Key: heraldtest.Key, Secret: heraldtest.Secret, UserData: map[string]any{"id": user}},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	ev := &events{}
	c.BindAll(func(e client.Event) { ev.add(e) })
	c.User().BindAll(func(e client.Event) { ev.add(e) })
	c.Connect()
	for _, name := range channels {
		if err := c.Subscribe(name).WaitSubscribed(ctxT(t)); err != nil {
			t.Fatal(err)
		}
	}
	return c, ev
}

type events struct {
	mu   sync.Mutex
	list []client.Event
}

func (e *events) add(ev client.Event) {
	e.mu.Lock()
	e.list = append(e.list, ev)
	e.mu.Unlock()
}

func (e *events) find(name, data string) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, ev := range e.list {
		if ev.Name == name && string(ev.Data) == data {
			return true
		}
	}
	return false
}

func TestTriggerQueriesAgainstHerald(t *testing.T) {
	n := heraldtest.Start(t, herald.Path(t), heraldtest.Options{})
	sdk := api(n.Port)
	ctx := ctxT(t)
	sub, ev := subscriber(t, n.Port, "u1", "news", "presence-lobby", "private-encrypted-box", "cache-last")
	_, _ = subscriber(t, n.Port, "u2", "presence-lobby")

	// Trigger (string, []byte, struct), with info and socket exclusion.
	if err := sdk.Trigger(ctx, "news", "s", "text"); err != nil {
		t.Fatal(err)
	}
	if err := sdk.Trigger(ctx, "news", "b", []byte(`{"b":1}`)); err != nil {
		t.Fatal(err)
	}
	info, err := sdk.TriggerMultiWithParams(ctx, []string{"news", "presence-lobby"}, "m", struct{ N int }{3}, server.TriggerParams{Info: "user_count,subscription_count"})
	if err != nil {
		t.Fatal(err)
	}
	if info.Channels["presence-lobby"].UserCount != 2 || info.Channels["news"].SubscriptionCount != 1 {
		t.Fatalf("trigger info %+v", info)
	}
	if _, err := sdk.TriggerWithParams(ctx, "news", "excluded", "x", server.TriggerParams{SocketID: sub.SocketID()}); err != nil {
		t.Fatal(err)
	}
	// Encrypted: the client decrypts what the SDK encrypted.
	if err := sdk.Trigger(ctx, "private-encrypted-box", "secret", map[string]string{"k": "v"}); err != nil {
		t.Fatal(err)
	}
	// Batch with info on one item.
	batch, err := sdk.TriggerBatch(ctx, []server.Event{
		{Channel: "news", Name: "batch1", Data: "1"},
		{Channel: "presence-lobby", Name: "batch2", Data: "2", Info: "user_count"},
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(batch.Batch) != 2 || batch.Batch[1].UserCount != 2 {
		t.Fatalf("batch info %+v", batch)
	}
	if err := sdk.Trigger(ctx, "news", "last", "end"); err != nil {
		t.Fatal(err)
	}
	eventually(t, "events", func() bool { return ev.find("last", "end") })
	for _, want := range [][2]string{{"s", "text"}, {"b", `{"b":1}`}, {"m", `{"N":3}`}, {"secret", `{"k":"v"}`}, {"batch1", "1"}, {"batch2", "2"}} {
		if !ev.find(want[0], want[1]) {
			t.Errorf("event %s %s not received", want[0], want[1])
		}
	}
	if ev.find("excluded", "x") {
		t.Error("the excluded socket received the event")
	}
	if err := sdk.TriggerMulti(ctx, []string{"private-encrypted-box", "news"}, "x", "y"); err == nil {
		t.Error("encrypted channel mixed with others accepted")
	}

	// Channels, Channel, users.
	list, err := sdk.Channels(ctx, server.ChannelsParams{FilterByPrefix: "presence-", Info: "user_count"})
	if err != nil || len(list.Channels) != 1 || list.Channels["presence-lobby"].UserCount != 2 {
		t.Fatalf("channels %+v %v", list, err)
	}
	all, err := sdk.Channels(ctx, server.ChannelsParams{})
	if err != nil || len(all.Channels) != 4 {
		t.Fatalf("all channels %+v %v", all, err)
	}
	if err := sdk.Trigger(ctx, "cache-last", "c", "cached"); err != nil {
		t.Fatal(err)
	}
	ch, err := sdk.Channel(ctx, "cache-last", server.ChannelParams{Info: "subscription_count,cache"})
	if err != nil || !ch.Occupied || ch.SubscriptionCount != 1 || ch.Cache == nil || ch.Cache.Data != "cached" {
		t.Fatalf("channel %+v %v", ch, err)
	}
	empty, err := sdk.Channel(ctx, "nobody-here", server.ChannelParams{})
	if err != nil || empty.Occupied {
		t.Fatalf("empty channel %+v %v", empty, err)
	}
	users, err := sdk.GetChannelUsers(ctx, "presence-lobby")
	if err != nil || len(users.List) != 2 {
		t.Fatalf("users %+v %v", users, err)
	}

	// A 4xx is typed, carries the status and is not retried.
	_, err = sdk.GetChannelUsers(ctx, "news")
	var he *server.Error
	if !errors.As(err, &he) || he.Status != 400 {
		t.Fatalf("users of a public channel: %v", err)
	}
	bad := api(n.Port)
	bad.Secret = "wrong"
	err = bad.Trigger(ctx, "news", "x", "y")
	if !errors.As(err, &he) || he.Status != 401 || he.Body == "" {
		t.Fatalf("wrong secret: %v", err)
	}
}

func TestSendToUserAndTerminate(t *testing.T) {
	n := heraldtest.Start(t, herald.Path(t), heraldtest.Options{})
	sdk := api(n.Port)
	ctx := ctxT(t)
	c, ev := subscriber(t, n.Port, "7")
	c.SignIn()
	if err := c.User().WaitSignedIn(ctx); err != nil {
		t.Fatal(err)
	}
	if err := sdk.SendToUser(ctx, "7", "hello", `{"hi":1}`); err != nil {
		t.Fatal(err)
	}
	eventually(t, "user event", func() bool { return ev.find("hello", `{"hi":1}`) })
	if err := sdk.TerminateUserConnections(ctx, "7"); err != nil {
		t.Fatal(err)
	}
	eventually(t, "terminated", func() bool { return c.State() == client.Failed })
}

func TestRetriesOn5xxAndNetworkErrorsNotOn4xx(t *testing.T) {
	var calls atomic.Int32
	status := atomic.Int32{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := calls.Add(1)
		if int(n) < 3 || status.Load() == 400 {
			http.Error(w, "busy", int(status.Load()))
			return
		}
		w.Write([]byte("{}"))
	}))
	defer srv.Close()
	c := &server.Client{AppID: "1", Key: "k", Secret: "s", Host: strings.TrimPrefix(srv.URL, "http://"), RetryBackoff: time.Millisecond}
	status.Store(503)
	if err := c.Trigger(ctxT(t), "a", "e", "d"); err != nil || calls.Load() != 3 {
		t.Fatalf("503 twice then 200: err %v after %d calls", err, calls.Load())
	}
	calls.Store(0)
	status.Store(400)
	err := c.Trigger(ctxT(t), "a", "e", "d")
	var he *server.Error
	if !errors.As(err, &he) || he.Status != 400 || calls.Load() != 1 {
		t.Fatalf("400: %v after %d calls", err, calls.Load())
	}
	calls.Store(0)
	status.Store(502)
	c.Retries = -1
	if err := c.Trigger(ctxT(t), "a", "e", "d"); !errors.As(err, &he) || he.Status != 502 || calls.Load() != 1 {
		t.Fatalf("retries off: %v after %d calls", err, calls.Load())
	}
	// A network error (the connection is closed before an answer) is
	// retried, then reported.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var accepted atomic.Int32
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			accepted.Add(1)
			conn.Close()
		}
	}()
	defer ln.Close()
	dead := &server.Client{AppID: "1", Key: "k", Secret: "s", Host: ln.Addr().String(), RetryBackoff: time.Millisecond, Retries: 3}
	if err := dead.Trigger(ctxT(t), "a", "e", "d"); err == nil || errors.As(err, &he) {
		t.Fatalf("dead server: %v", err)
	}
	if accepted.Load() != 4 {
		t.Fatalf("%d attempts on network errors, want 4", accepted.Load())
	}
}

// TestSignatureVectors checks the worked examples of the protocol reference.
func TestSignatureVectors(t *testing.T) {
	c := &server.Client{AppID: "3", Key: "278d425bdf160c739803", Secret: "7ad3773142a6692b25b8",
		Now: func() time.Time { return time.Unix(1353088179, 0) }}
	q := c.Sign("POST", "/apps/3/events", nil, []byte(`{"name":"foo","channels":["project-3"],"data":"{\"some\":\"data\"}"}`))
	if q.Get("body_md5") != "ec365a775a4cd0599faeb73354201b6f" || q.Get("auth_signature") != "da454824c97ba181a32ccc17a72625ba02771f50b50e1e7430e47a1f3f457e6c" {
		t.Fatalf("POST signature %v", q)
	}
	q = c.Sign("GET", "/apps/3/channels", url.Values{"filter_by_prefix": {"presence-"}, "info": {"user_count"}}, nil)
	if q.Get("auth_signature") != "16819168891cb5dfd72b5c7a5d3d602605b26c6ba1930033b5e2eeeb65010291" {
		t.Fatalf("GET signature %v", q)
	}

	out, err := c.AuthorizePrivateChannel([]byte("socket_id=1234.1234&channel_name=private-foobar"))
	if err != nil || string(out) != `{"auth":"278d425bdf160c739803:58df8b0c36d6982b82c3ecf6b4662e34fe8c25bba48f5369f135bf843651c3a4"}` {
		t.Fatalf("private auth %s %v", out, err)
	}
	out, err = c.AuthorizePresenceChannel([]byte("socket_id=1234.1234&channel_name=presence-foobar"), server.MemberData{UserID: "10", UserInfo: map[string]string{"name": "Mr. Channels"}})
	var pres struct {
		Auth        string `json:"auth"`
		ChannelData string `json:"channel_data"`
	}
	if err != nil || json.Unmarshal(out, &pres) != nil || pres.ChannelData != `{"user_id":"10","user_info":{"name":"Mr. Channels"}}` || !strings.HasPrefix(pres.Auth, "278d425bdf160c739803:") {
		t.Fatalf("presence auth %s %v", out, err)
	}
	c.EncryptionMasterKey = masterKey
	out, err = c.AuthorizePrivateChannel([]byte("socket_id=1234.1234&channel_name=private-encrypted-foobar"))
	if err != nil || !strings.Contains(string(out), `"shared_secret":"g3Au6SZ+UCU+IMfFsFva0rq+Gi4tzSHR6WCcWZbS9sY="`) {
		t.Fatalf("encrypted auth %s %v", out, err)
	}
	out, err = c.AuthenticateUser([]byte("socket_id=1234.1234"), map[string]any{"id": "12345", "user_info": map[string]string{"name": "Ada"}, "watchlist": []string{"67", "89"}})
	var ua struct {
		Auth     string `json:"auth"`
		UserData string `json:"user_data"`
	}
	if err != nil || json.Unmarshal(out, &ua) != nil {
		t.Fatalf("user auth %s %v", out, err)
	}
	// user_data keys come out sorted by encoding/json; the signature
	// covers exactly the string sent.
	if ua.UserData != `{"id":"12345","user_info":{"name":"Ada"},"watchlist":["67","89"]}` ||
		ua.Auth != "278d425bdf160c739803:6ca80c154c719885dfec98578ec04007b6b4b221f61821ba13548203ddaeda48" {
		t.Fatalf("user auth %+v", ua)
	}
	for _, bad := range []string{"socket_id=abc&channel_name=private-x", "socket_id=1.1&channel_name=public", "%zz"} {
		if _, err := c.AuthorizePrivateChannel([]byte(bad)); err == nil {
			t.Errorf("AuthorizePrivateChannel(%q) accepted", bad)
		}
	}
	if _, err := c.AuthenticateUser([]byte("socket_id=1.1"), map[string]any{"id": 5}); err == nil {
		t.Error("numeric user id accepted")
	}
}

func TestWebhookFromHerald(t *testing.T) {
	got := make(chan *server.Webhook, 10)
	var sdk *server.Client
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		wh, err := sdk.Webhook(r.Header, body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusUnauthorized)
			return
		}
		// The same body with a forged signature is refused.
		h := r.Header.Clone()
		h.Set("X-Pusher-Signature", strings.Repeat("0", 64))
		if _, err := sdk.Webhook(h, body); !errors.Is(err, server.ErrWebhookSignature) {
			http.Error(w, "forged accepted", 500)
			return
		}
		got <- wh
	}))
	defer srv.Close()
	n := heraldtest.Start(t, herald.Path(t), heraldtest.Options{Extra: "webhooks:\n  - url: " + srv.URL + "\n    event_types: [channel_occupied]\n"})
	sdk = api(n.Port)
	subscriber(t, n.Port, "u", "hooked")
	select {
	case wh := <-got:
		if len(wh.Events) != 1 || wh.Events[0].Name != "channel_occupied" || wh.Events[0].Channel != "hooked" || wh.TimeMs == 0 {
			t.Fatalf("webhook %+v", wh)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("no webhook\n%s", n.Logs())
	}
	// The protocol reference's vector.
	c := &server.Client{Key: "k", Secret: "7ad3773142a6692b25b8"}
	body := []byte(`{"time_ms":1327078148132,"events":[{"name":"channel_occupied","channel":"test-channel"}]}`)
	h := http.Header{"X-Pusher-Key": {"k"}, "X-Pusher-Signature": {"5dd6562a9f744b72a688bcdfea41c14c2c56d12c44c99e32c08face4cc1e8aeb"}}
	if _, err := c.Webhook(h, body); err != nil {
		t.Fatal(err)
	}
	// user_id as a number and data as an object decode too.
	c2 := &server.Client{Key: "k", Secret: "s"}
	body2 := []byte(`{"time_ms":1,"events":[{"name":"client_event","channel":"presence-a","event":"client-x","data":{"a":1},"user_id":12}]}`)
	wh, err := c2.Webhook(http.Header{"X-Pusher-Key": {"k"}, "X-Pusher-Signature": {hmacHex("s", body2)}}, body2)
	if err != nil || wh.Events[0].UserID != "12" || wh.Events[0].Data != `{"a":1}` || wh.Events[0].Event != "client-x" {
		t.Fatalf("loose webhook: %+v %v", wh, err)
	}
	h.Set("X-Pusher-Key", "other")
	if _, err := c.Webhook(h, body); !errors.Is(err, server.ErrWebhookSignature) {
		t.Fatalf("wrong key: %v", err)
	}
}

func hmacHex(secret string, body []byte) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write(body)
	return hex.EncodeToString(m.Sum(nil))
}
