package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"os"
	"reflect"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/herald-ws/herald/internal/apps"
	"github.com/herald-ws/herald/internal/apps/sqlstore"
	"github.com/herald-ws/herald/internal/config"
	"github.com/herald-ws/herald/internal/settings"
)

// Exit codes of `herald apps`, for scripts (docs/apps.md).
const (
	exitOK       = 0
	exitError    = 1 // the store failed (unreachable, a bad row, ...)
	exitUsage    = 2 // bad command line, value or configuration
	exitNotFound = 3 // no app with that id
	exitExists   = 4 // the id or key is taken
	exitReadOnly = 5 // the config store cannot be written
)

const appsUsage = `Usage: herald apps <command> [flags]

Manage the apps of the apps store named by apps_store (HERALD_APPS_STORE,
--apps-store, or the config file given with --config), the same settings
as 'herald serve'. Changes reach every node within apps_cache_ttl.

Commands:
  migrate                 create or upgrade the schema
  list [--json]           list the apps
  show ID [--json]        show one app
  create [--id ID] [--key KEY] [--secret SECRET] [--<setting> VALUE ...] [--json]
                          add an app; id, key and secret are generated when
                          not given; the secret is printed once
  update ID --<setting> VALUE ... [--json]
                          change settings of an app
  rotate-secret ID [--json]
                          give an app a new secret (printed once); the old
                          one is refused everywhere after apps_cache_ttl
  disable ID              refuse new connections (4003) and close open ones
  enable ID               accept connections again
  delete ID               remove an app; its connections close with 4001

Per-app settings (as in the YAML file, with dashes): run
'herald apps create --help'.

Exit codes: 0 ok, 1 error (store unreachable, bad row), 2 usage or invalid
value, 3 no such app, 4 id or key already taken, 5 the store is read-only
(apps_store is config).
`

func appsMain(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		fmt.Fprint(stdout, appsUsage)
		if len(args) == 0 {
			return exitUsage
		}
		return exitOK
	}
	cmd, args := args[0], args[1:]
	c := &appsCmd{name: cmd, stdout: stdout, stderr: stderr}
	switch cmd {
	case "migrate", "list", "show", "create", "update", "rotate-secret", "disable", "enable", "delete":
	default:
		fmt.Fprintf(stderr, "herald apps: unknown command %q\n\n%s", cmd, appsUsage)
		return exitUsage
	}
	return c.run(args)
}

type appsCmd struct {
	name           string
	stdout, stderr io.Writer
	asJSON         bool
	id, key, sec   string
	settings       []settingValue
}

type settingValue struct{ key, raw string }

// settingFlag is one --<setting> flag; booleans may be given bare.
type settingFlag struct {
	key    string
	isBool bool
	c      *appsCmd
}

func (f *settingFlag) String() string { return "" }
func (f *settingFlag) Set(v string) error {
	f.c.settings = append(f.c.settings, settingValue{f.key, v})
	return nil
}
func (f *settingFlag) IsBoolFlag() bool { return f.isBool }

func (c *appsCmd) fail(code int, format string, args ...any) int {
	fmt.Fprintf(c.stderr, "herald apps %s: %s\n", c.name, fmt.Sprintf(format, args...))
	return code
}

