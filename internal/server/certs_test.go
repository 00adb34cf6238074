package server

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/herald-ws/herald/internal/acmetest"
	"github.com/herald-ws/herald/internal/config"
	"github.com/herald-ws/herald/internal/testwait"
)

// TestTLSFilesReloadedWithoutDroppingConnections: with tls_cert/tls_key
// the node serves the files' certificate and, once they are renewed, new
// handshakes get the new one while a connection made before goes on.
func TestTLSFilesReloadedWithoutDroppingConnections(t *testing.T) {
	const domain = "ws.herald.test"
	dir := t.TempDir()
	pair := filepath.Join(dir, "pair.pem")
	// renew writes a certificate and its key into one file (as the key and
	// as the certificate file) through a rename, as certbot does.
	renew := func() *x509.Certificate {
		c := acmetest.CacheCert(t, dir, "next.pem", domain)
		if err := os.Rename(filepath.Join(dir, "next.pem"), pair); err != nil {
			t.Fatal(err)
		}
		return c
	}
	first := renew()
	addr, stop := startServer(t, func(c *config.Config) {
		c.TLSCert, c.TLSKey = pair, pair
		c.TLSReloadInterval = 20 * time.Millisecond
	})
	t.Cleanup(func() { _ = stop() })
	dial := func(want *x509.Certificate) (*tls.Conn, error) {
		roots := x509.NewCertPool()
		roots.AddCert(want)
		return tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, &tls.Config{ServerName: domain, RootCAs: roots})
	}
	live, err := dial(first)
	if err != nil {
		t.Fatalf("handshake: %v", err)
	}
	defer live.Close()
	br := bufio.NewReader(live)
	up := func() {
		t.Helper()
		_ = live.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := live.Write([]byte("GET /up HTTP/1.1\r\nHost: " + domain + "\r\n\r\n")); err != nil {
			t.Fatal(err)
		}
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("GET /up over TLS: %v", err)
		}
		_ = resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET /up: %d", resp.StatusCode)
		}
	}
	up()

	second := renew()
	// The file's time and size may not change within the clock's tick:
	// a renewal comes long after the load.
	later := time.Now().Add(time.Minute)
	if err := os.Chtimes(pair, later, later); err != nil {
		t.Fatal(err)
	}
	testwait.For(t, 10*time.Second, "the renewed certificate served", func() bool {
		c, err := dial(second)
		if err != nil {
			return false
		}
		defer c.Close()
		return c.ConnectionState().PeerCertificates[0].Equal(second)
	})
	// The connection made with the first certificate is still served.
	up()
	if err := stop(); err != nil {
		t.Fatal(err)
	}
}
