package server

import (
	"net"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/herald-ws/herald/internal/transport"
)

// Option adjusts a node beyond what its Config says.
type Option func(*options)

type options struct {
	registerer prometheus.Registerer
	listen     func(network, addr string) (net.Listener, error)
	handOff    <-chan struct{}
	relay      <-chan net.Conn
}

// WithRegisterer registers the webhook metrics (herald_webhook_*) on reg
// instead of the node's own registry (the one /metrics serves). The node
// never uses the global default registry.
func WithRegisterer(reg prometheus.Registerer) Option {
	return func(o *options) { o.registerer = reg }
}

// WithListen opens every listener of the node (the main port, metrics_addr,
// acme_http_addr) with listen instead of net.Listen. A restart in place
// passes one that returns the sockets inherited from the previous process
// and hands them on to the next (cmd/herald uses tableflip's).
func WithListen(listen func(network, addr string) (net.Listener, error)) Option {
	return func(o *options) { o.listen = listen }
}

// ListenTCP opens a listener as the node opens its own when no WithListen
// is given: accepted sockets inherit the node's TCP keep-alive from the
// listening socket, instead of four system calls per connection. A
// WithListen function opens its new listeners with it.
func ListenTCP(network, addr string) (net.Listener, error) {
	return transport.Listen(network, addr)
}

// WithHandOff makes Run hand its clients over when handOff is closed: the
// next process then holds the same listening sockets and serves, so this
// one stops accepting on all of them (nothing is refused: the sockets stay
// open in the other process), turns /ready false, asks HTTP clients to
// close kept-alive connections, and drains its WebSocket clients with 4200
// as on shutdown; they reconnect to the new process at once.
func WithHandOff(handOff <-chan struct{}) Option {
	return func(o *options) { o.handOff = handOff }
}
