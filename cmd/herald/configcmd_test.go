package main

import (
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestConfigCheckValid(t *testing.T) {
	path := writeFile(t, "herald.yaml", "port: 6010\napps:\n  - id: a\n    key: k\n    secret: s\n")
	var out, errOut bytes.Buffer
	if code := run([]string{"config", "check", path}, &out, &errOut); code != 0 {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	if !strings.Contains(out.String(), "ok") {
		t.Fatalf("stdout: %q", out.String())
	}
}

// Every problem is reported, each with its line and key, and the exit code is 1.
func TestConfigCheckNamesKeyAndLineOfEveryProblem(t *testing.T) {
	path := writeFile(t, "bad.yaml", `port: 70000
log_level: loud
apps:
  - id: a
    key: k
    secret: s
    max_conections: 5
    activity_timeout: forever
  - id: a
    key: k2
    secret: s2
`)
	var out, errOut bytes.Buffer
	if code := run([]string{"config", "check", path}, &out, &errOut); code != 1 {
		t.Fatalf("exit %d, want 1; stderr %s", code, errOut.String())
	}
	msg := errOut.String()
	for _, want := range []struct {
		line int
		key  string
	}{
		{1, "port"},
		{2, "log_level"},
		{7, `"max_conections"`},
		{8, "apps[0].activity_timeout"},
		{9, "apps[1].id"},
	} {
		re := regexp.MustCompile(regexp.QuoteMeta(path) + ` line ` + strconv.Itoa(want.line) + `: .*` + regexp.QuoteMeta(want.key))
		if !re.MatchString(msg) {
			t.Errorf("no problem names line %d and %s:\n%s", want.line, want.key, msg)
		}
	}
}

func TestConfigCheckUsage(t *testing.T) {
	for _, args := range [][]string{{"config"}, {"config", "check"}, {"config", "frob"}, {"config", "import", "reverb", "x"}, {"config", "import", "soketi"}} {
		var out, errOut bytes.Buffer
		if code := run(args, &out, &errOut); code != 2 {
			t.Errorf("%v: exit %d, want 2", args, code)
		}
	}
	var out, errOut bytes.Buffer
	if code := run([]string{"config", "check", filepath.Join(t.TempDir(), "missing.yaml")}, &out, &errOut); code != 1 {
		t.Errorf("missing file: exit %d, want 1", code)
	}
}

func TestConfigImportSoketi(t *testing.T) {
	src := writeFile(t, "soketi.json", `{
  "port": 6001,
  "debug": false,
  "appManager.array.apps": [
    {"id": "app-1", "key": "key-1", "secret": "secret-1", "enableClientMessages": true, "maxConnections": 500,
     "webhooks": [{"url": "https://example.com/pusher", "event_types": ["member_added", "member_removed"]}]}
  ],
  "rateLimiter": {"driver": "redis"},
  "cluster.port": 11002
}`)
	var out, errOut bytes.Buffer
	if code := run([]string{"config", "import", "soketi", src}, &out, &errOut); code != 0 {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	for _, key := range []string{`"rateLimiter.driver"`, `"cluster.port"`} {
		if !strings.Contains(errOut.String(), "warning: ") || !strings.Contains(errOut.String(), key) {
			t.Errorf("stderr does not warn about %s:\n%s", key, errOut.String())
		}
	}
	if strings.Count(errOut.String(), "\n") != 2 {
		t.Errorf("want one warning line per unmapped key (2):\n%s", errOut.String())
	}
	// The output goes through the same loader as the server.
	yamlPath := writeFile(t, "herald.yaml", out.String())
	var cout, cerr bytes.Buffer
	if code := run([]string{"config", "check", yamlPath}, &cout, &cerr); code != 0 {
		t.Fatalf("translated config fails the check: %s\n%s", cerr.String(), out.String())
	}
	for _, want := range []string{"id: app-1", "enable_client_messages: true", "max_connections: 500", "url: https://example.com/pusher"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("YAML lacks %q:\n%s", want, out.String())
		}
	}

	// -o writes the file (0600: it holds secrets) and keeps stdout empty.
	dst := filepath.Join(t.TempDir(), "out.yaml")
	out.Reset()
	errOut.Reset()
	if code := run([]string{"config", "import", "soketi", "-o", dst, src}, &out, &errOut); code != 0 {
		t.Fatalf("-o: exit %d: %s", code, errOut.String())
	}
	st, err := os.Stat(dst)
	if err != nil || st.Mode().Perm() != 0o600 || out.Len() != 0 {
		t.Fatalf("-o: stat %v %v, stdout %q", st, err, out.String())
	}
}

func TestConfigImportSoketiBadInput(t *testing.T) {
	src := writeFile(t, "soketi.json", `{"port": `)
	var out, errOut bytes.Buffer
	if code := run([]string{"config", "import", "soketi", src}, &out, &errOut); code != 1 {
		t.Fatalf("exit %d, want 1", code)
	}
	if out.Len() != 0 || !strings.Contains(errOut.String(), "not a JSON object") {
		t.Fatalf("stdout %q stderr %q", out.String(), errOut.String())
	}
}

func TestConfigImportSoketiEnvFile(t *testing.T) {
	envFile := writeFile(t, "soketi.env", "# soketi\nSOKETI_DEFAULT_APP_ID=app-1\nSOKETI_DEFAULT_APP_KEY=\"key-1\"\nexport SOKETI_DEFAULT_APP_SECRET='secret-1'\nSOKETI_PORT=6003\n")
	var out, errOut bytes.Buffer
	if code := run([]string{"config", "import", "soketi", "--env-file", envFile}, &out, &errOut); code != 0 {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	for _, want := range []string{"port: 6003", "id: app-1", "key: key-1", "secret: secret-1"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("YAML lacks %q:\n%s", want, out.String())
		}
	}
	if errOut.Len() != 0 {
		t.Errorf("warnings: %s", errOut.String())
	}
}

func TestConfigCheckNotesTheDevApp(t *testing.T) {
	path := writeFile(t, "herald.yaml", "port: 6010\n")
	var out, errOut bytes.Buffer
	if code := run([]string{"config", "check", path}, &out, &errOut); code != 0 {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	if !strings.Contains(out.String(), "development app") {
		t.Fatalf("no note about the development app: %q", out.String())
	}
}
