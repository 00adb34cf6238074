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
