package server

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/herald-ws/herald/internal/certs"
)

// acmeState is the ACME side of a node: the certificate manager and the
// optional plain-HTTP listener for HTTP-01 challenges.
type acmeState struct {
	mgr  *certs.ACME
	srv  *http.Server
	ln   net.Listener
	done chan struct{}
}

// buildTLS returns the main listener's TLS config: from ACME when
// acme_domains is set, else from tls_cert/tls_key (reloaded when the files
// change), else nil.
func (s *Server) buildTLS(log *slog.Logger) (*tls.Config, error) {
	if s.cfg.ACMEEnabled() {
		m, err := certs.NewACME(certs.ACMEConfig{
			Domains:      s.cfg.ACMEDomains,
			Email:        s.cfg.ACMEEmail,
			CacheDir:     s.cfg.ACMECacheDir,
			DirectoryURL: s.cfg.ACMEDirectoryURL,
			Logger:       log.With("acme", true),
		})
		if err != nil {
			return nil, err
		}
		s.acme.mgr = m
		return m.TLSConfig(), nil
	}
	if !s.cfg.TLSEnabled() {
		return nil, nil
	}
	r, err := certs.NewReloader(s.cfg.TLSCert, s.cfg.TLSKey, s.cfg.TLSReloadInterval, log)
	if err != nil {
		return nil, err
	}
	return r.TLSConfig(), nil
}

// startACME starts loading or obtaining the certificates and, with
// acme_http_addr, the HTTP-01 listener.
func (s *Server) startACME() error {
	if s.acme.mgr == nil {
		return nil
	}
	if addr := s.cfg.ACMEHTTPAddr; addr != "" {
		ln, err := s.listen(addr)
		if err != nil {
			return fmt.Errorf("acme_http_addr %s: %w", addr, err)
		}
		s.acme.ln = ln
		s.acme.srv = &http.Server{
			Handler:           s.acme.mgr.HTTPHandler(http.HandlerFunc(s.redirectToHTTPS)),
			ReadHeaderTimeout: 10 * time.Second,
			IdleTimeout:       time.Minute,
			ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
		}
		s.acme.done = make(chan struct{})
		go func() {
			defer close(s.acme.done)
			if err := s.acme.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				s.log.Error("acme http listener failed", "addr", addr, "err", err)
			}
		}()
	}
	s.acme.mgr.Start()
	return nil
}

// stopACME closes the HTTP-01 listener, aborts requests to the CA and
// waits for both.
func (s *Server) stopACME(ctx context.Context) {
	if s.acme.mgr == nil {
		return
	}
	if s.acme.srv != nil {
		if err := s.acme.srv.Shutdown(ctx); err != nil {
			_ = s.acme.srv.Close()
		}
		<-s.acme.done
		s.acme.srv = nil
	}
	s.acme.mgr.Close()
}

// ACMEHTTPAddr is the address of the HTTP-01 listener (nil without one).
func (s *Server) ACMEHTTPAddr() net.Addr {
	if s.acme.ln == nil {
		return nil
	}
	return s.acme.ln.Addr()
}

// redirectToHTTPS sends plain-HTTP GET and HEAD requests to the same URL
// on the TLS port; anything else gets a JSON error (a body cannot follow a
// redirect safely).
func (s *Server) redirectToHTTPS(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		writeJSONError(w, http.StatusBadRequest, "Use https")
		return
	}
	host := r.Host
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	if host == "" || !validRedirectHost(host) {
		writeJSONError(w, http.StatusBadRequest, "Use https")
		return
	}
	port := s.cfg.Port
	if port == 0 && s.ws != nil && s.ws.Addr() != nil {
		if _, p, err := net.SplitHostPort(s.ws.Addr().String()); err == nil {
			port, _ = strconv.Atoi(p)
		}
	}
	target := "https://" + host
	if port != 443 {
		target = "https://" + net.JoinHostPort(host, strconv.Itoa(port))
	}
	http.Redirect(w, r, target+r.URL.RequestURI(), http.StatusMovedPermanently)
}

// validRedirectHost keeps a hostile Host header from turning the redirect
// into something else (a path, credentials, another scheme).
func validRedirectHost(h string) bool {
	for i := 0; i < len(h); i++ {
		c := h[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '.' || c == ':' || c == '[' || c == ']') {
			return false
		}
	}
	return true
}
