package cluster

import (
	"testing"
	"time"

	"github.com/herald-ws/herald/internal/cluster/enginetest"
	"github.com/herald-ws/herald/internal/testwait"
)

func TestRedisEngineContract(t *testing.T) {
	enginetest.Run(t, func(t *testing.T, n int) []enginetest.Node {
		p := testPrefix(t)
		out := make([]enginetest.Node, n)
		for i := range out {
			e, err := NewEngine(BrokerOptions{Options: testOptions(testRedis, p)})
			if err != nil {
				t.Fatal(err)
			}
			if err := e.Node.Start(); err != nil {
				t.Fatalf("start: %v", err)
			}
			t.Cleanup(func() {
				e.Broker.Close()
				e.Node.Close()
			})
			testwait.For(t, 3*time.Second, "broker up", func() bool { return e.Broker.Healthy() == nil })
			out[i] = enginetest.Node{State: e.State(), Broker: e, History: e.History()}
		}
		return out
	})
}
