package server

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/herald-ws/herald/internal/config"
	"github.com/herald-ws/herald/internal/protocol"
	"github.com/herald-ws/herald/internal/testwait"
)

// scrape reads a /metrics page into series → value, the series written as
// name{label="value",...} with the labels sorted (as the encoder writes
// them).
func scrape(t *testing.T, url string) map[string]float64 {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s: %s", url, resp.Status)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
		t.Fatalf("Content-Type %q", ct)
	}
	out := make(map[string]float64)
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("metrics line %q: %v", line, err)
		}
		out[line[:i]] = v
	}
	return out
}

// series names a series the way scrape keys it.
func series(name string, labels ...string) string {
	if len(labels) == 0 {
		return name
	}
	var pairs []string
	for i := 0; i+1 < len(labels); i += 2 {
		pairs = append(pairs, labels[i]+"="+strconv.Quote(labels[i+1]))
	}
	sort.Strings(pairs)
	return name + "{" + strings.Join(pairs, ",") + "}"
}

// waitMetric scrapes until the series has the value, or fails with the
// last value seen.
func waitMetric(t *testing.T, url, s string, want float64) map[string]float64 {
	t.Helper()
	var m map[string]float64
	if !testwait.Until(10*time.Second, func() bool { m = scrape(t, url); return m[s] == want }) {
		t.Fatalf("%s = %v, want %v", s, m[s], want)
	}
	return m
}

// wsSend writes a message and returns its length (bytes in).
func wsSend(t *testing.T, c *websocket.Conn, msg string) int {
	t.Helper()
	if err := c.WriteMessage(websocket.TextMessage, []byte(msg)); err != nil {
		t.Fatal(err)
	}
	return len(msg)
}

// readUntil reads frames until one has the event (and channel, if given).
func readFor(t *testing.T, c *websocket.Conn, event, channel string) frame {
	t.Helper()
	for {
		f := read(t, c)
		if f.Event == event && (channel == "" || f.Channel == channel) {
			return f
		}
	}
}

func socketOf(t *testing.T, f frame) string {
	t.Helper()
	var inner string
	if err := json.Unmarshal(f.Data, &inner); err != nil {
		t.Fatal(err)
	}
	var d struct {
		SocketID string `json:"socket_id"`
	}
	if err := json.Unmarshal([]byte(inner), &d); err != nil {
		t.Fatal(err)
	}
	return d.SocketID
}

func subscribeMsg(channel, socket, channelData string) string {
	auth := ""
	if protocol.Classify(channel).NeedsAuth() {
		auth = "app-key:" + protocol.Sign("app-secret", protocol.ChannelAuthString(socket, channel, channelData))
	}
	m := map[string]any{"event": "pusher:subscribe", "data": map[string]string{"channel": channel, "auth": auth, "channel_data": channelData}}
	b, _ := json.Marshal(m)
	return string(b)
}

