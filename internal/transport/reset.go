package transport

import "net"

// discardUnsent makes the next close of nc reset the connection (SO_LINGER
// 0) instead of leaving what the kernel could not send yet to drain.
//
// A connection force-closed because its client stopped reading would
// otherwise stay in the kernel after close (FIN-WAIT-1) with up to the
// socket's send buffer, several MB with autotuning, trickled out for as
// long as the client keeps its window nearly shut: memory outside every
// bound of ours, per silent client. Nothing of it would be read anyway.
func discardUnsent(nc net.Conn) {
	raw := rawConn(nc)
	if raw == nil {
		return
	}
	// The engine closes the fd under this lock, so the fd is still ours
	// while it is held (never a reused descriptor of another socket).
	raw.Lock()
	defer raw.Unlock()
	if closed, _ := raw.IsClosed(); !closed {
		_ = raw.SetLinger(1, 0)
	}
}
