//go:build linux

package main

import (
	"bufio"
	"bytes"
	"crypto/md5"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/herald-ws/herald/internal/protocol"
	"github.com/herald-ws/herald/internal/testwait"
)

// heraldBin is the binary built by TestMain for the tests that run the
// real process (restarts in place).
var heraldBin string

func TestMain(m *testing.M) {
	os.Exit(runTests(m))
}

func runTests(m *testing.M) int {
	dir, err := os.MkdirTemp("", "herald-cmd-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	heraldBin = filepath.Join(dir, "herald")
	args := []string{"build", "-o", heraldBin}
	if raceEnabled {
		args = append(args, "-race")
	}
	build := exec.Command("go", append(args, ".")...)
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building herald:", err)
		return 1
	}
	// The process that takes over after a SIGHUP is a child of the one it
	// replaces; once that one exits, it is reparented to this test process,
	// which can then wait for it and read its exit status.
	if err := setChildSubreaper(); err != nil {
		fmt.Fprintln(os.Stderr, "PR_SET_CHILD_SUBREAPER:", err)
		return 1
	}
	return m.Run()
}

func setChildSubreaper() error {
	const prSetChildSubreaper = 36
	if _, _, e := syscall.RawSyscall(syscall.SYS_PRCTL, prSetChildSubreaper, 1, 0); e != 0 {
		return e
	}
	return nil
}

// node is one herald started by a test (and, after restarts, whichever
// process serves).
type node struct {
	t                 *testing.T
	dir, bin, cfgPath string
	port, metricsPort int
	pidFile           string
	first             *exec.Cmd
	firstDone         chan error
	logs              *logFile
}

// logFile is the stderr of every process of a node. A file, not a pipe:
// the process that takes over inherits it, and exec.Cmd.Wait would wait
// for a pipe's last writer.
type logFile struct{ path string }

func (l *logFile) String() string {
	b, _ := os.ReadFile(l.path)
	return string(b)
}

// count returns how many log lines have msg as their message and, when
// pid is not 0, come from that process.
func (s *logFile) count(msg string, pid int) int {
	n := 0
	sc := bufio.NewScanner(strings.NewReader(s.String()))
	for sc.Scan() {
		var line struct {
			Msg string `json:"msg"`
			PID int    `json:"pid"`
		}
		if json.Unmarshal(sc.Bytes(), &line) == nil && line.Msg == msg && (pid == 0 || line.PID == pid) {
			n++
		}
	}
	return n
}

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// configYAML is the node's config; extra lines are appended.
func (n *node) configYAML(extra string) string {
	return fmt.Sprintf("host: 127.0.0.1\nport: %d\nmetrics_addr: 127.0.0.1:%d\nlog_format: json\nshutdown_timeout: 4s\nrestart_timeout: 3s\n"+
		"pid_file: %s\nip_connections_per_second: -1\n%s", n.port, n.metricsPort, n.pidFile, extra)
}

func (n *node) writeConfig(yaml string) {
	n.t.Helper()
	if err := os.WriteFile(n.cfgPath, []byte(yaml), 0o600); err != nil {
		n.t.Fatal(err)
	}
}

// startNode copies the binary into a directory of the test (so that a test
// can replace it, as an upgrade does) and starts it.
func startNode(t *testing.T) *node {
	t.Helper()
	dir := t.TempDir()
	n := &node{t: t, dir: dir, bin: filepath.Join(dir, "herald"), cfgPath: filepath.Join(dir, "herald.yaml"),
		port: freePort(t), metricsPort: freePort(t), pidFile: filepath.Join(dir, "herald.pid"), logs: &logFile{filepath.Join(dir, "herald.log")}}
	n.install(heraldBin)
	n.writeConfig(n.configYAML(""))
	n.first = exec.Command(n.bin, "serve", "--config", n.cfgPath)
	logs, err := os.Create(n.logs.path)
	if err != nil {
		t.Fatal(err)
	}
	defer logs.Close()
	n.first.Stdout, n.first.Stderr = logs, logs
	if err := n.first.Start(); err != nil {
		t.Fatal(err)
	}
	n.firstDone = make(chan error, 1)
	go func() { n.firstDone <- n.first.Wait() }()
	t.Cleanup(func() {
		// Whatever still runs: the first process, and the one in the pid file.
		_ = n.first.Process.Kill()
		if pid := n.pid(); pid > 0 {
			_ = syscall.Kill(pid, syscall.SIGKILL)
			reap(pid)
		}
		<-n.firstDone
		if t.Failed() {
			t.Logf("herald logs:\n%s", n.logs.String())
		}
	})
	testwait.For(t, 20*time.Second, "the pid file to name the first process", func() bool { return n.pid() == n.first.Process.Pid })
	n.waitReady(n.port)
	return n
}

