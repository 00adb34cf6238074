//go:build !linux

package transport

import "net"

// rawAcceptor is Linux only; elsewhere the listener's own Accept is used.
type rawAcceptor struct{}

func newRawAcceptor(net.Listener) *rawAcceptor { return nil }

func (*rawAcceptor) accept() (net.Conn, error) { return nil, net.ErrClosed }

func (*rawAcceptor) close() {}

type readinessWatcher interface {
	WatchReadable(fd int, fn func()) (stop func() error, err error)
}

func (*rawAcceptor) watch(readinessWatcher) {}
