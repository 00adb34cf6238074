package deploytest

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// unitKeys reads a systemd unit or Supervisor program file as section ->
// key -> values (a key may repeat).
func unitKeys(t *testing.T, path string) map[string]map[string][]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := map[string]map[string][]string{}
	section := ""
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		l := strings.TrimSpace(sc.Text())
		switch {
		case l == "" || strings.HasPrefix(l, "#") || strings.HasPrefix(l, ";"):
		case strings.HasPrefix(l, "[") && strings.HasSuffix(l, "]"):
			section = l[1 : len(l)-1]
			out[section] = map[string][]string{}
		default:
			k, v, ok := strings.Cut(l, "=")
			if !ok || section == "" {
				t.Fatalf("%s: cannot read line %q", path, l)
			}
			out[section][strings.TrimSpace(k)] = append(out[section][strings.TrimSpace(k)], strings.TrimSpace(v))
		}
	}
	return out
}

// defaultDrain is shutdown_timeout's default as `herald serve --help` says.
func defaultDrain(t *testing.T) time.Duration {
	t.Helper()
	out, _ := exec.Command(heraldBin, "serve", "--help").CombinedOutput()
	m := regexp.MustCompile(`(?s)-shutdown-timeout .*?\(default "([^"]+)"\)`).FindSubmatch(out)
	if m == nil {
		t.Fatalf("no shutdown-timeout default in herald serve --help:\n%s", out)
	}
	d, err := time.ParseDuration(string(m[1]))
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// TestSystemdUnit verifies deploy/systemd/herald.service with systemd's
// own checker (with ExecStart pointed at a real binary: verify insists it
// exists) and its security score, and checks the keys the drain and the
// reload depend on.
func TestSystemdUnit(t *testing.T) {
	const unit = "../systemd/herald.service"
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Fatalf("systemd-analyze is not installed (make deploy-deps installs systemd): %v", err)
	}
	src, err := os.ReadFile(unit)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	tmp := filepath.Join(dir, "herald.service")
	mustWrite(t, tmp, strings.ReplaceAll(string(src), "/usr/local/bin/herald", heraldBin))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, analyze, "verify", tmp).CombinedOutput()
	if err != nil || len(strings.TrimSpace(string(out))) > 0 {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
	out, err = exec.CommandContext(ctx, analyze, "security", "--offline=true", tmp).CombinedOutput()
	m := regexp.MustCompile(`Overall exposure level for herald.service: ([0-9.]+)`).FindSubmatch(out)
	if err != nil || m == nil {
		t.Fatalf("systemd-analyze security: %v\n%s", err, out)
	}
	if score, _ := strconv.ParseFloat(string(m[1]), 64); score > 2.5 {
		t.Errorf("exposure %.1f, want at most 2.5 (hardening lost?)\n%s", score, out)
	} else {
		t.Logf("systemd-analyze security: exposure %.1f", score)
	}

	svc := unitKeys(t, unit)["Service"]
	one := func(k string) string {
		if len(svc[k]) != 1 {
			t.Errorf("[Service] %s: %q, want one value", k, svc[k])
			return ""
		}
		return svc[k][0]
	}
	if got := one("ExecReload"); got != "/bin/kill -HUP $MAINPID" {
		t.Errorf("ExecReload=%s", got)
	}
	pidFile := one("PIDFile")
	var envPid string
	for _, e := range svc["Environment"] {
		if v, ok := strings.CutPrefix(e, "HERALD_PID_FILE="); ok {
			envPid = v
		}
	}
	if pidFile == "" || envPid != pidFile || !strings.HasPrefix(pidFile, "/run/"+one("RuntimeDirectory")+"/") {
		t.Errorf("PIDFile=%s, HERALD_PID_FILE=%s: not the same file in the RuntimeDirectory", pidFile, envPid)
	}
	if n, _ := strconv.Atoi(one("LimitNOFILE")); n < 65536 {
		t.Errorf("LimitNOFILE=%s, want room for many WebSockets", one("LimitNOFILE"))
	}
	stop, err := time.ParseDuration(one("TimeoutStopSec"))
	if drain := defaultDrain(t); err != nil || stop < drain+5*time.Second {
		t.Errorf("TimeoutStopSec=%s, want at least shutdown_timeout %v + 5s", one("TimeoutStopSec"), drain)
	}
	for k, want := range map[string]string{"NoNewPrivileges": "yes", "ProtectSystem": "strict", "ProtectHome": "yes", "PrivateTmp": "yes", "Restart": "on-failure", "KillSignal": "SIGTERM"} {
		if got := one(k); got != want {
			t.Errorf("%s=%s, want %s", k, got, want)
		}
	}
}

