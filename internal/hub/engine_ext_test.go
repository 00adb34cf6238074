package hub_test

import (
	"time"

	"github.com/herald-ws/herald/internal/cluster/memory"
	"github.com/herald-ws/herald/internal/hub"
)

func init() {
	hub.SetMemoryEngine(func(now func() time.Time) (hub.State, hub.Broker) { return memory.New(now) })
}
