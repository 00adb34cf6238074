package client_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/herald-ws/herald/sdk/client"
	"github.com/herald-ws/herald/sdk/internal/heraldtest"
)

// selfSigned writes a certificate for 127.0.0.1 and its key, and returns
// their paths and a pool that trusts it.
func selfSigned(t *testing.T) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
		KeyUsage:    x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certFile, keyFile, pool
}

func TestTLS(t *testing.T) {
	certFile, keyFile, pool := selfSigned(t)
	n := heraldtest.Start(t, herald.Path(t), heraldtest.Options{TLSCert: certFile, TLSKey: keyFile})
	c := dial(t, n.Port, client.Options{TLS: true, TLSConfig: &tls.Config{RootCAs: pool}})
	ch := c.Subscribe("secure")
	ctx := ctxT(t, 10*time.Second)
	if err := ch.WaitSubscribed(ctx); err != nil {
		t.Fatal(err)
	}
	var got counter
	ch.Bind("e", func(e client.Event) { got.add(string(e.Data)) })
	sdk := api(n.Port)
	sdk.Secure = true
	sdk.HTTPClient = &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	if err := sdk.Trigger(ctx, "secure", "e", "over tls"); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "event over wss", func() bool { return got.get("over tls") == 1 })
	// A client that does not trust the certificate never connects.
	bad := newClient(t, n.Port, client.Options{TLS: true, DialTimeout: 2 * time.Second})
	bad.Connect()
	eventually(t, 10*time.Second, "unavailable", func() bool { return bad.State() == client.Unavailable })
}
