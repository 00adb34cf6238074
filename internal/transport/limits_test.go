package transport

import (
	"crypto/tls"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/herald-ws/herald/internal/hub"
)

// countRefusals records Refused calls.
type countRefusals struct {
	mu sync.Mutex
	m  map[string]int
}

func (c *countRefusals) Refused(appID, limit string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = map[string]int{}
	}
	c.m[appID+"/"+limit]++
}

func (c *countRefusals) get(key string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.m[key]
}

// expectRefused reads the pusher:error frame and the close frame of a
// refused connection.
func expectRefused(t *testing.T, c *wsClient, code int) string {
	t.Helper()
	msg := c.readText()
	if !strings.Contains(msg, `"pusher:error"`) || !strings.Contains(msg, `"code":`+itoa(code)) {
		t.Fatalf("want pusher:error %d, got %s", code, msg)
	}
	return c.expectClose(code)
}

func itoa(n int) string { return big.NewInt(int64(n)).String() }

func TestClientOf(t *testing.T) {
	tp, err := ParseTrustedProxies([]string{"10.0.0.0/8", "192.168.1.1", "fd00::/8"})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, remote, xff, proto string
		tlsConn                  bool
		wantIP                   string
		wantTLS                  bool
	}{
		{"direct client ignores headers", "203.0.113.5:1234", "1.2.3.4", "https", false, "203.0.113.5", false},
		{"trusted proxy gives the client", "10.1.2.3:5555", "198.51.100.7", "https", false, "198.51.100.7", true},
		{"spoofed left part is ignored", "10.1.2.3:5555", "6.6.6.6, 198.51.100.7", "http", true, "198.51.100.7", false},
		{"chain of trusted proxies", "10.1.2.3:5555", "198.51.100.7, 192.168.1.1, 10.9.9.9", "", false, "198.51.100.7", false},
		{"several headers", "192.168.1.1:80", "", "", false, "192.168.1.1", false},
		{"garbage stops the walk", "10.0.0.1:1", "nonsense, 10.0.0.2", "", false, "10.0.0.2", false},
		{"ipv6 proxy", "[fd00::1]:443", "2001:db8::5", "wss", false, "2001:db8::5", true},
		{"mapped ipv4 peer", "[::ffff:10.0.0.1]:1", "198.51.100.9", "", false, "198.51.100.9", false},
		{"first proto of a list", "10.0.0.1:1", "198.51.100.9", "https, http", false, "198.51.100.9", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := &http.Request{RemoteAddr: tt.remote, Header: http.Header{}}
			if tt.xff != "" {
				r.Header.Set("X-Forwarded-For", tt.xff)
			}
			if tt.proto != "" {
				r.Header.Set("X-Forwarded-Proto", tt.proto)
			}
			ip, viaTLS := tp.clientOf(r, tt.tlsConn)
			if ip.String() != tt.wantIP || viaTLS != tt.wantTLS {
				t.Fatalf("got %s tls=%v, want %s tls=%v", ip, viaTLS, tt.wantIP, tt.wantTLS)
			}
		})
	}
	if _, err := ParseTrustedProxies([]string{"nginx"}); err == nil {
		t.Fatal("a host name was accepted as a trusted proxy")
	}
}

