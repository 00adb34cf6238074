package memory_test

import (
	"testing"

	"github.com/herald-ws/herald/internal/cluster/enginetest"
	"github.com/herald-ws/herald/internal/cluster/memory"
)

func TestMemoryEngineContract(t *testing.T) {
	enginetest.Run(t, func(t *testing.T, n int) []enginetest.Node {
		c := memory.NewCluster(nil)
		out := make([]enginetest.Node, n)
		for i := range out {
			b := c.NewBroker()
			t.Cleanup(func() { b.Close() })
			out[i] = enginetest.Node{State: c.State(), Broker: b, History: c.History()}
		}
		return out
	})
}
