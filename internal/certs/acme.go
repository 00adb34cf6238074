package certs

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/acme"
	"golang.org/x/crypto/acme/autocert"

	"github.com/herald-ws/herald/internal/protocol"
)

// acmeALPN is the ALPN protocol of ACME's TLS-ALPN-01 challenge (RFC
// 8737): offering it lets the CA validate a domain on the TLS port.
const acmeALPN = acme.ALPNProto

// ACMEConfig configures automatic certificates.
type ACMEConfig struct {
	// Domains are the host names certificates are obtained for; a
	// handshake for any other name is refused without asking the CA.
	Domains []string
	// Email is the ACME account's contact (optional).
	Email string
	// CacheDir keeps the account key and certificates (autocert.DirCache).
	CacheDir string
	// DirectoryURL is the CA's ACME directory.
	DirectoryURL string
	// HandshakeWait bounds how long after an attempt to have a
	// certificate in memory started (a load from the cache, or the CA)
	// handshakes wait for it; later ones are refused at once until it is
	// there. 0 means 500 ms. Handshakes run on the event loop, which must
	// never wait for a CA.
	HandshakeWait time.Duration
	// RetryAfter is how long after a failed attempt to obtain a
	// certificate the next handshake may start another (CAs rate-limit
	// failures); 0 means 1 minute.
	RetryAfter time.Duration
	// Logger gets a line per certificate obtained or failed (nil: none).
	Logger *slog.Logger
}

// ACME serves certificates obtained and renewed through ACME
// (golang.org/x/crypto/acme/autocert), answering the TLS-ALPN-01 challenge
// on the TLS listener and, through HTTPHandler, the HTTP-01 challenge.
//
// autocert's GetCertificate blocks while it talks to the CA. Here a
// certificate not yet in memory is fetched by a goroutine of ACME's own
// (one per name and key type at a time) and the handshake waits for it at
// most HandshakeWait, so the event loop never stalls on the network; a
// client refused meanwhile reconnects once the certificate is there. Every
// request to the CA is bound to ACME's lifetime: Close aborts them and
// waits for the fetches.
type ACME struct {
	m       *autocert.Manager
	allowed map[string]bool
	domains []string
	wait    time.Duration
	retry   time.Duration
	log     *slog.Logger
	tr      *http.Transport

	ctx    context.Context
	cancel context.CancelFunc

	mu      sync.Mutex
	closed  bool
	fetches map[acmeKey]*acmeFetch
	wg      sync.WaitGroup
}

type acmeKey struct {
	name string
	rsa  bool
}

// acmeFetch is one attempt to have a certificate in the manager's memory.
type acmeFetch struct {
	started  time.Time
	done     chan struct{}
	err      error     // set before done is closed
	finished time.Time // set before done is closed
}

