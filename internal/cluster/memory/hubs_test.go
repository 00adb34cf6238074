package memory_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/herald-ws/herald/internal/apps"
	"github.com/herald-ws/herald/internal/cluster/enginetest"
	"github.com/herald-ws/herald/internal/cluster/memory"
	"github.com/herald-ws/herald/internal/hub"
	"github.com/herald-ws/herald/internal/testwait"
)

// conn is a hub.Conn that keeps what it is sent.
type conn struct {
	mu     sync.Mutex
	frames []string
}

func (c *conn) Send(frame []byte, _ int64) bool {
	c.mu.Lock()
	c.frames = append(c.frames, string(frame))
	c.mu.Unlock()
	return true
}

func (c *conn) Close(int, string) {}
func (c *conn) Bind(string)       {}

// waitFor waits for a frame containing all of parts.
func (c *conn) waitFor(t *testing.T, parts ...string) {
	t.Helper()
	testwait.For(t, 5*time.Second, strings.Join(parts, " "), func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		for _, f := range c.frames {
			ok := true
			for _, p := range parts {
				ok = ok && strings.Contains(f, p)
			}
			if ok {
				return true
			}
		}
		return false
	})
}

func join(t *testing.T, h *hub.Hub, app *apps.App, channel, user string) (*hub.Client, *conn) {
	t.Helper()
	fc := &conn{}
	sess, err := h.Admit(context.Background(), fc, hub.ConnInfo{Key: app.Key})
	if err != nil {
		t.Fatal(err)
	}
	c := sess.(*hub.Client)
	enginetest.Subscribe(c, app, channel, user)
	fc.waitFor(t, "subscription_succeeded", channel)
	return c, fc
}

// Two hubs on one memory Cluster are two nodes of one cluster, without
// Redis: presence and events cross between them.
func TestHubsShareAMemoryCluster(t *testing.T) {
	app := apps.Defaults()
	app.ID, app.Key, app.Secret = "1", "key", "secret"
	store, err := apps.NewStatic([]apps.App{app})
	if err != nil {
		t.Fatal(err)
	}
	a0, _ := store.ByID(context.Background(), "1")
	c := memory.NewCluster(nil)
	hubA := hub.New(hub.Options{State: c.State(), Broker: c.NewBroker(), Apps: store})
	hubB := hub.New(hub.Options{State: c.State(), Broker: c.NewBroker(), Apps: store})

	ca, fa := join(t, hubA, a0, "presence-room", "1")
	cb, fb := join(t, hubB, a0, "presence-room", "2")
	fb.waitFor(t, "subscription_succeeded", `\"count\":2`)
	fa.waitFor(t, "member_added", `\"user_id\":\"2\"`)

	if err := hubA.Publish(context.Background(), a0, hub.PublishRequest{Name: "ev", Channels: []string{"presence-room"}, Data: "hello"}); err != nil {
		t.Fatal(err)
	}
	fa.waitFor(t, `"event":"ev"`, "hello")
	fb.waitFor(t, `"event":"ev"`, "hello")

	cb.Closed()
	fa.waitFor(t, "member_removed", `\"user_id\":\"2\"`)
	ca.Closed()
	if info, err := hubB.Channel(context.Background(), a0, "presence-room"); err != nil || info.Occupied {
		t.Fatalf("after both left: %+v %v", info, err)
	}
}
