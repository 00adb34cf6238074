package transport

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"io"
	"math/big"
	"net"
	"net/http"
	"slices"
	"sync/atomic"
	"testing"
	"time"
)

func selfSigned(t *testing.T) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	return selfSignedSerial(t, 1)
}

// selfSignedSerial is a certificate for 127.0.0.1 and localhost with
// serial, and a pool that trusts it.
func selfSignedSerial(t *testing.T, serial int64) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial),
		Subject:      pkix.Name{CommonName: "herald test"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
		DNSNames:     []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(leaf)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, pool
}

func TestTLS(t *testing.T) {
	cert, pool := selfSigned(t)
	fs := newFakeSessions()
	fs.echo = true
	api := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "ok") })
	s := startServer(t, Config{TLSConfig: &tls.Config{Certificates: []tls.Certificate{cert}}, Handler: api}, fs)
	addr := s.Addr().String()
	clientTLS := &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"}

	t.Run("wss", func(t *testing.T) {
		nc, err := tls.Dial("tcp", addr, clientTLS)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = nc.Close() })
		// The app that requires TLS is admitted.
		resp, c := requestOn(t, nc, upgradeRequest("/app/tls?protocol=7"))
		if resp.StatusCode != http.StatusSwitchingProtocols {
			t.Fatalf("status %d", resp.StatusCode)
		}
		if got := c.readText(); got != string(establishedJSON) {
			t.Fatalf("got %q", got)
		}
		sess := fs.next(t)
		if !sess.info.TLS {
			t.Fatal("ConnInfo.TLS is false")
		}
		for i := 0; i < 100; i++ {
			c.writeFrame(true, 0x1, []byte("hello over tls"))
		}
		for i := 0; i < 100; i++ {
			if got := c.readText(); got != "hello over tls" {
				t.Fatalf("echo %q", got)
			}
		}
		c.writeFrame(true, opClose, closePayload(1000, ""))
		c.expectClose(1000)
		waitDone(t, sess.done, "Closed")
	})

	t.Run("https on the same port", func(t *testing.T) {
		hc := &http.Client{Transport: &http.Transport{TLSClientConfig: clientTLS}, Timeout: 5 * time.Second}
		resp, err := hc.Get("https://" + addr + "/health")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 || string(body) != "ok" {
			t.Fatalf("status %d body %q", resp.StatusCode, body)
		}
		hc.CloseIdleConnections()
	})

	t.Run("plain request is refused", func(t *testing.T) {
		nc, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
		_, _ = io.WriteString(nc, upgradeRequest("/app/key"))
		_ = nc.SetReadDeadline(time.Now().Add(5 * time.Second))
		b, _ := io.ReadAll(nc)
		if len(b) > 0 && string(b[:4]) == "HTTP" {
			t.Fatalf("plain HTTP answered on a TLS port: %q", b)
		}
	})
}

func TestTLSSlowConsumer(t *testing.T) {
	cert, pool := selfSigned(t)
	fs := newFakeSessions()
	s := startServer(t, Config{TLSConfig: &tls.Config{Certificates: []tls.Certificate{cert}}, WriteQueueBytes: 256 << 10}, fs)
	nc, err := tls.Dial("tcp", s.Addr().String(), &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	resp, c := requestOn(t, nc, upgradeRequest("/app/key"))
	if resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("status %d", resp.StatusCode)
	}
	_ = c.readText()
	sess := fs.next(t)
	big := TextFrame(make([]byte, 16<<10))
	sent := 0
	for sess.conn.Send(big, 0) {
		sent++
		if sent > 100000 {
			t.Fatal("Send never refused")
		}
		if sent%8 == 0 {
			time.Sleep(time.Millisecond)
		}
	}
	for {
		f := c.read()
		if f.op == opClose {
			if code := int(f.payload[0])<<8 | int(f.payload[1]); code != 4100 {
				t.Fatalf("close code %d", code)
			}
			break
		}
	}
	waitDone(t, sess.done, "Closed")
}

func TestTLSNextProtos(t *testing.T) {
	get := func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return nil, nil }
	for _, tt := range []struct {
		in, want []string
	}{
		// A file-based config offers http/1.1 alone.
		{nil, []string{"http/1.1"}},
		// The engine never speaks h2, whatever the config says.
		{[]string{"h2", "http/1.1"}, []string{"http/1.1"}},
		// ACME's TLS-ALPN-01 protocol reaches the engine's TLS.
		{[]string{"http/1.1", "acme-tls/1"}, []string{"http/1.1", "acme-tls/1"}},
		{[]string{"acme-tls/1"}, []string{"http/1.1", "acme-tls/1"}},
	} {
		conv, err := convertTLSConfig(&tls.Config{GetCertificate: get, NextProtos: tt.in})
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(conv.NextProtos, tt.want) {
			t.Errorf("NextProtos %q: converted %q, want %q", tt.in, conv.NextProtos, tt.want)
		}
	}
	if _, err := convertTLSConfig(&tls.Config{}); err == nil {
		t.Error("a config without a certificate was accepted")
	}
}

// TestTLSCertificateChosenPerHandshake: GetCertificate is asked on every
// handshake (how reloaded files and renewed ACME certificates reach new
// clients), while a live connection keeps the certificate it negotiated.
func TestTLSCertificateChosenPerHandshake(t *testing.T) {
	certA, poolA := selfSignedSerial(t, 1)
	certB, poolB := selfSignedSerial(t, 2)
	var current atomic.Pointer[tls.Certificate]
	current.Store(&certA)
	fs := newFakeSessions()
	fs.echo = true
	s := startServer(t, Config{TLSConfig: &tls.Config{GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
		return current.Load(), nil
	}}}, fs)
	addr := s.Addr().String()
	dialTLS := func(pool *x509.CertPool) (*tls.Conn, error) {
		return tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"})
	}

	nc, err := dialTLS(poolA)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = nc.Close() })
	resp, live := requestOn(t, nc, upgradeRequest("/app/key"))
	if resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("status %d", resp.StatusCode)
	}
	_ = live.readText()
	fs.next(t)

	current.Store(&certB)
	c, err := dialTLS(poolB)
	if err != nil {
		t.Fatalf("the next handshake did not get the new certificate: %v", err)
	}
	if n := c.ConnectionState().PeerCertificates[0].SerialNumber.Int64(); n != 2 {
		t.Errorf("served serial %d, want 2", n)
	}
	_ = c.Close()
	for i := 0; i < 10; i++ {
		live.writeFrame(true, opText, []byte("still here"))
		if got := live.readText(); got != "still here" {
			t.Fatalf("echo %q", got)
		}
	}
}

// TestTLSModernDefaults: whatever the certificate source, the listener
// refuses TLS before 1.2 and never asks for a client certificate.
func TestTLSModernDefaults(t *testing.T) {
	cert, pool := selfSigned(t)
	s := startServer(t, Config{TLSConfig: &tls.Config{Certificates: []tls.Certificate{cert}}}, newFakeSessions())
	addr := s.Addr().String()

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
}
