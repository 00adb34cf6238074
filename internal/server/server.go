// Package server wires Herald's parts together from a Config, starts them
// in order (listeners last) and stops them in reverse (listeners first).
package server

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/herald-ws/herald/internal/apps"
	"github.com/herald-ws/herald/internal/config"
	"github.com/herald-ws/herald/internal/httpapi"
	"github.com/herald-ws/herald/internal/hub"
	"github.com/herald-ws/herald/internal/transport"
)

// Server is one Herald node.
type Server struct {
	cfg   *config.Config
	log   *slog.Logger
	apps  apps.Store
	hub   *hub.Hub
	ws    *transport.Server
	ready atomic.Bool
}

// New builds a node from cfg. Nothing listens until Run.
func New(cfg *config.Config, log *slog.Logger) (*Server, error) {
	store, err := apps.NewStatic(cfg.Apps)
	if err != nil {
		return nil, fmt.Errorf("apps: %w", err)
	}
	s := &Server{cfg: cfg, log: log, apps: store}
	s.hub = hub.New(hub.Options{
		Framer:                    transport.TextFrame,
		Logger:                    log.With("component", "hub"),
		CacheTTL:                  cfg.CacheTTL,
		SubscriptionCountInterval: cfg.SubscriptionCountInterval,
	})
	api := httpapi.New(httpapi.Options{
		Apps:            store,
		Hub:             s.hub,
		PathPrefix:      cfg.PathPrefix,
		MaxBodyBytes:    int64(cfg.MaxRequestBodyBytes()),
		TimestampWindow: cfg.APITimestampWindow,
		Ready:           s.readiness,
		Logger:          log.With("component", "httpapi"),
	})
	var tlsConf *tls.Config
	if cfg.TLSEnabled() {
		cert, err := tls.LoadX509KeyPair(cfg.TLSCert, cfg.TLSKey)
		if err != nil {
			return nil, fmt.Errorf("tls: load %s and %s: %w", cfg.TLSCert, cfg.TLSKey, err)
		}
		tlsConf = &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{cert}}
	}
	s.ws, err = transport.New(transport.Config{
		Addr:             cfg.Addr(),
		PathPrefix:       cfg.PathPrefix,
		MaxMessageSize:   cfg.MaxMessageSizeBytes(),
		WriteQueueBytes:  cfg.WriteQueueBytes(),
		TLSConfig:        tlsConf,
		Handler:          api,
		HandshakeTimeout: 10 * time.Second,
		Logger:           log.With("component", "transport"),
	}, store, sessions{s.hub})
	if err != nil {
		return nil, fmt.Errorf("transport: %w", err)
	}
	return s, nil
}

func (s *Server) readiness() error {
	if s.hub.Draining() {
		return errors.New("draining")
	}
	if !s.ready.Load() {
		return errors.New("starting")
	}
	return nil
}

// Addr is the address the node listens on (after Run has started it).
func (s *Server) Addr() net.Addr { return s.ws.Addr() }

// Run starts the node and serves until ctx is done, then drains: /ready
// turns false, new connections are refused, open ones are closed with 4200
// spread over the shutdown timeout, and the listeners stop. started, when
// not nil, is called once the node accepts traffic.
func (s *Server) Run(ctx context.Context, started func(addr net.Addr)) error {
	hubCtx, stopHub := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		_ = s.hub.Run(hubCtx)
	}()
	defer func() {
		stopHub()
		wg.Wait()
	}()

	if err := s.ws.Start(); err != nil {
		return fmt.Errorf("listen %s: %w", s.cfg.Addr(), err)
	}
	s.ready.Store(true)
	if started != nil {
		started(s.ws.Addr())
	}
	<-ctx.Done()

	s.log.Info("draining", "window", s.cfg.ShutdownTimeout)
	s.ready.Store(false)
	drainCtx, cancel := context.WithTimeout(context.Background(), s.cfg.ShutdownTimeout+5*time.Second)
	defer cancel()
	// Spread the closes over most of the window and keep the rest for the
	// close handshakes to finish.
	if err := s.hub.Drain(drainCtx, s.cfg.ShutdownTimeout*3/4); err != nil {
		s.log.Warn("drain cut short", "err", err)
	}
	if err := s.ws.Shutdown(drainCtx); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	s.log.Info("stopped")
	return nil
}

// sessions adapts the hub to the transport's Sessions interface.
type sessions struct{ h *hub.Hub }

func (a sessions) Open(app *apps.App, conn transport.Conn, _ transport.ConnInfo) (transport.Session, error) {
	c, err := a.h.Connect(app, conn)
	if err != nil {
		return nil, err
	}
	return session{c}, nil
}

type session struct{ *hub.Client }

func (s session) Closed() { s.Disconnected() }
