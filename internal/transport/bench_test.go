package transport

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/herald-ws/herald/internal/hub"
)

func BenchmarkTextFrame(b *testing.B) {
	for _, n := range []int{100, 1000, 70000} {
		p := bytes.Repeat([]byte{'x'}, n)
		b.Run(byteSize(n), func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(n))
			for b.Loop() {
				_ = TextFrame(p)
			}
		})
	}
}

func byteSize(n int) string { return fmt.Sprintf("%dB", n) }

// BenchmarkSendFanout sends one 100-byte-payload frame to 1,000 live
// loopback connections per op; the timer covers the delivery of every byte.
// ns/op is per fan-out of 1,000; ns/delivery and deliveries/cpu-s are
// derived from it and from this process's CPU time (getrusage).
//
//   - paced: each fan-out is delivered before the next starts (no
//     coalescing possible: one write per frame and connection);
//   - burst: fan-outs are queued back to back, so frames pile up and go
//     out several per write.
//
// The clients run in a child process, so the CPU counted is the server's
// alone (the in-process variants, "inproc", include the clients' reads).
func BenchmarkSendFanout(b *testing.B) {
	b.Run("paced", func(b *testing.B) { benchFanout(b, true, false, false) })
	b.Run("burst", func(b *testing.B) { benchFanout(b, false, false, false) })
	b.Run("paced-inproc", func(b *testing.B) { benchFanout(b, true, true, false) })
	b.Run("burst-inproc", func(b *testing.B) { benchFanout(b, false, true, false) })
	// stamped: metrics on, every frame stamped as the hub does, so each
	// write also reads the clock and observes a delivery latency.
	b.Run("paced-stamped", func(b *testing.B) { benchFanout(b, true, false, true) })
	b.Run("burst-stamped", func(b *testing.B) { benchFanout(b, false, false, true) })
}

// nopMetrics counts nothing, for benchmarks.
type nopMetrics struct{}

func (nopMetrics) App(string) AppMetrics { return nopApp{} }

type nopApp struct{}

func (nopApp) Opened()                       {}
func (nopApp) Closed(int)                    {}
func (nopApp) Refused(int)                   {}
func (nopApp) SlowConsumer()                 {}
func (nopApp) BytesIn(int)                   {}
func (nopApp) BytesOut(int)                  {}
func (nopApp) DeliveryLatency(time.Duration) {}

const fanoutConns = 1000

func benchFanout(b *testing.B, paced, inproc, stamped bool) {
	raiseNoFile(b, 4*fanoutConns+1000)
	fs := newFakeSessions()
	fs.msgCap = 0
	cfg := Config{WriteQueueBytes: 64 << 20}
	if stamped {
		cfg.Metrics = nopMetrics{}
	}
	s := startServer(b, cfg, fs)
	addr := s.Addr().String()

	frame := TextFrame(bytes.Repeat([]byte{'x'}, 100))
	var received atomic.Int64
	var stop func()
	if inproc {
		stop = inprocClients(b, addr, &received)
	} else {
		stop = childClients(b, addr, &received)
	}
	defer stop()
	sessions := make([]hub.Conn, fanoutConns)
	for i := range sessions {
		sessions[i] = fs.next(b).conn
	}
	waitFor := func(want int64) {
		for received.Load() < want {
			time.Sleep(20 * time.Microsecond)
		}
	}
	waitFor(int64(fanoutConns * len(TextFrame(establishedJSON))))
	b.ReportAllocs()
	cpu0 := processCPU()
	b.ResetTimer()
	want := received.Load()
	for b.Loop() {
		var at int64
		if stamped {
			at = int64(time.Since(s.cfg.Epoch)) // once per fanout, as the hub does
		}
		for _, c := range sessions {
			c.Send(frame, at)
		}
		want += fanoutConns * int64(len(frame))
		if paced {
			waitFor(want)
		}
	}
	waitFor(want)
	b.StopTimer()
	cpu := processCPU() - cpu0
	deliveries := float64(b.N) * fanoutConns
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/deliveries, "ns/delivery")
	b.ReportMetric(deliveries/cpu.Seconds(), "deliveries/cpu-s")
}

// inprocClients connects the clients from this process.
func inprocClients(b *testing.B, addr string, received *atomic.Int64) func() {
	var wg sync.WaitGroup
	clients := make([]net.Conn, fanoutConns)
	for i := range clients {
		c := dialWS(b, addr, "/app/key")
		_ = c.nc.SetDeadline(time.Time{})
		clients[i] = c.nc
		wg.Add(1)
		go func(r io.Reader) {
			defer wg.Done()
			buf := make([]byte, 64<<10)
			for {
				n, err := r.Read(buf)
				received.Add(int64(n))
				if err != nil {
					return
				}
			}
		}(c.br)
	}
	return func() {
		for _, c := range clients {
			_ = c.Close()
		}
		wg.Wait()
	}
}

// childClients connects the clients from a child process, which reports
// the bytes it received on its stdout.
func childClients(b *testing.B, addr string, received *atomic.Int64) func() {
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "HERALD_FANOUT_CLIENT="+addr)
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if v, ok := strings.CutPrefix(sc.Text(), "T "); ok {
				n, _ := strconv.ParseInt(v, 10, 64)
				received.Store(n)
			}
		}
	}()
	return func() {
		_ = stdin.Close()
		_ = cmd.Wait()
		<-done
	}
}

// TestMain runs the test binary as the client process of
// BenchmarkSendFanout when started with HERALD_FANOUT_CLIENT, so that the
// benchmark counts the server's CPU only.
func TestMain(m *testing.M) {
	if addr := os.Getenv("HERALD_FANOUT_CLIENT"); addr != "" {
		if err := fanoutClient(addr); err != nil {
			fmt.Fprintln(os.Stderr, "fanout client:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	if addr := os.Getenv("HERALD_MEMTEST_CLIENT"); addr != "" {
		if err := memClient(addr); err != nil {
			fmt.Fprintln(os.Stderr, "memory client:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// fanoutClient opens fanoutConns WebSocket connections to addr, counts the
// bytes they receive on stdout and exits when stdin closes.
func fanoutClient(addr string) error {
	if err := setNoFile(4*fanoutConns + 1000); err != nil {
		return err
	}
	var total atomic.Int64
	conns := make([]net.Conn, fanoutConns)
	for i := range conns {
		nc, err := net.Dial("tcp", addr)
		if err != nil {
			return err
		}
		conns[i] = nc
		_, _ = io.WriteString(nc, upgradeRequest("/app/key"))
		br := bufio.NewReader(nc)
		resp, err := http.ReadResponse(br, nil)
		if err != nil || resp.StatusCode != 101 {
			return fmt.Errorf("upgrade: %v", err)
		}
		go func() {
			buf := make([]byte, 64<<10)
			for {
				n, err := br.Read(buf)
				total.Add(int64(n))
				if err != nil {
					return
				}
			}
		}()
	}
	go func() {
		last := int64(-1)
		w := bufio.NewWriter(os.Stdout)
		for {
			if n := total.Load(); n != last {
				last = n
				fmt.Fprintf(w, "T %d\n", n)
				_ = w.Flush()
			}
			time.Sleep(50 * time.Microsecond)
		}
	}()
	_, _ = io.Copy(io.Discard, os.Stdin)
	for _, c := range conns {
		_ = c.Close()
	}
	return nil
}

func raiseNoFile(tb testing.TB, n uint64) {
	if err := setNoFile(n); err != nil {
		tb.Fatal(err)
	}
}
