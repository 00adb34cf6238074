package client_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
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

var masterKey = func() []byte {
	k, _ := base64.StdEncoding.DecodeString("AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=")
	return k
}()

func api(port int) *server.Client {
	return &server.Client{
		AppID: heraldtest.AppID, Key: heraldtest.Key, Secret: heraldtest.Secret,
		Host: "127.0.0.1:" + strconv.Itoa(port), EncryptionMasterKey: masterKey,
	}
}

func ctxT(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// dial makes a client for port and waits until it is connected.
func dial(t *testing.T, port int, o client.Options) *client.Client {
	t.Helper()
	c := newClient(t, port, o)
	c.Connect()
	if err := c.WaitConnected(ctxT(t, 10*time.Second)); err != nil {
		t.Fatalf("connect: %v", err)
	}
	return c
}

func newClient(t *testing.T, port int, o client.Options) *client.Client {
	t.Helper()
	o.Host, o.Port = "127.0.0.1", port
	c, err := client.New(heraldtest.Key, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func local(member string) *client.LocalAuth {
	return &client.LocalAuth{
		Key: heraldtest.Key, Secret: heraldtest.Secret, EncryptionMasterKey: masterKey,
		Member:   client.Member{ID: member, Info: json.RawMessage(`{"name":"` + member + `"}`)},
		UserData: map[string]any{"id": member},
	}
}

// eventually polls cond until it holds or d passes.
func eventually(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	heraldtest.Eventually(t, d, what, cond)
}

// counter counts deliveries by key.
type counter struct {
	mu sync.Mutex
	n  map[string]int
}

func (c *counter) add(k string) {
	c.mu.Lock()
	if c.n == nil {
		c.n = map[string]int{}
	}
	c.n[k]++
	c.mu.Unlock()
}

func (c *counter) get(k string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n[k]
}

func (c *counter) snapshot() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := map[string]int{}
	for k, v := range c.n {
		out[k] = v
	}
	return out
}

// noLeak checks that no goroutine started by the client package is left.
func noLeak(t *testing.T) {
	t.Helper()
	var dump string
	eventually(t, 5*time.Second, "client goroutines to end", func() bool {
		buf := make([]byte, 1<<20)
		dump = string(buf[:runtime.Stack(buf, true)])
		return !strings.Contains(dump, "created by github.com/herald-ws/herald/sdk/client.")
	})
}

func TestPublicChannelBindingsAndStates(t *testing.T) {
	n := heraldtest.Start(t, herald.Path(t), heraldtest.Options{})
	c := newClient(t, n.Port, client.Options{})
	if c.State() != client.Initialized {
		t.Fatalf("state %s, want initialized", c.State())
	}
	var states []string
	var smu sync.Mutex
	c.OnStateChange(func(sc client.StateChange) {
		smu.Lock()
		states = append(states, sc.Previous.String()+">"+sc.Current.String())
		smu.Unlock()
	})
	changes, stopChanges := c.StateChanges(8)
	defer stopChanges()
	c.Connect()
	if err := c.WaitConnected(ctxT(t, 10*time.Second)); err != nil {
		t.Fatal(err)
	}
	if sc := <-changes; sc.Current != client.Connecting {
		t.Fatalf("first change on the channel: %v", sc)
	}
	if sc := <-changes; sc.Current != client.Connected {
		t.Fatalf("second change on the channel: %v", sc)
	}
	if id := c.SocketID(); !strings.Contains(id, ".") {
		t.Fatalf("socket id %q", id)
	}
	var named, all, global, globalAll counter
	ch := c.Channel("orders")
	unbind := ch.Bind("created", func(e client.Event) { named.add(string(e.Data)) })
	ch.BindAll(func(e client.Event) { all.add(e.Name) })
	c.Bind("created", func(e client.Event) { global.add(e.Channel) })
	c.BindAll(func(e client.Event) { globalAll.add(e.Name) })
	ch.Subscribe()
	if err := ch.WaitSubscribed(ctxT(t, 5*time.Second)); err != nil {
		t.Fatal(err)
	}
	if !ch.Subscribed() {
		t.Fatal("Subscribed false after WaitSubscribed")
	}
	ctx := ctxT(t, 10*time.Second)
	if err := api(n.Port).Trigger(ctx, "orders", "created", map[string]int{"id": 1}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "event", func() bool { return all.get("created") == 1 })
	if named.get(`{"id":1}`) != 1 || global.get("orders") != 1 || globalAll.get("created") != 1 {
		t.Fatalf("named %v global %v globalAll %v", named.snapshot(), global.snapshot(), globalAll.snapshot())
	}
	if all.get(client.EventSubscriptionSucceeded) != 1 {
		t.Fatalf("subscription_succeeded seen %d times", all.get(client.EventSubscriptionSucceeded))
	}
	unbind()
	if err := api(n.Port).Trigger(ctx, "orders", "created", "plain text"); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "second event", func() bool { return all.get("created") == 2 })
	if named.get("plain text") != 0 {
		t.Fatal("unbound handler ran")
	}
	// Unsubscribe: the server stops sending; a later event on another
	// channel arrives while this one's does not.
	ch.Unsubscribe()
	other := c.Subscribe("other")
	if err := other.WaitSubscribed(ctx); err != nil {
		t.Fatal(err)
	}
	if err := api(n.Port).TriggerMulti(ctx, []string{"orders", "other"}, "created", "x"); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "event on other", func() bool { return global.get("other") == 1 })
	if all.get("created") != 2 {
		t.Fatalf("event after Unsubscribe delivered: %v", all.snapshot())
	}
	c.Disconnect()
	eventually(t, 5*time.Second, "disconnected", func() bool { return c.State() == client.Disconnected })
	c.Close()
	smu.Lock()
	got := strings.Join(states, " ")
	smu.Unlock()
	if got != "initialized>connecting connecting>connected connected>disconnected" {
		t.Fatalf("states: %s", got)
	}
	noLeak(t)
}

