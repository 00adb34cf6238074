package transport

import (
	"testing"
)

// BenchmarkConnLifecycle is one churn cycle as `herald-bench churn` runs
// it, over loopback, in this process: connect, upgrade, read
// connection_established, send a message and read its reply, send a close
// frame and drop the socket. ns/op and allocs/op include the client's
// share; compare builds with `-count 6` and benchstat (the server's part
// of a cycle: what a change of the server moves).
func BenchmarkConnLifecycle(b *testing.B) {
	raiseNoFile(b, 4096)
	fs := newFakeSessions()
	fs.echo = true
	s := startServer(b, Config{}, fs)
	addr := s.Addr().String()
	msg := []byte(`{"event":"pusher:subscribe","data":{"channel":"c"}}`)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		c := dialWS(b, addr, "/app/key")
		if c.readText() == "" {
			b.Fatal("no connection_established")
		}
		fs.next(b) // the sessions' channel is bounded
		c.writeFrame(true, opText, msg)
		if c.readText() != string(msg) {
			b.Fatal("no reply")
		}
		c.writeFrame(true, opClose, []byte{0x03, 0xe8})
		_ = c.nc.Close()
	}
}

// TestConnLifecycleAllocs bounds the allocations of BenchmarkConnLifecycle's
// cycle, client included: 158 at 3a14d0c, 149 with the raw accept path's
// three and the remote address's one gone (TestRawAcceptAllocs), 137 with
// the upgrade request's header names taken from a table and its first
// values in one array (third_party/README.md). The bound leaves a margin
// for the race detector's own.
func TestConnLifecycleAllocs(t *testing.T) {
	raiseNoFile(t, 4096)
	fs := newFakeSessions()
	fs.echo = true
	s := startServer(t, Config{}, fs)
	addr := s.Addr().String()
	msg := []byte(`{"event":"pusher:subscribe","data":{"channel":"c"}}`)
	cycle := func() {
		c := dialWS(t, addr, "/app/key")
		if c.readText() == "" {
			t.Fatal("no connection_established")
		}
		fs.next(t)
		c.writeFrame(true, opText, msg)
		if c.readText() != string(msg) {
			t.Fatal("no reply")
		}
		c.writeFrame(true, opClose, []byte{0x03, 0xe8})
		_ = c.nc.Close()
	}
	cycle() // warm the pools and the workers
	if n := minAllocsPerRun(3, 100, cycle); n > 145 {
		t.Errorf("%.0f allocations per connection cycle, want at most 145", n)
	}
}

// minAllocsPerRun is the least of rounds testing.AllocsPerRun(runs, f): a
// count only grows with what other goroutines allocate meanwhile (a
// previous test's server winding down, timers that fired late after the
// process was stopped), so the least is f's own.
func minAllocsPerRun(rounds, runs int, f func()) float64 {
	least := testing.AllocsPerRun(runs, f)
	for range rounds - 1 {
		least = min(least, testing.AllocsPerRun(runs, f))
	}
	return least
}
