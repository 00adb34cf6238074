package server

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/redis/go-redis/v9"

	"github.com/herald-ws/herald/internal/config"
	"github.com/herald-ws/herald/internal/protocol"
)

// clusterConfig points a node at the machine's Redis with a prefix of its
// own; a missing Redis fails the test (it never skips).
func clusterConfig(t *testing.T) func(*config.Config) {
	t.Helper()
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	prefix := "herald-test:" + hex.EncodeToString(b) + ":"
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:6379"})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if err := rdb.Ping(ctx).Err(); err != nil {
		t.Fatalf("Redis at 127.0.0.1:6379 is required: %v", err)
	}
	t.Cleanup(func() {
		ctx := context.Background()
		var cursor uint64
		for {
			keys, next, err := rdb.Scan(ctx, cursor, prefix+"*", 500).Result()
			if err != nil {
				break
			}
			if len(keys) > 0 {
				rdb.Del(ctx, keys...)
			}
			if cursor = next; cursor == 0 {
				break
			}
		}
		rdb.Close()
	})
	return func(c *config.Config) {
		c.RedisURL = "redis://127.0.0.1:6379/0"
		c.RedisPrefix = prefix
		c.SubscriptionCountInterval = 100 * time.Millisecond
	}
}

func subscribe(t *testing.T, c *websocket.Conn, channel, auth, channelData string) {
	t.Helper()
	msg := `{"event":"pusher:subscribe","data":{"channel":"` + channel + `","auth":"` + auth + `"`
	if channelData != "" {
		msg += `,"channel_data":` + string(protocol.AppendString(nil, channelData))
	}
	msg += "}}"
	if err := c.WriteMessage(websocket.TextMessage, []byte(msg)); err != nil {
		t.Fatal(err)
	}
}

// readUntil reads frames until one has the event wanted.
func readUntil(t *testing.T, c *websocket.Conn, event string) frame {
	t.Helper()
	for {
		f := read(t, c)
		if f.Event == event {
			return f
		}
	}
}

func socketID(t *testing.T, c *websocket.Conn) string {
	t.Helper()
	f := readUntil(t, c, protocol.EventConnectionEstablished)
	var s string
	_ = jsonUnmarshal(f.Data, &s)
	i := strings.Index(s, `"socket_id":"`) + len(`"socket_id":"`)
	return s[i : i+strings.Index(s[i:], `"`)]
}

func TestTwoNodesShareChannelsAndPresence(t *testing.T) {
	shared := clusterConfig(t)
	addrA, _ := startServer(t, shared)
	addrB, _ := startServer(t, shared)

	// A public subscriber on each node; an event published on A reaches both.
	ca := dial(t, addrA, "app-key")
	cb := dial(t, addrB, "app-key")
	socketID(t, ca)
	socketID(t, cb)
	subscribe(t, ca, "news", "", "")
	subscribe(t, cb, "news", "", "")
	readUntil(t, ca, protocol.EventSubscriptionSucceeded)
	readUntil(t, cb, protocol.EventSubscriptionSucceeded)
	if resp := publish(t, addrA, `{"name":"flash","channels":["news"],"data":"x"}`); resp.StatusCode != 200 {
		t.Fatalf("publish: %d", resp.StatusCode)
	}
	for _, c := range []*websocket.Conn{ca, cb} {
		if f := readUntil(t, c, "flash"); string(f.Data) != `"x"` {
			t.Fatalf("event data %s", f.Data)
		}
	}
	// The cluster-wide count reaches the subscriber on the other node (a
	// count of 1 may come first, sent before cb subscribed).
	for {
		f := readUntil(t, ca, protocol.EventSubscriptionCount)
		if strings.Contains(string(f.Data), `2`) {
			break
		}
		if !strings.Contains(string(f.Data), `1`) {
			t.Fatalf("subscription_count %s", f.Data)
		}
	}

	// Presence: a user on A, then one on B: B's roster lists both, A hears
	// member_added once.
	pa := dial(t, addrA, "app-key")
	ida := socketID(t, pa)
	da := `{"user_id":"ada"}`
	subscribe(t, pa, "presence-room", "app-key:"+protocol.Sign("app-secret", protocol.ChannelAuthString(ida, "presence-room", da)), da)
	readUntil(t, pa, protocol.EventSubscriptionSucceeded)
	pb := dial(t, addrB, "app-key")
	idb := socketID(t, pb)
	db := `{"user_id":"bob"}`
	subscribe(t, pb, "presence-room", "app-key:"+protocol.Sign("app-secret", protocol.ChannelAuthString(idb, "presence-room", db)), db)
	f := readUntil(t, pb, protocol.EventSubscriptionSucceeded)
	if !strings.Contains(string(f.Data), `ada`) || !strings.Contains(string(f.Data), `bob`) {
		t.Fatalf("roster on B misses a node's member: %s", f.Data)
	}
	if f := readUntil(t, pa, protocol.EventMemberAdded); !strings.Contains(string(f.Data), "bob") {
		t.Fatalf("member_added %s", f.Data)
	}
	// The HTTP API on B answers for users on both nodes.
	info := get(t, addrB, "/apps/app-id/channels/presence-room/users")
	if !strings.Contains(info, `"ada"`) || !strings.Contains(info, `"bob"`) {
		t.Fatalf("users on B: %s", info)
	}
	// Bob leaves: A hears member_removed.
	pb.Close()
	if f := readUntil(t, pa, protocol.EventMemberRemoved); !strings.Contains(string(f.Data), "bob") {
		t.Fatalf("member_removed %s", f.Data)
	}
}