// authServer plays an application's auth endpoints with the server SDK.
func authServer(t *testing.T, port int) (*httptest.Server, *counter) {
	sdk := api(port)
	var calls counter
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if r.Header.Get("Authorization") != "Bearer t0k" || r.URL.Query().Get("tenant") != "" {
			http.Error(w, "no bearer", http.StatusUnauthorized)
			return
		}
		form := string(body)
		if !strings.Contains(form, "tenant=acme") {
			http.Error(w, "param missing", http.StatusBadRequest)
			return
		}
		calls.add(r.URL.Path)
		var out []byte
		var err error
		switch {
		case r.URL.Path == "/user-auth":
			user := r.URL.Query().Get("user")
			out, err = sdk.AuthenticateUser(body, map[string]any{"id": user, "user_info": map[string]string{"name": user}})
		case strings.Contains(form, "channel_name=private-forbidden"):
			http.Error(w, "forbidden", http.StatusForbidden)
			return
		case strings.Contains(form, "channel_name=presence-"):
			out, err = sdk.AuthorizePresenceChannel(body, server.MemberData{UserID: r.URL.Query().Get("user"), UserInfo: map[string]string{"name": "U"}})
		default:
			out, err = sdk.AuthorizePrivateChannel(body)
		}
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Write(out)
	}))
	t.Cleanup(srv.Close)
	return srv, &calls
}

func httpAuth(srv *httptest.Server, path, user string) *client.HTTPAuth {
	return &client.HTTPAuth{
		Endpoint: srv.URL + path + "?user=" + user,
		Headers:  http.Header{"Authorization": {"Bearer t0k"}},
		Params:   map[string][]string{"tenant": {"acme"}},
	}
}

