package cluster

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"testing"

	"github.com/herald-ws/herald/internal/cluster/enginetest"
)

func TestMain(m *testing.M) {
	RouteRedisLogs(slog.New(slog.DiscardHandler))
	if os.Getenv("HERALD_CLUSTER_CHILD") != "" {
		os.Exit(childNode())
	}
	code := m.Run()
	stopShared()
	os.Exit(code)
}

// childNode is a node in a process of its own (TestKillNineProcess): it
// records a presence member and a socket, says "ready", and waits to be
// killed.
func childNode() int {
	o := testOptions(testRedis, os.Getenv("HERALD_CLUSTER_CHILD"))
	n, err := NewNode(o)
	if err == nil {
		err = n.Start()
	}
	ctx := context.Background()
	if err == nil {
		_, err = n.State().Subscribe(ctx, "app", "presence-k", "9.1", enginetest.Member("child-user"), 0)
	}
	if err == nil {
		_, err = n.State().Subscribe(ctx, "app", "room", "9.2", nil, 0)
	}
	if err != nil {
		fmt.Println("error:", err)
		return 1
	}
	fmt.Println("ready", n.ID())
	select {}
}
