// Package heraldtest runs the real herald binary for the SDK's tests: it
// builds it from the repository the SDK lives in (or takes HERALD_BIN),
// starts nodes with a YAML config on free ports, restarts, drains and kills
// them, and offers a TCP proxy the test controls (cut every connection,
// refuse new ones, or hold them silent).
package heraldtest

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// App is the test app every node serves.
const (
	AppID  = "sdk-app"
	Key    = "sdk-key"
	Secret = "sdk-secret"
)

// Build builds herald into dir, or returns $HERALD_BIN when set.
func Build(dir string) (string, error) {
	if bin := os.Getenv("HERALD_BIN"); bin != "" {
		return filepath.Abs(bin)
	}
	root, err := repoRoot()
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "herald")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/herald")
	cmd.Dir = root
	out, err := cmd.CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("building herald in %s: %w\n%s", root, err, out)
	}
	return bin, nil
}

// repoRoot finds the directory of the server module (github.com/herald-ws/herald)
// above the working directory.
func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		b, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && strings.HasPrefix(string(b), "module github.com/herald-ws/herald\n") {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("heraldtest: no github.com/herald-ws/herald module above the working directory; set HERALD_BIN")
		}
		dir = parent
	}
}

// FreePort returns a TCP port that was free on 127.0.0.1 a moment ago.
func FreePort(tb testing.TB) int {
	tb.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatalf("free port: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// Node is one herald process.
type Node struct {
	tb     testing.TB
	bin    string
	Port   int
	config string
	tls    bool
	cmd    *exec.Cmd
	done   chan struct{}
	logMu  sync.Mutex
	log    []string
}

// Options change the node's config.
type Options struct {
	// ActivityTimeout is the app's activity_timeout in seconds [120].
	ActivityTimeout int
	// ShutdownTimeout is the drain window [2s].
	ShutdownTimeout time.Duration
	// Extra is appended to the app's YAML (indented by 4 spaces).
	Extra string
	// Server is added to the top level of the YAML (server settings).
	Server string
	// TLSCert and TLSKey (PEM files) make the node serve TLS only.
	TLSCert, TLSKey string
}

// Start starts a node on a free port and waits for /ready. The node is
// killed when the test ends.
func Start(tb testing.TB, bin string, o Options) *Node {
	tb.Helper()
	return StartOn(tb, bin, FreePort(tb), o)
}

// StartOn starts a node on port.
func StartOn(tb testing.TB, bin string, port int, o Options) *Node {
	tb.Helper()
	if o.ActivityTimeout == 0 {
		o.ActivityTimeout = 120
	}
	if o.ShutdownTimeout == 0 {
		o.ShutdownTimeout = 2 * time.Second
	}
	cfg := fmt.Sprintf(`host: 127.0.0.1
port: %d
log_level: warn
log_format: text
shutdown_timeout: %s
ip_connections_per_second: -1
webhook_presence_delay: 0s
%s%sapps:
  - id: %s
    key: %s
    secret: %s
    enable_client_messages: true
    enable_user_authentication: false
    client_events_per_second: 1000
    max_presence_members: 1000
    activity_timeout: %ds
%s`, port, o.ShutdownTimeout, o.Server, tlsYAML(o), AppID, Key, Secret, o.ActivityTimeout, indent(o.Extra))
	path := filepath.Join(tb.TempDir(), "herald.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		tb.Fatal(err)
	}
	n := &Node{tb: tb, bin: bin, Port: port, config: path, tls: o.TLSCert != ""}
	n.start()
	tb.Cleanup(func() { n.Kill() })
	return n
}

func tlsYAML(o Options) string {
	if o.TLSCert == "" {
		return ""
	}
	return fmt.Sprintf("tls_cert: %q\ntls_key: %q\n", o.TLSCert, o.TLSKey)
}

func indent(s string) string {
	if s == "" {
		return ""
	}
	var b strings.Builder
	for _, l := range strings.Split(strings.TrimRight(s, "\n"), "\n") {
		b.WriteString("    " + l + "\n")
	}
	return b.String()
}

func (n *Node) start() {
	n.tb.Helper()
	cmd := exec.Command(n.bin, "serve", "--config", n.config)
	out, err := cmd.StderrPipe()
	if err != nil {
		n.tb.Fatal(err)
	}
	cmd.Stdout = cmd.Stderr
	if err := cmd.Start(); err != nil {
		n.tb.Fatalf("starting herald: %v", err)
	}
	n.cmd = cmd
	n.done = make(chan struct{})
	logsDone := make(chan struct{})
	go func() {
		defer close(logsDone)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			n.logMu.Lock()
			n.log = append(n.log, sc.Text())
			if len(n.log) > 200 {
				n.log = n.log[len(n.log)-200:]
			}
			n.logMu.Unlock()
		}
		_, _ = io.Copy(io.Discard, out)
	}()
	go func() {
		<-logsDone
		_ = cmd.Wait()
		close(n.done)
	}()
	deadline := time.Now().Add(20 * time.Second)
	for {
		select {
		case <-n.done:
			n.tb.Fatalf("herald exited before /ready:\n%s", n.Logs())
		default:
		}
		scheme, hc := "http", http.DefaultClient
		if n.tls {
			scheme = "https"
			hc = &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
		}
		resp, err := hc.Get(fmt.Sprintf("%s://127.0.0.1:%d/ready", scheme, n.Port))
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		if time.Now().After(deadline) {
			n.Kill()
			n.tb.Fatalf("herald not ready on port %d after 20s (%v):\n%s", n.Port, err, n.Logs())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Logs returns the tail of the node's output.
func (n *Node) Logs() string {
	n.logMu.Lock()
	defer n.logMu.Unlock()
	return strings.Join(n.log, "\n")
}

// Kill kills the node (SIGKILL) and waits for it to exit.
func (n *Node) Kill() {
	if n.cmd == nil {
		return
	}
	_ = n.cmd.Process.Kill()
	<-n.done
}

// Drain sends SIGTERM (Herald closes every connection with 4200 over its
// drain window) and returns without waiting; Wait waits for the exit.
func (n *Node) Drain() {
	_ = n.cmd.Process.Signal(syscall.SIGTERM)
}

// Wait waits for the node's process to exit.
func (n *Node) Wait(ctx context.Context) error {
	select {
	case <-n.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Restart kills the node and starts it again on the same port.
func (n *Node) Restart() {
	n.tb.Helper()
	n.Kill()
	n.start()
}

// Proxy is a TCP proxy on 127.0.0.1 whose target and behaviour the test
// controls.
type Proxy struct {
	ln     net.Listener
	Port   int
	mu     sync.Mutex
	target string
	refuse bool
	hold   bool
	conns  map[net.Conn]struct{}
	count  int
	wg     sync.WaitGroup
}

// Accepted returns how many connections the proxy has accepted.
func (p *Proxy) Accepted() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.count
}

// NewProxy starts a proxy to target ("127.0.0.1:port"); it stops when the
// test ends.
func NewProxy(tb testing.TB, target string) *Proxy {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	p := &Proxy{ln: ln, Port: ln.Addr().(*net.TCPAddr).Port, target: target, conns: map[net.Conn]struct{}{}}
	p.wg.Add(1)
	go p.accept()
	tb.Cleanup(p.Close)
	return p
}

// SetTarget points new connections at target.
func (p *Proxy) SetTarget(target string) {
	p.mu.Lock()
	p.target = target
	p.mu.Unlock()
}

// Refuse makes the proxy close new connections at once (true) or serve
// them again (false).
func (p *Proxy) Refuse(on bool) {
	p.mu.Lock()
	p.refuse = on
	p.mu.Unlock()
}

// Hold makes the proxy stop forwarding bytes on every connection while
// keeping them open (a silent network), or forward again.
func (p *Proxy) Hold(on bool) {
	p.mu.Lock()
	p.hold = on
	p.mu.Unlock()
}

// Cut closes every proxied connection (both sides).
func (p *Proxy) Cut() {
	p.mu.Lock()
	for c := range p.conns {
		_ = c.Close()
	}
	p.mu.Unlock()
}

// Close stops the proxy and waits for its goroutines.
func (p *Proxy) Close() {
	_ = p.ln.Close()
	p.Cut()
	p.wg.Wait()
}

func (p *Proxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		p.count++
		refuse, target := p.refuse, p.target
		p.mu.Unlock()
		if refuse {
			_ = c.Close()
			continue
		}
		up, err := net.DialTimeout("tcp", target, 5*time.Second)
		if err != nil {
			_ = c.Close()
			continue
		}
		p.mu.Lock()
		p.conns[c], p.conns[up] = struct{}{}, struct{}{}
		p.mu.Unlock()
		p.wg.Add(2)
		go p.pipe(c, up)
		go p.pipe(up, c)
	}
}

// pipe copies src to dst until either closes, pausing while held.
func (p *Proxy) pipe(dst, src net.Conn) {
	defer p.wg.Done()
	defer func() {
		_ = dst.Close()
		_ = src.Close()
		p.mu.Lock()
		delete(p.conns, dst)
		delete(p.conns, src)
		p.mu.Unlock()
	}()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		// Bytes read while held are dropped, as a dead link would.
		if n > 0 && !p.held() {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

func (p *Proxy) held() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.hold
}

// Binary builds herald once, on first use, so that test binaries that do
// not need it (fuzz workers) do not build it.
type Binary struct {
	once sync.Once
	dir  string
	path string
	err  error
}

// Path returns the herald binary, building it on the first call.
func (b *Binary) Path(tb testing.TB) string {
	tb.Helper()
	b.once.Do(func() {
		if b.dir, b.err = os.MkdirTemp("", "sdk-herald-"); b.err == nil {
			b.path, b.err = Build(b.dir)
		}
	})
	if b.err != nil {
		tb.Fatal(b.err)
	}
	return b.path
}

// Cleanup removes the build directory.
func (b *Binary) Cleanup() {
	if b.dir != "" {
		_ = os.RemoveAll(b.dir)
	}
}

// Eventually polls cond until it holds, failing tb when d passes first:
// the SDK tests' one way to wait for a condition.
func Eventually(tb testing.TB, d time.Duration, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