func TestMetricsAfterAKnownSequence(t *testing.T) {
	addr, stop := startServer(t, func(c *config.Config) {
		c.Apps[0].ClientEventsPerSecond = 1
		c.WriteQueueKB = 64
	})
	murl := "http://" + addr + "/metrics"
	app := "app-id"

	// Two clients; c1 on a public, a private and a presence channel, c2 on
	// the private one.
	in := 0
	c1 := dial(t, addr, "app-key")
	s1 := socketOf(t, readFor(t, c1, protocol.EventConnectionEstablished, ""))
	c2 := dial(t, addr, "app-key")
	s2 := socketOf(t, readFor(t, c2, protocol.EventConnectionEstablished, ""))
	in += wsSend(t, c1, subscribeMsg("orders", s1, ""))
	readFor(t, c1, "pusher_internal:subscription_succeeded", "orders")
	in += wsSend(t, c1, subscribeMsg("private-chat", s1, ""))
	readFor(t, c1, "pusher_internal:subscription_succeeded", "private-chat")
	in += wsSend(t, c2, subscribeMsg("private-chat", s2, ""))
	readFor(t, c2, "pusher_internal:subscription_succeeded", "private-chat")
	in += wsSend(t, c1, subscribeMsg("presence-room", s1, `{"user_id":"7","user_info":{"name":"Ada"}}`))
	readFor(t, c1, "pusher_internal:subscription_succeeded", "presence-room")

	// One API event (one delivery), one client event (to c2 only), one
	// client event over the rate limit of 1 per second.
	if resp := publish(t, addr, `{"name":"created","channel":"orders","data":"{}"}`); resp.StatusCode != 200 {
		t.Fatalf("publish: %s", resp.Status)
	}
	readFor(t, c1, "created", "orders")
	in += wsSend(t, c1, `{"event":"client-typing","channel":"private-chat","data":{}}`)
	readFor(t, c2, "client-typing", "private-chat")
	in += wsSend(t, c1, `{"event":"client-typing","channel":"private-chat","data":{}}`)
	readFor(t, c1, "pusher:error", "")

	// A refused key.
	bad, _, err := websocket.DefaultDialer.Dial("ws://"+addr+"/app/nope?protocol=7", nil)
	if err != nil {
		t.Fatal(err)
	}
	readFor(t, bad, "pusher:error", "")
	bad.Close()

	waitMetric(t, murl, series("herald_refusals_total", "app", app, "limit", "client_events_per_second"), 1)
	// Two socket writes carried a published message (the API event to c1,
	// the client event to c2): replies (connection_established,
	// subscription_succeeded, the rate-limit error) are not measured. A
	// write is observed once it returned, which may be after the client
	// read it.
	m := waitMetric(t, murl, series("herald_delivery_latency_seconds_count", "app", app), 2)
	expect := map[string]float64{
		series("herald_connections", "app", app):                                                                2,
		series("herald_connections_opened_total", "app", app):                                                   2,
		series("herald_connections_refused_total", "app", "", "code", "4001"):                                   1,
		series("herald_channels", "app", app, "kind", "public"):                                                 1,
		series("herald_channels", "app", app, "kind", "private"):                                                1,
		series("herald_channels", "app", app, "kind", "presence"):                                               1,
		series("herald_subscriptions", "app", app, "kind", "private"):                                           2,
		series("herald_presence_members", "app", app):                                                           1,
		series("herald_messages_received_total", "app", app, "source", "api"):                                   1,
		series("herald_messages_sent_total", "app", app, "source", "api"):                                       1,
		series("herald_messages_received_total", "app", app, "source", "client"):                                1,
		series("herald_messages_sent_total", "app", app, "source", "client"):                                    1,
		series("herald_fanout_duration_seconds_count", "app", app, "source", "api"):                             1,
		series("herald_fanout_duration_seconds_count", "app", app, "source", "client"):                          1,
		series("herald_received_bytes_total", "app", app):                                                       float64(in),
		series("herald_http_requests_total", "app", app, "endpoint", "POST /apps/{id}/events", "status", "200"): 1,
	}
	for s, want := range expect {
		if got, ok := m[s]; !ok || got != want {
			t.Errorf("%s = %v (present %v), want %v", s, got, ok, want)
		}
	}
	if m[series("herald_sent_bytes_total", "app", app)] <= 0 {
		t.Errorf("herald_sent_bytes_total is %v", m[series("herald_sent_bytes_total", "app", app)])
	}
	for _, s := range []string{"go_goroutines", "process_resident_memory_bytes"} {
		if _, ok := m[s]; !ok {
			t.Errorf("%s missing (Go and process collectors)", s)
		}
	}

	// c2 closes normally; its private channel keeps c1.
	if err := c2.WriteMessage(websocket.CloseMessage, websocket.FormatCloseMessage(1000, "bye")); err != nil {
		t.Fatal(err)
	}
	m = waitMetric(t, murl, series("herald_connections_closed_total", "app", app, "code", "1000"), 1)
	if got := m[series("herald_connections", "app", app)]; got != 1 {
		t.Errorf("herald_connections = %v after a close, want 1", got)
	}
	if got := m[series("herald_subscriptions", "app", app, "kind", "private")]; got != 1 {
		t.Errorf("herald_subscriptions{private} = %v after a close, want 1", got)
	}

	// A slow consumer: subscribed, reading nothing, with a small receive
	// buffer, while events pile up past write_queue_kb.
	d := websocket.Dialer{NetDialContext: func(ctx context.Context, network, a string) (net.Conn, error) {
		conn, err := (&net.Dialer{}).DialContext(ctx, network, a)
		if tc, ok := conn.(*net.TCPConn); ok {
			_ = tc.SetReadBuffer(4096)
		}
		return conn, err
	}}
	slow, _, err := d.Dial("ws://"+addr+"/app/app-key?protocol=7", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer slow.Close()
	ss := socketOf(t, readFor(t, slow, protocol.EventConnectionEstablished, ""))
	wsSend(t, slow, subscribeMsg("firehose", ss, ""))
	readFor(t, slow, "pusher_internal:subscription_succeeded", "firehose")
	payload := strings.Repeat("p", 9000)
	slowKey := series("herald_slow_consumer_disconnects_total", "app", app)
	for i := 0; ; i++ {
		if scrape(t, murl)[slowKey] == 1 {
			break
		}
		if i == 2000 {
			t.Fatal("the slow consumer was never disconnected")
		}
		body := fmt.Sprintf(`{"name":"blob","channel":"firehose","data":%q}`, payload)
		if resp := publish(t, addr, body); resp.StatusCode != 200 {
			t.Fatalf("publish: %s", resp.Status)
		}
	}
	waitMetric(t, murl, series("herald_connections_closed_total", "app", app, "code", "4100"), 1)

	if err := stop(); err != nil {
		t.Fatal(err)
	}
}

// TestDeliveryLatencyReachesTheSocketWrite publishes N events to K
// subscribers, each event read by every subscriber before the next is
// published, so that every delivery is a socket write of its own: the
// delivery-latency histogram then counts exactly N×K writes, and its sum
// lies within the time the sequence took.
func TestDeliveryLatencyReachesTheSocketWrite(t *testing.T) {
	addr, stop := startServer(t, nil)
	murl := "http://" + addr + "/metrics"
	app := "app-id"
	const n, k = 5, 3
	var clients []*websocket.Conn
	for range k {
		c := dial(t, addr, "app-key")
		sock := socketOf(t, readFor(t, c, protocol.EventConnectionEstablished, ""))
		wsSend(t, c, subscribeMsg("news", sock, ""))
		readFor(t, c, "pusher_internal:subscription_succeeded", "news")
		clients = append(clients, c)
	}
	countKey := series("herald_delivery_latency_seconds_count", "app", app)
	sumKey := series("herald_delivery_latency_seconds_sum", "app", app)
	if m := scrape(t, murl); m[countKey] != 0 {
		t.Fatalf("%s = %v before any publish (replies must not count)", countKey, m[countKey])
	}
	start := time.Now()
	for i := range n {
		body := fmt.Sprintf(`{"name":"tick","channel":"news","data":"%d"}`, i)
		if resp := publish(t, addr, body); resp.StatusCode != 200 {
			t.Fatalf("publish: %s", resp.Status)
		}
		for _, c := range clients {
			readFor(t, c, "tick", "news")
		}
	}
	m := waitMetric(t, murl, countKey, n*k)
	// Every observation lies between the first publish and this scrape.
	bound := time.Since(start).Seconds() * k * n
	if sum := m[sumKey]; sum <= 0 || sum > bound {
		t.Errorf("%s = %v, want in (0, %v]", sumKey, sum, bound)
	}
	if got := m[series("herald_delivery_latency_seconds_bucket", "app", app, "le", "+Inf")]; got != n*k {
		t.Errorf("+Inf bucket %v, want %d", got, n*k)
	}
	if got := m[series("herald_fanout_duration_seconds_count", "app", app, "source", "api")]; got != n {
		t.Errorf("fanout count %v, want %d (one per message and channel)", got, n)
	}
	if got := m[series("herald_messages_sent_total", "app", app, "source", "api")]; got != n*k {
		t.Errorf("messages sent %v, want %d", got, n*k)
	}
	for _, c := range clients {
		c.Close()
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
}

func TestClusterMetrics(t *testing.T) {
	withRedis := clusterConfig(t)
	a, _ := startServer(t, withRedis)
	b, _ := startServer(t, withRedis)
	app := "app-id"
	c := dial(t, a, "app-key")
	readFor(t, c, protocol.EventConnectionEstablished, "")
	wsSend(t, c, subscribeMsg("orders", "", ""))
	readFor(t, c, "pusher_internal:subscription_succeeded", "orders")

	// Published on b, delivered on a through Redis.
	deadline := time.Now().Add(10 * time.Second)
	for {
		if resp := publish(t, b, `{"name":"shipped","channel":"orders","data":"{}"}`); resp.StatusCode != 200 {
			t.Fatalf("publish on b: %s", resp.Status)
		}
		_ = c.SetReadDeadline(time.Now().Add(time.Second))
		if _, msg, err := c.ReadMessage(); err == nil && strings.Contains(string(msg), "shipped") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no event from the other node")
		}
	}
	ma := scrape(t, "http://"+a+"/metrics")
	if ma[series("herald_messages_received_total", "app", app, "source", "cluster")] < 1 ||
		ma[series("herald_messages_sent_total", "app", app, "source", "cluster")] < 1 {
		t.Errorf("node a: cluster messages in %v, out %v",
			ma[series("herald_messages_received_total", "app", app, "source", "cluster")],
			ma[series("herald_messages_sent_total", "app", app, "source", "cluster")])
	}
	mb := scrape(t, "http://"+b+"/metrics")
	// b had no local subscriber: the API event was taken, delivered to no
	// socket here.
	if got := mb[series("herald_messages_received_total", "app", app, "source", "api")]; got < 1 {
		t.Errorf("node b: api messages in %v", got)
	}
	if got := mb[series("herald_messages_sent_total", "app", app, "source", "api")]; got != 0 {
		t.Errorf("node b: api messages out %v, want 0", got)
	}
	for name, m := range map[string]map[string]float64{"a": ma, "b": mb} {
		for _, kind := range []string{"ghost", "stale", "restored"} {
			if got, ok := m[series("herald_state_repairs_total", "kind", kind)]; !ok || got != 0 {
				t.Errorf("node %s: herald_state_repairs_total{kind=%q} = %v (present %v), want 0", name, kind, got, ok)
			}
		}
		if m["herald_redis_up"] != 1 {
			t.Errorf("node %s: herald_redis_up = %v", name, m["herald_redis_up"])
		}
		// The test Redis has no replica: nothing to wait for.
		for _, result := range []string{"acked", "lagged"} {
			if got, ok := m[series("herald_redis_replica_waits_total", "result", result)]; !ok || got != 0 {
				t.Errorf("node %s: herald_redis_replica_waits_total{result=%q} = %v (present %v), want 0", name, result, got, ok)
			}
		}
		if m[series("herald_redis_commands_total", "command", "evalsha", "result", "ok")] < 1 {
			t.Errorf("node %s: no evalsha round trip counted", name)
		}
		if m[series("herald_redis_command_duration_seconds_count", "command", "evalsha")] < 1 {
			t.Errorf("node %s: no evalsha round trip timed", name)
		}
	}
}