func (c *appsCmd) run(args []string) int {
	fs := flag.NewFlagSet("herald apps "+c.name, flag.ContinueOnError)
	fs.SetOutput(c.stderr)
	setFlags := config.RegisterFlags(fs)
	needsID := c.name != "migrate" && c.name != "list" && c.name != "create"
	if c.name != "migrate" && c.name != "disable" && c.name != "enable" && c.name != "delete" {
		fs.BoolVar(&c.asJSON, "json", false, "print the result as JSON")
	}
	if c.name == "create" {
		fs.StringVar(&c.id, "id", "", "the app `id` (default: a random number)")
		fs.StringVar(&c.key, "key", "", "the app `key` (default: random)")
		fs.StringVar(&c.sec, "secret", "", "the app `secret` (default: random; prefer the default, flags show in ps)")
	}
	if c.name == "create" || c.name == "update" {
		fs.BoolFunc("enabled", "accept connections (default true)", func(v string) error {
			c.settings = append(c.settings, settingValue{"enabled", v})
			return nil
		})
		for _, s := range apps.Settings() {
			fs.Var(&settingFlag{key: s.Key, isBool: s.Type.Kind() == reflect.Bool, c: c},
				settings.FlagName(s.Key), "per-app "+s.Key+": "+s.Expect)
		}
	}
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: herald apps %s", c.name)
		if needsID {
			fmt.Fprint(fs.Output(), " ID")
		}
		fmt.Fprint(fs.Output(), " [flags]\n\nFlags:\n")
		fs.PrintDefaults()
	}
	// The id may come before the flags (herald apps update ID --x 1).
	var id string
	if needsID && len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		id, args = args[0], args[1:]
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitUsage
	}
	rest := fs.Args()
	if needsID && id == "" && len(rest) > 0 {
		id, rest = rest[0], rest[1:]
	}
	if len(rest) > 0 {
		return c.fail(exitUsage, "unexpected argument %q", rest[0])
	}
	if needsID && id == "" {
		return c.fail(exitUsage, "an app ID is required (herald apps %s ID)", c.name)
	}
	if c.name == "update" && len(c.settings) == 0 {
		return c.fail(exitUsage, "nothing to change: give at least one --<setting> VALUE")
	}
	cfg, err := config.Load(config.NewSource(setFlags(), os.LookupEnv))
	if err != nil {
		fmt.Fprintf(c.stderr, "herald apps %s: invalid configuration:\n%s\n", c.name, indent(err.Error()))
		return exitUsage
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	var store apps.Store
	var writer apps.Writer
	if cfg.DatabaseApps() {
		u, err := apps.ParseStoreURL(cfg.AppsStore)
		if err != nil {
			return c.fail(exitUsage, "apps_store: %v", err)
		}
		// Rows the store refuses are named on stderr.
		db, err := sqlstore.Open(u, slog.New(slog.NewTextHandler(c.stderr, &slog.HandlerOptions{Level: slog.LevelWarn})))
		if err != nil {
			return c.fail(exitError, "%v", err)
		}
		defer db.Close()
		store, writer = db, db
		if c.name != "migrate" {
			if v, err := db.SchemaVersion(ctx); err != nil {
				return c.fail(exitError, "%v", err)
			} else if v == 0 {
				return c.fail(exitError, "the apps schema of %s does not exist yet: run 'herald apps migrate' (or start a node)", u.Redacted)
			}
		}
		if c.name == "migrate" {
			applied, err := db.Migrate(ctx)
			if err != nil {
				return c.fail(exitError, "%v", err)
			}
			if len(applied) == 0 {
				fmt.Fprintf(c.stdout, "schema of %s is up to date (version %d)\n", u.Redacted, sqlstore.LatestSchema(u.Dialect))
			} else {
				fmt.Fprintf(c.stdout, "schema of %s migrated to version %d\n", u.Redacted, applied[len(applied)-1])
			}
			return exitOK
		}
	} else {
		static, err := apps.NewStatic(cfg.Apps)
		if err != nil {
			return c.fail(exitUsage, "%v", err)
		}
		store = static
		switch c.name {
		case "list", "show":
		default:
			return c.fail(exitReadOnly, "%v", apps.ErrReadOnly)
		}
	}
	return c.exec(ctx, store, writer, id)
}

