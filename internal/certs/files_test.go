package certs

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/herald-ws/herald/internal/testwait"
)

// writeCertPair writes a fresh self-signed certificate for 127.0.0.1 with
// serial to certFile and keyFile, each through a rename as certbot does.
func writeCertPair(t *testing.T, certFile, keyFile string, serial int64) *x509.CertPool {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial),
		Subject:      pkix.Name{CommonName: "herald reload test"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	write := func(path string, block *pem.Block) {
		tmp := path + ".tmp"
		if err := os.WriteFile(tmp, pem.EncodeToMemory(block), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, path); err != nil {
			t.Fatal(err)
		}
	}
	write(keyFile, &pem.Block{Type: "EC PRIVATE KEY", Bytes: kder})
	write(certFile, &pem.Block{Type: "CERTIFICATE", Bytes: der})
	leaf, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(leaf)
	return pool
}

// echoTLS serves cfg on 127.0.0.1 with crypto/tls, echoing what each
// connection sends, until the test ends; it returns the address.
func echoTLS(t *testing.T, cfg *tls.Config) string {
	t.Helper()
	ln, err := tls.Listen("tcp", "127.0.0.1:0", cfg)
	if err != nil {
		t.Fatal(err)
	}
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		conns []net.Conn
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, _ = io.Copy(c, c)
			}()
		}
	}()
	t.Cleanup(func() {
		_ = ln.Close()
		mu.Lock()
		for _, c := range conns {
			_ = c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return ln.Addr().String()
}

func TestReloaderKeepsLiveConnections(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	poolA := writeCertPair(t, certFile, keyFile, 1)
	r, err := NewReloader(certFile, keyFile, 20*time.Millisecond, nil)
	if err != nil {
		t.Fatal(err)
	}
	addr := echoTLS(t, r.TLSConfig())
	dialTLS := func(pool *x509.CertPool) (*tls.Conn, error) {
		return tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"})
	}
	live, err := dialTLS(poolA)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = live.Close() })

	// A broken renewal (a key that does not match) keeps the old pair.
	if err := os.WriteFile(keyFile, []byte("-----BEGIN EC PRIVATE KEY-----\nAAAA\n-----END EC PRIVATE KEY-----\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	r.nextCheck.Store(0) // the next handshake checks the files
	c2, err := dialTLS(poolA)
	if err != nil {
		t.Fatalf("after a broken renewal the old certificate must still be served: %v", err)
	}
	_ = c2.Close()

	poolB := writeCertPair(t, certFile, keyFile, 2)
	if !testwait.Until(10*time.Second, func() bool {
		var c *tls.Conn
		if c, err = dialTLS(poolB); err != nil {
			return false
		}
		defer c.Close()
		return c.ConnectionState().PeerCertificates[0].SerialNumber.Int64() == 2
	}) {
		t.Fatalf("new certificate never served (last error %v)", err)
	}
	if r.cert.Load().Leaf.SerialNumber.Int64() != 2 {
		t.Fatal("the reloader does not hold the reloaded pair")
	}
	// The connection made with the old certificate is still served.
	_ = live.SetDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, len("still here"))
	for i := 0; i < 10; i++ {
		if _, err := live.Write([]byte("still here")); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(live, buf); err != nil || string(buf) != "still here" {
			t.Fatalf("echo %q: %v", buf, err)
		}
	}
}

// TestReloaderChecksAtMostOncePerInterval: within the interval a handshake
// does not look at the files, so a renewal shows after it at the latest.
func TestReloaderChecksAtMostOncePerInterval(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	writeCertPair(t, certFile, keyFile, 1)
	r, err := NewReloader(certFile, keyFile, time.Hour, nil)
	if err != nil {
		t.Fatal(err)
	}
	writeCertPair(t, certFile, keyFile, 2)
	// A renewal comes long after the load: make the files look it, as a
	// rewrite within the file system's clock tick may keep size and time.
	later := time.Now().Add(time.Minute)
	for _, f := range []string{certFile, keyFile} {
		if err := os.Chtimes(f, later, later); err != nil {
			t.Fatal(err)
		}
	}
	c, err := r.GetCertificate(&tls.ClientHelloInfo{})
	if err != nil {
		t.Fatal(err)
	}
	if n := c.Leaf.SerialNumber.Int64(); n != 1 {
		t.Fatalf("within the interval: serial %d, want 1", n)
	}
	r.nextCheck.Store(0)
	if c, _ = r.GetCertificate(&tls.ClientHelloInfo{}); c.Leaf.SerialNumber.Int64() != 2 {
		t.Fatalf("after the interval: serial %d, want 2", c.Leaf.SerialNumber.Int64())
	}
}

func TestReloaderModernDefaults(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	pool := writeCertPair(t, certFile, keyFile, 7)
	r, err := NewReloader(certFile, keyFile, time.Second, nil)
	if err != nil {
		t.Fatal(err)
	}
	cfg := r.TLSConfig()
	if cfg.MinVersion != tls.VersionTLS12 || cfg.ClientAuth != tls.NoClientCert || cfg.GetCertificate == nil || len(cfg.NextProtos) != 0 {
		t.Errorf("MinVersion %x ClientAuth %v GetCertificate nil %v NextProtos %q", cfg.MinVersion, cfg.ClientAuth, cfg.GetCertificate == nil, cfg.NextProtos)
	}
	addr := echoTLS(t, cfg)

	t.Run("TLS 1.1 is refused", func(t *testing.T) {
		c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr,
			&tls.Config{RootCAs: pool, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS10, MaxVersion: tls.VersionTLS11})
		if err == nil {
			_ = c.Close()
			t.Fatal("a TLS 1.1 handshake succeeded")
		}
	})
	t.Run("no client certificate requested", func(t *testing.T) {
		asked := false
		c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, &tls.Config{
			RootCAs: pool, ServerName: "127.0.0.1",
			GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
				asked = true
				return &tls.Certificate{}, nil
			},
		})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if asked {
			t.Fatal("the server asked for a client certificate")
		}
		if v := c.ConnectionState().Version; v < tls.VersionTLS12 {
			t.Fatalf("negotiated %x", v)
		}
	})
	t.Run("missing files fail at start", func(t *testing.T) {
		if _, err := NewReloader(filepath.Join(dir, "nope.pem"), keyFile, 0, nil); err == nil {
			t.Fatal("no error for a missing certificate")
		}
	})
	t.Run("a key that does not match fails at start", func(t *testing.T) {
		other := t.TempDir()
		otherCert, otherKey := filepath.Join(other, "cert.pem"), filepath.Join(other, "key.pem")
		writeCertPair(t, otherCert, otherKey, 8)
		if _, err := NewReloader(certFile, otherKey, 0, nil); err == nil {
			t.Fatal("no error for a key of another certificate")
		}
	})
}
