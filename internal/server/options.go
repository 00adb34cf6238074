package server

import "github.com/prometheus/client_golang/prometheus"

// Option adjusts a node beyond what its Config says.
type Option func(*options)

type options struct {
	registerer prometheus.Registerer
}

// WithRegisterer registers the webhook metrics (herald_webhook_*) on reg
// instead of the node's own registry (the one /metrics serves). The node
// never uses the global default registry.
func WithRegisterer(reg prometheus.Registerer) Option {
	return func(o *options) { o.registerer = reg }
}
