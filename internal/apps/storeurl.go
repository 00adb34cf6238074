package apps

import (
	"errors"
	"fmt"
	"net/url"
	"strings"

	"github.com/go-sql-driver/mysql"
)

// Dialect is the SQL database behind a store.
type Dialect string

// The stores the apps_store setting can name.
const (
	DialectConfig   Dialect = "config"
	DialectPostgres Dialect = "postgres"
	DialectMySQL    Dialect = "mysql"
	DialectSQLite   Dialect = "sqlite"
)

// StoreURL is a parsed apps_store setting.
type StoreURL struct {
	Dialect Dialect
	// DSN is what the driver opens: the postgres:// URL as given, a
	// go-sql-driver/mysql DSN, or the SQLite file path with its options.
	DSN string
	// Password is the password in the setting, to scrub it from driver
	// errors ("" when none).
	Password string
	// Redacted is the setting with the password replaced, for logs.
	Redacted string
}

// ParseStoreURL parses the apps_store setting: "config" (or ""),
// postgres://… (postgresql://), mysql://user:pass@tcp(host:port)/db or
// mysql://user:pass@host:port/db, sqlite:///path/file.db (sqlite:file.db
// for a relative path). Its errors never contain the password.
func ParseStoreURL(raw string) (StoreURL, error) {
	raw = strings.TrimSpace(raw)
	if raw == "" || raw == "config" {
		return StoreURL{Dialect: DialectConfig, Redacted: "config"}, nil
	}
	scheme, rest, ok := strings.Cut(raw, ":")
	if !ok {
		return StoreURL{}, errors.New(`must be "config" or a postgres://, mysql:// or sqlite:// URL`)
	}
	switch strings.ToLower(scheme) {
	case "postgres", "postgresql":
		u, err := url.Parse(raw)
		if err != nil {
			return StoreURL{}, errors.New("a postgres:// URL that does not parse (e.g. postgres://user:pass@host:5432/db)")
		}
		if u.Host == "" && u.Query().Get("host") == "" {
			return StoreURL{}, errors.New("a postgres:// URL needs a host (e.g. postgres://user:pass@host:5432/db)")
		}
		pw, _ := u.User.Password()
		return StoreURL{Dialect: DialectPostgres, DSN: raw, Password: pw, Redacted: u.Redacted()}, nil
	case "mysql":
		return parseMySQL(strings.TrimPrefix(rest, "//"))
	case "sqlite", "sqlite3":
		path, query, _ := strings.Cut(rest, "?")
		path = strings.TrimPrefix(path, "//")
		if path == "" {
			return StoreURL{}, errors.New("a sqlite:// URL needs a file (e.g. sqlite:///var/lib/herald/apps.db)")
		}
		if path == ":memory:" {
			return StoreURL{}, errors.New("an in-memory SQLite database cannot be shared by the server and the CLI; name a file")
		}
		dsn := "file:" + path
		// WAL lets the CLI write while nodes read; busy_timeout waits for
		// a writer rather than failing at once.
		opts := "_pragma=busy_timeout(5000)&_pragma=journal_mode(WAL)"
		if query != "" {
			opts += "&" + query
		}
		return StoreURL{Dialect: DialectSQLite, DSN: dsn + "?" + opts, Redacted: "sqlite://" + path}, nil
	}
	return StoreURL{}, fmt.Errorf(`must be "config" or a postgres://, mysql:// or sqlite:// URL, got scheme %q`, SafeKey(scheme))
}

// parseMySQL takes what follows "mysql://": a go-sql-driver DSN
// (user:pass@tcp(host:port)/db?params) or URL form (user:pass@host:port/db).
func parseMySQL(s string) (StoreURL, error) {
	const want = "a mysql:// URL like mysql://user:pass@tcp(host:3306)/db or mysql://user:pass@host:3306/db"
	var cfg *mysql.Config
	if at := strings.LastIndex(s, "@"); at >= 0 && (strings.Contains(s[at:], "tcp(") || strings.Contains(s[at:], "unix(")) {
		c, err := mysql.ParseDSN(s)
		if err != nil {
			return StoreURL{}, errors.New(want + "; it does not parse")
		}
		cfg = c
	} else {
		u, err := url.Parse("mysql://" + s)
		if err != nil || u.Host == "" {
			return StoreURL{}, errors.New(want + "; it does not parse")
		}
		cfg = mysql.NewConfig()
		cfg.User = u.User.Username()
		cfg.Passwd, _ = u.User.Password()
		cfg.Net, cfg.Addr = "tcp", u.Host
		if u.Port() == "" {
			cfg.Addr = u.Host + ":3306"
		}
		cfg.DBName = strings.TrimPrefix(u.Path, "/")
		for k, vs := range u.Query() {
			if len(vs) > 0 {
				if cfg.Params == nil {
					cfg.Params = map[string]string{}
				}
				cfg.Params[k] = vs[0]
			}
		}
	}
	if cfg.DBName == "" {
		return StoreURL{}, errors.New(want + "; it names no database")
	}
	cfg.ParseTime = true
	// Update reports a matched row as affected even when nothing changed.
	cfg.ClientFoundRows = true
	pw := cfg.Passwd
	red := *cfg
	if red.Passwd != "" {
		red.Passwd = "xxxxx"
	}
	return StoreURL{Dialect: DialectMySQL, DSN: cfg.FormatDSN(), Password: pw, Redacted: "mysql://" + red.FormatDSN()}, nil
}

// RedactStoreURL returns the apps_store setting fit for a log line or the
// dashboard: the password replaced, or a placeholder when it does not parse.
func RedactStoreURL(raw string) string {
	u, err := ParseStoreURL(raw)
	if err != nil {
		return "(unparsable apps_store)"
	}
	return u.Redacted
}

// Scrub replaces the password in an error's text, for drivers that echo
// their DSN.
func Scrub(err error, password string) error {
	if err == nil || password == "" || !strings.Contains(err.Error(), password) {
		return err
	}
	return &scrubbedError{msg: strings.ReplaceAll(err.Error(), password, "xxxxx"), err: err}
}

// scrubbedError keeps errors.Is working on a scrubbed error.
type scrubbedError struct {
	msg string
	err error
}

func (e *scrubbedError) Error() string { return e.msg }
func (e *scrubbedError) Unwrap() error { return e.err }
