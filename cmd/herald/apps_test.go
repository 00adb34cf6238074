package main

import (
	"bytes"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
)

// appsRun runs `herald apps args...` with apps_store set by flag.
func appsRun(t *testing.T, store string, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	// The ID (if any) comes first, flags may follow it.
	full := append(append([]string{"apps"}, args...), "--apps-store", store)
	code := run(full, &out, &errb)
	return code, out.String(), errb.String()
}

func TestAppsCLI(t *testing.T) {
	t.Setenv("HERALD_CONFIG", "")
	store := "sqlite://" + filepath.Join(t.TempDir(), "apps.db")
	if code, _, errs := appsRun(t, store, "list"); code != exitError || !strings.Contains(errs, "herald apps migrate") {
		t.Fatalf("list before migrate: %d %s", code, errs)
	}
	if code, out, errs := appsRun(t, store, "migrate"); code != exitOK || !strings.Contains(out, "version 1") {
		t.Fatalf("migrate: %d %s %s", code, out, errs)
	}
	code, out, errs := appsRun(t, store, "create", "--id", "7", "--max-connections", "12", "--enable-client-messages", "--json")
	if code != exitOK {
		t.Fatalf("create: %d %s", code, errs)
	}
	var a map[string]any
	if err := json.Unmarshal([]byte(out), &a); err != nil {
		t.Fatalf("create --json printed %q: %v", out, err)
	}
	if a["id"] != "7" || a["max_connections"] != float64(12) || a["enable_client_messages"] != true || len(a["secret"].(string)) != 32 {
		t.Fatalf("created %v", a)
	}
	if code, _, _ := appsRun(t, store, "create", "--id", "7"); code != exitExists {
		t.Fatalf("duplicate id: %d", code)
	}
	if code, _, errs := appsRun(t, store, "update", "7", "--max-connections", "0"); code != exitUsage || !strings.Contains(errs, "max_connections") {
		t.Fatalf("bad update: %d %s", code, errs)
	}
	if code, _, _ := appsRun(t, store, "update", "7", "--enable-client-messages=false"); code != exitOK {
		t.Fatal("update")
	}
	code, out, _ = appsRun(t, store, "list", "--json")
	if code != exitOK || !strings.Contains(out, `"enable_client_messages":false`) || strings.Contains(out, a["secret"].(string)) {
		t.Fatalf("list: %d %s", code, out)
	}
	for _, cmd := range []string{"disable", "enable", "rotate-secret", "delete"} {
		if code, _, errs := appsRun(t, store, cmd, "7"); code != exitOK {
			t.Fatalf("%s: %d %s", cmd, code, errs)
		}
	}
	if code, _, _ := appsRun(t, store, "delete", "7"); code != exitNotFound {
		t.Fatalf("delete twice: %d", code)
	}
	if code, _, errs := appsRun(t, "config", "create"); code != exitReadOnly || !strings.Contains(errs, "read-only") {
		t.Fatalf("config store: %d %s", code, errs)
	}
	if code, _, errs := appsRun(t, "postgres://u:hunter2-pw@127.0.0.1:1/x?connect_timeout=2", "list"); code != exitError || strings.Contains(errs, "hunter2") {
		t.Fatalf("unreachable store: %d %s", code, errs)
	}
}
