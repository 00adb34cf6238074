// Command herald is a self-hosted realtime server that speaks the Pusher
// Channels protocol: Laravel broadcasting, Laravel Echo, pusher-js and the
// Pusher server SDKs work against it unchanged.
//
// Usage:
//
//	herald [serve] [flags]   start a node (the default)
//	herald apps <command>    manage the apps of a database apps store
//	herald config check|import  validate a config, translate a soketi one
//	herald version           print the version
//	herald health [--url U]  check /up (a container HEALTHCHECK)
//	herald help [command]    explain a command
//
// Exit codes: 0 after a clean shutdown, 1 when the server fails while
// running, 2 for a usage or configuration error.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"

	"github.com/herald-ws/herald/internal/apps"
	"github.com/herald-ws/herald/internal/config"
	"github.com/herald-ws/herald/internal/server"
)

// version is set at build time with -ldflags "-X main.version=..."
// (make build and the Dockerfile do); versionString falls back to the VCS
// revision.
var version = "dev"

func main() {
	os.Exit(cli{restarts: true}.run(os.Args[1:], os.Stdout, os.Stderr))
}

// cli runs one command. restarts enables restarts in place (SIGHUP), which
// tableflip allows once per process: only the real process has them, not
// tests that run several commands in one process.
type cli struct{ restarts bool }

// run runs a command without restarts in place (tests).
func run(args []string, stdout, stderr io.Writer) int {
	return cli{}.run(args, stdout, stderr)
}

const usage = `Herald: a Pusher-protocol realtime server for Laravel, Echo and pusher-js.

Usage:
  herald [serve] [flags]   start a node (the default command)
  herald apps <command>    manage the apps of a database apps store (docs/apps.md)
  herald config check FILE           validate a config (every problem with its line and key)
  herald config import soketi FILE   translate a soketi JSON config to Herald YAML
  herald version           print the version
  herald health [--url U]  GET /up and exit 0 or 1 (a container HEALTHCHECK)
  herald help [command]    show help for a command

Run 'herald serve --help' for the flags. Every flag can also be set with a
HERALD_* environment variable or in the YAML file given with --config;
flags win over the environment, which wins over the file.
`

func (c cli) run(args []string, stdout, stderr io.Writer) int {
	cmd := "serve"
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		cmd, args = args[0], args[1:]
	}
	switch cmd {
	case "serve":
		return c.serve(args, stdout, stderr)
	case "bench":
		return benchMoved(stderr)
	case "apps":
		return appsMain(args, stdout, stderr)
	case "config":
		return configCmd(args, stdout, stderr)
	case "version":
		fmt.Fprintln(stdout, "herald", versionString())
		return 0
	case "health":
		return health(args, stdout, stderr, os.Getenv)
	case "help":
		if len(args) > 0 && args[0] == "serve" {
			return c.serve([]string{"--help"}, stdout, stderr)
		}
		if len(args) > 0 && args[0] == "config" {
			return configCmd([]string{"help"}, stdout, stderr)
		}
		if len(args) > 0 && args[0] == "health" {
			return health([]string{"--help"}, stdout, stderr, os.Getenv)
		}
		if len(args) > 0 && args[0] == "apps" {
			return appsMain([]string{"help"}, stdout, stderr)
		}
		if len(args) > 0 && args[0] == "bench" {
			return benchMoved(stderr)
		}
		fmt.Fprint(stdout, usage)
		return 0
	default:
		fmt.Fprintf(stderr, "herald: unknown command %q\n\n%s", cmd, usage)
		return 2
	}
}

// benchMoved answers the `herald bench` of earlier versions: the load tool
// is its own binary now, so that the server never links it.
func benchMoved(stderr io.Writer) int {
	fmt.Fprintln(stderr, "herald: the load tool is its own binary now: herald-bench idle|fanout|churn "+
		"(make build builds bin/herald-bench; go install github.com/herald-ws/herald/cmd/herald-bench@latest)")
	return 2
}

