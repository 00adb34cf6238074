// Package redistest starts Redis processes of a test's own on free ports of
// 127.0.0.1: one redis-server, a primary with a replica watched by three
// sentinels (Redis Sentinel), or a Redis Cluster. Tests that kill a Redis
// use these, never the shared Redis at 127.0.0.1:6379. Only tests import it.
package redistest

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/herald-ws/herald/internal/testwait"
)

// Bin is the redis-server binary (Debian package redis-server); it also
// runs the sentinels (--sentinel).
const Bin = "/usr/bin/redis-server"

// CLI is redis-cli, which creates clusters.
const CLI = "/usr/bin/redis-cli"

// MasterName is the name the sentinels know the primary by.
const MasterName = "mymaster"

// Proc is one redis-server process.
type Proc struct {
	Port int
	cmd  *exec.Cmd
	once sync.Once
}

// Addr returns the process's host:port.
func (p *Proc) Addr() string { return "127.0.0.1:" + strconv.Itoa(p.Port) }

// Kill ends the process with SIGKILL and waits for it.
func (p *Proc) Kill() {
	p.once.Do(func() {
		_ = p.cmd.Process.Kill()
		_ = p.cmd.Wait()
	})
}

// FreePort returns a port nothing listens on now.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// Start runs redis-server with args on a free port, in dir, without
// persistence, and waits until it answers.
func Start(dir string, args ...string) (*Proc, error) {
	return start(FreePort, dir, args)
}

func start(free func() (int, error), dir string, args []string) (*Proc, error) {
	if _, err := os.Stat(Bin); err != nil {
		return nil, errors.New("redis-server is required (Debian package redis-server)")
	}
	port, err := free()
	if err != nil {
		return nil, err
	}
	base := []string{"--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", dir}
	return run(port, append(base, args...))
}

// Cluster nodes listen on port+10000 too (the cluster bus). Their ports
// come from below the kernel's ephemeral range (32768 and up by default),
// bus included, where no outgoing connection takes one between the check
// and redis-server's bind: a free ephemeral port's bus port often was.
const clusterPortLow, clusterPortHigh = 20000, 32768 - 10000

// freeClusterPort returns a port that, with its bus port, nothing listens
// on now.
func freeClusterPort() (int, error) {
	var err error
	for range 100 {
		port := clusterPortLow + rand.IntN(clusterPortHigh-clusterPortLow)
		var ls []net.Listener
		for _, p := range []int{port, port + 10000} {
			var l net.Listener
			if l, err = net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p)); err != nil {
				break
			}
			ls = append(ls, l)
		}
		for _, l := range ls {
			l.Close()
		}
		if err == nil {
			return port, nil
		}
	}
	return 0, fmt.Errorf("no free cluster port: %w", err)
}

// startClusterNode starts a cluster node, on another port if another
// process took one of its ports meanwhile (tests of other packages start
// clusters at the same time).
func startClusterNode(dir string, args ...string) (p *Proc, err error) {
	for range 5 {
		_ = os.Remove(filepath.Join(dir, "nodes.conf")) // a failed attempt's
		if p, err = start(freeClusterPort, dir, args); err == nil || !strings.Contains(err.Error(), "already in use") {
			return p, err
		}
	}
	return nil, err
}

func run(port int, args []string) (*Proc, error) {
	cmd := exec.Command(Bin, args...)
	// Its log, for the error when it does not come up (a port taken).
	var out lockedBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("redis-server: %w", err)
	}
	p := &Proc{Port: port, cmd: cmd}
	c := redis.NewClient(&redis.Options{Addr: p.Addr(), MaxRetries: -1})
	defer c.Close()
	if err := until(5*time.Second, func() error { return c.Ping(context.Background()).Err() }); err != nil {
		p.Kill()
		return nil, fmt.Errorf("redis-server on %d did not answer: %w; its output: %s", port, err, out.String())
	}
	return p, nil
}

// lockedBuffer is a process's output, read while it may still write.
type lockedBuffer struct {
	mu sync.Mutex
	b  []byte
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.b) < 64<<10 {
		l.b = append(l.b, p...)
	}
	return len(p), nil
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return string(l.b)
}

// until polls f until it returns nil or d passes (with f's last error).
func until(d time.Duration, f func() error) error {
	var err error
	if testwait.Until(d, func() bool { err = f(); return err == nil }) {
		return nil
	}
	return err
}

// Sentinel is a primary, its replica and three sentinels (quorum 2), so a
// failover needs a majority as in production.
type Sentinel struct {
	Primary, Replica *Proc
	Sentinels        []*Proc
}

