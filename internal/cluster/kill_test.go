package cluster

import (
	"bufio"
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/herald-ws/herald/internal/testwait"
)

// A node in another process is killed with SIGKILL: the survivor removes
// its entries and reports its presence user gone.
func TestKillNineProcess(t *testing.T) {
	p := testPrefix(t)
	ctx := context.Background()
	var log reapLog
	o := testOptions(testRedis, p)
	survivor := startNode(t, o, recv{depart: log.add})
	if _, err := survivor.State().Subscribe(ctx, "app", "room", "1.1", nil, 0); err != nil {
		t.Fatal(err)
	}

	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "HERALD_CLUSTER_CHILD="+p)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		cmd.Process.Kill()
		cmd.Wait()
	}()
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "ready ") {
		t.Fatalf("child: %q %v", line, err)
	}
	child := strings.TrimSpace(strings.TrimPrefix(line, "ready "))
	if c, _ := survivor.State().Channel(ctx, "app", "room"); c.SubscriptionCount != 2 {
		t.Fatalf("room %+v", c)
	}

	if err := cmd.Process.Signal(os.Kill); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	killed := time.Now()
	testwait.For(t, 3*time.Second, "the reap", func() bool { return len(log.all()) > 0 })
	t.Logf("child %s cleaned up %v after SIGKILL (lease %v)", child, time.Since(killed), o.Lease)
	reps := log.all()
	if len(reps) != 1 || reps[0].Node != child {
		t.Fatalf("reports %+v", reps)
	}
	var gone []string
	for _, c := range reps[0].Channels {
		for _, m := range c.Gone {
			gone = append(gone, c.Channel+"/"+m.ID)
		}
	}
	if len(gone) != 1 || gone[0] != "presence-k/child-user" {
		t.Fatalf("gone %v", gone)
	}
	if c, _ := survivor.State().Channel(ctx, "app", "room"); c.SubscriptionCount != 1 {
		t.Fatalf("room after the kill %+v", c)
	}
	if chs, _ := survivor.State().Channels(ctx, "app", "presence-"); len(chs) != 0 {
		t.Fatalf("presence channels left %+v", chs)
	}
}