func (c cli) serve(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("herald serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	setFlags := config.RegisterFlags(fs)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), `Usage: herald serve [flags]

Starts a Herald node. With no configuration it serves one development app
(id app-id, key app-key, secret app-secret) on port %d from memory.

Flags (each also HERALD_<NAME> in the environment, or <name> in the YAML file):
`, config.Default().Port)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "herald serve: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	cfg, err := config.Load(config.NewSource(setFlags(), os.LookupEnv))
	if err != nil {
		fmt.Fprintf(stderr, "herald: invalid configuration:\n%s\n", indent(err.Error()))
		return 2
	}
	log := newLogger(cfg, stderr)
	server.SetGoMemLimit(cfg, os.LookupEnv, log)
	var rs restarts = newPIDFile(cfg, log)
	if c.restarts {
		r, err := newRestarter(cfg, log)
		if err != nil {
			fmt.Fprintf(stderr, "herald: %v\n", err)
			return 1
		}
		rs = r
	}
	defer rs.close()
	srv, err := server.New(cfg, log, rs.options()...)
	if err != nil {
		fmt.Fprintf(stderr, "herald: %v\n", err)
		return 2
	}
	ctx, stop := shutdownSignals(log, srv.Hurry)
	defer stop()
	err = srv.Run(ctx, func(addr net.Addr) {
		printBanner(stdout, cfg, addr)
		printDashboard(stdout, cfg, addr, srv)
		log.Info("listening", "addr", addr.String(), "tls", cfg.TLSEnabled(), "apps", len(cfg.Apps))
		if cfg.UsesDevApp() && !cfg.DevAppLoopbackOnly() {
			log.Warn("the development app, whose secret is public, is served beyond this machine", "addr", addr.String())
		}
		rs.ready()
	})
	if err != nil {
		log.Error("server failed", "err", err)
		return 1
	}
	return 0
}

func indent(s string) string {
	return "  " + strings.ReplaceAll(s, "\n", "\n  ")
}

func newLogger(cfg *config.Config, w io.Writer) *slog.Logger {
	var level slog.Level
	switch cfg.LogLevel {
	case "debug":
		level = slog.LevelDebug
	case "warn":
		level = slog.LevelWarn
	case "error":
		level = slog.LevelError
	default:
		level = slog.LevelInfo
	}
	opts := &slog.HandlerOptions{Level: level}
	format := cfg.LogFormat
	if format == "auto" || format == "" {
		format = "json"
		if f, ok := w.(*os.File); ok {
			if st, err := f.Stat(); err == nil && st.Mode()&os.ModeCharDevice != 0 {
				format = "text"
			}
		}
	}
	if format == "text" {
		return slog.New(slog.NewTextHandler(w, opts))
	}
	return slog.New(slog.NewJSONHandler(w, opts))
}

// printBanner tells a developer where Herald listens and what their Laravel
// .env needs. A configured secret is never printed; the development app's
// is public anyway.
func printBanner(w io.Writer, cfg *config.Config, addr net.Addr) {
	host, port := bannerHost(cfg, addr)
	scheme := "http"
	if cfg.TLSEnabled() {
		scheme = "https"
	}
	ws := "ws"
	if cfg.TLSEnabled() {
		ws = "wss"
	}
	if cfg.DatabaseApps() {
		fmt.Fprintf(w, "Herald %s listening on %s (WebSocket %s://%s:%s%s/app/{key}, HTTP API %s://%s:%s%s/apps/{id})\n",
			version, addr, ws, host, port, cfg.PathPrefix, scheme, host, port, cfg.PathPrefix)
		fmt.Fprintf(w, "Apps from %s (changes apply within %s); manage them with 'herald apps' (docs/apps.md).\n",
			apps.RedactStoreURL(cfg.AppsStore), cfg.AppsCacheTTL)
		return
	}
	a := cfg.Apps[0]
	secret := a.Secret
	if !cfg.UsesDevApp() {
		secret = "<the secret of app " + a.ID + " in your Herald config>"
	}
	fmt.Fprintf(w, "Herald %s listening on %s (WebSocket %s://%s:%s%s/app/{key}, HTTP API %s://%s:%s%s/apps/{id})\n",
		versionString(), addr, ws, host, port, cfg.PathPrefix, scheme, host, port, cfg.PathPrefix)
	switch {
	case cfg.DevAppLoopbackOnly():
		fmt.Fprintln(w, "Serving the development app (app-id / app-key / app-secret) on this machine only: its secret is public.\n"+
			"To reach it from other machines or containers, set host (--host 0.0.0.0) or dev_app_public: true (HERALD_DEV_APP_PUBLIC=true);\n"+
			"configure your own apps for production.")
	case cfg.UsesDevApp():
		fmt.Fprintf(w, "WARNING: serving the development app (app-id / app-key / app-secret) on %s: its secret is public, so anyone\n"+
			"who reaches this port can publish, authorize channels and read presence. Configure your own apps for production.\n", addr)
	}
	fmt.Fprintf(w, `
Laravel .env (BROADCAST_CONNECTION=reverb works the same with the REVERB_ names):
BROADCAST_CONNECTION=pusher
PUSHER_APP_ID=%s
PUSHER_APP_KEY=%s
PUSHER_APP_SECRET=%s
PUSHER_HOST=%s
PUSHER_PORT=%s
PUSHER_SCHEME=%s
PUSHER_APP_CLUSTER=mt1

VITE_PUSHER_APP_KEY="${PUSHER_APP_KEY}"
VITE_PUSHER_HOST="${PUSHER_HOST}"
VITE_PUSHER_PORT="${PUSHER_PORT}"
VITE_PUSHER_SCHEME="${PUSHER_SCHEME}"
VITE_PUSHER_APP_CLUSTER="${PUSHER_APP_CLUSTER}"

`, a.ID, a.Key, secret, host, port, scheme)
}

// bannerHost is the host and port clients should use: the first ACME
// domain (its certificate is only served for that name), else the listen
// address with 127.0.0.1 for an unspecified one.
func bannerHost(cfg *config.Config, addr net.Addr) (string, string) {
	host, port, _ := net.SplitHostPort(addr.String())
	if cfg.ACMEEnabled() {
		return strings.TrimSuffix(cfg.ACMEDomains[0], "."), port
	}
	if ip := net.ParseIP(host); ip == nil || ip.IsUnspecified() {
		host = "127.0.0.1"
	}
	return host, port
}

// printDashboard tells where the dashboard and /metrics are. A token made
// for this run (development app, no admin_token) is printed; a configured
// one never is.
func printDashboard(w io.Writer, cfg *config.Config, addr net.Addr, srv *server.Server) {
	host, port := bannerHost(cfg, addr)
	scheme := "http"
	if cfg.TLSEnabled() {
		scheme = "https"
	}
	base := scheme + "://" + net.JoinHostPort(host, port) + cfg.PathPrefix
	switch {
	case !srv.DashboardEnabled():
		fmt.Fprintln(w, "Dashboard: off (set admin_token or HERALD_ADMIN_TOKEN to turn it on)")
	case srv.GeneratedAdminToken() != "":
		fmt.Fprintf(w, "Dashboard: %s/dashboard (admin token for this run: %s)\n", base, srv.GeneratedAdminToken())
	default:
		fmt.Fprintf(w, "Dashboard: %s/dashboard (log in with your admin_token)\n", base)
	}
	if a := srv.MetricsAddr(); a != nil {
		fmt.Fprintf(w, "Metrics: http://%s/metrics\n", a)
	} else {
		fmt.Fprintf(w, "Metrics: %s/metrics\n", base)
	}
}
