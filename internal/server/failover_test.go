package server

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/herald-ws/herald/internal/config"
	"github.com/herald-ws/herald/internal/protocol"
	"github.com/herald-ws/herald/internal/redistest"
	"github.com/herald-ws/herald/internal/testwait"
)

// seqReader collects the sequence numbers of the "tick" events a client
// receives, until the connection closes.
type seqReader struct {
	mu  sync.Mutex
	got map[int]bool
}

func readTicks(c *websocket.Conn) *seqReader {
	r := &seqReader{got: make(map[int]bool)}
	go func() {
		for {
			_ = c.SetReadDeadline(time.Now().Add(time.Minute))
			_, b, err := c.ReadMessage()
			if err != nil {
				return
			}
			var f frame
			if json.Unmarshal(b, &f) != nil || f.Event != "tick" {
				continue
			}
			var s string
			_ = json.Unmarshal(f.Data, &s)
			n, _ := strconv.Atoi(s)
			r.mu.Lock()
			r.got[n] = true
			r.mu.Unlock()
		}
	}()
	return r
}

func (r *seqReader) has(n int) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.got[n]
}

// publishTick posts one numbered event and returns the status and body.
func publishTick(addr string, n int) (int, string, error) {
	body := `{"name":"tick","channels":["news"],"data":"` + strconv.Itoa(n) + `"}`
	path := "/apps/app-id/events"
	q := protocol.SignRequest("POST", path, url.Values{}, []byte(body), "app-key", "app-secret", time.Now())
	cl := http.Client{Timeout: 10 * time.Second}
	resp, err := cl.Post("http://"+addr+path+"?"+q.Encode(), "application/json", strings.NewReader(body))
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), nil
}

