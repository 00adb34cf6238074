package client_test

import (
	"context"
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/herald-ws/herald/sdk/client"
	"github.com/herald-ws/herald/sdk/internal/heraldtest"
)

// BenchmarkClientMemory holds many subscribed connections in this process
// (5,000, or $HERALD_SDK_BENCH_CONNS) against one herald and reports the
// memory each costs: Go heap, goroutine stacks and resident set, measured
// after a GC and divided by the number of connections.
//
//	cd sdk && go test -run '^$' -bench ClientMemory -benchtime 1x ./client/
func BenchmarkClientMemory(b *testing.B) {
	conns := 5000
	if v, err := strconv.Atoi(os.Getenv("HERALD_SDK_BENCH_CONNS")); err == nil && v > 0 {
		conns = v
	}
	n := heraldtest.Start(b, herald.Path(b), heraldtest.Options{})
	heap0, stack0, rss0 := memory(b)
	clients := make([]*client.Client, 0, conns)
	defer func() {
		for _, c := range clients {
			c.Close()
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	const batch = 250
	for i := 0; i < conns; i += batch {
		var chans []*client.Channel
		for j := i; j < i+batch && j < conns; j++ {
			c, err := client.New(heraldtest.Key, client.Options{Host: "127.0.0.1", Port: n.Port})
			if err != nil {
				b.Fatal(err)
			}
			clients = append(clients, c)
			ch := c.Subscribe("bench-" + strconv.Itoa(j%100))
			ch.Bind("tick", func(client.Event) {})
			chans = append(chans, ch)
			c.Connect()
		}
		for _, ch := range chans {
			if err := ch.WaitSubscribed(ctx); err != nil {
				b.Fatalf("%d connections up, then: %v", len(clients), err)
			}
		}
	}
	heap1, stack1, rss1 := memory(b)
	per := func(a, z uint64) float64 { return float64(int64(z)-int64(a)) / float64(conns) }
	b.ReportMetric(float64(conns), "conns")
	b.ReportMetric(per(heap0, heap1), "heap-B/conn")
	b.ReportMetric(per(stack0, stack1), "stack-B/conn")
	b.ReportMetric(per(rss0, rss1), "rss-B/conn")
	b.ReportMetric(float64(runtime.NumGoroutine())/float64(conns), "goroutines/conn")
}

// memory returns heap in use, stacks in use and the resident set, after a GC.
func memory(b *testing.B) (heap, stack, rss uint64) {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	raw, err := os.ReadFile("/proc/self/status")
	if err != nil {
		b.Fatalf("reading RSS: %v", err)
	}
	for _, l := range strings.Split(string(raw), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == "VmRSS:" {
			kb, _ := strconv.ParseUint(f[1], 10, 64)
			rss = kb * 1024
		}
	}
	return ms.HeapInuse, ms.StackInuse, rss
}
