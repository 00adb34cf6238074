package cluster

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/herald-ws/herald/internal/hub"
	"github.com/herald-ws/herald/internal/redistest"
	"github.com/herald-ws/herald/internal/testwait"
)

// testRedis is the shared Redis every test uses, under its own prefix.
const testRedis = "127.0.0.1:6379"

func redisOpts(addr string) *redis.UniversalOptions {
	return &redis.UniversalOptions{Addrs: []string{addr}}
}

// shared holds the Sentinel setup and the Redis Cluster the contract
// suite runs against: started on first use (a targeted run that needs
// neither pays nothing), stopped by TestMain.
var shared struct {
	dir                       string
	sentinelOnce, clusterOnce sync.Once
	sentinel                  *redistest.Sentinel
	cluster                   *redistest.Cluster
	sentinelErr, clusterErr   error
}

func sharedDir() string {
	if shared.dir == "" {
		shared.dir, _ = os.MkdirTemp("", "herald-cluster-test-")
	}
	return shared.dir
}

// sharedSentinel returns the package's Sentinel setup (1 primary, 1
// replica, 3 sentinels).
func sharedSentinel(t testing.TB) *redistest.Sentinel {
	t.Helper()
	shared.sentinelOnce.Do(func() {
		shared.sentinel, shared.sentinelErr = redistest.StartSentinel(filepath.Join(sharedDir(), "sentinel"), time.Second)
	})
	if shared.sentinelErr != nil {
		t.Fatalf("sentinel setup: %v", shared.sentinelErr)
	}
	return shared.sentinel
}

// sharedCluster returns the package's Redis Cluster (3 primaries).
func sharedCluster(t testing.TB) *redistest.Cluster {
	t.Helper()
	shared.clusterOnce.Do(func() {
		shared.cluster, shared.clusterErr = redistest.StartCluster(filepath.Join(sharedDir(), "cluster"), 3, 0, time.Second)
	})
	if shared.clusterErr != nil {
		t.Fatalf("cluster setup: %v", shared.clusterErr)
	}
	return shared.cluster
}

// stopShared ends the shared setups (TestMain, after the tests).
func stopShared() {
	if shared.sentinel != nil {
		shared.sentinel.Close()
	}
	if shared.cluster != nil {
		shared.cluster.Close()
	}
	if shared.dir != "" {
		os.RemoveAll(shared.dir)
	}
}

// freshPrefix is a key prefix of the test's own, for the shared setups
// (their keys go with their processes).
func freshPrefix() string { return fmt.Sprintf("herald-test:%08x:", rand.Uint32()) }

// testPrefix returns a fresh key prefix and deletes its keys when t ends.
func testPrefix(t testing.TB) string {
	t.Helper()
	p := fmt.Sprintf("herald-test:%08x:", rand.Uint32())
	c := redis.NewClient(&redis.Options{Addr: testRedis})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := c.Ping(ctx).Err(); err != nil {
		c.Close()
		t.Fatalf("Redis at %s is required: %v", testRedis, err)
	}
	t.Cleanup(func() {
		defer c.Close()
		ctx := context.Background()
		var cursor uint64
		for {
			ks, next, err := c.Scan(ctx, cursor, p+"*", 1000).Result()
			if err != nil {
				t.Errorf("cleanup: %v", err)
				return
			}
			if len(ks) > 0 {
				c.Del(ctx, ks...)
			}
			if cursor = next; cursor == 0 {
				return
			}
		}
	})
	return p
}

// testOptions are fast lease settings for tests.
func testOptions(addr, prefix string) Options {
	return testOptionsOn(redisOpts(addr), prefix)
}

// testOptionsOn is testOptions for any Redis setup.
func testOptionsOn(ro *redis.UniversalOptions, prefix string) Options {
	return Options{
		Redis:        ro,
		Prefix:       prefix,
		NodeName:     "t",
		Lease:        600 * time.Millisecond,
		Heartbeat:    150 * time.Millisecond,
		ReapInterval: 50 * time.Millisecond,
		OpTimeout:    time.Second,
	}
}

// recv is a hub.Receiver made of funcs; a nil one ignores its call.
type recv struct {
	msg    func(hub.BrokerMessage)
	depart func(hub.Departure)
	rejoin func(context.Context)
}

func (r recv) HandleBrokerMessage(m hub.BrokerMessage) {
	if r.msg != nil {
		r.msg(m)
	}
}

func (r recv) HandleDeparture(d hub.Departure) {
	if r.depart != nil {
		r.depart(d)
	}
}

func (r recv) Reregister(ctx context.Context) {
	if r.rejoin != nil {
		r.rejoin(ctx)
	}
}

func (recv) Reconcile(context.Context) {}

// startNode starts a node and closes it when t ends; r, when given, is
// attached before the start.
func startNode(t testing.TB, o Options, r ...hub.Receiver) *Node {
	t.Helper()
	n, err := NewNode(o)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range r {
		n.Attach(r)
	}
	if err := n.Start(); err != nil {
		t.Fatalf("start: %v", err)
	}
	t.Cleanup(func() { n.Close() })
	return n
}

