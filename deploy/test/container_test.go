package deploytest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestContainerImage builds the Dockerfile's final stage with podman (no
// base image can be pulled here, so a "build" stage made of the binary that
// TestMain built the Dockerfile's way stands in for the golang stage), checks
// the image's metadata, and runs it: /up, a Pusher WebSocket handshake,
// `herald version` and `herald health`. Where this machine cannot run
// containers, the test says why and runs the binary extracted from the
// image instead.
func TestContainerImage(t *testing.T) {
	podman, err := exec.LookPath("podman")
	if err != nil {
		t.Fatalf("podman is not installed (make deploy-deps installs it with apt-get): %v", err)
	}
	src, err := os.ReadFile(filepath.Join(repoRoot, "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	dockerfile := string(src)
	// The builder stage, which cannot run here, is at least checked for
	// what makes the binary static and stamped.
	for _, want := range []string{"CGO_ENABLED=0", "-trimpath", "-X main.version=${VERSION}", "AS build", "./cmd/herald"} {
		if !strings.Contains(dockerfile, want) {
			t.Errorf("Dockerfile's builder stage lacks %q", want)
		}
	}
	const finalFrom = "FROM scratch AS image"
	i := strings.Index(dockerfile, finalFrom)
	if i < 0 {
		t.Fatalf("Dockerfile has no %q stage", finalFrom)
	}
	ctxDir := t.TempDir()
	testDockerfile := "FROM scratch AS build\nCOPY herald /out/herald\nCOPY ca-certificates.crt /etc/ssl/certs/ca-certificates.crt\n\n" + dockerfile[i:]
	mustWrite(t, filepath.Join(ctxDir, "Dockerfile"), testDockerfile)
	copyFile(t, heraldBin, filepath.Join(ctxDir, "herald"), 0o755)
	copyFile(t, "/etc/ssl/certs/ca-certificates.crt", filepath.Join(ctxDir, "ca-certificates.crt"), 0o644)

	tag := "localhost/herald-deploytest:" + randHex(4)
	// --format docker keeps HEALTHCHECK (the OCI image format has none).
	// --layers=false: no images of the intermediate stage are left behind.
	runCmd(t, 3*time.Minute, podman, "build", "--layers=false", "--format", "docker", "--build-arg", "VERSION="+testVersion, "-t", tag, "-f", filepath.Join(ctxDir, "Dockerfile"), ctxDir)
	t.Cleanup(func() { _ = exec.Command(podman, "rmi", "-f", tag).Run() })

	var inspect []struct {
		Config struct {
			User         string
			Env          []string
			Entrypoint   []string
			Cmd          []string
			ExposedPorts map[string]any
			Labels       map[string]string
			StopSignal   string
		}
		Healthcheck *struct{ Test []string }
	}
	if err := json.Unmarshal([]byte(runCmd(t, time.Minute, podman, "image", "inspect", "--format", "json", tag)), &inspect); err != nil || len(inspect) != 1 {
		t.Fatalf("podman image inspect: %v", err)
	}
	cfg := inspect[0].Config
	if cfg.User != "65532:65532" {
		t.Errorf("image user %q, want 65532:65532 (non-root)", cfg.User)
	}
	if !slices.Equal(cfg.Entrypoint, []string{"/herald"}) || !slices.Equal(cfg.Cmd, []string{"serve"}) {
		t.Errorf("entrypoint %q cmd %q, want [/herald] [serve]", cfg.Entrypoint, cfg.Cmd)
	}
	if _, ok := cfg.ExposedPorts["6001/tcp"]; !ok {
		t.Errorf("image exposes %v, want 6001/tcp", cfg.ExposedPorts)
	}
	if hc := inspect[0].Healthcheck; hc == nil || !slices.Equal(hc.Test, []string{"CMD", "/herald", "health"}) {
		t.Errorf("healthcheck %+v, want CMD /herald health", hc)
	}
	for _, l := range []string{"org.opencontainers.image.title", "org.opencontainers.image.source", "org.opencontainers.image.licenses"} {
		if cfg.Labels[l] == "" {
			t.Errorf("image has no label %s", l)
		}
	}
	if got := cfg.Labels["org.opencontainers.image.version"]; got != testVersion {
		t.Errorf("label org.opencontainers.image.version = %q, want %q", got, testVersion)
	}

	var env []string
	var hostport string
	newPort := func() {
		port := strconv.Itoa(freePort(t))
		env = append(slices.Clone(cfg.Env), "HERALD_HOST=127.0.0.1", "HERALD_PORT="+port)
		hostport = "127.0.0.1:" + port
	}

	// herald runs as `podman run` when the machine allows containers.
	var version func() string
	var healthCheck func(url string) (string, error)
	probe := exec.Command(podman, "run", "--rm", "--network", "host", tag, "version")
	out, err := probe.CombinedOutput()
	if err == nil {
		t.Logf("running the image with podman run --network host")
		name := "herald-deploytest-" + randHex(4)
		args := []string{"run", "--rm", "--name", name, "--network", "host"}
		t.Cleanup(func() { _ = exec.Command(podman, "stop", "-t", "15", name).Run() })
		startServing(t, func() ([]string, string, []string, string) {
			_ = exec.Command(podman, "rm", "-f", name).Run()
			newPort()
			a := slices.Clone(args)
			for _, e := range env[len(cfg.Env):] {
				a = append(a, "-e", e)
			}
			return os.Environ(), podman, append(a, tag), "http://" + hostport + "/up"
		})
		version = func() string { return runCmd(t, time.Minute, podman, "run", "--rm", tag, "version") }
		healthCheck = func(url string) (string, error) {
			out, err := exec.Command(podman, "exec", name, "/herald", "health", "--url", url).CombinedOutput()
			return string(out), err
		}
	} else {
		t.Logf("THIS MACHINE CANNOT RUN CONTAINERS: `podman run --network host %s version` failed: %v: %s", tag, err, strings.TrimSpace(string(out)))
		t.Logf("running /herald extracted from the image's layer (podman create + podman cp) with the image's env instead")
		bin := filepath.Join(t.TempDir(), "herald")
		id := strings.TrimSpace(runCmd(t, time.Minute, podman, "create", tag))
		runCmd(t, time.Minute, podman, "cp", id+":/herald", bin)
		runCmd(t, time.Minute, podman, "rm", id)
		extracted, _ := os.ReadFile(bin)
		built, _ := os.ReadFile(heraldBin)
		if !bytes.Equal(extracted, built) {
			t.Fatalf("/herald in the image differs from the binary put there")
		}
		startServing(t, func() ([]string, string, []string, string) {
			newPort()
			return env, bin, nil, "http://" + hostport + "/up"
		})
		version = func() string { return runCmd(t, time.Minute, bin, "version") }
		healthCheck = func(url string) (string, error) {
			c := exec.Command(bin, "health", "--url", url)
			c.Env = env
			out, err := c.CombinedOutput()
			return string(out), err
		}
	}

	if status, body, err := get(context.Background(), "http://"+hostport+"/up"); err != nil || status != http.StatusOK {
		t.Errorf("GET /up: %d %q %v", status, body, err)
	}
	if status, _, err := get(context.Background(), "http://"+hostport+"/dashboard/"); err != nil || status == http.StatusNotFound {
		// The dashboard is on for the development app (a token per run).
		t.Errorf("GET /dashboard/: %d %v; the embedded dashboard is missing", status, err)
	}
	pusherHandshake(t, hostport, "app-key")
	if got, want := strings.TrimSpace(version()), "herald "+testVersion; got != want {
		t.Errorf("herald version in the image: %q, want %q", got, want)
	}
	if out, err := healthCheck("http://" + hostport + "/up"); err != nil {
		t.Errorf("herald health against a live server: %v: %s", err, out)
	}
	if out, err := healthCheck(fmt.Sprintf("http://127.0.0.1:%d/up", freePort(t))); err == nil {
		t.Errorf("herald health against a closed port succeeded: %s", out)
	}
}

// runCmd runs a command and fails the test with its output when it fails.
func runCmd(t *testing.T, timeout time.Duration, name string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %s: %v\nstdout: %s\nstderr: %s", name, strings.Join(args, " "), err, stdout.String(), stderr.String())
	}
	return stdout.String()
}

func mustWrite(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func copyFile(t *testing.T, from, to string, mode os.FileMode) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, mode); err != nil {
		t.Fatal(err)
	}
}