// install puts a copy of src at the node's binary path, replacing the file
// (a rename: a running binary cannot be written).
func (n *node) install(src string) {
	n.t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		n.t.Fatal(err)
	}
	tmp := n.bin + ".new"
	if err := os.WriteFile(tmp, b, 0o755); err != nil {
		n.t.Fatal(err)
	}
	if err := os.Rename(tmp, n.bin); err != nil {
		n.t.Fatal(err)
	}
}

// pid reads the pid file (0 when absent or unreadable).
func (n *node) pid() int {
	b, err := os.ReadFile(n.pidFile)
	if err != nil {
		return 0
	}
	p, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	return p
}

func (n *node) waitReady(port int) {
	n.t.Helper()
	testwait.For(n.t, 20*time.Second, fmt.Sprintf("/ready on port %d", port), func() bool {
		resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/ready", port))
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
}

// reap waits for a process that was reparented to the test (see
// setChildSubreaper) and returns its exit status.
func reap(pid int) (syscall.WaitStatus, error) {
	var ws syscall.WaitStatus
	for {
		_, err := syscall.Wait4(pid, &ws, 0, nil)
		if errors.Is(err, syscall.EINTR) {
			continue
		}
		return ws, err
	}
}

// dialLoop connects to each address in a loop until stop is closed, each
// time with a full HTTP request, and counts the answers and the failures
// (a refused connection, a reset, no answer).
type dialLoop struct {
	ok, failed atomic.Int64
	mu         sync.Mutex
	errs       []string
	stop       chan struct{}
	wg         sync.WaitGroup
}

func startDialLoop(addrs ...string) *dialLoop {
	d := &dialLoop{stop: make(chan struct{})}
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	for _, addr := range addrs {
		d.wg.Add(1)
		go func() {
			defer d.wg.Done()
			for {
				select {
				case <-d.stop:
					return
				default:
				}
				start := time.Now()
				resp, err := client.Get("http://" + addr + "/up")
				if err == nil {
					_, err = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if err == nil && resp.StatusCode != http.StatusOK {
						err = fmt.Errorf("status %d", resp.StatusCode)
					}
				}
				if err != nil {
					d.failed.Add(1)
					d.mu.Lock()
					d.errs = append(d.errs, fmt.Sprintf("%s at %s", err, start.UTC().Format("15:04:05.000000")))
					d.mu.Unlock()
					continue
				}
				d.ok.Add(1)
			}
		}()
	}
	return d
}

func (d *dialLoop) finish() (ok, failed int64, errs []string) {
	close(d.stop)
	d.wg.Wait()
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.ok.Load(), d.failed.Load(), d.errs
}

// wsClient is a Pusher client that reconnects at once on 4200, as
// pusher-js does, and records how long that took.
type wsClient struct {
	url      string
	pongs    chan struct{}
	mu       sync.Mutex
	conn     *websocket.Conn
	socketID string
	back     time.Duration // from the 4200 to connection_established on the new socket
	code     int           // the first close code
	err      error
	done     chan struct{}
	subs     chan int         // generation (0: first socket) of each subscription_succeeded
	events   map[string][]int // event name on channel "restart" -> generations it came on
}

func dialPusher(url string) (*websocket.Conn, string, error) {
	d := websocket.Dialer{HandshakeTimeout: 5 * time.Second}
	c, _, err := d.Dial(url, nil)
	if err != nil {
		return nil, "", err
	}
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, msg, err := c.ReadMessage()
	if err != nil {
		c.Close()
		return nil, "", err
	}
	var ev struct {
		Event, Data string
	}
	var data struct {
		SocketID string `json:"socket_id"`
	}
	if json.Unmarshal(msg, &ev) != nil || ev.Event != "pusher:connection_established" || json.Unmarshal([]byte(ev.Data), &data) != nil {
		c.Close()
		return nil, "", fmt.Errorf("unexpected first message %s", msg)
	}
	_ = c.SetReadDeadline(time.Time{})
	return c, data.SocketID, nil
}

func newWSClient(t *testing.T, port int) *wsClient {
	t.Helper()
	c := &wsClient{url: fmt.Sprintf("ws://127.0.0.1:%d/app/app-key?protocol=7", port), pongs: make(chan struct{}, 16), done: make(chan struct{}),
		subs: make(chan int, 4), events: map[string][]int{}}
	conn, id, err := dialPusher(c.url)
	if err != nil {
		t.Fatal(err)
	}
	c.conn, c.socketID = conn, id
	if err := subscribe(conn); err != nil {
		t.Fatal(err)
	}
	go c.run()
	select {
	case <-c.subs:
	case <-time.After(10 * time.Second):
		t.Fatal("no subscription_succeeded")
	}
	t.Cleanup(func() {
		c.mu.Lock()
		c.conn.Close()
		c.mu.Unlock()
		<-c.done
	})
	return c
}

// subscribe subscribes a socket to the channel "restart".
func subscribe(c *websocket.Conn) error {
	return c.WriteMessage(websocket.TextMessage, []byte(`{"event":"pusher:subscribe","data":{"channel":"restart"}}`))
}

// got returns the generations of the sockets event came on.
func (c *wsClient) got(event string) []int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]int(nil), c.events[event]...)
}