// collector gathers broker deliveries.
type collector struct {
	mu   sync.Mutex
	msgs []hub.BrokerMessage
	ch   chan struct{}
}

func newCollector() *collector { return &collector{ch: make(chan struct{}, 1)} }

func (c *collector) deliver(m hub.BrokerMessage) {
	c.mu.Lock()
	m.Payload = append([]byte(nil), m.Payload...)
	c.msgs = append(c.msgs, m)
	c.mu.Unlock()
	select {
	case c.ch <- struct{}{}:
	default:
	}
}

func (c *collector) all() []hub.BrokerMessage {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]hub.BrokerMessage(nil), c.msgs...)
}

// wait waits until n messages arrived.
func (c *collector) wait(t testing.TB, n int, d time.Duration) []hub.BrokerMessage {
	t.Helper()
	deadline := time.After(d)
	for {
		if ms := c.all(); len(ms) >= n {
			return ms
		}
		select {
		case <-c.ch:
		case <-deadline:
			t.Fatalf("got %d messages, want %d", len(c.all()), n)
		}
	}
}

// waitPayload waits until a message with payload arrived and returns
// every message so far.
func (c *collector) waitPayload(t testing.TB, payload string, d time.Duration) []hub.BrokerMessage {
	t.Helper()
	deadline := time.After(d)
	for {
		ms := c.all()
		for _, m := range ms {
			if string(m.Payload) == payload {
				return ms
			}
		}
		select {
		case <-c.ch:
		case <-deadline:
			t.Fatalf("no message %q among %d", payload, len(c.all()))
		}
	}
}

func startBroker(t testing.TB, o Options, id string, deliver func(hub.BrokerMessage)) *Broker {
	t.Helper()
	b, err := NewBroker(BrokerOptions{Options: o, NodeID: id})
	if err != nil {
		t.Fatal(err)
	}
	b.Attach(recv{msg: deliver})
	t.Cleanup(func() { b.Close() })
	testwait.For(t, 3*time.Second, "broker up", func() bool { return b.Healthy() == nil })
	return b
}

// startEngine starts a node and its broker (id; "": the node's first id),
// as a server does: the lease names the broker, whose own live channels
// the barrier checks. deliver, when set, is attached before the start.
func startEngine(t testing.TB, o Options, id string, deliver func(hub.BrokerMessage)) *Engine {
	t.Helper()
	e, err := NewEngine(BrokerOptions{Options: o, NodeID: id})
	if err != nil {
		t.Fatal(err)
	}
	if deliver != nil {
		e.Attach(recv{msg: deliver})
	}
	if err := e.Node.Start(); err != nil {
		t.Fatalf("start: %v", err)
	}
	t.Cleanup(func() {
		e.Broker.Close()
		e.Node.Close()
	})
	testwait.For(t, 3*time.Second, "broker up", func() bool { return e.Broker.Healthy() == nil })
	return e
}

// gatedDial returns o with a Redis dialer that waits while the gate is
// closed: hold stops the dials (the slowest node after a failover),
// release lets them through again (at the latest when t ends: a Close
// waits for its dials; call hold after starting whoever dials).
func gatedDial(t testing.TB, o Options) (gated Options, hold, release func()) {
	var gate atomic.Pointer[chan struct{}]
	open := make(chan struct{})
	close(open)
	gate.Store(&open)
	ro := *o.Redis
	ro.Dialer = func(ctx context.Context, network, addr string) (net.Conn, error) {
		select {
		case <-*gate.Load():
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		var d net.Dialer
		return d.DialContext(ctx, network, addr)
	}
	o.Redis = &ro
	var once sync.Once
	held := make(chan struct{})
	release = func() { once.Do(func() { close(held) }) }
	hold = func() {
		gate.Store(&held)
		t.Cleanup(release) // before the Close of whoever dials through it
	}
	return o, hold, release
}

// redisServer is a redis-server of the test's own, for stopping it.
type redisServer struct {
	port int
	cmd  *exec.Cmd
}

func freePort(t testing.TB) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func startRedis(t testing.TB, port int) *redisServer {
	t.Helper()
	const bin = "/usr/bin/redis-server"
	if _, err := os.Stat(bin); err != nil {
		t.Fatal("redis-server is required (Debian package redis-server)")
	}
	cmd := exec.Command(bin, "--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", t.TempDir())
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	s := &redisServer{port: port, cmd: cmd}
	t.Cleanup(s.kill)
	c := redis.NewClient(&redis.Options{Addr: s.addr()})
	defer c.Close()
	testwait.For(t, 5*time.Second, "redis-server", func() bool { return c.Ping(context.Background()).Err() == nil })
	return s
}

func (s *redisServer) addr() string { return "127.0.0.1:" + strconv.Itoa(s.port) }

func (s *redisServer) kill() {
	if s.cmd.Process != nil && s.cmd.ProcessState == nil {
		s.cmd.Process.Kill()
		s.cmd.Wait()
	}
}

func redisZ(score float64, member string) redis.Z { return redis.Z{Score: score, Member: member} }

func itoa(i int) string { return strconv.Itoa(i) }