func TestPrivateAndEncryptedThroughHTTPAuth(t *testing.T) {
	n := heraldtest.Start(t, herald.Path(t), heraldtest.Options{})
	srv, calls := authServer(t, n.Port)
	c := dial(t, n.Port, client.Options{ChannelAuthorizer: httpAuth(srv, "/auth", "1")})
	ctx := ctxT(t, 15*time.Second)

	var got counter
	priv := c.Channel("private-orders")
	priv.Bind("paid", func(e client.Event) { got.add("private:" + string(e.Data)) })
	priv.Subscribe()
	enc := c.Channel("private-encrypted-orders")
	enc.Bind("paid", func(e client.Event) { got.add("encrypted:" + string(e.Data)) })
	enc.Subscribe()
	for _, ch := range []*client.Channel{priv, enc} {
		if err := ch.WaitSubscribed(ctx); err != nil {
			t.Fatal(err)
		}
	}
	sdk := api(n.Port)
	if err := sdk.Trigger(ctx, "private-orders", "paid", `{"id":7}`); err != nil {
		t.Fatal(err)
	}
	if err := sdk.Trigger(ctx, "private-encrypted-orders", "paid", map[string]int{"id": 8}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "both events", func() bool {
		return got.get(`private:{"id":7}`) == 1 && got.get(`encrypted:{"id":8}`) == 1
	})
	if calls.get("/auth") != 2 {
		t.Fatalf("auth calls %v", calls.snapshot())
	}

	// A refusal of the endpoint is a SubscriptionError with its status.
	var subErr counter
	bad := c.Channel("private-forbidden")
	bad.Bind(client.EventSubscriptionError, func(e client.Event) { subErr.add(string(e.Data)) })
	bad.Subscribe()
	err := bad.WaitSubscribed(ctx)
	var se *client.SubscriptionError
	if !errors.As(err, &se) || se.Status != http.StatusForbidden || se.Type != "AuthError" {
		t.Fatalf("forbidden channel: %v", err)
	}
	eventually(t, 5*time.Second, "subscription_error event", func() bool { return len(subErr.snapshot()) == 1 })

	// No authorizer at all.
	c2 := dial(t, n.Port, client.Options{})
	if err := c2.Subscribe("private-x").WaitSubscribed(ctx); !errors.As(err, &se) {
		t.Fatalf("private channel without authorizer: %v", err)
	}
	// Encrypted channel: a server with a wrong key produces a
	// pusher:decryption_error, never garbage.
	wrong := api(n.Port)
	wrong.EncryptionMasterKey = make([]byte, 32)
	var decErr counter
	enc.Bind("pusher:decryption_error", func(e client.Event) { decErr.add("x") })
	if err := wrong.Trigger(ctx, "private-encrypted-orders", "paid", "x"); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "decryption error", func() bool { return decErr.get("x") == 1 })
	if got.get("encrypted:x") != 0 {
		t.Fatal("undecryptable event delivered")
	}
}

func TestPresenceMembersTwoClients(t *testing.T) {
	n := heraldtest.Start(t, herald.Path(t), heraldtest.Options{})
	ctx := ctxT(t, 15*time.Second)
	a := dial(t, n.Port, client.Options{ChannelAuthorizer: local("ada")})
	pa := a.Channel("presence-room")
	var added, removed counter
	pa.OnMemberAdded(func(m client.Member) { added.add(m.ID + string(m.Info)) })
	pa.OnMemberRemoved(func(m client.Member) { removed.add(m.ID) })
	pa.Subscribe()
	if err := pa.WaitSubscribed(ctx); err != nil {
		t.Fatal(err)
	}
	if me, ok := pa.Me(); !ok || me.ID != "ada" || string(me.Info) != `{"name":"ada"}` {
		t.Fatalf("me %+v %v", me, ok)
	}
	if pa.MemberCount() != 1 {
		t.Fatalf("members %v", pa.Members())
	}

	srv, _ := authServer(t, n.Port)
	b := dial(t, n.Port, client.Options{ChannelAuthorizer: httpAuth(srv, "/auth", "bob")})
	pb := b.Subscribe("presence-room")
	if err := pb.WaitSubscribed(ctx); err != nil {
		t.Fatal(err)
	}
	if m := pb.Members(); len(m) != 2 || m[0].ID != "ada" || m[1].ID != "bob" || string(m[0].Info) != `{"name":"ada"}` {
		t.Fatalf("bob sees %+v", m)
	}
	eventually(t, 5*time.Second, "member_added", func() bool { return added.get(`bob{"name":"U"}`) == 1 })
	if m, ok := pa.Member("bob"); !ok || string(m.Info) != `{"name":"U"}` {
		t.Fatalf("ada's roster: %+v", pa.Members())
	}
	users, err := api(n.Port).GetChannelUsers(ctx, "presence-room")
	if err != nil || len(users.List) != 2 {
		t.Fatalf("users %+v %v", users, err)
	}
	b.Close()
	eventually(t, 5*time.Second, "member_removed", func() bool { return removed.get("bob") == 1 })
	if pa.MemberCount() != 1 {
		t.Fatalf("after bob left: %v", pa.Members())
	}
}

