package server

import "github.com/prometheus/client_golang/prometheus"

// Option adjusts a node beyond what its Config says.
type Option func(*options)

type options struct {
	registerer prometheus.Registerer
}

// WithRegisterer registers the node's Prometheus collectors on reg (so far
// the webhook metrics, herald_webhook_*). Without it the node registers
// none; it never uses the global default registry.
func WithRegisterer(reg prometheus.Registerer) Option {
	return func(o *options) { o.registerer = reg }
}
