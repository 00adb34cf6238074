//go:build !linux

package transport

import "net"

// listenConfig turns TCP keepalive on for every accepted socket (30 s
// idle, 15 s interval, 4 probes).
func listenConfig() net.ListenConfig {
	return net.ListenConfig{KeepAliveConfig: keepAlive()}
}
