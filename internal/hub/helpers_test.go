package hub

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/herald-ws/herald/internal/apps"
	"github.com/herald-ws/herald/internal/protocol"
)

// fakeConn is a Conn that records what the hub sends it.
type fakeConn struct {
	mu     sync.Mutex
	frames [][]byte
	ats    []int64 // the at of each frame in frames
	read   int     // frames already consumed by next/drain
	closed bool
	code   int
	reason string
	closes int
	appID  string // from Bind

	refuse  atomic.Bool // Send returns false
	discard bool        // do not record frames (benchmarks)

	// gone is set once Client.Closed has returned; any frame sent
	// after that is counted in late.
	gone atomic.Bool
	late atomic.Int64
	sent atomic.Int64
}

func (f *fakeConn) Send(frame []byte, at int64) bool {
	if f.discard {
		return true
	}
	f.sent.Add(1)
	if f.gone.Load() {
		f.late.Add(1)
	}
	f.mu.Lock()
	f.frames = append(f.frames, frame)
	f.ats = append(f.ats, at)
	f.mu.Unlock()
	return !f.refuse.Load()
}

func (f *fakeConn) Close(code int, reason string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.closes++
	if !f.closed {
		f.closed, f.code, f.reason = true, code, reason
	}
}

func (f *fakeConn) Bind(appID string) {
	f.mu.Lock()
	f.appID = appID
	f.mu.Unlock()
}

func (f *fakeConn) isClosed() (bool, int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.closed, f.code
}

// nopConn is the cheapest possible Conn, for benchmarks.
type nopConn struct{}

func (nopConn) Send([]byte, int64) bool { return true }
func (nopConn) Close(int, string)       {}
func (nopConn) Bind(string)             {}

// connectApp admits conn for app through admit, the one admission path.
func (h *Hub) connectApp(app *apps.App, conn Conn) (*Client, error) {
	return h.admit(context.Background(), conn, ConnInfo{Key: app.Key}, oneApp{app})
}

// frame is one decoded server → client message.
type frame struct {
	Event   string          `json:"event"`
	Channel string          `json:"channel"`
	Data    json.RawMessage `json:"data"`
	UserID  *string         `json:"user_id"`
	raw     []byte
}

func decodeFrame(t testing.TB, b []byte) frame {
	t.Helper()
	var f frame
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	if err := d.Decode(&f); err != nil {
		t.Fatalf("frame %s is not JSON: %v", b, err)
	}
	f.raw = b
	return f
}

// str returns data, which must be a JSON string.
func (f frame) str(t testing.TB) string {
	t.Helper()
	var s string
	if len(f.Data) == 0 || f.Data[0] != '"' {
		t.Fatalf("%s: data is not a JSON string", f.raw)
	}
	if err := json.Unmarshal(f.Data, &s); err != nil {
		t.Fatalf("%s: %v", f.raw, err)
	}
	return s
}

// inner decodes the JSON carried in the data string into v.
func (f frame) inner(t testing.TB, v any) {
	t.Helper()
	d := json.NewDecoder(strings.NewReader(f.str(t)))
	d.UseNumber()
	if err := d.Decode(v); err != nil {
		t.Fatalf("%s: data string is not the expected JSON: %v", f.raw, err)
	}
}

// errData decodes the object data of pusher:error.
type errData struct {
	Code    *int   `json:"code"`
	Message string `json:"message"`
}

func (f frame) errData(t testing.TB) errData {
	t.Helper()
	if f.Event != protocol.EventError {
		t.Fatalf("want pusher:error, got %s", f.raw)
	}
	var e errData
	if len(f.Data) == 0 || f.Data[0] != '{' {
		t.Fatalf("%s: pusher:error data must be an object", f.raw)
	}
	if err := json.Unmarshal(f.Data, &e); err != nil {
		t.Fatalf("%s: %v", f.raw, err)
	}
	return e
}

type subErrData struct {
	Type   string `json:"type"`
	Error  string `json:"error"`
	Status int    `json:"status"`
}

func (f frame) subErr(t testing.TB) subErrData {
	t.Helper()
	if f.Event != protocol.EventSubscriptionError {
		t.Fatalf("want pusher:subscription_error, got %s", f.raw)
	}
	var e subErrData
	if err := json.Unmarshal(f.Data, &e); err != nil {
		t.Fatalf("%s: %v", f.raw, err)
	}
	return e
}

// next returns the oldest frame not yet consumed.
func (f *fakeConn) next(t testing.TB) frame {
	t.Helper()
	f.mu.Lock()
	if f.read >= len(f.frames) {
		f.mu.Unlock()
		t.Fatalf("expected a frame, got none")
	}
	b := f.frames[f.read]
	f.read++
	f.mu.Unlock()
	return decodeFrame(t, b)
}

// nextRaw is next, as the exact bytes.
func (f *fakeConn) nextRaw(t testing.TB) string {
	t.Helper()
	return string(f.next(t).raw)
}

