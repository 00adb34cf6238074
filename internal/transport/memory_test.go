package transport

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/herald-ws/herald/internal/testwait"
)

// BenchmarkIdleConnectionMemory measures what an idle upgraded connection
// costs the server: it opens memBenchConns connections (HERALD_MEMBENCH_CONNS
// overrides) from a child process to a Server in this process and reports
// the server's heap, stack and RSS growth per connection. Run with
//
//	go test -run '^$' -bench IdleConnectionMemory -benchtime 1x ./internal/transport/
func BenchmarkIdleConnectionMemory(b *testing.B) {
	n := memBenchConns
	if v, err := strconv.Atoi(os.Getenv("HERALD_MEMBENCH_CONNS")); err == nil && v > 0 {
		n = v
	}
	raiseNoFile(b, uint64(n)+1000)
	for b.Loop() {
		m := measureIdleConns(b, n)
		b.ReportMetric(m.heap, "heap-B/conn")
		b.ReportMetric(m.stack, "stack-B/conn")
		b.ReportMetric(m.rss, "rss-B/conn")
		b.ReportMetric(float64(m.goroutines), "goroutines")
	}
}

// memBenchConns is the default number of idle connections measured: enough
// that fixed costs fade, few enough for a quick run.
const memBenchConns = 5000

type perConn struct {
	heap, stack, rss float64
	goroutines       int // goroutines added for all n connections
}

func measureIdleConns(b testing.TB, n int) perConn {
	b.Helper()
	fs := newFakeSessions()
	fs.msgCap = 0 // the fake session stays small (~150 B)
	s := startServer(b, Config{}, fs)
	go func() { // the fake hub keeps its sessions; drain the notifications
		for range fs.opened {
		}
	}()

	before := memSnapshot()
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), "HERALD_MEMTEST_CLIENT="+s.Addr().String(), "HERALD_MEMTEST_N="+strconv.Itoa(n))
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	defer func() { _ = stdin.Close(); _ = cmd.Wait() }()
	sc := bufio.NewScanner(stdout)
	ready := false
	for sc.Scan() {
		if strings.HasPrefix(sc.Text(), "READY") {
			ready = true
			break
		}
	}
	if !ready {
		b.Fatal("client process failed")
	}
	go func() { _, _ = io.Copy(io.Discard, stdout) }()
	if !testwait.Until(30*time.Second, func() bool { return s.Connections() >= n }) {
		b.Fatalf("%d of %d connections registered", s.Connections(), n)
	}
	// The last handshakes' jobs may still run: wait until the goroutine
	// count has been the same for five looks in a row.
	prev, stable := -1, 0
	testwait.Until(10*time.Second, func() bool {
		if g := runtime.NumGoroutine(); g == prev {
			stable++
		} else {
			prev, stable = g, 0
		}
		return stable >= 5
	})
	after := memSnapshot()
	if f := os.Getenv("HERALD_MEMTEST_PROFILE"); f != "" {
		if w, err := os.Create(f); err == nil {
			_ = pprof.WriteHeapProfile(w)
			_ = w.Close()
		}
	}
	per := func(a, b uint64) float64 { return (float64(a) - float64(b)) / float64(n) }
	return perConn{
		heap:       per(after.heap, before.heap),
		stack:      per(after.stack, before.stack),
		rss:        per(after.rss, before.rss),
		goroutines: after.goroutines - before.goroutines,
	}
}

// TestIdleConnectionsHoldNoGoroutine is the design's promise checked: an
// idle upgraded connection holds no goroutine (and little heap).
func TestIdleConnectionsHoldNoGoroutine(t *testing.T) {
	const n = 300
	m := measureIdleConns(t, n)
	if m.goroutines > 8 {
		t.Errorf("%d idle connections added %d goroutines", n, m.goroutines)
	}
	if m.heap > 8<<10 {
		t.Errorf("%.0f B of heap per idle connection, want well under 8 KB", m.heap)
	}
}

type memStats struct {
	heap, stack, sys, rss uint64
	goroutines            int
}

func memSnapshot() memStats {
	runtime.GC()
	debug.FreeOSMemory()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return memStats{heap: m.HeapInuse, stack: m.StackInuse, sys: m.Sys - m.HeapReleased, rss: vmRSS(), goroutines: runtime.NumGoroutine()}
}

func vmRSS() uint64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.ParseUint(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb * 1024
		}
	}
	return 0
}

// memClient is the child process (run from TestMain): it opens the
// connections, reads each handshake, prints READY and holds them until
// stdin closes.
func memClient(addr string) error {
	n, _ := strconv.Atoi(os.Getenv("HERALD_MEMTEST_N"))
	if err := setNoFile(uint64(n) + 1000); err != nil {
		return err
	}
	conns := make([]net.Conn, 0, n)
	for i := 0; i < n; i++ {
		nc, err := net.Dial("tcp", addr)
		if err != nil {
			return fmt.Errorf("dial %d: %w", i, err)
		}
		_, _ = io.WriteString(nc, upgradeRequest("/app/key?protocol=7"))
		br := bufio.NewReaderSize(nc, 512)
		resp, err := http.ReadResponse(br, nil)
		if err != nil || resp.StatusCode != 101 {
			return fmt.Errorf("upgrade %d: %v", i, err)
		}
		if _, err := decodeFrame(br); err != nil {
			return fmt.Errorf("established %d: %w", i, err)
		}
		conns = append(conns, nc)
	}
	fmt.Println("READY")
	_, _ = io.Copy(io.Discard, os.Stdin)
	for _, c := range conns {
		_ = c.Close()
	}
	return nil
}
