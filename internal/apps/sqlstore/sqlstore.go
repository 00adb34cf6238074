// Package sqlstore keeps Herald's apps in PostgreSQL (pgx), MySQL/MariaDB
// (go-sql-driver/mysql) or SQLite (modernc.org/sqlite, no cgo): one table,
// a versioned schema from embedded migrations, every row decoded and
// validated by package apps like the YAML file. It is its own package so
// that the drivers are linked only where a database store is opened.
package sqlstore

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/herald-ws/herald/internal/apps"
	"github.com/jackc/pgx/v5/pgconn"
	_ "github.com/jackc/pgx/v5/stdlib" // database/sql driver "pgx"
	_ "modernc.org/sqlite"             // database/sql driver "sqlite", no cgo
)

//go:embed migrations
var migrations embed.FS

// SQLStore keeps apps in one table of PostgreSQL, MySQL/MariaDB or SQLite
// (docs/apps.md has the layout). Every row is decoded and validated by
// the same code as the YAML file; a bad row is refused with an
// *apps.InvalidError naming the app and the field. Safe for concurrent use.
type SQLStore struct {
	db       *sql.DB
	dialect  apps.Dialect
	password string
	log      *slog.Logger
}

// Open opens the store u names (not config). It does not connect:
// the first query, or Migrate, does.
func Open(u apps.StoreURL, log *slog.Logger) (*SQLStore, error) {
	driver := map[apps.Dialect]string{apps.DialectPostgres: "pgx", apps.DialectMySQL: "mysql", apps.DialectSQLite: "sqlite"}[u.Dialect]
	if driver == "" {
		return nil, fmt.Errorf("apps store %s is not a database", u.Redacted)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	db, err := sql.Open(driver, u.DSN)
	if err != nil {
		return nil, fmt.Errorf("apps store %s: %w", u.Redacted, apps.Scrub(err, u.Password))
	}
	db.SetMaxOpenConns(8)
	db.SetMaxIdleConns(4)
	db.SetConnMaxIdleTime(time.Minute)
	db.SetConnMaxLifetime(30 * time.Minute)
	return &SQLStore{db: db, dialect: u.Dialect, password: u.Password, log: log}, nil
}

// Ping checks that the database answers.
func (s *SQLStore) Ping(ctx context.Context) error {
	if err := s.db.PingContext(ctx); err != nil {
		return s.wrap("ping", err)
	}
	return nil
}

// Close closes the database handle.
func (s *SQLStore) Close() error { return s.db.Close() }

// DB is the database handle (tests insert raw rows through it).
func (s *SQLStore) DB() *sql.DB { return s.db }

// Dialect is the store's database.
func (s *SQLStore) Dialect() apps.Dialect { return s.dialect }

// q rewrites "?" placeholders for PostgreSQL.
func (s *SQLStore) q(query string) string {
	if s.dialect != apps.DialectPostgres {
		return query
	}
	var b strings.Builder
	n := 0
	for _, r := range query {
		if r == '?' {
			n++
			b.WriteString("$" + strconv.Itoa(n))
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

// wrap adds context to a driver error and scrubs the password from it.
func (s *SQLStore) wrap(op string, err error) error {
	return fmt.Errorf("apps store (%s): %s: %w", s.dialect, op, apps.Scrub(err, s.password))
}

// Migration is one step of the schema.
type Migration struct {
	Version int
	Name    string
	SQL     string
}

// Migrations lists the dialect's schema steps, in order.
func Migrations(d apps.Dialect) ([]Migration, error) {
	dir := "migrations/" + string(d)
	entries, err := fs.ReadDir(migrations, dir)
	if err != nil {
		return nil, fmt.Errorf("no migrations for %s: %w", d, err)
	}
	var out []Migration
	for _, e := range entries {
		num, _, ok := strings.Cut(e.Name(), "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil {
			return nil, fmt.Errorf("migration %s: name must start with its version", e.Name())
		}
		b, err := migrations.ReadFile(dir + "/" + e.Name())
		if err != nil {
			return nil, err
		}
		out = append(out, Migration{Version: v, Name: e.Name(), SQL: string(b)})
	}
	slices.SortFunc(out, func(a, b Migration) int { return a.Version - b.Version })
	return out, nil
}

// LatestSchema is the schema version this build writes and reads.
func LatestSchema(d apps.Dialect) int {
	m, err := Migrations(d)
	if err != nil || len(m) == 0 {
		return 0
	}
	return m[len(m)-1].Version
}

// SchemaVersion returns the version recorded in herald_schema_version,
// 0 when the schema has not been created.
func (s *SQLStore) SchemaVersion(ctx context.Context) (int, error) {
	if _, err := s.db.ExecContext(ctx, "CREATE TABLE IF NOT EXISTS herald_schema_version (version INTEGER NOT NULL PRIMARY KEY)"); err != nil {
		return 0, s.wrap("schema version", err)
	}
	var v sql.NullInt64
	if err := s.db.QueryRowContext(ctx, "SELECT MAX(version) FROM herald_schema_version").Scan(&v); err != nil {
		return 0, s.wrap("schema version", err)
	}
	return int(v.Int64), nil
}

// Migrate brings the schema to LatestSchema and returns the versions it
// applied. It is safe to run from several nodes at once: every step is
// idempotent and records its version once. A schema newer than this build
// is an error (a downgrade would misread the rows).
func (s *SQLStore) Migrate(ctx context.Context) ([]int, error) {
	steps, err := Migrations(s.dialect)
	if err != nil {
		return nil, err
	}
	cur, err := s.SchemaVersion(ctx)
	if err != nil {
		return nil, err
	}
	if latest := LatestSchema(s.dialect); cur > latest {
		return nil, fmt.Errorf("apps store schema is version %d, newer than this Herald's %d: upgrade Herald", cur, latest)
	}
	var applied []int
	for _, m := range steps {
		if m.Version <= cur {
			continue
		}
		for _, stmt := range statements(m.SQL) {
			if _, err := s.db.ExecContext(ctx, stmt); err != nil {
				return applied, s.wrap("migration "+m.Name, err)
			}
		}
		if _, err := s.db.ExecContext(ctx, s.q("INSERT INTO herald_schema_version (version) VALUES (?)"), m.Version); err != nil {
			// Another node recorded it first: the steps are idempotent.
			if !isDuplicate(err) {
				return applied, s.wrap("migration "+m.Name, err)
			}
		}
		applied = append(applied, m.Version)
	}
	return applied, nil
}

// statements splits a migration file into statements, without comments.
func statements(sqlText string) []string {
	var lines []string
	for l := range strings.SplitSeq(sqlText, "\n") {
		if t := strings.TrimSpace(l); t != "" && !strings.HasPrefix(t, "--") {
			lines = append(lines, l)
		}
	}
	var out []string
	for st := range strings.SplitSeq(strings.Join(lines, "\n"), ";") {
		if st = strings.TrimSpace(st); st != "" {
			out = append(out, st)
		}
	}
	return out
}

const selectApps = "SELECT id, app_key, secret, enabled, settings FROM herald_apps"

// ByID implements Store.
func (s *SQLStore) ByID(ctx context.Context, id string) (*apps.App, error) {
	return s.one(ctx, selectApps+" WHERE id = ?", id, true)
}

// ByKey implements Store.
func (s *SQLStore) ByKey(ctx context.Context, key string) (*apps.App, error) {
	return s.one(ctx, selectApps+" WHERE app_key = ?", key, false)
}

func (s *SQLStore) one(ctx context.Context, query, arg string, byID bool) (*apps.App, error) {
	if len(arg) > apps.MaxIDLength {
		return nil, apps.ErrNotFound // longer than any column value
	}
	rows, err := s.db.QueryContext(ctx, s.q(query), arg)
	if err != nil {
		return nil, s.wrap("lookup", err)
	}
	defer rows.Close()
	if !rows.Next() {
		if err := rows.Err(); err != nil {
			return nil, s.wrap("lookup", err)
		}
		return nil, apps.ErrNotFound
	}
	r, err := scanRow(rows)
	if err != nil {
		return nil, err
	}
	// MySQL's collations ignore trailing spaces ("key " = "key"): only
	// the exact id or key is a match.
	if byID && r.id != arg || !byID && r.key != arg {
		return nil, apps.ErrNotFound
	}
	return r.decode()
}

// All implements Store: every valid app. Bad rows are logged (naming the
// app and the field) and left out; they never hide the others.
func (s *SQLStore) All(ctx context.Context) ([]*apps.App, error) {
	rows, err := s.db.QueryContext(ctx, selectApps+" ORDER BY id")
	if err != nil {
		return nil, s.wrap("list", err)
	}
	defer rows.Close()
	var out []*apps.App
	for rows.Next() {
		a, err := scanApp(rows)
		if err != nil {
			if ie, ok := errors.AsType[*apps.InvalidError](err); ok {
				s.log.Warn("apps store: row refused", "app_id", ie.App, "problems", ie.Error())
				continue
			}
			return nil, s.wrap("list", err)
		}
		out = append(out, a)
	}
	if err := rows.Err(); err != nil {
		return nil, s.wrap("list", err)
	}
	return out, nil
}

// row is one row of herald_apps as stored.
type row struct {
	id, key, secret string
	enabled         bool
	settings        sql.NullString
}

func scanRow(rows *sql.Rows) (row, error) {
	var r row
	if err := rows.Scan(&r.id, &r.key, &r.secret, &r.enabled, &r.settings); err != nil {
		return r, fmt.Errorf("apps store: read row: %w", err)
	}
	return r, nil
}

func (r row) decode() (*apps.App, error) {
	return apps.DecodeRow(r.id, r.key, r.secret, r.enabled, []byte(r.settings.String))
}

// scanApp decodes one row into a validated apps.App.
func scanApp(rows *sql.Rows) (*apps.App, error) {
	r, err := scanRow(rows)
	if err != nil {
		return nil, err
	}
	return r.decode()
}

// Create implements apps.Writer.
func (s *SQLStore) Create(ctx context.Context, a *apps.App) error {
	if err := apps.Check(a); err != nil {
		return err
	}
	settings, err := apps.EncodeSettings(a)
	if err != nil {
		return fmt.Errorf("apps store: encode settings: %w", err)
	}
	_, err = s.db.ExecContext(ctx, s.q("INSERT INTO herald_apps (id, app_key, secret, enabled, settings) VALUES (?, ?, ?, ?, ?)"),
		a.ID, a.Key, a.Secret, a.Enabled, string(settings))
	if err != nil {
		if isDuplicate(err) {
			return apps.ErrExists
		}
		return s.wrap("create", err)
	}
	return nil
}

// Update implements apps.Writer.
func (s *SQLStore) Update(ctx context.Context, a *apps.App) error {
	if err := apps.Check(a); err != nil {
		return err
	}
	settings, err := apps.EncodeSettings(a)
	if err != nil {
		return fmt.Errorf("apps store: encode settings: %w", err)
	}
	res, err := s.db.ExecContext(ctx, s.q("UPDATE herald_apps SET app_key = ?, secret = ?, enabled = ?, settings = ?, updated_at = CURRENT_TIMESTAMP WHERE id = ?"),
		a.Key, a.Secret, a.Enabled, string(settings), a.ID)
	if err != nil {
		if isDuplicate(err) {
			return apps.ErrExists
		}
		return s.wrap("update", err)
	}
	if n, err := res.RowsAffected(); err == nil && n == 0 {
		return apps.ErrNotFound
	}
	return nil
}

// Delete implements apps.Writer.
func (s *SQLStore) Delete(ctx context.Context, id string) error {
	res, err := s.db.ExecContext(ctx, s.q("DELETE FROM herald_apps WHERE id = ?"), id)
	if err != nil {
		return s.wrap("delete", err)
	}
	if n, err := res.RowsAffected(); err == nil && n == 0 {
		return apps.ErrNotFound
	}
	return nil
}

// isDuplicate reports a unique-constraint violation in any dialect.
func isDuplicate(err error) bool {
	if pe, ok := errors.AsType[*pgconn.PgError](err); ok {
		return pe.Code == "23505"
	}
	if me, ok := errors.AsType[*mysql.MySQLError](err); ok {
		return me.Number == 1062
	}
	// modernc.org/sqlite: SQLITE_CONSTRAINT_UNIQUE / _PRIMARYKEY.
	msg := err.Error()
	return strings.Contains(msg, "UNIQUE constraint failed") || strings.Contains(msg, "PRIMARY KEY constraint failed")
}