// StartSentinel starts a Sentinel setup in dir (the sentinels write their
// config files there). down is the sentinels' down-after-milliseconds.
func StartSentinel(dir string, down time.Duration) (s *Sentinel, err error) {
	s = &Sentinel{}
	started := s // s is nil by the time a failing return runs the defer
	defer func() {
		if err != nil {
			started.Close()
		}
	}()
	if s.Primary, err = Start(mkdir(dir, "primary")); err != nil {
		return nil, err
	}
	if s.Replica, err = Start(mkdir(dir, "replica"), "--replicaof", "127.0.0.1", strconv.Itoa(s.Primary.Port)); err != nil {
		return nil, err
	}
	for i := range 3 {
		port, err := FreePort()
		if err != nil {
			return nil, err
		}
		d := mkdir(dir, "sentinel"+strconv.Itoa(i))
		conf := filepath.Join(d, "sentinel.conf")
		text := fmt.Sprintf("port %d\nbind 127.0.0.1\ndir %s\nsentinel resolve-hostnames no\n"+
			"sentinel monitor %s 127.0.0.1 %d 2\nsentinel down-after-milliseconds %s %d\n"+
			"sentinel failover-timeout %s 10000\nsentinel parallel-syncs %s 1\n",
			port, d, MasterName, s.Primary.Port, MasterName, down.Milliseconds(), MasterName, MasterName)
		if err := os.WriteFile(conf, []byte(text), 0o600); err != nil {
			return nil, err
		}
		p, err := run(port, []string{conf, "--sentinel"})
		if err != nil {
			return nil, err
		}
		s.Sentinels = append(s.Sentinels, p)
	}
	// Ready when the replica is in sync and every sentinel knows the
	// replica and the two other sentinels (needed to elect a leader).
	prim := redis.NewClient(&redis.Options{Addr: s.Primary.Addr(), MaxRetries: -1})
	defer prim.Close()
	err = until(20*time.Second, func() error {
		info, err := prim.Info(context.Background(), "replication").Result()
		if err != nil || !strings.Contains(info, "connected_slaves:1") || !strings.Contains(info, "state=online") {
			return fmt.Errorf("replica not in sync: %v", err)
		}
		for _, p := range s.Sentinels {
			sc := redis.NewSentinelClient(&redis.Options{Addr: p.Addr(), MaxRetries: -1})
			m, err := sc.Master(context.Background(), MasterName).Result()
			sc.Close()
			if err != nil || m["num-other-sentinels"] != "2" || m["num-slaves"] != "1" {
				return fmt.Errorf("sentinel %s not ready: %v %v", p.Addr(), m, err)
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return s, nil
}

// URL is the redis_url of redis_mode sentinel for the setup.
func (s *Sentinel) URL() string {
	u := "redis://" + s.Sentinels[0].Addr() + "/0?master_name=" + MasterName
	for _, p := range s.Sentinels[1:] {
		u += "&addr=" + p.Addr()
	}
	return u
}

// Options returns the go-redis options of the setup.
func (s *Sentinel) Options() *redis.UniversalOptions {
	o := &redis.UniversalOptions{MasterName: MasterName}
	for _, p := range s.Sentinels {
		o.Addrs = append(o.Addrs, p.Addr())
	}
	return o
}

// PrimaryAddr asks the first sentinel that answers where the primary is.
func (s *Sentinel) PrimaryAddr(ctx context.Context) (string, error) {
	var last error
	for _, p := range s.Sentinels {
		sc := redis.NewSentinelClient(&redis.Options{Addr: p.Addr(), MaxRetries: -1})
		a, err := sc.GetMasterAddrByName(ctx, MasterName).Result()
		sc.Close()
		if err == nil && len(a) == 2 {
			return net.JoinHostPort(a[0], a[1]), nil
		}
		last = err
	}
	return "", last
}

// Close kills every process.
func (s *Sentinel) Close() {
	for _, p := range append([]*Proc{s.Primary, s.Replica}, s.Sentinels...) {
		if p != nil {
			p.Kill()
		}
	}
}

// Cluster is a Redis Cluster of shards primaries, each with replicas
// replicas.
type Cluster struct {
	Nodes []*Proc
}

// StartCluster starts a Redis Cluster in dir. nodeTimeout is
// cluster-node-timeout (how long until a primary is failed over).
func StartCluster(dir string, shards, replicas int, nodeTimeout time.Duration) (c *Cluster, err error) {
	if _, err := os.Stat(CLI); err != nil {
		return nil, errors.New("redis-cli is required (Debian package redis-tools)")
	}
	c = &Cluster{}
	started := c // c is nil by the time a failing return runs the defer
	defer func() {
		if err != nil {
			started.Close()
		}
	}()
	args := []string{"--cluster", "create"}
	for i := range shards * (1 + replicas) {
		d := mkdir(dir, "node"+strconv.Itoa(i))
		p, err := startClusterNode(d, "--cluster-enabled", "yes", "--cluster-config-file", filepath.Join(d, "nodes.conf"),
			"--cluster-node-timeout", strconv.FormatInt(nodeTimeout.Milliseconds(), 10))
		if err != nil {
			return nil, err
		}
		c.Nodes = append(c.Nodes, p)
		args = append(args, p.Addr())
	}
	args = append(args, "--cluster-replicas", strconv.Itoa(replicas), "--cluster-yes")
	if out, err := exec.Command(CLI, args...).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("redis-cli --cluster create: %w: %s", err, out)
	}
	err = until(20*time.Second, func() error {
		for _, p := range c.Nodes {
			rc := redis.NewClient(&redis.Options{Addr: p.Addr(), MaxRetries: -1})
			info, err := rc.ClusterInfo(context.Background()).Result()
			rc.Close()
			if err != nil || !strings.Contains(info, "cluster_state:ok") || !strings.Contains(info, "cluster_known_nodes:"+strconv.Itoa(len(c.Nodes))) {
				return fmt.Errorf("node %s: cluster not ok: %v", p.Addr(), err)
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if replicas > 0 {
		// A replica takes over only if it was in sync: wait for every
		// replication link.
		err = until(20*time.Second, func() error {
			for _, p := range c.Nodes {
				rc := redis.NewClient(&redis.Options{Addr: p.Addr(), MaxRetries: -1})
				info, err := rc.Info(context.Background(), "replication").Result()
				rc.Close()
				if err != nil || strings.Contains(info, "role:slave") && !strings.Contains(info, "master_link_status:up") {
					return fmt.Errorf("node %s: replication link not up: %v", p.Addr(), err)
				}
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	return c, nil
}

// PrimaryFor returns the process that is the primary of key's slot now
// (key's hash tag routes it, as in Herald's keys), as the first node that
// answers sees it.
func (c *Cluster) PrimaryFor(ctx context.Context, key string) (*Proc, error) {
	var lastErr error
	for _, p := range c.Nodes {
		rc := redis.NewClient(&redis.Options{Addr: p.Addr(), MaxRetries: -1, DialTimeout: time.Second})
		slot, err := rc.ClusterKeySlot(ctx, key).Result()
		var shards []redis.ClusterShard
		if err == nil {
			shards, err = rc.ClusterShards(ctx).Result()
		}
		rc.Close()
		if err != nil {
			lastErr = err
			continue
		}
		for _, sh := range shards {
			for _, r := range sh.Slots {
				if r.Start > slot || slot > r.End {
					continue
				}
				for _, n := range sh.Nodes {
					if n.Role != "master" || n.Health != "online" {
						continue
					}
					for _, q := range c.Nodes {
						if q.Port == int(n.Port) {
							return q, nil
						}
					}
				}
				return nil, fmt.Errorf("slot %d: no primary among the cluster's processes", slot)
			}
		}
		return nil, fmt.Errorf("slot %d of %s is not served", slot, key)
	}
	return nil, fmt.Errorf("no node answered: %w", lastErr)
}

// Options returns the go-redis options of the cluster (every node as a
// seed).
func (c *Cluster) Options() *redis.UniversalOptions {
	o := &redis.UniversalOptions{IsClusterMode: true}
	for _, p := range c.Nodes {
		o.Addrs = append(o.Addrs, p.Addr())
	}
	return o
}

// URL is the redis_url of redis_mode cluster.
func (c *Cluster) URL() string {
	u := "redis://" + c.Nodes[0].Addr()
	for i, p := range c.Nodes[1:] {
		if i == 0 {
			u += "?addr=" + p.Addr()
		} else {
			u += "&addr=" + p.Addr()
		}
	}
	return u
}

// Close kills every process.
func (c *Cluster) Close() {
	for _, p := range c.Nodes {
		p.Kill()
	}
}

func mkdir(dir, name string) string {
	d := filepath.Join(dir, name)
	_ = os.MkdirAll(d, 0o700)
	return d
}
