package cluster

import (
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/herald-ws/herald/internal/cluster/enginetest"
)

func TestRedisEngineContract(t *testing.T) {
	runContract(t, redisOpts(testRedis), testPrefix)
}

// The suite against a primary found through Redis Sentinel.
func TestRedisEngineContractSentinel(t *testing.T) {
	runContract(t, sharedSentinel(t).Options(), func(testing.TB) string { return freshPrefix() })
}

// The suite against a 3-shard Redis Cluster: every script and pipeline
// stays within one slot (Redis answers CROSSSLOT otherwise) and pub/sub is
// sharded.
func TestRedisEngineContractCluster(t *testing.T) {
	runContract(t, sharedCluster(t).Options(), func(testing.TB) string { return freshPrefix() })
}

func runContract(t *testing.T, ro *redis.UniversalOptions, prefix func(testing.TB) string) {
	enginetest.Run(t, func(t *testing.T, n int) []enginetest.Node {
		p := prefix(t)
		out := make([]enginetest.Node, n)
		for i := range out {
			e := startEngine(t, testOptionsOn(ro, p), "", nil)
			out[i] = enginetest.Node{State: e.State(), Broker: e, History: e.History()}
		}
		return out
	})
}