func TestIPConnectionLimit(t *testing.T) {
	ref := &countRefusals{}
	tp, _ := ParseTrustedProxies([]string{"127.0.0.1"})
	fs := newFakeSessionsWith(hub.Options{Refusals: ref, NodeLimits: hub.NodeLimits{IPConnectionsPerSecond: 0.001, IPConnectionsBurst: 3,
		IPExempt: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}}})
	s := startServer(t, Config{TrustedProxies: tp}, fs)
	addr := s.Addr().String()
	for i := 0; i < 3; i++ {
		c := dialWS(t, addr, "/app/key", "X-Forwarded-For: 198.51.100.1")
		if got := c.readText(); got != string(establishedJSON) {
			t.Fatalf("connection %d: %s", i, got)
		}
		fs.next(t)
	}
	c := dialWS(t, addr, "/app/key", "X-Forwarded-For: 198.51.100.1")
	expectRefused(t, c, 4100)
	if n := ref.get("/" + hub.LimitIPConnections); n != 1 {
		t.Fatalf("refusals counted %d, want 1", n)
	}
	// Another client behind the same proxy has its own bucket.
	c = dialWS(t, addr, "/app/key", "X-Forwarded-For: 198.51.100.2")
	if got := c.readText(); got != string(establishedJSON) {
		t.Fatalf("other client: %s", got)
	}
	// Private addresses are charged like any other (a LAN client, or
	// every client of a proxy left out of trusted_proxies); only the
	// exempt prefixes (ip_limit_exempt) are not.
	for _, extra := range []string{"X-Forwarded-For: 10.1.2.3", "X-Forwarded-For: fd00::7"} {
		for i := 0; i < 3; i++ {
			c := dialWS(t, addr, "/app/key", extra)
			if got := c.readText(); got != string(establishedJSON) {
				t.Fatalf("%s, connection %d: %s", extra, i, got)
			}
			_ = c.nc.Close()
		}
		expectRefused(t, dialWS(t, addr, "/app/key", extra), 4100)
	}
	for i := 0; i < 5; i++ {
		c := dialWS(t, addr, "/app/key", "X-Forwarded-For: 127.0.0.1")
		if got := c.readText(); got != string(establishedJSON) {
			t.Fatalf("exempt 127.0.0.1, connection %d: %s", i, got)
		}
		_ = c.nc.Close()
	}
}

func TestNodeConnectionLimit(t *testing.T) {
	ref := &countRefusals{}
	fs := newFakeSessionsWith(hub.Options{Refusals: ref, NodeLimits: hub.NodeLimits{MaxConnections: 2}})
	s := startServer(t, Config{}, fs)
	addr := s.Addr().String()
	var open []*wsClient
	for i := 0; i < 2; i++ {
		c := dialWS(t, addr, "/app/key")
		_ = c.readText()
		fs.next(t)
		open = append(open, c)
		if i == 0 { // a refused connection takes no slot
			expectRefused(t, dialWS(t, addr, "/app/full"), 4004)
		}
	}
	expectRefused(t, dialWS(t, addr, "/app/key"), 4100)
	if n := ref.get("/" + hub.LimitNodeConnections); n != 1 {
		t.Fatalf("refusals counted %d, want 1", n)
	}
	// After one leaves, one more is admitted.
	sess := fs.sessions[0]
	open[0].writeFrame(true, opClose, closePayload(1000, ""))
	open[0].expectClose(1000)
	waitDone(t, sess.done, "Closed")
	c := dialWS(t, addr, "/app/key")
	if got := c.readText(); got != string(establishedJSON) {
		t.Fatalf("after a slot freed: %s", got)
	}
}

func TestMemoryGuard(t *testing.T) {
	ref := &countRefusals{}
	fs := newFakeSessionsWith(hub.Options{Refusals: ref, NodeLimits: hub.NodeLimits{MemoryLimit: 1 << 20, MemoryGuardPercent: 90}})
	s := startServer(t, Config{}, fs)
	c := dialWS(t, s.Addr().String(), "/app/key")
	expectRefused(t, c, 4100)
	if n := ref.get("/" + hub.LimitMemory); n != 1 {
		t.Fatalf("refusals counted %d, want 1", n)
	}
	// A limit far above the process's use admits.
	fs2 := newFakeSessionsWith(hub.Options{NodeLimits: hub.NodeLimits{MemoryLimit: 1 << 40, MemoryGuardPercent: 90}})
	s2 := startServer(t, Config{}, fs2)
	c = dialWS(t, s2.Addr().String(), "/app/key")
	if got := c.readText(); got != string(establishedJSON) {
		t.Fatalf("under the limit: %s", got)
	}
}

