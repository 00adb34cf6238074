package hub

import "time"

// newMemoryEngine builds the memory engine (internal/cluster/memory) for
// this package's tests. That package imports hub, so only an external test
// file can reach it: engine_ext_test.go sets this before any test runs.
var newMemoryEngine func(now func() time.Time) (State, Broker)

// newMemoryState returns a memory State on clock now.
func newMemoryState(now func() time.Time) State {
	s, _ := newMemoryEngine(now)
	return s
}

// SetMemoryEngine is how engine_ext_test.go hands newMemoryEngine over.
func SetMemoryEngine(f func(now func() time.Time) (State, Broker)) { newMemoryEngine = f }

// withMemoryEngine gives o the memory engine where it has none.
func withMemoryEngine(o Options) Options {
	if o.State == nil || o.Broker == nil {
		st, br := newMemoryEngine(o.Now)
		if o.State == nil {
			o.State = st
		}
		if o.Broker == nil {
			o.Broker = br
		}
	}
	return o
}
