package certs

import (
	"crypto/tls"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// Reloader serves a certificate and key from PEM files and loads them
// again when either file changes, without a restart: certbot, cert-manager
// or an ACME client renews the files and the next TLS handshake gets the
// new pair while live connections keep the one they negotiated.
//
// The files are checked on a handshake, at most once per interval (a stat
// of each), so an idle server does no work and needs no goroutine. A pair
// that does not load (a renewal half written, a key that does not match)
// is logged and the previous certificate stays in use; the check is tried
// again at the next interval.
type Reloader struct {
	certFile, keyFile string
	interval          time.Duration
	log               *slog.Logger
	now               func() time.Time

	cert      atomic.Pointer[tls.Certificate]
	nextCheck atomic.Int64 // unix nanos

	mu     sync.Mutex // one reload at a time
	stamps [2]fileStamp
}

// fileStamp is what tells a file changed: a renewal may keep the size or,
// on coarse file systems, the modification time, but rarely both.
type fileStamp struct {
	mod  time.Time
	size int64
}

// NewReloader loads the pair once and fails when it does not load.
// interval <= 0 means 5 seconds.
func NewReloader(certFile, keyFile string, interval time.Duration, log *slog.Logger) (*Reloader, error) {
	if interval <= 0 {
		interval = 5 * time.Second
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	r := &Reloader{certFile: certFile, keyFile: keyFile, interval: interval, log: log, now: time.Now}
	stamps, err := r.stat()
	if err != nil {
		return nil, err
	}
	if err := r.load(stamps); err != nil {
		return nil, err
	}
	r.nextCheck.Store(r.now().Add(interval).UnixNano())
	return r, nil
}

// TLSConfig returns a server config that serves the reloaded certificate:
// TLS 1.2 or later, no client certificate requested.
func (r *Reloader) TLSConfig() *tls.Config {
	return &tls.Config{
		MinVersion:     tls.VersionTLS12,
		ClientAuth:     tls.NoClientCert,
		GetCertificate: r.GetCertificate,
	}
}

// GetCertificate implements tls.Config.GetCertificate.
func (r *Reloader) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	now := r.now()
	if next := r.nextCheck.Load(); now.UnixNano() >= next && r.nextCheck.CompareAndSwap(next, now.Add(r.interval).UnixNano()) {
		r.check()
	}
	return r.cert.Load(), nil
}

// check reloads the pair when either file changed since the last load.
func (r *Reloader) check() {
	r.mu.Lock()
	defer r.mu.Unlock()
	stamps, err := r.stat()
	if err != nil {
		r.log.Error("cannot check the certificate files; keeping the current certificate", "err", err)
		return
	}
	if stamps == r.stamps {
		return
	}
	if err := r.load(stamps); err != nil {
		r.log.Error("new certificate files do not load; keeping the current certificate", "err", err)
		return
	}
	leaf := r.cert.Load().Leaf
	r.log.Info("certificate reloaded", "cert", r.certFile, "subject", leaf.Subject.String(), "not_after", leaf.NotAfter)
}

func (r *Reloader) stat() ([2]fileStamp, error) {
	var out [2]fileStamp
	for i, f := range []string{r.certFile, r.keyFile} {
		st, err := os.Stat(f)
		if err != nil {
			return out, fmt.Errorf("tls: stat %s: %w", f, err)
		}
		out[i] = fileStamp{mod: st.ModTime(), size: st.Size()}
	}
	return out, nil
}

// load reads the pair and records stamps as what it was read from. The
// stamps are taken before the read, so a write that lands during the read
// is seen as a change at the next check.
func (r *Reloader) load(stamps [2]fileStamp) error {
	cert, err := tls.LoadX509KeyPair(r.certFile, r.keyFile)
	if err != nil {
		// The error names the files and the problem, never key material.
		return fmt.Errorf("tls: load %s and %s: %w", r.certFile, r.keyFile, err)
	}
	r.cert.Store(&cert)
	r.stamps = stamps
	return nil
}