// NewACME builds the manager. Nothing reaches the network until a
// handshake or Start asks for a certificate.
func NewACME(cfg ACMEConfig) (*ACME, error) {
	if len(cfg.Domains) == 0 {
		return nil, errors.New("acme: no domains")
	}
	if cfg.CacheDir == "" {
		return nil, errors.New("acme: no cache directory")
	}
	if cfg.HandshakeWait <= 0 {
		cfg.HandshakeWait = 500 * time.Millisecond
	}
	if cfg.RetryAfter <= 0 {
		cfg.RetryAfter = time.Minute
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithCancel(context.Background())
	a := &ACME{
		allowed: make(map[string]bool, len(cfg.Domains)),
		wait:    cfg.HandshakeWait,
		retry:   cfg.RetryAfter,
		log:     cfg.Logger,
		tr:      http.DefaultTransport.(*http.Transport).Clone(),
		ctx:     ctx,
		cancel:  cancel,
		fetches: make(map[acmeKey]*acmeFetch),
	}
	for _, d := range cfg.Domains {
		n := normalizeHost(d)
		if !a.allowed[n] {
			a.allowed[n] = true
			a.domains = append(a.domains, n)
		}
	}
	a.m = &autocert.Manager{
		Prompt:     autocert.AcceptTOS,
		Cache:      autocert.DirCache(cfg.CacheDir),
		HostPolicy: autocert.HostWhitelist(a.domains...),
		Email:      cfg.Email,
		Client: &acme.Client{
			DirectoryURL: cfg.DirectoryURL,
			UserAgent:    "herald",
			HTTPClient:   &http.Client{Transport: boundTransport{ctx: ctx, rt: a.tr}},
		},
	}
	return a, nil
}

// TLSConfig returns a server config that serves the ACME certificates and
// answers TLS-ALPN-01: TLS 1.2 or later, no client certificate requested.
func (a *ACME) TLSConfig() *tls.Config {
	return &tls.Config{
		MinVersion:     tls.VersionTLS12,
		ClientAuth:     tls.NoClientCert,
		GetCertificate: a.GetCertificate,
		NextProtos:     []string{"http/1.1", acmeALPN},
	}
}

// HTTPHandler answers HTTP-01 challenges under /.well-known/acme-challenge/
// and passes every other request to fallback.
func (a *ACME) HTTPHandler(fallback http.Handler) http.Handler { return a.m.HTTPHandler(fallback) }

// Start loads or obtains the certificate of every domain in the
// background, so that the first clients do not wait for it.
func (a *ACME) Start() {
	for _, d := range a.domains {
		a.fetch(acmeKey{name: d}, &tls.ClientHelloInfo{
			ServerName:       d,
			SignatureSchemes: []tls.SignatureScheme{tls.ECDSAWithP256AndSHA256},
			SupportedCurves:  []tls.CurveID{tls.CurveP256},
			CipherSuites:     []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256},
		})
	}
}

// Close aborts the requests to the CA, waits for the fetches and closes
// idle connections. Handshakes after Close get no new certificate.
func (a *ACME) Close() {
	a.mu.Lock()
	a.closed = true
	a.mu.Unlock()
	a.cancel()
	a.wg.Wait()
	a.tr.CloseIdleConnections()
}

// GetCertificate implements tls.Config.GetCertificate.
func (a *ACME) GetCertificate(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	name := normalizeHost(hello.ServerName)
	if name == "" {
		return nil, errors.New("acme: the client sent no server name (SNI); connect by host name")
	}
	if !a.allowed[name] {
		return nil, fmt.Errorf("acme: no certificate for %q: not in acme_domains", safeHost(name))
	}
	if len(hello.SupportedProtos) == 1 && hello.SupportedProtos[0] == acmeALPN {
		// A CA validating TLS-ALPN-01: the token certificate is in memory
		// (or the cache) while an order is pending; never the network.
		return a.m.GetCertificate(hello)
	}
	f := a.fetch(acmeKey{name: name, rsa: !ecdsaCapable(hello)}, hello)
	if f == nil {
		return nil, errors.New("acme: shutting down")
	}
	// Wait only within HandshakeWait of the fetch's start: enough for a
	// load from the cache, while during a long issuance every later
	// handshake is refused at once instead of stalling the event loop.
	select {
	case <-f.done:
	default:
		left := a.wait - time.Since(f.started)
		if left <= 0 {
			return nil, fmt.Errorf("acme: the certificate for %q is still being obtained", name)
		}
		t := time.NewTimer(left)
		defer t.Stop()
		select {
		case <-f.done:
		case <-t.C:
			return nil, fmt.Errorf("acme: the certificate for %q is still being obtained", name)
		}
	}
	if f.err != nil {
		return nil, f.err
	}
	// In the manager's memory now (autocert renews it in the background).
	h := *hello
	h.ServerName = name
	return a.m.GetCertificate(&h)
}