func TestRequireTLSBehindTrustedProxy(t *testing.T) {
	tp, _ := ParseTrustedProxies([]string{"127.0.0.0/8"})
	ref := &countRefusals{}
	fs := newFakeSessionsWith(hub.Options{Refusals: ref})
	s := startServer(t, Config{TrustedProxies: tp}, fs)
	c := dialWS(t, s.Addr().String(), "/app/tls", "X-Forwarded-Proto: https", "X-Forwarded-For: 198.51.100.3")
	if got := c.readText(); got != string(establishedJSON) {
		t.Fatalf("https at the proxy: %s", got)
	}
	sess := fs.next(t)
	if !sess.info.TLS || sess.info.ClientIP.String() != "198.51.100.3" {
		t.Fatalf("ConnInfo %+v", sess.info)
	}
	expectRefused(t, dialWS(t, s.Addr().String(), "/app/tls", "X-Forwarded-Proto: http"), 4000)
	if ref.get("tls/"+hub.LimitRequireTLS) != 1 {
		t.Fatal("require_tls refusal not counted")
	}

	// Without trusted proxies the header is the client's word: ignored.
	s2 := startServer(t, Config{}, newFakeSessions())
	expectRefused(t, dialWS(t, s2.Addr().String(), "/app/tls", "X-Forwarded-Proto: https"), 4000)
}

// TestUpgradeDeadline: a client that never finishes its upgrade request
// (slowloris), or never starts one, is cut at the handshake deadline even
// while it keeps dribbling bytes.
func TestUpgradeDeadline(t *testing.T) {
	s := startServer(t, Config{HandshakeTimeout: 500 * time.Millisecond}, newFakeSessions())
	addr := s.Addr().String()

	silent, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()

	slow, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer slow.Close()
	req := upgradeRequest("/app/key")
	closed := make(chan struct{})
	go func() {
		defer close(closed)
		// One byte every 20 ms: the request would take far longer than
		// the deadline. Stops at the first failed write.
		for i := 0; i < len(req)-2; i++ {
			if _, err := slow.Write([]byte{req[i]}); err != nil {
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
	}()
	for _, c := range []net.Conn{silent, slow} {
		_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
		b, err := io.ReadAll(c)
		if ne, ok := err.(net.Error); ok && ne.Timeout() {
			t.Fatal("an unfinished upgrade was not cut")
		}
		if len(b) > 0 {
			t.Fatalf("answered %q", b)
		}
	}
	<-closed
	if n := s.Connections(); n != 0 {
		t.Fatalf("%d connections upgraded", n)
	}
}

func TestOversizedFrameCounted(t *testing.T) {
	ref := &countRefusals{}
	fs := newFakeSessions()
	s := startServer(t, Config{MaxMessageSize: 1000, Refusals: ref}, fs)
	c := dialWS(t, s.Addr().String(), "/app/key")
	_ = c.readText()
	sess := fs.next(t)
	c.writeFrame(true, opText, make([]byte, 1001))
	c.expectClose(1009)
	waitDone(t, sess.done, "Closed")
	if ref.get("key/"+hub.LimitMessageSize) != 1 {
		t.Fatal("oversized message not counted")
	}
}

// TestTLSHandshakeDeadline: on a TLS port, a client that connects and never
// completes the TLS handshake is cut at the handshake deadline too.
func TestTLSHandshakeDeadline(t *testing.T) {
	cert, _ := selfSigned(t)
	s := startServer(t, Config{TLSConfig: &tls.Config{Certificates: []tls.Certificate{cert}}, HandshakeTimeout: 500 * time.Millisecond}, newFakeSessions())
	for _, first := range [][]byte{nil, {0x16, 0x03, 0x01, 0x02, 0x00}} { // nothing; a ClientHello header without its body
		c, err := net.Dial("tcp", s.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if first != nil {
			if _, err := c.Write(first); err != nil {
				t.Fatal(err)
			}
		}
		_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
		_, err = io.ReadAll(c)
		if ne, ok := err.(net.Error); ok && ne.Timeout() {
			t.Fatalf("an unfinished TLS handshake (%x) was not cut", first)
		}
	}
}
