//go:build !linux

package transport

import (
	"net"
	"time"
)

// listenConfig turns TCP keepalive on for every accepted socket (30 s
// idle, 15 s interval, 4 probes).
func listenConfig() net.ListenConfig {
	return net.ListenConfig{KeepAliveConfig: net.KeepAliveConfig{Enable: true, Idle: 30 * time.Second, Interval: 15 * time.Second, Count: 4}}
}