// fetch returns the attempt for k, starting one when there is none or the
// last one failed more than RetryAfter ago; nil after Close.
func (a *ACME) fetch(k acmeKey, hello *tls.ClientHelloInfo) *acmeFetch {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed {
		return nil
	}
	if f := a.fetches[k]; f != nil {
		select {
		case <-f.done:
			if f.err == nil || time.Since(f.finished) < a.retry {
				return f
			}
		default:
			return f
		}
	}
	f := &acmeFetch{started: time.Now(), done: make(chan struct{})}
	a.fetches[k] = f
	h := &tls.ClientHelloInfo{
		ServerName:        k.name,
		CipherSuites:      hello.CipherSuites,
		SupportedCurves:   hello.SupportedCurves,
		SupportedPoints:   hello.SupportedPoints,
		SignatureSchemes:  hello.SignatureSchemes,
		SupportedProtos:   hello.SupportedProtos,
		SupportedVersions: hello.SupportedVersions,
	}
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		start := time.Now()
		c, err := a.m.GetCertificate(h)
		if err != nil {
			if a.ctx.Err() != nil {
				err = errors.New("acme: shutting down")
			} else {
				a.log.Error("acme: cannot obtain a certificate; handshakes for this name are refused until the next attempt",
					"domain", k.name, "rsa", k.rsa, "retry_after", a.retry, "err", err)
				err = fmt.Errorf("acme: no certificate for %q yet: %w", k.name, err)
			}
		} else if c.Leaf != nil {
			a.log.Info("acme: certificate ready", "domain", k.name, "rsa", k.rsa, "not_after", c.Leaf.NotAfter, "took", time.Since(start).Round(time.Millisecond))
		}
		f.err = err
		f.finished = time.Now()
		close(f.done)
	}()
	return f
}

// ecdsaCapable reports whether the client accepts an ECDSA P-256
// certificate (every current client does; the RSA one is for the rest).
// It mirrors what autocert decides from the same hello.
func ecdsaCapable(hello *tls.ClientHelloInfo) bool {
	if hello.SignatureSchemes != nil {
		ok := false
		for _, s := range hello.SignatureSchemes {
			if s == tls.ECDSAWithP256AndSHA256 || s == tls.ECDSAWithP384AndSHA384 || s == tls.ECDSAWithP521AndSHA512 || s == tls.ECDSAWithSHA1 {
				ok = true
				break
			}
		}
		if !ok {
			return false
		}
	}
	if hello.SupportedCurves != nil {
		ok := false
		for _, c := range hello.SupportedCurves {
			if c == tls.CurveP256 {
				ok = true
				break
			}
		}
		if !ok {
			return false
		}
	}
	for _, s := range hello.CipherSuites {
		if strings.Contains(tls.CipherSuiteName(s), "ECDSA") {
			return true
		}
	}
	return false
}

func normalizeHost(h string) string { return strings.ToLower(strings.TrimSuffix(h, ".")) }

// safeHost shortens a client-sent name for an error message.
func safeHost(h string) string {
	return protocol.Clip(h, 64)
}

// boundTransport ties every request to ctx, so that closing the ACME
// manager aborts what autocert started with a context of its own.
type boundTransport struct {
	ctx context.Context
	rt  http.RoundTripper
}

func (b boundTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if err := b.ctx.Err(); err != nil {
		return nil, fmt.Errorf("acme: %w", err)
	}
	ctx, cancel := context.WithCancel(r.Context())
	stop := context.AfterFunc(b.ctx, cancel)
	resp, err := b.rt.RoundTrip(r.WithContext(ctx))
	if err != nil {
		stop()
		cancel()
		return nil, err
	}
	resp.Body = &releaseBody{ReadCloser: resp.Body, release: func() { stop(); cancel() }}
	return resp, nil
}

// releaseBody releases the request's context when the body is closed.
type releaseBody struct {
	io.ReadCloser
	once    sync.Once
	release func()
}

func (b *releaseBody) Close() error {
	err := b.ReadCloser.Close()
	b.once.Do(b.release)
	return err
}
