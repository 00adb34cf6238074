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
	"testing"
	"time"
)

func selfSigned(t *testing.T) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
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
