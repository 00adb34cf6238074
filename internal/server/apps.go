package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/herald-ws/herald/internal/apps"
	"github.com/herald-ws/herald/internal/apps/sqlstore"
	"github.com/herald-ws/herald/internal/dashboard"
	"github.com/herald-ws/herald/internal/protocol"
)

// appsState is the database apps store of a node (nil fields with the
// config store): the store, the cache in front of it, and the check that
// applies changes to open connections.
type appsState struct {
	sql   *sqlstore.SQLStore
	cache *apps.Cache
	// log is the apps component's logger, built once in buildApps.
	log *slog.Logger
	// seen is the version of each connected app last applied to its
	// connections (only the recheck goroutine touches it).
	seen map[string]*apps.App
}

// buildApps opens the apps store the config names: the config's own apps,
// or a database behind a cache.
func (s *Server) buildApps() (apps.Store, error) {
	if !s.cfg.DatabaseApps() {
		store, err := apps.NewStatic(s.cfg.Apps)
		if err != nil {
			return nil, fmt.Errorf("apps: %w", err)
		}
		return store, nil
	}
	u, err := apps.ParseStoreURL(s.cfg.AppsStore)
	if err != nil {
		return nil, fmt.Errorf("apps_store: %w", err)
	}
	log := s.log.With("component", "apps", "store", u.Redacted)
	db, err := sqlstore.Open(u, log)
	if err != nil {
		return nil, err
	}
	errs := prometheus.NewCounter(prometheus.CounterOpts{Namespace: "herald", Name: "apps_store_errors_total",
		Help: "Queries to the apps store that failed (the apps already known were served from the cache)."})
	var up sync.Mutex
	upVal := 1.0
	upGauge := prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: "herald", Name: "apps_store_up",
		Help: "1 while the last query to the apps store succeeded, else 0."}, func() float64 {
		up.Lock()
		defer up.Unlock()
		return upVal
	})
	s.metrics.Registry().MustRegister(errs, upGauge)
	s.appsDB.sql = db
	s.appsDB.log = log
	s.appsDB.seen = make(map[string]*apps.App)
	s.appsDB.cache = apps.NewCache(db, apps.CacheOptions{
		TTL:    s.cfg.AppsCacheTTL,
		Logger: log,
		OnResult: func(err error) {
			up.Lock()
			defer up.Unlock()
			if err != nil {
				errs.Inc()
				upVal = 0
				return
			}
			upVal = 1
		},
	})
	return s.appsDB.cache, nil
}

// migrateApps creates or upgrades the schema on start when it is behind.
// An unreachable database does not stop the node: lookups fail (and say
// so) until it is back, and `herald apps migrate` can be run then.
func (s *Server) migrateApps() {
	if s.appsDB.sql == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	applied, err := s.appsDB.sql.Migrate(ctx)
	switch {
	case err != nil:
		s.appsDB.log.Error("apps store: schema not checked; lookups will fail until the database answers", "err", err)
	case len(applied) > 0:
		s.appsDB.log.Info("apps store: schema created or upgraded", "versions", applied)
	}
}

// appsDegraded says why the apps store is failing ("" when it is fine),
// for /ready.
func (s *Server) appsDegraded() string {
	if s.appsDB.cache == nil {
		return ""
	}
	if err := s.appsDB.cache.Err(); err != nil {
		return "apps store unreachable, serving cached apps: " + err.Error()
	}
	return ""
}

// recheckApps runs until ctx is done: every TTL it asks the store for
// each app with connections on this node and applies what changed to the
// open connections: new settings (a rotated secret), or a close with 4003
// (disabled) or 4001 (deleted).
func (s *Server) recheckApps(ctx context.Context) {
	t := time.NewTicker(s.appsDB.cache.TTL())
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			s.recheckOnce(ctx)
		}
	}
}

func (s *Server) recheckOnce(ctx context.Context) {
	// A ping per period keeps /ready and herald_apps_store_up true to the
	// store even when every lookup is served from the cache.
	_ = s.appsDB.cache.Ping(ctx)
	ids := s.hub.ConnectedApps()
	live := make(map[string]bool, len(ids))
	for _, id := range ids {
		live[id] = true
		app, err := s.appsDB.cache.RefreshID(ctx, id)
		switch {
		case errors.Is(err, apps.ErrNotFound):
			if n := s.hub.CloseApp(id, protocol.CodeAppNotFound, "Application does not exist"); n > 0 {
				s.appsDB.log.Info("app deleted: connections closed", "app_id", id, "connections", n)
			}
			delete(s.appsDB.seen, id)
		case err != nil:
			// The store is down: the cache keeps serving what it knew.
		case !app.Enabled:
			if n := s.hub.CloseApp(id, protocol.CodeAppDisabled, "Application disabled"); n > 0 {
				s.appsDB.log.Info("app disabled: connections closed", "app_id", id, "connections", n)
			}
			delete(s.appsDB.seen, id)
		default:
			// Connections hold the version they were admitted with; a
			// first look or a change hands them this one.
			if old := s.appsDB.seen[id]; old == nil || !reflect.DeepEqual(old, app) {
				s.hub.UpdateApp(app)
				s.appsDB.seen[id] = app
			}
		}
	}
	for id := range s.appsDB.seen {
		if !live[id] {
			delete(s.appsDB.seen, id)
		}
	}
}

// appsAdmin is the dashboard's write access to the apps store: the
// database behind the cache, or none (the config store is read-only).
func (s *Server) appsAdmin() dashboard.AppsAdmin {
	if s.appsDB.sql == nil {
		return dashboard.AppsAdmin{Store: "config (the YAML file and HERALD_APP_* variables)"}
	}
	return dashboard.AppsAdmin{
		Writer:  s.appsDB.sql,
		Store:   apps.RedactStoreURL(s.cfg.AppsStore),
		Changed: s.appsDB.cache.Forget,
	}
}