// The Redis primary behind Sentinel is killed (SIGKILL) under a steady
// stream of publishes to two nodes: every publish answered 200 reaches the
// subscribers on both nodes, every other one is a 5xx with a JSON error,
// publishing works again once a replica is promoted, and presence and
// counts are right afterwards (the nodes record what the promoted replica
// had not received). The window, from the kill to the first publish that
// succeeds, is logged.
func TestSentinelFailoverUnderTraffic(t *testing.T) {
	s, err := redistest.StartSentinel(t.TempDir(), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	prefix := "herald-failover-" + strconv.Itoa(s.Primary.Port) + ":"
	failoverUnderTraffic(t, func(c *config.Config) {
		c.RedisURL = s.URL()
		c.RedisMode = "sentinel"
		c.RedisPrefix = prefix
	}, func() string {
		s.Primary.Kill()
		return s.Primary.Addr()
	}, func() string {
		primary, _ := s.PrimaryAddr(context.Background())
		return primary
	})
}

// The same in a Redis Cluster of 3 primaries and 3 replicas: the primary
// of the app's shard (its hash tag's slot: keys and sharded pub/sub) is
// killed, and its replica takes over after cluster-node-timeout.
func TestClusterFailoverUnderTraffic(t *testing.T) {
	c, err := redistest.StartCluster(t.TempDir(), 3, 1, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	prefix := "herald-failover-" + strconv.Itoa(c.Nodes[0].Port) + ":"
	tag := prefix + "{app-id}:x"
	failoverUnderTraffic(t, func(cf *config.Config) {
		cf.RedisURL = c.URL()
		cf.RedisMode = "cluster"
		cf.RedisPrefix = prefix
	}, func() string {
		p, err := c.PrimaryFor(context.Background(), tag)
		if err != nil {
			t.Fatal(err)
		}
		p.Kill()
		return p.Addr()
	}, func() string {
		p, _ := c.PrimaryFor(context.Background(), tag)
		if p == nil {
			return "?"
		}
		return p.Addr()
	})
}

// failoverUnderTraffic runs two nodes configured by redis, kills the
// primary (kill returns its address) under a stream of publishes and
// checks what the tests above say; primary names the primary afterwards.
func failoverUnderTraffic(t *testing.T, redis func(*config.Config), kill func() string, primary func() string) {
	cfg := func(c *config.Config) {
		redis(c)
		c.RedisLease = 5 * time.Second
		c.SubscriptionCountInterval = 100 * time.Millisecond
	}
	addrA, _ := startServer(t, cfg)
	addrB, _ := startServer(t, cfg)

	// On each node: a subscriber of "news" and a presence member.
	var ticks []*seqReader
	members := map[string]string{}
	for i, addr := range []string{addrA, addrB} {
		c := dial(t, addr, "app-key")
		socketID(t, c)
		subscribe(t, c, "news", "", "")
		readUntil(t, c, protocol.EventSubscriptionSucceeded)

		p := dial(t, addr, "app-key")
		id := socketID(t, p)
		user := "user-" + strconv.Itoa(i)
		d := `{"user_id":"` + user + `"}`
		subscribe(t, p, "presence-room", "app-key:"+protocol.Sign("app-secret", protocol.ChannelAuthString(id, "presence-room", d)), d)
		readUntil(t, p, protocol.EventSubscriptionSucceeded)
		members[user] = addr
		ticks = append(ticks, readTicks(c))
	}

	type result struct {
		n      int
		status int
		body   string
		at     time.Time
	}
	var (
		mu      sync.Mutex
		results []result
	)
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	done := make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for n := 1; ctx.Err() == nil; n++ {
			addr := addrA
			if n%2 == 0 {
				addr = addrB
			}
			st, body, err := publishTick(addr, n)
			if err != nil {
				st, body = 0, err.Error()
			}
			mu.Lock()
			results = append(results, result{n, st, body, time.Now()})
			mu.Unlock()
			select {
			case <-ctx.Done():
			case <-tick.C:
			}
		}
	}()
	count := func(pred func(result) bool) int {
		mu.Lock()
		defer mu.Unlock()
		k := 0
		for _, r := range results {
			if pred(r) {
				k++
			}
		}
		return k
	}
	testwait.For(t, 10*time.Second, "publishes before the kill", func() bool {
		return count(func(r result) bool { return r.status == 200 }) >= 10
	})

	was := kill()
	killed := time.Now()
	after := func(r result) bool { return r.at.After(killed) }
	// Until well after the first success: 50 more successes.
	testwait.For(t, 60*time.Second, "publishing to recover after the failover", func() bool {
		return count(func(r result) bool { return after(r) && r.status == 200 }) >= 50
	})
	stop()
	<-done

	var firstOK time.Time
	failed := 0
	for _, r := range results {
		switch {
		case r.status == 200:
			if firstOK.IsZero() && after(r) {
				firstOK = r.at
			}
		case r.status == http.StatusServiceUnavailable && json.Valid([]byte(r.body)) && strings.Contains(r.body, `"error"`):
			failed++
		default:
			t.Fatalf("publish %d: %d %q, want 200 or a 503 with a JSON error", r.n, r.status, r.body)
		}
	}
	t.Logf("failover: first successful publish %v after the kill; %d publishes refused meanwhile (503), %d in all; primary now %s (was %s)",
		firstOK.Sub(killed).Round(time.Millisecond), failed, len(results), primary(), was)

	// Every 200 arrived on both nodes.
	for _, r := range results {
		if r.status != 200 {
			continue
		}
		for i, tr := range ticks {
			if !testwait.Until(5*time.Second, func() bool { return tr.has(r.n) }) {
				t.Fatalf("publish %d answered 200 (%v after the kill) never reached the subscriber on node %d", r.n, r.at.Sub(killed).Round(time.Millisecond), i)
			}
		}
	}

	// Presence and counts are right on the new primary, from either node.
	for _, addr := range []string{addrA, addrB} {
		var st int
		var body string
		if !testwait.Until(15*time.Second, func() bool {
			st, body = getSigned(t, addr, "/apps/app-id/channels/presence-room/users")
			return st == 200 && strings.Contains(body, `"user-0"`) && strings.Contains(body, `"user-1"`)
		}) {
			t.Fatalf("presence after the failover, from %s: %d %s", addr, st, body)
		}
		if !testwait.Until(15*time.Second, func() bool {
			st, body = getSigned(t, addr, "/apps/app-id/channels/news?info=subscription_count")
			return st == 200 && strings.Contains(body, `"subscription_count":2`)
		}) {
			t.Fatalf("counts after the failover, from %s: %d %s", addr, st, body)
		}
	}
}

// getSigned sends a signed GET to the HTTP API.
func getSigned(t *testing.T, addr, pathQuery string) (int, string) {
	t.Helper()
	path, rawq, _ := strings.Cut(pathQuery, "?")
	params, _ := url.ParseQuery(rawq)
	q := protocol.SignRequest("GET", path, params, nil, "app-key", "app-secret", time.Now())
	resp, err := http.Get("http://" + addr + path + "?" + q.Encode())
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}