func TestCacheChannel(t *testing.T) {
	n := heraldtest.Start(t, herald.Path(t), heraldtest.Options{})
	ctx := ctxT(t, 15*time.Second)
	a := dial(t, n.Port, client.Options{})
	var ev counter
	ca := a.Channel("cache-price")
	ca.BindAll(func(e client.Event) { ev.add("a:" + e.Name + ":" + string(e.Data)) })
	ca.Subscribe()
	eventually(t, 5*time.Second, "cache_miss", func() bool { return ev.get("a:"+client.EventCacheMiss+":") == 1 })
	if err := api(n.Port).Trigger(ctx, "cache-price", "price", `{"usd":1}`); err != nil {
		t.Fatal(err)
	}
	b := dial(t, n.Port, client.Options{})
	cb := b.Channel("cache-price")
	cb.BindAll(func(e client.Event) { ev.add("b:" + e.Name + ":" + string(e.Data)) })
	cb.Subscribe()
	eventually(t, 5*time.Second, "cached event", func() bool { return ev.get(`b:price:{"usd":1}`) == 1 })
	if ev.get("b:"+client.EventCacheMiss+":") != 0 {
		t.Fatal("cache_miss after a cached event")
	}
}

func TestClientEvents(t *testing.T) {
	n := heraldtest.Start(t, herald.Path(t), heraldtest.Options{})
	ctx := ctxT(t, 15*time.Second)
	a := dial(t, n.Port, client.Options{ChannelAuthorizer: local("ada")})
	b := dial(t, n.Port, client.Options{ChannelAuthorizer: local("bob")})
	var got counter
	for _, name := range []string{"private-chat", "presence-chat"} {
		pa, pb := a.Channel(name), b.Channel(name)
		pa.Bind("client-typing", func(e client.Event) { got.add("a:" + e.Channel) })
		pb.Bind("client-typing", func(e client.Event) { got.add("b:" + e.Channel + ":" + e.UserID + ":" + string(e.Data)) })
		pa.Subscribe()
		pb.Subscribe()
		if err := pa.WaitSubscribed(ctx); err != nil {
			t.Fatal(err)
		}
		if err := pb.WaitSubscribed(ctx); err != nil {
			t.Fatal(err)
		}
		if err := pa.Trigger(ctx, "client-typing", map[string]bool{"on": true}); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, 5*time.Second, "client events", func() bool {
		return got.get(`b:private-chat::{"on":true}`) == 1 && got.get(`b:presence-chat:ada:{"on":true}`) == 1
	})
	// A reply from b arrives at a, so a's own events were not echoed
	// before it (same connection, in order).
	if err := b.Channel("private-chat").Trigger(ctx, "client-typing", 1); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "reply", func() bool { return got.get("a:private-chat") == 1 })
	if got.get("a:presence-chat") != 0 {
		t.Fatal("client event echoed to its sender")
	}
	for _, tc := range []struct{ ch, ev string }{
		{"private-chat", "typing"}, {"public", "client-x"}, {"private-encrypted-x", "client-x"},
	} {
		if err := a.Channel(tc.ch).Trigger(ctx, tc.ev, 1); err == nil {
			t.Fatalf("Trigger(%s, %s) accepted", tc.ch, tc.ev)
		}
	}
	if err := a.Channel("private-not-joined").Trigger(ctx, "client-x", 1); !errors.Is(err, client.ErrNotSubscribed) {
		t.Fatalf("trigger on unsubscribed channel: %v", err)
	}
}