// TestSupervisorConfig runs deploy/supervisor/herald.conf in a real
// supervisord (user and paths adapted to the test), waits for Herald's
// /up, and stops it through supervisorctl: it must exit cleanly (drained)
// within stopwaitsecs.
func TestSupervisorConfig(t *testing.T) {
	const conf = "../supervisor/herald.conf"
	supervisord, err := exec.LookPath("supervisord")
	if err != nil {
		t.Fatalf("supervisord is not installed (make deploy-deps installs supervisor): %v", err)
	}
	prog := unitKeys(t, conf)["program:herald"]
	if prog == nil {
		t.Fatalf("%s has no [program:herald]", conf)
	}
	wait, _ := strconv.Atoi(first(prog["stopwaitsecs"]))
	if drain := defaultDrain(t); time.Duration(wait)*time.Second < drain+5*time.Second || first(prog["stopsignal"]) != "TERM" {
		t.Errorf("stopsignal=%s stopwaitsecs=%d: want TERM and at least shutdown_timeout %v + 5s", first(prog["stopsignal"]), wait, drain)
	}
	src, err := os.ReadFile(conf)
	if err != nil {
		t.Fatal(err)
	}
	var cfg string
	p := startServing(t, func() ([]string, string, []string, string) {
		dir := t.TempDir()
		port := freePort(t)
		program := string(src)
		program = strings.ReplaceAll(program, "/usr/local/bin/herald", heraldBin)
		program = strings.ReplaceAll(program, " --config /etc/herald/herald.yaml", "")
		program = regexp.MustCompile(`(?m)^user=.*$`).ReplaceAllString(program, "")
		// Herald's output into supervisord's, where the test reads it.
		program = regexp.MustCompile(`(?m)^stdout_logfile=.*$`).ReplaceAllString(program, "stdout_logfile=/dev/stdout")
		program = regexp.MustCompile(`(?m)^stdout_logfile_(maxbytes|backups)=.*$`).ReplaceAllString(program, "stdout_logfile_$1=0")
		program = regexp.MustCompile(`(?m)^environment=(.*)$`).ReplaceAllString(program, fmt.Sprintf(`environment=$1,HERALD_HOST="127.0.0.1",HERALD_PORT="%d"`, port))
		sock := filepath.Join(dir, "supervisor.sock")
		main := fmt.Sprintf(`[supervisord]
nodaemon=true
logfile=%[1]s/supervisord.log
pidfile=%[1]s/supervisord.pid
childlogdir=%[1]s
[unix_http_server]
file=%[2]s
[rpcinterface:supervisor]
supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface
[supervisorctl]
serverurl=unix://%[2]s
`, dir, sock) + program
		cfg = filepath.Join(dir, "supervisord.conf")
		mustWrite(t, cfg, main)
		return nil, supervisord, []string{"-c", cfg}, fmt.Sprintf("http://127.0.0.1:%d/up", port)
	})
	out, err := exec.Command("supervisorctl", "-c", cfg, "stop", "herald").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "herald: stopped") {
		t.Fatalf("supervisorctl stop herald: %v: %s", err, out)
	}
	out, _ = exec.Command("supervisorctl", "-c", cfg, "status", "herald").CombinedOutput()
	if !strings.Contains(string(out), "STOPPED") {
		t.Errorf("status after stop: %s", out)
	}
	if logs := p.out.String(); !strings.Contains(logs, `"msg":"stopped"`) {
		t.Errorf("Herald did not stop cleanly (no \"stopped\" log):\n%s", logs)
	}
}

func first(v []string) string {
	if len(v) == 0 {
		return ""
	}
	return v[0]
}
