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
)

// TestMemoryPerConnection is a measurement, not an assertion: it opens
// HERALD_MEMTEST idle connections (e.g. 10000) from a child process to a
// Server in this process and logs the server's heap and RSS per
// connection. Run with
//
//	HERALD_MEMTEST=10000 go test -run MemoryPerConnection -v ./internal/transport/
func TestMemoryPerConnection(t *testing.T) {
	if addr := os.Getenv("HERALD_MEMTEST_CLIENT"); addr != "" {
		memClient(t, addr)
		return
	}
	n, _ := strconv.Atoi(os.Getenv("HERALD_MEMTEST"))
	if n <= 0 {
		t.Skip("set HERALD_MEMTEST=<connections> to measure")
	}
	raiseNoFile(t, uint64(n)+1000)
	fs := newFakeSessions()
	fs.msgCap = 0 // the fake session stays small (~150 B)
	s := startServer(t, Config{}, fs)
	go func() { // the fake hub keeps its sessions; drain the notifications
		for range fs.opened {
		}
	}()

	before := memSnapshot()
	cmd := exec.Command(os.Args[0], "-test.run=^TestMemoryPerConnection$", "-test.v")
	cmd.Env = append(os.Environ(), "HERALD_MEMTEST_CLIENT="+s.Addr().String(), "HERALD_MEMTEST_N="+strconv.Itoa(n))
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
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
		t.Fatal("client process failed")
	}
	go func() { _, _ = io.Copy(io.Discard, stdout) }()
	deadline := time.Now().Add(30 * time.Second)
	for s.Connections() < n && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(500 * time.Millisecond) // let the last flushes and jobs finish
	after := memSnapshot()
	if f := os.Getenv("HERALD_MEMTEST_PROFILE"); f != "" {
		if w, err := os.Create(f); err == nil {
			_ = pprof.WriteHeapProfile(w)
			_ = w.Close()
		}
	}
	per := func(a, b uint64) float64 { return (float64(a) - float64(b)) / float64(n) }
	t.Logf("%d idle connections (server side only; clients in a child process)", s.Connections())
	t.Logf("heap in use: %.0f B/conn (HeapInuse %d -> %d)", per(after.heap, before.heap), before.heap, after.heap)
	t.Logf("stacks:      %.0f B/conn, goroutines %d -> %d", per(after.stack, before.stack), before.goroutines, after.goroutines)
	t.Logf("Go runtime:  %.0f B/conn (Sys %d -> %d)", per(after.sys, before.sys), before.sys, after.sys)
	t.Logf("RSS:         %.0f B/conn (VmRSS %d kB -> %d kB)", per(after.rss, before.rss), before.rss/1024, after.rss/1024)
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

// memClient is the child process: it opens the connections, reads each
// handshake, prints READY and holds them until stdin closes.
func memClient(t *testing.T, addr string) {
	n, _ := strconv.Atoi(os.Getenv("HERALD_MEMTEST_N"))
	raiseNoFile(t, uint64(n)+1000)
	conns := make([]net.Conn, 0, n)
	buf := make([]byte, 4096)
	for i := 0; i < n; i++ {
		nc, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatalf("dial %d: %v", i, err)
		}
		_, _ = io.WriteString(nc, upgradeRequest("/app/key?protocol=7"))
		br := bufio.NewReaderSize(nc, 512)
		resp, err := http.ReadResponse(br, nil)
		if err != nil || resp.StatusCode != 101 {
			t.Fatalf("upgrade %d: %v", i, err)
		}
		if _, err := decodeFrame(br); err != nil {
			t.Fatalf("established %d: %v", i, err)
		}
		conns = append(conns, nc)
	}
	_ = buf
	fmt.Println("READY")
	_, _ = io.Copy(io.Discard, os.Stdin)
	for _, c := range conns {
		_ = c.Close()
	}
}
