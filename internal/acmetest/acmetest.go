// Package acmetest has what the ACME tests of several packages share: a
// certificate authority that refuses everything and certificates written
// in autocert's cache format, so that no test ever needs the internet.
// Only tests import it.
package acmetest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"
)

// FakeCA starts an ACME directory on 127.0.0.1 that refuses every request
// and counts them. It returns the directory URL and the count: a test that
// must not reach a CA checks the count, and a bug that tries fails at once
// instead of hanging on the internet.
func FakeCA(tb testing.TB) (directoryURL string, hits *atomic.Int64) {
	tb.Helper()
	hits = new(atomic.Int64)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		hits.Add(1)
		http.Error(w, `{"type":"urn:ietf:params:acme:error:unauthorized","detail":"test CA refuses"}`, http.StatusForbidden)
	}))
	tb.Cleanup(srv.Close)
	return srv.URL + "/directory", hits
}

// CacheCert writes a self-signed ECDSA certificate for domain into dir
// under key, in autocert's DirCache format (the PEM private key followed by
// the certificate chain), and returns it. It is its own CA, so a client can
// trust it by adding it to RootCAs.
func CacheCert(tb testing.TB, dir, key, domain string) *x509.Certificate {
	tb.Helper()
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(time.Now().UnixNano()),
		Subject:               pkix.Name{CommonName: domain},
		DNSNames:              []string{domain},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(90 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &priv.PublicKey, priv)
	if err != nil {
		tb.Fatal(err)
	}
	kb, err := x509.MarshalECPrivateKey(priv)
	if err != nil {
		tb.Fatal(err)
	}
	data := pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb})
	data = append(data, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})...)
	if err := os.WriteFile(filepath.Join(dir, key), data, 0o600); err != nil {
		tb.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		tb.Fatal(err)
	}
	return cert
}
