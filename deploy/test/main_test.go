package deploytest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// repoRoot is the Herald checkout this module sits in.
const repoRoot = "../.."

// heraldBin is the static binary the tests run and put in the image: the
// one `make build` made ($HERALD_BIN, built the Dockerfile's way), else one
// TestMain builds so.
var heraldBin string

// testVersion is what `herald version` says for heraldBin.
var testVersion string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "herald-deploytest-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	if heraldBin, err = herald(dir); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// herald finds or builds the binary and reads its version.
func herald(dir string) (string, error) {
	bin := os.Getenv("HERALD_BIN")
	if bin == "" {
		bin = filepath.Join(dir, "herald")
		cmd := exec.Command("go", "build", "-trimpath", "-ldflags", "-s -w -X main.version=deploytest-"+randHex(4), "-o", bin, "./cmd/herald")
		cmd.Dir = repoRoot
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			return "", fmt.Errorf("building herald: %v\n%s", err, out)
		}
	}
	bin, err := filepath.Abs(bin)
	if err != nil {
		return "", err
	}
	out, err := exec.Command(bin, "version").Output()
	if err != nil {
		return "", fmt.Errorf("HERALD_BIN=%s version: %v", bin, err)
	}
	v, ok := strings.CutPrefix(strings.TrimSpace(string(out)), "herald ")
	if !ok || v == "" {
		return "", fmt.Errorf("%s version printed %q", bin, out)
	}
	testVersion = v
	return bin, nil
}

func randHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return hex.EncodeToString(b)
}

// freePort is a TCP port that was free on 127.0.0.1 a moment ago.
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// syncBuffer collects a process's output for error messages.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// process is a started command that the test stops (SIGTERM, then kill)
// and waits for at cleanup.
type process struct {
	cmd  *exec.Cmd
	out  *syncBuffer
	done chan struct{}
}

// startProcess runs bin with args and exactly env (plus PATH).
func startProcess(t *testing.T, env []string, bin string, args ...string) *process {
	t.Helper()
	p := &process{cmd: exec.Command(bin, args...), out: &syncBuffer{}, done: make(chan struct{})}
	p.cmd.Env = append([]string{"PATH=" + os.Getenv("PATH")}, env...)
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", bin, err)
	}
	go func() {
		_ = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		_ = p.cmd.Process.Signal(os.Interrupt)
		select {
		case <-p.done:
		case <-time.After(15 * time.Second):
			_ = p.cmd.Process.Kill()
			<-p.done
		}
	})
	return p
}

// startServing starts what attempt returns (bin, args, env, and the URL
// that answers 200 once it serves) and waits for it. The ports come from
// freePort, so another process on the machine may take one first: on
// "address already in use" it asks attempt again (for new ports), up to
// three times.
func startServing(t *testing.T, attempt func() (env []string, bin string, args []string, url string)) *process {
	t.Helper()
	for i := 0; ; i++ {
		env, bin, args, url := attempt()
		p := startProcess(t, env, bin, args...)
		err := pollHTTP(p, url)
		if err == nil {
			return p
		}
		if i < 2 && strings.Contains(p.out.String(), "address already in use") {
			t.Logf("a port was taken before %s bound it; again with new ports", bin)
			continue
		}
		t.Fatalf("%v; output:\n%s", err, p.out.String())
	}
}

// waitHTTP polls url until it answers 200 or the process exits or 15 s
// pass.
func waitHTTP(t *testing.T, p *process, url string) {
	t.Helper()
	if err := pollHTTP(p, url); err != nil {
		t.Fatalf("%v; output:\n%s", err, p.out.String())
	}
}

func pollHTTP(p *process, url string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	var last error
	for {
		status, _, err := get(ctx, url)
		if err == nil && status == http.StatusOK {
			return nil
		}
		if err == nil {
			err = fmt.Errorf("status %d", status)
		}
		last = err
		select {
		case <-p.done:
			return fmt.Errorf("process exited before %s answered 200 (last: %v)", url, last)
		case <-ctx.Done():
			return fmt.Errorf("%s did not answer 200 within 15 s (last: %v)", url, last)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// get GETs url and returns the status and (up to 1 MB of) the body.
func get(ctx context.Context, url string) (int, string, error) {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, "", err
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer res.Body.Close()
	var b strings.Builder
	buf := make([]byte, 32<<10)
	for b.Len() < 1<<20 {
		n, err := res.Body.Read(buf)
		b.Write(buf[:n])
		if errors.Is(err, context.DeadlineExceeded) {
			return 0, "", err
		}
		if err != nil {
			break
		}
	}
	return res.StatusCode, b.String(), nil
}
