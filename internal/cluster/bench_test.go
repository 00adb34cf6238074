package cluster

import (
	"context"
	"encoding/binary"
	"fmt"
	"net"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/herald-ws/herald/internal/cluster/enginetest"
	"github.com/herald-ws/herald/internal/hub"
	"github.com/herald-ws/herald/internal/protocol"
	"github.com/redis/go-redis/v9"
)

// countHook counts the Redis commands and round trips of a client.
type countHook struct{ cmds, trips atomic.Int64 }

func (h *countHook) DialHook(next redis.DialHook) redis.DialHook {
	return func(ctx context.Context, network, addr string) (net.Conn, error) { return next(ctx, network, addr) }
}

func (h *countHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		h.cmds.Add(1)
		h.trips.Add(1)
		return next(ctx, cmd)
	}
}

func (h *countHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		h.cmds.Add(int64(len(cmds)))
		h.trips.Add(1)
		return next(ctx, cmds)
	}
}

func (h *countHook) report(b *testing.B, ops int) {
	b.ReportMetric(float64(h.cmds.Load())/float64(ops), "cmds/op")
	b.ReportMetric(float64(h.trips.Load())/float64(ops), "roundtrips/op")
}

// BenchmarkStateSubscribe measures one Subscribe and one Unsubscribe (a
// pair per op) on a channel that keeps other subscribers.
func BenchmarkStateSubscribe(b *testing.B) {
	for _, presence := range []bool{false, true} {
		name := "public"
		if presence {
			name = "presence"
		}
		b.Run(name, func(b *testing.B) {
			n := startNode(b, testOptions(testRedis, testPrefix(b)))
			s := n.State()
			ctx := context.Background()
			ch := "room"
			if presence {
				ch = "presence-room"
			}
			member := func(i int) *protocol.Member {
				if !presence {
					return nil
				}
				return enginetest.Member(fmt.Sprint(i % 50))
			}
			for i := range 100 { // a populated channel, 50 users
				if _, err := s.Subscribe(ctx, "app", ch, fmt.Sprintf("0.%d", i), member(i), 0); err != nil {
					b.Fatal(err)
				}
			}
			h := &countHook{}
			n.Client().AddHook(h)
			b.ResetTimer()
			for i := range b.N {
				id := fmt.Sprintf("1.%d", i)
				if _, err := s.Subscribe(ctx, "app", ch, id, member(i), 0); err != nil {
					b.Fatal(err)
				}
				if _, err := s.Unsubscribe(ctx, "app", ch, id); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			h.report(b, b.N)
		})
	}
}

// BenchmarkBrokerPublish publishes from one node to another that has
// interest, and reports the publish→delivery latency.
func BenchmarkBrokerPublish(b *testing.B) {
	for _, parallel := range []bool{false, true} {
		name := "serial"
		if parallel {
			name = "parallel"
		}
		b.Run(name, func(b *testing.B) {
			o := testOptions(testRedis, testPrefix(b))
			var lat []time.Duration
			var got atomic.Int64
			done := make(chan struct{}, 1)
			var want atomic.Int64
			rx := startBroker(b, o, "B", func(m hub.BrokerMessage) {
				lat = append(lat, time.Duration(time.Now().UnixNano()-int64(binary.LittleEndian.Uint64(m.Payload))))
				if got.Add(1) == want.Load() {
					done <- struct{}{}
				}
			})
			tx := startBroker(b, o, "A", func(hub.BrokerMessage) {})
			ctx := context.Background()
			if err := rx.Interest(ctx, "app", "room", true); err != nil {
				b.Fatal(err)
			}
			h := &countHook{}
			tx.rdb.AddHook(h)
			want.Store(int64(b.N))
			payload := func() []byte {
				p := make([]byte, 100)
				binary.LittleEndian.PutUint64(p, uint64(time.Now().UnixNano()))
				return p
			}
			b.ResetTimer()
			if parallel {
				b.SetParallelism(16)
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						if err := tx.Publish(ctx, hub.BrokerMessage{AppID: "app", Channel: "room", Payload: payload()}); err != nil {
							b.Error(err)
							return
						}
					}
				})
			} else {
				for range b.N {
					if err := tx.Publish(ctx, hub.BrokerMessage{AppID: "app", Channel: "room", Payload: payload()}); err != nil {
						b.Fatal(err)
					}
				}
			}
			select {
			case <-done:
			case <-time.After(10 * time.Second):
				b.Fatalf("%d of %d delivered", got.Load(), b.N)
			}
			b.StopTimer()
			h.report(b, b.N)
			slices.Sort(lat)
			b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
			b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
		})
	}
}

// BenchmarkRedisPublishBaseline is a bare go-redis PUBLISH, to compare.
func BenchmarkRedisPublishBaseline(b *testing.B) {
	c := redis.NewClient(&redis.Options{Addr: testRedis})
	defer c.Close()
	ctx := context.Background()
	p := make([]byte, 100)
	for range b.N {
		if err := c.Publish(ctx, "herald-test:baseline", p).Err(); err != nil {
			b.Fatal(err)
		}
	}
}
