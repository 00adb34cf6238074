package sqlstore_test

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"os"
	"path/filepath"
	"testing"

	"github.com/herald-ws/herald/internal/apps"
	"github.com/herald-ws/herald/internal/apps/sqlstore"
	"github.com/herald-ws/herald/internal/apps/storetest"
)

// The databases of this machine (docs: CONTRIBUTING); override with
// HERALD_TEST_POSTGRES and HERALD_TEST_MYSQL. A missing database fails.
func postgresURL() string {
	if u := os.Getenv("HERALD_TEST_POSTGRES"); u != "" {
		return u
	}
	return "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"
}

func mysqlURL() string {
	if u := os.Getenv("HERALD_TEST_MYSQL"); u != "" {
		return u
	}
	return "mysql://root@tcp(127.0.0.1:3306)/test"
}

func randomName(prefix string) string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return prefix + hex.EncodeToString(b)
}

// sqlHarness opens raw, migrates it, seeds it.
func sqlHarness(t *testing.T, raw string, seed []apps.App) storetest.Harness {
	t.Helper()
	u, err := apps.ParseStoreURL(raw)
	if err != nil {
		t.Fatal(err)
	}
	s, err := sqlstore.Open(u, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	ctx := context.Background()
	if _, err := s.Migrate(ctx); err != nil {
		t.Fatalf("migrate %s: %v", u.Redacted, err)
	}
	if v, err := s.SchemaVersion(ctx); err != nil || v != sqlstore.LatestSchema(u.Dialect) {
		t.Fatalf("schema version %d, %v", v, err)
	}
	if applied, err := s.Migrate(ctx); err != nil || len(applied) != 0 {
		t.Fatalf("second migrate applied %v, %v", applied, err)
	}
	for i := range seed {
		if err := s.Create(ctx, &seed[i]); err != nil {
			t.Fatalf("seed: %v", err)
		}
	}
	return storetest.Harness{Store: s, Writer: s, Raw: func(t *testing.T, id, key, secret string, enabled bool, settings string) {
		q := "INSERT INTO herald_apps (id, app_key, secret, enabled, settings) VALUES (?, ?, ?, ?, ?)"
		if u.Dialect == apps.DialectPostgres {
			q = "INSERT INTO herald_apps (id, app_key, secret, enabled, settings) VALUES ($1, $2, $3, $4, $5)"
		}
		var st sql.NullString
		if settings != "" {
			st = sql.NullString{String: settings, Valid: true}
		}
		if _, err := s.DB().Exec(q, id, key, secret, enabled, st); err != nil {
			t.Fatalf("raw insert %s: %v", id, err)
		}
	}}
}

func TestConformanceConfig(t *testing.T) {
	storetest.Run(t, func(t *testing.T, seed []apps.App) storetest.Harness {
		s, err := apps.NewStatic(seed)
		if err != nil {
			t.Fatal(err)
		}
		return storetest.Harness{Store: s}
	})
}

func TestConformanceSQLite(t *testing.T) {
	storetest.Run(t, func(t *testing.T, seed []apps.App) storetest.Harness {
		return sqlHarness(t, "sqlite://"+filepath.Join(t.TempDir(), "apps.db"), seed)
	})
}

func TestConformancePostgres(t *testing.T) {
	admin, err := sql.Open("pgx", postgresURL())
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	storetest.Run(t, func(t *testing.T, seed []apps.App) storetest.Harness {
		schema := randomName("herald_t_")
		if _, err := admin.Exec("CREATE SCHEMA " + schema); err != nil {
			t.Fatalf("PostgreSQL at %s: %v", postgresURL(), err)
		}
		t.Cleanup(func() { _, _ = admin.Exec("DROP SCHEMA " + schema + " CASCADE") })
		return sqlHarness(t, withParam(postgresURL(), "search_path="+schema), seed)
	})
}

func TestConformanceMySQL(t *testing.T) {
	u, err := apps.ParseStoreURL(mysqlURL())
	if err != nil {
		t.Fatal(err)
	}
	admin, err := sql.Open("mysql", u.DSN)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	storetest.Run(t, func(t *testing.T, seed []apps.App) storetest.Harness {
		db := randomName("herald_t_")
		if _, err := admin.Exec("CREATE DATABASE " + db); err != nil {
			t.Fatalf("MariaDB/MySQL: %v", err)
		}
		t.Cleanup(func() { _, _ = admin.Exec("DROP DATABASE " + db) })
		return sqlHarness(t, "mysql://root@tcp(127.0.0.1:3306)/"+db, seed)
	})
}

func withParam(u, p string) string {
	for i := range len(u) {
		if u[i] == '?' {
			return u + "&" + p
		}
	}
	return u + "?" + p
}
