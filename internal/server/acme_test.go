package server

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/herald-ws/herald/internal/acmetest"
	"github.com/herald-ws/herald/internal/config"
	"github.com/herald-ws/herald/internal/testwait"
)

func TestACMEServesCachedCertificateWithoutNetwork(t *testing.T) {
	const domain = "ws.herald.test"
	caURL, hits := acmetest.FakeCA(t)
	dir := t.TempDir()
	cert := acmetest.CacheCert(t, dir, domain, domain)
	addr, stop := startServer(t, func(c *config.Config) {
		c.ACMEDomains = []string{domain}
		c.ACMECacheDir = dir
		c.ACMEDirectoryURL = caURL
	})
	roots := x509.NewCertPool()
	roots.AddCert(cert)

	// A real handshake with SNI = the domain gets the cached certificate,
	// over TLS 1.2+, with http/1.1, and the node answers over it.
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, &tls.Config{
		ServerName: domain, RootCAs: roots, NextProtos: []string{"h2", "http/1.1"},
	})
	if err != nil {
		t.Fatalf("handshake: %v", err)
	}
	st := conn.ConnectionState()
	if !st.PeerCertificates[0].Equal(cert) || st.NegotiatedProtocol != "http/1.1" || st.Version < tls.VersionTLS12 {
		t.Errorf("peer %v, ALPN %q, version %x", st.PeerCertificates[0].Subject, st.NegotiatedProtocol, st.Version)
	}
	if _, err := conn.Write([]byte("GET /up HTTP/1.1\r\nHost: " + domain + "\r\nConnection: close\r\n\r\n")); err != nil {
		t.Fatal(err)
	}
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("GET /up over TLS: %v", err)
	}
	_ = resp.Body.Close()
	_ = conn.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("GET /up: %d", resp.StatusCode)
	}

	// TLS 1.1 is refused.
	if c, err := tls.Dial("tcp", addr, &tls.Config{ServerName: domain, RootCAs: roots, MaxVersion: tls.VersionTLS11}); err == nil {
		_ = c.Close()
		t.Error("TLS 1.1 handshake succeeded")
	}
	// Another name, or none, is refused without asking the CA.
	for _, name := range []string{"evil.example.com", ""} {
		c, err := tls.Dial("tcp", addr, &tls.Config{ServerName: name, InsecureSkipVerify: true})
		if err == nil {
			_ = c.Close()
			t.Errorf("SNI %q: handshake succeeded", name)
		}
	}

	// TLS-ALPN-01: a CA's handshake (ALPN acme-tls/1 alone) gets the token
	// certificate and acme-tls/1 is negotiated through the engine's TLS.
	tok := acmetest.CacheCert(t, dir, domain+"+token", domain)
	tc, err := tls.Dial("tcp", addr, &tls.Config{ServerName: domain, InsecureSkipVerify: true, NextProtos: []string{"acme-tls/1"}})
	if err != nil {
		t.Fatalf("acme-tls/1 handshake: %v", err)
	}
	st = tc.ConnectionState()
	_ = tc.Close()
	if st.NegotiatedProtocol != "acme-tls/1" || !st.PeerCertificates[0].Equal(tok) {
		t.Errorf("acme-tls/1 handshake: ALPN %q, token certificate served %v", st.NegotiatedProtocol, st.PeerCertificates[0].Equal(tok))
	}

	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if n := hits.Load(); n != 0 {
		t.Errorf("the CA was asked %d times", n)
	}
}

func TestACMEHTTPChallengeListener(t *testing.T) {
	const domain = "ws.herald.test"
	caURL, hits := acmetest.FakeCA(t)
	dir := t.TempDir()
	acmetest.CacheCert(t, dir, domain, domain)
	before := runtime.NumGoroutine()
	cfg := config.Default()
	cfg.Host, cfg.Port, cfg.ShutdownTimeout = "127.0.0.1", 0, 2*time.Second
	cfg.ACMEDomains = []string{domain}
	cfg.ACMECacheDir = dir
	cfg.ACMEDirectoryURL = caURL
	cfg.ACMEHTTPAddr = "127.0.0.1:0"
	srv, err := New(cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	started := make(chan net.Addr, 1)
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx, func(a net.Addr) { started <- a }) }()
	var addr string
	select {
	case a := <-started:
		addr = a.String()
	case err := <-done:
		t.Fatalf("server stopped at start: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("server did not start")
	}
	stop := func() error {
		cancel()
		select {
		case err := <-done:
			return err
		case <-time.After(15 * time.Second):
			return errors.New("server did not stop within 15 s")
		}
	}
	_, tlsPort, _ := net.SplitHostPort(addr)
	httpAddr := srv.ACMEHTTPAddr().String()

	client := &http.Client{
		Timeout:       5 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	do := func(method, path string) *http.Response {
		t.Helper()
		req, err := http.NewRequest(method, "http://"+httpAddr+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Host = domain
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_ = resp.Body.Close()
		return resp
	}
	// An unknown token is answered by autocert's handler, here.
	if r := do("GET", "/.well-known/acme-challenge/unknown-token"); r.StatusCode != http.StatusNotFound {
		t.Errorf("unknown token: %d, want 404", r.StatusCode)
	}
	// Anything else is sent to https on the TLS port.
	r := do("GET", "/app/app-key?protocol=7")
	if want := "https://" + domain + ":" + tlsPort + "/app/app-key?protocol=7"; r.StatusCode != http.StatusMovedPermanently || r.Header.Get("Location") != want {
		t.Errorf("GET: %d Location %q, want 301 %q", r.StatusCode, r.Header.Get("Location"), want)
	}
	if r := do("POST", "/apps/1/events"); r.StatusCode != http.StatusBadRequest || !strings.Contains(r.Header.Get("Content-Type"), "json") {
		t.Errorf("POST: %d %q, want 400 JSON", r.StatusCode, r.Header.Get("Content-Type"))
	}

	// The listener stops with the server.
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if c, err := net.DialTimeout("tcp", httpAddr, time.Second); err == nil {
		_ = c.Close()
		t.Error("the HTTP-01 listener still accepts after the server stopped")
	}
	// Every goroutine the node started (the HTTP-01 listener's included)
	// is gone.
	client.CloseIdleConnections()
	testwait.Goroutines(t, 5*time.Second, before)
	if n := hits.Load(); n != 0 {
		t.Errorf("the CA was asked %d times", n)
	}
}
