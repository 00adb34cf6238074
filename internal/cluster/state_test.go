package cluster

import (
	"testing"

	"github.com/herald-ws/herald/internal/cluster/statetest"
	"github.com/herald-ws/herald/internal/hub"
)

func TestMemoryStateContract(t *testing.T) {
	statetest.Run(t, func(t *testing.T) hub.State { return hub.NewMemoryState(nil) })
	statetest.RunCluster(t, func(t *testing.T, n int) []hub.State {
		s := hub.NewMemoryState(nil)
		out := make([]hub.State, n)
		for i := range out {
			out[i] = s
		}
		return out
	})
}

func TestRedisStateContract(t *testing.T) {
	statetest.Run(t, func(t *testing.T) hub.State {
		return startNode(t, testOptions(testRedis, testPrefix(t))).State()
	})
	statetest.RunCluster(t, func(t *testing.T, n int) []hub.State {
		p := testPrefix(t)
		out := make([]hub.State, n)
		for i := range out {
			out[i] = startNode(t, testOptions(testRedis, p)).State()
		}
		return out
	})
}
