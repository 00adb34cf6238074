//go:build !linux

package loadtest

import (
	"errors"
	"syscall"
)

func bindAddressNoPort(network, address string, c syscall.RawConn) error { return nil }

func raiseFileLimit() (uint64, error) {
	return 0, errors.New("raising the open-file limit is only supported on Linux")
}

func selfCPUSeconds() float64 { return 0 }

func delayAck(fd uintptr) {}