// none fails if an unconsumed frame is waiting.
func (f *fakeConn) none(t testing.TB) {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.read < len(f.frames) {
		var s []string
		for _, b := range f.frames[f.read:] {
			s = append(s, string(b))
		}
		t.Fatalf("expected no frame, got %d:\n%s", len(s), strings.Join(s, "\n"))
	}
}

// drain consumes and returns every waiting frame.
func (f *fakeConn) drain(t testing.TB) []frame {
	t.Helper()
	f.mu.Lock()
	bs := f.frames[f.read:]
	f.read = len(f.frames)
	f.mu.Unlock()
	out := make([]frame, 0, len(bs))
	for _, b := range bs {
		out = append(out, decodeFrame(t, b))
	}
	return out
}

// fakeClock is a manual clock.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *fakeClock {
	return &fakeClock{t: time.Date(2026, 11, 27, 8, 0, 0, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// recObserver counts Observer calls by "method app channel [detail]".
type recObserver struct {
	mu     sync.Mutex
	calls  map[string]int
	events []string // ClientEvent calls in order
	pubs   []string // Published calls in order: "channel event deliveries"
}

func newObserver() *recObserver { return &recObserver{calls: make(map[string]int)} }

func (o *recObserver) add(s string) {
	o.mu.Lock()
	o.calls[s]++
	o.mu.Unlock()
}

func (o *recObserver) count(s string) int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.calls[s]
}

func (o *recObserver) ConnectionOpened(appID string) { o.add("opened " + appID) }
func (o *recObserver) ConnectionClosed(appID string) { o.add("closed " + appID) }
func (o *recObserver) ChannelOccupied(appID, ch string) {
	o.add("occupied " + appID + " " + ch)
}
func (o *recObserver) ChannelVacated(appID, ch string) { o.add("vacated " + appID + " " + ch) }
func (o *recObserver) MemberAdded(appID, ch, user string) {
	o.add("member_added " + appID + " " + ch + " " + user)
}
func (o *recObserver) MemberRemoved(appID, ch, user string) {
	o.add("member_removed " + appID + " " + ch + " " + user)
}
func (o *recObserver) ClientEvent(appID, ch, event string, data []byte, socketID, userID string) {
	o.mu.Lock()
	o.events = append(o.events, fmt.Sprintf("%s %s %s %s %s %s", appID, ch, event, data, socketID, userID))
	o.mu.Unlock()
}
func (o *recObserver) CacheMiss(appID, ch string) { o.add("cache_miss " + appID + " " + ch) }
func (o *recObserver) SubscriptionCount(appID, ch string, n int) {
	o.add(fmt.Sprintf("subscription_count %s %s %d", appID, ch, n))
}
func (o *recObserver) Published(appID, ch, event string, n int) {
	o.mu.Lock()
	o.pubs = append(o.pubs, fmt.Sprintf("%s %s %d", ch, event, n))
	o.mu.Unlock()
}

// recBroker records what the hub hands to the other nodes.
type recBroker struct {
	mu       sync.Mutex
	msgs     []BrokerMessage
	interest map[string]int // "app/channel" or "app#user" → count
}

func (b *recBroker) Interest(_ context.Context, appID, channel string, on bool) error {
	b.count(appID+"/"+channel, on)
	return nil
}

func (b *recBroker) UserInterest(_ context.Context, appID, userID string, on bool) error {
	b.count(appID+"#"+userID, on)
	return nil
}

func (b *recBroker) count(k string, on bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.interest == nil {
		b.interest = make(map[string]int)
	}
	if on {
		b.interest[k]++
	} else if b.interest[k]--; b.interest[k] == 0 {
		delete(b.interest, k)
	}
}

func (b *recBroker) interests() map[string]int {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := make(map[string]int, len(b.interest))
	for k, v := range b.interest {
		out[k] = v
	}
	return out
}

func (b *recBroker) Attach(Receiver) {}

func (b *recBroker) Publish(_ context.Context, m BrokerMessage) error {
	b.mu.Lock()
	b.msgs = append(b.msgs, m)
	b.mu.Unlock()
	return nil
}

func (b *recBroker) take() []BrokerMessage {
	b.mu.Lock()
	defer b.mu.Unlock()
	m := b.msgs
	b.msgs = nil
	return m
}

// Test credentials: those of the protocol reference's vectors.
const (
	testKey    = "278d425bdf160c739803"
	testSecret = "7ad3773142a6692b25b8"
)

func testApp(mut func(*apps.App)) *apps.App {
	a := apps.Defaults()
	a.ID, a.Key, a.Secret = "1", testKey, testSecret
	if mut != nil {
		mut(&a)
	}
	return &a
}

// env is one hub with a fake clock and a recording observer.
type env struct {
	t   testing.TB
	h   *Hub
	clk *fakeClock
	app *apps.App
	obs *recObserver
}

func newEnv(t testing.TB, mut func(*apps.App), opts ...func(*Options)) *env {
	t.Helper()
	e := &env{t: t, clk: newClock(), app: testApp(mut), obs: newObserver()}
	o := Options{Now: e.clk.Now, Observer: e.obs, CacheTTL: time.Minute, Apps: oneApp{e.app}}
	for _, f := range opts {
		f(&o)
	}
	e.h = New(withMemoryEngine(o))
	return e
}

// connect admits a client and consumes its connection_established.
func (e *env) connect() (*Client, *fakeConn) {
	e.t.Helper()
	fc := &fakeConn{}
	c, err := e.h.connectApp(e.app, fc)
	if err != nil {
		e.t.Fatalf("connectApp: %v", err)
	}
	if f := fc.next(e.t); f.Event != protocol.EventConnectionEstablished {
		e.t.Fatalf("first frame: %s", f.raw)
	}
	return c, fc
}

// msg sends a client frame built from v (a string is sent as is).
func msg(c *Client, v any) {
	if s, ok := v.(string); ok {
		c.HandleMessage([]byte(s))
		return
	}
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	c.HandleMessage(b)
}

type obj = map[string]any

func subscribeMsg(channel, auth, channelData string) obj {
	d := obj{"channel": channel, "auth": auth}
	if channelData != "" {
		d["channel_data"] = channelData
	}
	return obj{"event": "pusher:subscribe", "data": d}
}

func (e *env) auth(socketID, channel, channelData string) string {
	return e.app.Key + ":" + protocol.Sign(e.app.Secret, protocol.ChannelAuthString(socketID, channel, channelData))
}

// sub subscribes c to channel (signing private and presence channels) and
// expects success, returning the subscription_succeeded frame.
func (e *env) sub(c *Client, fc *fakeConn, channel, channelData string) frame {
	e.t.Helper()
	auth := ""
	if protocol.Classify(channel).NeedsAuth() {
		auth = e.auth(c.SocketID(), channel, channelData)
	}
	msg(c, subscribeMsg(channel, auth, channelData))
	f := fc.next(e.t)
	if f.Event != protocol.EventSubscriptionSucceeded || f.Channel != channel {
		e.t.Fatalf("subscribe %s: got %s", channel, f.raw)
	}
	return f
}

func (e *env) signinMsg(socketID, userData string) obj {
	return obj{"event": "pusher:signin", "data": obj{
		"auth":      e.app.Key + ":" + protocol.Sign(e.app.Secret, protocol.UserAuthString(socketID, userData)),
		"user_data": userData,
	}}
}

// signin signs c in and consumes signin_success.
func (e *env) signin(c *Client, fc *fakeConn, userData string) {
	e.t.Helper()
	msg(c, e.signinMsg(c.SocketID(), userData))
	if f := fc.next(e.t); f.Event != protocol.EventSigninSuccess {
		e.t.Fatalf("signin: got %s", f.raw)
	}
}

func (e *env) channel(name string) ChannelInfo {
	e.t.Helper()
	info, err := e.h.Channel(context.Background(), e.app, name)
	if err != nil {
		e.t.Fatal(err)
	}
	return info
}

func (e *env) publish(name, data, except string, channels ...string) {
	e.t.Helper()
	if err := e.h.Publish(context.Background(), e.app, PublishRequest{Name: name, Channels: channels, Data: data, ExceptSocketID: except}); err != nil {
		e.t.Fatal(err)
	}
}

// forceSocketID renames a client, for the protocol reference's vectors
// that are computed for socket 1234.1234.
func forceSocketID(h *Hub, c *Client, id string) {
	sh := &h.clients[h.shardOf(c.id)]
	sh.mu.Lock()
	delete(sh.m, c.id)
	sh.mu.Unlock()
	c.id = id
	sh = &h.clients[h.shardOf(id)]
	sh.mu.Lock()
	sh.m[id] = c
	sh.mu.Unlock()
}

func wantErrFrame(t testing.TB, f frame, code int, contains string) {
	t.Helper()
	e := f.errData(t)
	switch {
	case code == 0 && e.Code != nil:
		t.Fatalf("%s: want code null", f.raw)
	case code != 0 && (e.Code == nil || *e.Code != code):
		t.Fatalf("%s: want code %d", f.raw, code)
	}
	if !strings.Contains(e.Message, contains) {
		t.Fatalf("%s: message should contain %q", f.raw, contains)
	}
}

func wantOpen(t testing.TB, fc *fakeConn) {
	t.Helper()
	if closed, code := fc.isClosed(); closed {
		t.Fatalf("connection closed with %d, want it open", code)
	}
}

func wantClosed(t testing.TB, fc *fakeConn, code int) {
	t.Helper()
	closed, got := fc.isClosed()
	if !closed || got != code {
		t.Fatalf("closed=%v code=%d, want closed with %d", closed, got, code)
	}
}

// oneApp is an AppLookup that knows one app.
type oneApp struct{ app *apps.App }

func (s oneApp) ByID(_ context.Context, id string) (*apps.App, error) {
	if id != s.app.ID {
		return nil, apps.ErrNotFound
	}
	return s.app, nil
}

func (s oneApp) ByKey(_ context.Context, key string) (*apps.App, error) {
	if key != s.app.Key {
		return nil, apps.ErrNotFound
	}
	return s.app, nil
}

func (s oneApp) All(context.Context) ([]*apps.App, error) { return []*apps.App{s.app}, nil }