// run reads the socket; on a first close with 4200 it reconnects at once,
// records the time it took, and reads the new socket.
func (c *wsClient) run() {
	defer close(c.done)
	c.mu.Lock()
	conn := c.conn
	c.mu.Unlock()
	reconnected := false
	for {
		_, msg, err := conn.ReadMessage()
		if err == nil {
			var ev struct{ Event, Channel string }
			_ = json.Unmarshal(msg, &ev)
			gen := 0
			if reconnected {
				gen = 1
			}
			switch {
			case ev.Event == "pusher:pong":
				c.pongs <- struct{}{}
			case ev.Event == "pusher_internal:subscription_succeeded":
				c.subs <- gen
			case ev.Channel == "restart":
				c.mu.Lock()
				c.events[ev.Event] = append(c.events[ev.Event], gen)
				c.mu.Unlock()
			}
			continue
		}
		if reconnected {
			return // closed by the test
		}
		var ce *websocket.CloseError
		c.mu.Lock()
		if !errors.As(err, &ce) {
			if c.code == 0 {
				c.err = fmt.Errorf("the socket ended without a close frame: %v", err)
			}
			c.mu.Unlock()
			return
		}
		c.code = ce.Code
		c.mu.Unlock()
		if ce.Code != 4200 {
			return
		}
		at := time.Now()
		next, id, err := dialPusher(c.url)
		if err == nil {
			err = subscribe(next)
		}
		c.mu.Lock()
		if err != nil {
			c.err = fmt.Errorf("reconnect after 4200: %v", err)
			c.mu.Unlock()
			return
		}
		c.conn.Close()
		c.conn, c.back = next, time.Since(at)
		if id == c.socketID {
			c.err = fmt.Errorf("same socket id %s after the reconnection", id)
		}
		c.socketID = id
		c.mu.Unlock()
		conn, reconnected = next, true
	}
}

// ping checks that the client's current socket answers pusher:ping.
func (c *wsClient) ping() error {
	c.mu.Lock()
	err := c.conn.WriteMessage(websocket.TextMessage, []byte(`{"event":"pusher:ping","data":{}}`))
	c.mu.Unlock()
	if err != nil {
		return err
	}
	select {
	case <-c.pongs:
		return nil
	case <-time.After(5 * time.Second):
		return errors.New("no pusher:pong")
	}
}

// publish sends an event to the channel "restart" through the HTTP API on
// a new connection.
func publish(t *testing.T, port int, name string) {
	t.Helper()
	body := []byte(`{"name":"` + name + `","channel":"restart","data":"{}"}`)
	q := url.Values{"auth_key": {"app-key"}, "auth_timestamp": {strconv.FormatInt(time.Now().Unix(), 10)}, "auth_version": {"1.0"}}
	sum := md5.Sum(body)
	q.Set("body_md5", hex.EncodeToString(sum[:]))
	req := protocol.SignedRequest{Method: "POST", Path: "/apps/app-id/events", Query: q, Body: body}
	q.Set("auth_signature", protocol.Sign("app-secret", req.StringToSign()))
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := client.Post(fmt.Sprintf("http://127.0.0.1:%d/apps/app-id/events?%s", port, q.Encode()), "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatalf("publish %s: %v", name, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("publish %s: %d %s", name, resp.StatusCode, b)
	}
}

