//go:build !linux

package transport

import "net"

// listenConfig turns TCP keepalive on for every accepted socket (30 s
// idle, 15 s interval, 4 probes).
func listenConfig() net.ListenConfig {
	return net.ListenConfig{KeepAliveConfig: keepAlive()}
}

// hasKeepAlive: elsewhere the listener's own Accept sets it per socket, so
// the transport does too.
func hasKeepAlive(*net.TCPConn) bool { return false }
