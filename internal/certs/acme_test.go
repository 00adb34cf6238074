package certs

import (
	"crypto/tls"
	"net/http"
	"net/http/httptest"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/herald-ws/herald/internal/acmetest"
	"github.com/herald-ws/herald/internal/testwait"
)

func modernHello(name string, protos ...string) *tls.ClientHelloInfo {
	return &tls.ClientHelloInfo{
		ServerName:        name,
		SupportedProtos:   protos,
		CipherSuites:      []uint16{tls.TLS_AES_128_GCM_SHA256, tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256},
		SupportedCurves:   []tls.CurveID{tls.X25519, tls.CurveP256},
		SignatureSchemes:  []tls.SignatureScheme{tls.ECDSAWithP256AndSHA256, tls.PSSWithSHA256},
		SupportedVersions: []uint16{tls.VersionTLS13, tls.VersionTLS12},
	}
}

func newTestACME(t *testing.T, dir, url string) *ACME {
	t.Helper()
	a, err := NewACME(ACMEConfig{Domains: []string{"ws.herald.test", "Other.Herald.Test."}, CacheDir: dir, DirectoryURL: url, HandshakeWait: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(a.Close)
	return a
}

func TestACMETLSConfig(t *testing.T) {
	a := newTestACME(t, t.TempDir(), "http://127.0.0.1:1/directory")
	c := a.TLSConfig()
	if c.MinVersion != tls.VersionTLS12 || c.ClientAuth != tls.NoClientCert || c.GetCertificate == nil {
		t.Errorf("MinVersion %x ClientAuth %v GetCertificate nil %v", c.MinVersion, c.ClientAuth, c.GetCertificate == nil)
	}
	if !slices.Contains(c.NextProtos, acmeALPN) || !slices.Contains(c.NextProtos, "http/1.1") || slices.Contains(c.NextProtos, "h2") {
		t.Errorf("NextProtos %q, want http/1.1 and acme-tls/1, no h2", c.NextProtos)
	}
}

func TestACMERefusesOtherHostsWithoutAskingTheCA(t *testing.T) {
	url, hits := acmetest.FakeCA(t)
	a := newTestACME(t, t.TempDir(), url)
	for _, name := range []string{"evil.example.com", "", "herald.test", "ws.herald.test.evil.com"} {
		start := time.Now()
		if c, err := a.GetCertificate(modernHello(name)); err == nil || c != nil {
			t.Errorf("%q: got a certificate, want a refusal", name)
		}
		if d := time.Since(start); d > time.Second {
			t.Errorf("%q: refusal took %v", name, d)
		}
	}
	// A challenge handshake with no pending challenge is refused too.
	if _, err := a.GetCertificate(modernHello("ws.herald.test", acmeALPN)); err == nil {
		t.Error("acme-tls/1 hello without a token: got a certificate")
	}
	if n := hits.Load(); n != 0 {
		t.Errorf("the CA was asked %d times", n)
	}
}

func TestACMEServesTheCachedCertificate(t *testing.T) {
	url, hits := acmetest.FakeCA(t)
	dir := t.TempDir()
	der := acmetest.CacheCert(t, dir, "ws.herald.test", "ws.herald.test").Raw
	a := newTestACME(t, dir, url)
	for _, name := range []string{"ws.herald.test", "WS.herald.test."} {
		c, err := a.GetCertificate(modernHello(name, "http/1.1"))
		if err != nil {
			t.Fatalf("%q: %v", name, err)
		}
		if !slices.Equal(c.Certificate[0], der) {
			t.Errorf("%q: served another certificate", name)
		}
	}
	// The TLS-ALPN-01 token certificate, when the cache holds one.
	tok := acmetest.CacheCert(t, dir, "ws.herald.test+token", "ws.herald.test").Raw
	c, err := a.GetCertificate(modernHello("ws.herald.test", acmeALPN))
	if err != nil || !slices.Equal(c.Certificate[0], tok) {
		t.Errorf("token certificate: err %v", err)
	}
	if n := hits.Load(); n != 0 {
		t.Errorf("the CA was asked %d times", n)
	}
}

func TestACMEMissingCertificateIsRefusedAndRetriedLater(t *testing.T) {
	url, hits := acmetest.FakeCA(t)
	before := runtime.NumGoroutine()
	a, err := NewACME(ACMEConfig{Domains: []string{"ws.herald.test"}, CacheDir: t.TempDir(), DirectoryURL: url, HandshakeWait: 10 * time.Second, RetryAfter: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		// Close leaves nothing behind: no fetch, no connection to the CA.
		a.Close()
		testwait.Goroutines(t, 5*time.Second, before)
	}()
	if _, err := a.GetCertificate(modernHello("ws.herald.test")); err == nil {
		t.Fatal("got a certificate from a CA that refuses everything")
	}
	asked := hits.Load()
	if asked == 0 {
		t.Fatal("the CA was never asked")
	}
	// Within RetryAfter the failure is answered from memory.
	if _, err := a.GetCertificate(modernHello("ws.herald.test")); err == nil {
		t.Fatal("second handshake got a certificate")
	}
	if n := hits.Load(); n != asked {
		t.Errorf("the CA was asked again (%d -> %d) within RetryAfter", asked, n)
	}
}

func TestACMEHandshakeDoesNotWaitForTheCA(t *testing.T) {
	// A CA that never answers: the handshake gives up after HandshakeWait
	// and Close aborts the request.
	block := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-block:
		case <-r.Context().Done():
		}
	}))
	defer srv.Close()
	defer close(block)
	a, err := NewACME(ACMEConfig{Domains: []string{"ws.herald.test"}, CacheDir: t.TempDir(), DirectoryURL: srv.URL + "/directory", HandshakeWait: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if _, err := a.GetCertificate(modernHello("ws.herald.test")); err == nil {
		t.Fatal("got a certificate")
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("handshake waited %v", d)
	}
	// Past HandshakeWait, the next handshakes are refused without waiting
	// at all while the fetch goes on.
	if _, err := a.GetCertificate(modernHello("ws.herald.test")); err == nil || !strings.Contains(err.Error(), "still being obtained") {
		t.Fatalf("second handshake: %v", err)
	}
	done := make(chan struct{})
	go func() { a.Close(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Close did not abort the request to the CA")
	}
}

func TestACMEHTTPHandlerAnswersLocally(t *testing.T) {
	url, hits := acmetest.FakeCA(t)
	a := newTestACME(t, t.TempDir(), url)
	fallback := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusTeapot) })
	h := a.HTTPHandler(fallback)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "http://ws.herald.test/.well-known/acme-challenge/unknown-token", nil))
	if rec.Code != http.StatusNotFound {
		t.Errorf("unknown token: %d, want 404", rec.Code)
	}
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "http://evil.example.com/.well-known/acme-challenge/x", nil))
	if rec.Code != http.StatusForbidden {
		t.Errorf("other host: %d, want 403", rec.Code)
	}
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "http://ws.herald.test/apps/1/channels", nil))
	if rec.Code != http.StatusTeapot {
		t.Errorf("other path: %d, want the fallback", rec.Code)
	}
	if n := hits.Load(); n != 0 {
		t.Errorf("the CA was asked %d times", n)
	}
}
