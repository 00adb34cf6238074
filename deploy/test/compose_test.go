package deploytest

import (
	"bufio"
	"fmt"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"sigs.k8s.io/yaml"
)

type composeFile struct {
	Name     string `json:"name"`
	Services map[string]struct {
		Image           string            `json:"image"`
		Ports           []string          `json:"ports"`
		Environment     map[string]string `json:"environment"`
		StopGracePeriod string            `json:"stop_grace_period"`
		EnvFile         any               `json:"env_file"`
	} `json:"services"`
}

// dotenv reads KEY=VALUE lines (quotes removed, no expansion).
func dotenv(t *testing.T, path string) map[string]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	env := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		l := strings.TrimSpace(sc.Text())
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		k, v, ok := strings.Cut(l, "=")
		if !ok {
			t.Fatalf("%s: bad line %q", path, l)
		}
		env[k] = strings.Trim(v, `"`)
	}
	return env
}

var composeVar = regexp.MustCompile(`\$\{([A-Z0-9_]+)(?::([?-])([^}]*))?\}`)

// interpolate expands ${VAR}, ${VAR:-default} and ${VAR:?error} as
// Compose does.
func interpolate(t *testing.T, s string, env map[string]string) string {
	t.Helper()
	return composeVar.ReplaceAllStringFunc(s, func(m string) string {
		p := composeVar.FindStringSubmatch(m)
		if v := env[p[1]]; v != "" {
			return v
		}
		switch p[2] {
		case "?":
			t.Errorf("%s is required (%s) and .env.example does not set it", p[1], p[3])
		case "-":
			return p[3]
		}
		return ""
	})
}

// TestComposeFile reads deploy/compose/docker-compose.yml with the
// example .env, checks the Herald services against the binary (env names,
// ports, stop grace), and runs the binary with one node's environment.
func TestComposeFile(t *testing.T) {
	src, err := os.ReadFile("../compose/docker-compose.yml")
	if err != nil {
		t.Fatal(err)
	}
	env := dotenv(t, "../compose/.env.example")
	var cf composeFile
	if err := yaml.Unmarshal([]byte(interpolate(t, string(src), env)), &cf); err != nil {
		t.Fatalf("docker-compose.yml: %v", err)
	}
	names := heraldEnvNames(t)
	appEnv := map[string]bool{"HERALD_APP_ID": true, "HERALD_APP_KEY": true, "HERALD_APP_SECRET": true}
	nodes := 0
	for name, svc := range cf.Services {
		if !strings.HasPrefix(name, "herald") {
			continue
		}
		nodes++
		if svc.Image == "" {
			t.Errorf("%s: no image", name)
		}
		if len(svc.Ports) != 1 || !strings.HasSuffix(svc.Ports[0], ":6001") {
			t.Errorf("%s: ports %q, want one mapping to the image's HERALD_PORT 6001", name, svc.Ports)
		}
		for k := range svc.Environment {
			if !names[k] && !appEnv[k] {
				t.Errorf("%s: %s is not a Herald setting", name, k)
			}
		}
		if svc.Environment["HERALD_REDIS_URL"] == "" {
			t.Errorf("%s: no HERALD_REDIS_URL: the nodes would not share clients", name)
		}
		drain, err := time.ParseDuration(svc.Environment["HERALD_SHUTDOWN_TIMEOUT"])
		grace, err2 := time.ParseDuration(svc.StopGracePeriod)
		if err != nil || err2 != nil || grace < drain+5*time.Second {
			t.Errorf("%s: stop_grace_period %q for HERALD_SHUTDOWN_TIMEOUT %q", name, svc.StopGracePeriod, svc.Environment["HERALD_SHUTDOWN_TIMEOUT"])
		}
	}
	if nodes != 2 {
		t.Errorf("%d Herald services, want 2", nodes)
	}
	if l := cf.Services["laravel"]; l.Environment["PUSHER_HOST"] == "" || cf.Services[l.Environment["PUSHER_HOST"]].Image == "" {
		t.Errorf("the laravel service's PUSHER_HOST %q is not a Herald service", l.Environment["PUSHER_HOST"])
	}

	// One node's environment, with Redis and the port local to the test.
	var port int
	startServing(t, func() ([]string, string, []string, string) {
		port = freePort(t)
		var run []string
		for k, v := range cf.Services["herald-1"].Environment {
			if k == "HERALD_REDIS_URL" {
				v = "redis://127.0.0.1:6379/0"
			}
			run = append(run, k+"="+v)
		}
		run = append(run, "HERALD_HOST=127.0.0.1", fmt.Sprintf("HERALD_PORT=%d", port), "HERALD_REDIS_PREFIX=herald-deploytest-"+randHex(4)+":")
		return run, heraldBin, nil, fmt.Sprintf("http://127.0.0.1:%d/ready", port)
	})
	pusherHandshake(t, fmt.Sprintf("127.0.0.1:%d", port), env["PUSHER_APP_KEY"])
}
