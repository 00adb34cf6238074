package transport

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
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
// loopback connections per op, with client goroutines draining the
// sockets; the timer covers the delivery of every byte. ns/op is per
// fan-out of 1,000. ns/delivery and deliveries/cpu-s are derived; the CPU
// time includes the clients' reads, which run in the same process.
//
//   - paced: each fan-out is delivered before the next starts (no
//     coalescing possible: one write per frame and connection);
//   - burst: fan-outs are queued back to back, so frames pile up and go
//     out several per write.
func BenchmarkSendFanout(b *testing.B) {
	b.Run("paced", func(b *testing.B) { benchFanout(b, true) })
	b.Run("burst", func(b *testing.B) { benchFanout(b, false) })
}

func benchFanout(b *testing.B, paced bool) {
	const conns = 1000
	raiseNoFile(b, 4*conns+1000)
	fs := newFakeSessions()
	s := startServer(b, Config{WriteQueueBytes: 64 << 20}, fs)
	addr := s.Addr().String()

	frame := TextFrame(bytes.Repeat([]byte{'x'}, 100))
	var received atomic.Int64
	var wg sync.WaitGroup
	clients := make([]net.Conn, conns)
	sessions := make([]Conn, conns)
	for i := range clients {
		c := dialWS(b, addr, "/app/key")
		_ = c.readText()
		_ = c.nc.SetReadDeadline(time.Time{})
		clients[i] = c.nc
		sessions[i] = fs.next(b).conn
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
	waitFor := func(want int64) {
		for received.Load() < want {
			time.Sleep(20 * time.Microsecond)
		}
	}
	b.ReportAllocs()
	var ru0, ru1 syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru0)
	b.ResetTimer()
	want := received.Load()
	for b.Loop() {
		for _, c := range sessions {
			c.Send(frame)
		}
		want += conns * int64(len(frame))
		if paced {
			waitFor(want)
		}
	}
	waitFor(want)
	b.StopTimer()
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru1)
	cpu := time.Duration(ru1.Utime.Nano() + ru1.Stime.Nano() - ru0.Utime.Nano() - ru0.Stime.Nano())
	deliveries := float64(b.N) * conns
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/deliveries, "ns/delivery")
	b.ReportMetric(deliveries/cpu.Seconds(), "deliveries/cpu-s")
	for _, c := range clients {
		_ = c.Close()
	}
	wg.Wait()
}

func raiseNoFile(tb testing.TB, n uint64) {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		tb.Fatal(err)
	}
	if rl.Cur >= n {
		return
	}
	rl.Cur = min(n, rl.Max)
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		tb.Fatal(err)
	}
}