func TestSignInSendToUserAndTerminate(t *testing.T) {
	n := heraldtest.Start(t, herald.Path(t), heraldtest.Options{})
	srv, _ := authServer(t, n.Port)
	ctx := ctxT(t, 15*time.Second)
	c := dial(t, n.Port, client.Options{UserAuthenticator: httpAuth(srv, "/user-auth", "42")})
	var got counter
	c.User().Bind("notice", func(e client.Event) { got.add(string(e.Data)) })
	c.Bind(client.EventSigninSuccess, func(e client.Event) { got.add("signin") })
	c.SignIn()
	if err := c.User().WaitSignedIn(ctx); err != nil {
		t.Fatal(err)
	}
	if c.User().ID() != "42" {
		t.Fatalf("user id %q", c.User().ID())
	}
	sdk := api(n.Port)
	if err := sdk.SendToUser(ctx, "42", "notice", `{"n":1}`); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "user event", func() bool { return got.get(`{"n":1}`) == 1 && got.get("signin") == 1 })

	// A local signer works too.
	l := dial(t, n.Port, client.Options{UserAuthenticator: local("svc")})
	l.SignIn()
	if err := l.User().WaitSignedIn(ctx); err != nil || l.User().ID() != "svc" {
		t.Fatalf("local sign-in: %v %q", err, l.User().ID())
	}

	if err := sdk.TerminateUserConnections(ctx, "42"); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "failed after terminate", func() bool { return c.State() == client.Failed })
	var ce *client.CloseError
	if !errors.As(c.Err(), &ce) || ce.Code != 4009 {
		t.Fatalf("terminated with %v", c.Err())
	}
	if l.State() != client.Connected {
		t.Fatalf("other user's client: %s", l.State())
	}
}

func TestFuncAuthorizersAndClientUnsubscribe(t *testing.T) {
	n := heraldtest.Start(t, herald.Path(t), heraldtest.Options{})
	ctx := ctxT(t, 15*time.Second)
	signer := local("fn")
	var calls counter
	c := dial(t, n.Port, client.Options{
		ChannelAuthorizer: client.ChannelAuthorizerFunc(func(ctx context.Context, socketID, channel string) (client.ChannelAuth, error) {
			calls.add(channel)
			if channel == "private-no" {
				return client.ChannelAuth{}, errors.New("not you")
			}
			return signer.AuthorizeChannel(ctx, socketID, channel)
		}),
		UserAuthenticator: client.UserAuthenticatorFunc(func(ctx context.Context, socketID string) (client.UserAuth, error) {
			calls.add("user")
			return signer.AuthenticateUser(ctx, socketID)
		}),
	})
	if !strings.HasPrefix(c.URL(), "ws://127.0.0.1:"+strconv.Itoa(n.Port)+"/app/"+heraldtest.Key+"?") || !strings.Contains(c.URL(), "protocol=7") {
		t.Fatalf("URL %s", c.URL())
	}
	if err := c.Subscribe("presence-fn").WaitSubscribed(ctx); err != nil {
		t.Fatal(err)
	}
	var se *client.SubscriptionError
	if err := c.Subscribe("private-no").WaitSubscribed(ctx); !errors.As(err, &se) || !strings.Contains(se.Message, "not you") {
		t.Fatalf("refused by the func: %v", err)
	}
	c.SignIn()
	if err := c.User().WaitSignedIn(ctx); err != nil {
		t.Fatal(err)
	}
	if calls.get("presence-fn") != 1 || calls.get("user") != 1 {
		t.Fatalf("calls %v", calls.snapshot())
	}
	c.Unsubscribe("presence-fn")
	eventually(t, 5*time.Second, "channel vacated", func() bool {
		info, err := api(n.Port).Channel(ctx, "presence-fn", server.ChannelParams{})
		return err == nil && !info.Occupied
	})
	if err := c.Channel("presence-fn").WaitSubscribed(ctx); err == nil {
		t.Fatal("WaitSubscribed after Unsubscribe returned nil")
	}
}