func (c *appsCmd) exec(ctx context.Context, store apps.Store, w apps.Writer, id string) int {
	switch c.name {
	case "list":
		all, err := store.All(ctx)
		if err != nil {
			return c.fail(exitError, "%v", err)
		}
		if c.asJSON {
			out := make([]map[string]any, 0, len(all))
			for _, a := range all {
				out = append(out, apps.View(a))
			}
			return c.printJSON(out)
		}
		tw := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tKEY\tENABLED")
		for _, a := range all {
			fmt.Fprintf(tw, "%s\t%s\t%t\n", a.ID, a.Key, a.Enabled)
		}
		_ = tw.Flush()
		return exitOK
	case "create":
		a := apps.Defaults()
		a.ID, a.Key, a.Secret = c.id, c.key, c.sec
		if a.ID == "" {
			a.ID = randomID()
		}
		if a.Key == "" {
			a.Key = randomHex(10)
		}
		if a.Secret == "" {
			a.Secret = randomHex(16)
		}
		if code := c.apply(&a); code != exitOK {
			return code
		}
		if err := w.Create(ctx, &a); err != nil {
			return c.storeErr(err, a.ID)
		}
		return c.printApp(&a, true, "created app %s")
	}
	a, err := store.ByID(ctx, id)
	if err != nil {
		return c.storeErr(err, id)
	}
	next := *a
	switch c.name {
	case "show":
		return c.printApp(a, false, "")
	case "update":
		if code := c.apply(&next); code != exitOK {
			return code
		}
	case "rotate-secret":
		next.Secret = randomHex(16)
	case "disable":
		next.Enabled = false
	case "enable":
		next.Enabled = true
	case "delete":
		if err := w.Delete(ctx, id); err != nil {
			return c.storeErr(err, id)
		}
		fmt.Fprintf(c.stdout, "deleted app %s\n", id)
		return exitOK
	}
	if err := w.Update(ctx, &next); err != nil {
		return c.storeErr(err, id)
	}
	switch c.name {
	case "rotate-secret":
		if c.asJSON {
			return c.printJSON(map[string]string{"id": next.ID, "secret": next.Secret})
		}
		fmt.Fprintf(c.stdout, "rotated the secret of app %s\nsecret: %s\n(shown once; the old secret is refused after apps_cache_ttl)\n", next.ID, next.Secret)
		return exitOK
	case "update":
		return c.printApp(&next, false, "updated app %s")
	}
	fmt.Fprintf(c.stdout, "%sd app %s\n", c.name, id) // disabled, enabled
	return exitOK
}

// apply sets the --<setting> flags on a, then checks the result.
func (c *appsCmd) apply(a *apps.App) int {
	for _, s := range c.settings {
		if s.key == "enabled" {
			b, err := parseBoolFlag(s.raw)
			if err != nil {
				return c.fail(exitUsage, "--enabled: must be true or false, got %q", s.raw)
			}
			a.Enabled = b
			continue
		}
		if err := apps.SetSetting(a, s.key, s.raw); err != nil {
			return c.fail(exitUsage, "--%s: %v", settings.FlagName(s.key), err)
		}
	}
	if errs := apps.Validate(a); len(errs) > 0 {
		msgs := make([]string, len(errs))
		for i, e := range errs {
			msgs[i] = e.Error()
		}
		return c.fail(exitUsage, "invalid app:\n  %s", strings.Join(msgs, "\n  "))
	}
	return exitOK
}

func parseBoolFlag(s string) (bool, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "true", "1", "yes", "on":
		return true, nil
	case "false", "0", "no", "off":
		return false, nil
	}
	return false, errors.New("not a boolean")
}

func (c *appsCmd) storeErr(err error, id string) int {
	var ie *apps.InvalidError
	switch {
	case errors.Is(err, apps.ErrNotFound):
		return c.fail(exitNotFound, "no app with id %q", id)
	case errors.Is(err, apps.ErrExists):
		return c.fail(exitExists, "%v", err)
	case errors.As(err, &ie):
		return c.fail(exitError, "the stored row is invalid (fix it with SQL or delete the app): %v", err)
	}
	return c.fail(exitError, "%v", err)
}

// printApp prints an app: as JSON (with the secret when it was just
// made), or a line and, for a new app, its credentials.
func (c *appsCmd) printApp(a *apps.App, withSecret bool, line string) int {
	if c.asJSON {
		v := apps.View(a)
		if withSecret {
			v["secret"] = a.Secret
		}
		return c.printJSON(v)
	}
	if line != "" {
		fmt.Fprintf(c.stdout, line+"\n", a.ID)
	}
	fmt.Fprintf(c.stdout, "id: %s\nkey: %s\n", a.ID, a.Key)
	if withSecret {
		fmt.Fprintf(c.stdout, "secret: %s\n(shown once: store it now)\n", a.Secret)
	}
	fmt.Fprintf(c.stdout, "enabled: %t\n", a.Enabled)
	if c.name == "show" {
		b, _ := json.MarshalIndent(apps.View(a), "", "  ")
		fmt.Fprintf(c.stdout, "settings: %s\n", b)
	}
	return exitOK
}

func (c *appsCmd) printJSON(v any) int {
	b, err := json.Marshal(v)
	if err != nil {
		return c.fail(exitError, "%v", err)
	}
	fmt.Fprintln(c.stdout, string(b))
	return exitOK
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// randomID is a numeric id like Pusher's (7 digits).
func randomID() string {
	n, _ := rand.Int(rand.Reader, big.NewInt(9_000_000))
	return fmt.Sprint(n.Int64() + 1_000_000)
}
