package server

import (
	"net"
	"time"

	"github.com/herald-ws/herald/internal/transport"
)

// handOffSettle is how long a node that handed over waits before it
// drains: the connections it accepted just before it stopped accepting
// get their requests read and answered, and HTTP clients that keep
// connections alive make their last request here (answered with
// Connection: close) and their next one to the new process.
const handOffSettle = 250 * time.Millisecond

// handOff stops accepting on every listener once a new process holds the
// same sockets and serves: new connections and requests go to it, none is
// refused. The WebSocket clients are drained afterwards (by Run), so that
// each one that reconnects reaches the new process.
func (s *Server) handOff() {
	s.log.Info("handing over to the new process: no longer accepting")
	s.handedOff.Store(true)
	s.ready.Store(false)
	s.ws.StopAccepting()
	// Scrapes and ACME challenges go to the new process from now on.
	if s.metricsSrv != nil {
		s.metricsSrv.SetKeepAlivesEnabled(false)
		s.metricsLn.(*transport.StoppableListener).Stop()
	}
	if s.acme.srv != nil {
		s.acme.srv.SetKeepAlivesEnabled(false)
		s.acme.ln.(*transport.StoppableListener).Stop()
	}
	t := time.NewTimer(handOffSettle)
	defer t.Stop()
	<-t.C
}

// listen opens a listener of the node's own HTTP servers (metrics_addr,
// acme_http_addr) through WithListen's func, able to stop accepting at a
// hand-over while the server goes on serving what it accepted.
func (s *Server) listen(addr string) (net.Listener, error) {
	ln, err := s.opts.listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	return transport.NewStoppableListener(ln), nil
}
