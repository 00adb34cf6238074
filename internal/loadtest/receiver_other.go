//go:build !linux

package loadtest

import (
	"errors"
	"syscall"
)

// epollReceiver exists on Linux only; elsewhere every connection keeps its
// own reader goroutine.
type epollReceiver struct{}

type rconn struct{}

func newEpollReceiver() (*epollReceiver, error) {
	return nil, errors.New("the epoll reader is only available on Linux")
}

func (r *epollReceiver) add(*client, syscall.Conn, func(error)) error {
	return errors.New("the epoll reader is only available on Linux")
}

func (r *epollReceiver) stop() {}

func (rc *rconn) sendText([]byte) error { return errors.New("unreachable") }

func (rc *rconn) sendClose(int) {}
