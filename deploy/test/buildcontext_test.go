package deploytest

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestDockerfileBuildContext stands in for the builder stage, which cannot
// run here (no golang image): it copies exactly what the stage COPYs (each
// of which .dockerignore must let through) into an empty directory and
// builds the binary there with the stage's command. A file the build
// needs but the Dockerfile leaves out (say, the replaced nbio in
// third_party) fails it.
func TestDockerfileBuildContext(t *testing.T) {
	src, err := os.ReadFile(filepath.Join(repoRoot, "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	ignore, err := os.ReadFile(filepath.Join(repoRoot, ".dockerignore"))
	if err != nil {
		t.Fatal(err)
	}
	allowed := map[string]bool{}
	for _, l := range strings.Split(string(ignore), "\n") {
		if p, ok := strings.CutPrefix(strings.TrimSpace(l), "!"); ok {
			allowed[strings.TrimSuffix(p, "/")] = true
		}
	}
	builder, _, ok := strings.Cut(string(src), "FROM scratch AS image")
	if !ok {
		t.Fatal("no final stage in the Dockerfile")
	}
	dir := t.TempDir()
	copies := 0
	for _, l := range strings.Split(builder, "\n") {
		f := strings.Fields(l)
		if len(f) < 3 || f[0] != "COPY" || strings.HasPrefix(f[1], "--") {
			continue
		}
		dest := f[len(f)-1]
		for _, s := range f[1 : len(f)-1] {
			if !allowed[s] {
				t.Errorf("the Dockerfile copies %s, which .dockerignore leaves out of the context", s)
			}
			to := filepath.Join(dir, dest)
			if strings.HasSuffix(dest, "/") {
				to = filepath.Join(dir, dest, filepath.Base(s))
			}
			if err := os.MkdirAll(filepath.Dir(to), 0o755); err != nil {
				t.Fatal(err)
			}
			if out, err := exec.Command("cp", "-a", filepath.Join(repoRoot, s), to).CombinedOutput(); err != nil {
				t.Fatalf("cp %s: %v: %s", s, err, out)
			}
			copies++
		}
	}
	if copies == 0 {
		t.Fatal("no COPY in the builder stage")
	}
	start := time.Now()
	cmd := exec.Command("go", "build", "-trimpath", "-ldflags", "-s -w -X main.version=context-test", "-o", filepath.Join(dir, "herald-built"), "./cmd/herald")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOFLAGS=-mod=readonly", "GOWORK=off")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building from the Dockerfile's context: %v\n%s", err, out)
	}
	t.Logf("built from the Dockerfile's context in %v", time.Since(start).Round(time.Millisecond))
}
