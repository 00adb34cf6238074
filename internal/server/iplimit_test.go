package server

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/herald-ws/herald/internal/config"
	"github.com/herald-ws/herald/internal/hub"
)

// rawConnectFrom opens a WebSocket connection from the local address src
// with a hand-written upgrade request and returns the payload of the first
// text frame (connection_established or pusher:error), with the socket.
func rawConnectFrom(t *testing.T, addr, src string) (string, net.Conn) {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 5 * time.Second}
	nc, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatalf("dial from %s: %v", src, err)
	}
	_ = nc.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintf(nc, "GET /app/app-key?protocol=7 HTTP/1.1\r\nHost: %s\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"+
		"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n", addr)
	br := bufio.NewReader(nc)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("upgrade from %s: %v %v", src, resp, err)
	}
	var h [2]byte
	if _, err := io.ReadFull(br, h[:]); err != nil {
		t.Fatalf("first frame from %s: %v", src, err)
	}
	n := int(h[1] & 0x7f)
	if n == 126 {
		var l [2]byte
		if _, err := io.ReadFull(br, l[:]); err != nil {
			t.Fatal(err)
		}
		n = int(binary.BigEndian.Uint16(l[:]))
	}
	payload := make([]byte, n)
	if _, err := io.ReadFull(br, payload); err != nil {
		t.Fatal(err)
	}
	return string(payload), nc
}

// TestIPLimitChargesLoopback: with apps configured (ip_limit_exempt at its
// default, empty), connections from the loopback are charged like any
// other address (behind a proxy on the same host every client would
// otherwise be unbounded): past the burst they are refused with 4100 and
// counted, while another address (127.0.0.2) connects.
func TestIPLimitChargesLoopback(t *testing.T) {
	srv, addr, _ := startNode(t, func(c *config.Config) {
		app := config.DevApp()
		app.Secret = "not-the-development-secret"
		c.Apps[0] = app
		c.IPLimitExempt = nil // the production default
		c.IPConnectionsPerSecond, c.IPConnectionsBurst = 1, 5
	})
	if srv.cfg.UsesDevApp() {
		t.Fatal("the node serves the development app")
	}
	const attempts = 20
	admitted, refused := 0, 0
	start := time.Now()
	for range attempts {
		first, nc := rawConnectFrom(t, addr, "127.0.0.1")
		switch {
		case strings.Contains(first, "pusher:connection_established"):
			admitted++
		case strings.Contains(first, "pusher:error") && strings.Contains(first, `"code":4100`):
			refused++
		default:
			t.Fatalf("first frame %s", first)
		}
		defer nc.Close()
	}
	if allowed := 5 + int(time.Since(start).Seconds()) + 1; admitted > allowed || refused == 0 {
		t.Fatalf("%d admitted, %d refused from 127.0.0.1; the bucket allows %d", admitted, refused, allowed)
	}
	if n := srv.Refusals().Count("", hub.LimitIPConnections); n != int64(refused) {
		t.Fatalf("counted %d refusals, want %d", n, refused)
	}
	// The neighbour is not affected.
	first, nc := rawConnectFrom(t, addr, "127.0.0.2")
	defer nc.Close()
	if !strings.Contains(first, "pusher:connection_established") {
		t.Fatalf("127.0.0.2: %s", first)
	}
}

// TestIPLimitSparesTheDevAppLoopback: with the development app the loopback
// is exempt (config's DevAppIPLimitExempt), so local development and load
// tests are not refused.
func TestIPLimitSparesTheDevAppLoopback(t *testing.T) {
	_, addr, _ := startNode(t, func(c *config.Config) {
		c.IPConnectionsPerSecond, c.IPConnectionsBurst = 1, 2
	})
	for i := range 10 {
		first, nc := rawConnectFrom(t, addr, "127.0.0.1")
		defer nc.Close()
		if !strings.Contains(first, "pusher:connection_established") {
			t.Fatalf("connection %d: %s", i, first)
		}
	}
}