// TestSIGHUPRestartsWithoutRefusingAConnection: SIGHUP starts a new process
// on the same sockets; while it takes over, a loop of HTTP requests to the
// main and the metrics port sees not one refused or failed connection; the
// pid file names the new process once it is ready; every WebSocket client
// is closed with 4200 and is back, with a new socket id, within 2 s; the
// old process answers /ready with 503 on a connection it still holds, then
// exits 0 after its drain; SIGTERM to the new one drains it, exits 0 and
// removes the pid file.
func TestSIGHUPRestartsWithoutRefusingAConnection(t *testing.T) {
	n := startNode(t)
	oldPID := n.first.Process.Pid
	const clients = 50
	cs := make([]*wsClient, clients)
	for i := range cs {
		cs[i] = newWSClient(t, n.port)
	}
	// A kept-alive HTTP connection to the old process, to ask it /ready
	// after the hand-over.
	kept, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", n.port))
	if err != nil {
		t.Fatal(err)
	}
	defer kept.Close()
	keptR := bufio.NewReader(kept)
	readyOnKept := func() *http.Response {
		_, _ = io.WriteString(kept, "GET /ready HTTP/1.1\r\nHost: x\r\n\r\n")
		resp, err := http.ReadResponse(keptR, nil)
		if err != nil {
			t.Fatalf("/ready on the kept connection: %v", err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp
	}
	if resp := readyOnKept(); resp.StatusCode != http.StatusOK || resp.Close {
		t.Fatalf("/ready before the restart: %d, Connection: close %v", resp.StatusCode, resp.Close)
	}

	loop := startDialLoop(fmt.Sprintf("127.0.0.1:%d", n.port), fmt.Sprintf("127.0.0.1:%d", n.metricsPort))
	testwait.For(t, 5*time.Second, "the dial loop to connect", func() bool { return loop.ok.Load() > 10 })
	if err := n.first.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	testwait.For(t, 20*time.Second, "the pid file to name a new process", func() bool {
		p := n.pid()
		return p != 0 && p != oldPID
	})
	newPID := n.pid()
	// The new process writes the pid file just before it tells the old
	// one: /ready there turns 503 at once or very soon, and the answer
	// asks for the kept-alive connection to close.
	testwait.For(t, 5*time.Second, "/ready of the old process to answer 503", func() bool {
		resp := readyOnKept()
		if resp.StatusCode == http.StatusOK && !resp.Close {
			return false
		}
		if resp.StatusCode != http.StatusServiceUnavailable || !resp.Close {
			t.Fatalf("/ready of the old process after the hand-over: %d, Connection: close %v; want 503 and close", resp.StatusCode, resp.Close)
		}
		return true
	})
	// An event published now reaches the new process (the old one no longer
	// accepts); the relay carries it to the clients still on the old one.
	publish(t, n.port, "during-drain")
	okBefore := loop.ok.Load()
	select {
	case err := <-n.firstDone:
		if err != nil {
			t.Fatalf("the old process exited with %v, want 0", err)
		}
		n.firstDone <- nil // for the cleanup
	case <-time.After(20 * time.Second):
		t.Fatal("the old process did not exit after its drain")
	}
	if loop.ok.Load() == okBefore {
		t.Error("no request was made while the old process drained")
	}
	ok, failed, errs := loop.finish()
	t.Logf("requests during the restart: %d answered, %d failed", ok, failed)
	if failed != 0 {
		t.Errorf("%d requests failed during the restart (want 0): %q", failed, errs[:min(len(errs), 5)])
	}

	var worst time.Duration
	for i, c := range cs {
		testwait.For(t, 10*time.Second, "client to reconnect", func() bool {
			c.mu.Lock()
			defer c.mu.Unlock()
			return c.back != 0 || c.err != nil || (c.code != 0 && c.code != 4200)
		})
		c.mu.Lock()
		code, back, cerr := c.code, c.back, c.err
		c.mu.Unlock()
		if cerr != nil || code != 4200 {
			t.Fatalf("client %d: close code %d, err %v", i, code, cerr)
		}
		worst = max(worst, back)
		if back > 2*time.Second {
			t.Errorf("client %d was back %v after its 4200, want within 2 s", i, back)
		}
		if err := c.ping(); err != nil {
			t.Errorf("client %d after the restart: %v", i, err)
		}
	}
	t.Logf("slowest client back %v after its 4200", worst)
	publish(t, n.port, "after")
	onOld := 0
	for i, c := range cs {
		testwait.For(t, 10*time.Second, "the event published after the restart", func() bool { return len(c.got("after")) > 0 })
		if got := c.got("after"); len(got) != 1 || got[0] != 1 {
			t.Errorf("client %d got the event published after the restart on sockets %v, want once on the new one", i, got)
		}
		switch got := c.got("during-drain"); {
		case len(got) > 1:
			t.Errorf("client %d got the event published during the drain %d times", i, len(got))
		case len(got) == 1 && got[0] == 0:
			onOld++
		}
	}
	t.Logf("%d of %d clients got the event published to the new process during the drain while still on the old one", onOld, clients)
	if onOld == 0 {
		t.Error("no client still on the old process got the event published to the new one during the drain (relay)")
	}
	n.waitReady(n.metricsPort)
	if got := n.logs.count("the new process is ready: handing over", oldPID); got != 1 {
		t.Errorf("the old process logged the hand-over %d times", got)
	}

	// SIGTERM to the new process: it drains, exits 0, removes the pid file.
	if err := syscall.Kill(newPID, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	ws, err := reap(newPID)
	if err != nil {
		t.Fatalf("waiting for the new process: %v", err)
	}
	if !ws.Exited() || ws.ExitStatus() != 0 {
		t.Fatalf("the new process ended with %v, want exit 0", ws)
	}
	if _, err := os.Stat(n.pidFile); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("pid file after the last process exited: %v", err)
	}
}

// TestFailedRestartKeepsServing: a new process that cannot start (an
// invalid config written before the SIGHUP) or that is not ready within
// restart_timeout (a binary that hangs) changes nothing: the old process
// keeps its clients and the pid file and logs why; a second SIGHUP while a
// restart runs is refused with a log line. Then an upgraded binary at the
// same path takes over.
func TestFailedRestartKeepsServing(t *testing.T) {
	n := startNode(t)
	pid := n.first.Process.Pid
	c := newWSClient(t, n.port)
	stillServing := func(what string) {
		t.Helper()
		if got := n.pid(); got != pid {
			t.Fatalf("%s: pid file holds %d, want %d", what, got, pid)
		}
		n.waitReady(n.port)
		c.mu.Lock()
		code, cerr := c.code, c.err
		c.mu.Unlock()
		if code != 0 || cerr != nil {
			t.Fatalf("%s: the client was closed (code %d, %v)", what, code, cerr)
		}
		if err := c.ping(); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}

	// 1. An invalid config: the new process exits with 2.
	n.writeConfig(n.configYAML("max_message_size_kb: 0\n"))
	if err := n.first.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	testwait.For(t, 20*time.Second, "the failed restart to be logged", func() bool {
		return n.logs.count("restart failed: this process keeps serving", pid) == 1
	})
	stillServing("after a new process with an invalid config")
	if !strings.Contains(n.logs.String(), "exit status 2") {
		t.Errorf("the log does not say why the restart failed:\n%s", n.logs.String())
	}

	// 2. A binary that never gets ready: killed after restart_timeout (3 s);
	// a second SIGHUP meanwhile is refused.
	n.writeConfig(n.configYAML(""))
	hang := filepath.Join(n.dir, "hang.sh")
	if err := os.WriteFile(hang, []byte("#!/bin/sh\nexec sleep 60\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	n.install(hang)
	if err := n.first.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	testwait.For(t, 10*time.Second, "the restart to start", func() bool {
		return n.logs.count("restarting: starting a new process on the same sockets", pid) == 2
	})
	if err := n.first.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	testwait.For(t, 10*time.Second, "the second SIGHUP to be refused", func() bool {
		return n.logs.count("SIGHUP ignored: a restart is already in progress, or this process has handed over", pid) == 1
	})
	testwait.For(t, 20*time.Second, "the timed-out restart to be logged", func() bool {
		return n.logs.count("restart failed: this process keeps serving", pid) == 2
	})
	if !strings.Contains(n.logs.String(), "timed out") {
		t.Errorf("the log does not say the new process timed out:\n%s", n.logs.String())
	}
	stillServing("after a new process that never got ready")

	// 3. The binary at the path is upgraded: the next SIGHUP runs it.
	n.install(heraldBin)
	if err := n.first.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	testwait.For(t, 20*time.Second, "the pid file to name the upgraded process", func() bool {
		p := n.pid()
		return p != 0 && p != pid
	})
	select {
	case err := <-n.firstDone:
		n.firstDone <- err
		if err != nil {
			t.Fatalf("the old process exited with %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the old process did not exit after the upgrade")
	}
	n.waitReady(n.port)

	// 4. The new process restarts in turn once its predecessor is gone.
	second := n.pid()
	testwait.For(t, 20*time.Second, "the new process to see the old one gone", func() bool {
		return n.logs.count("the previous process has exited", second) == 1
	})
	if err := syscall.Kill(second, syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	testwait.For(t, 20*time.Second, "the pid file to name a third process", func() bool {
		p := n.pid()
		return p != 0 && p != second && p != pid
	})
	if ws, err := reap(second); err != nil || !ws.Exited() || ws.ExitStatus() != 0 {
		t.Fatalf("the second process ended with %v (%v), want exit 0", ws, err)
	}
	n.waitReady(n.port)
}
