package server

import (
	"errors"
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/herald-ws/herald/internal/config"
	"github.com/herald-ws/herald/internal/protocol"
	"github.com/herald-ws/herald/internal/testwait"
)

// TestDrainSpreadsClosesOverTheWindow: on SIGTERM 2,000 connected clients
// are all closed with 4200, in batches spread over the drain window rather
// than at one instant; /ready turns 503 and new connections are refused
// while it runs; Run returns nil (the process exits 0).
func TestDrainSpreadsClosesOverTheWindow(t *testing.T) {
	const clients = 2000
	const timeout = 4 * time.Second // the window is 3/4 of it
	addr, stop := startServer(t, func(c *config.Config) {
		c.ShutdownTimeout = timeout
		c.IPConnectionsPerSecond = -1 // every client comes from 127.0.0.1
	})

	type closed struct {
		code int
		at   time.Time
	}
	results := make([]closed, clients)
	var wg sync.WaitGroup
	conns := make([]*websocket.Conn, clients)
	dialer := websocket.Dialer{HandshakeTimeout: 10 * time.Second, ReadBufferSize: 512, WriteBufferSize: 512}
	for i := range clients {
		c, _, err := dialer.Dial("ws://"+addr+"/app/app-key?protocol=7", nil)
		if err != nil {
			t.Fatalf("client %d: %v", i, err)
		}
		conns[i] = c
		t.Cleanup(func() { c.Close() })
		if _, _, err := c.ReadMessage(); err != nil { // connection_established
			t.Fatalf("client %d: %v", i, err)
		}
	}
	for i, c := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = c.SetReadDeadline(time.Now().Add(30 * time.Second))
			for {
				if _, _, err := c.ReadMessage(); err != nil {
					results[i].at = time.Now()
					var ce *websocket.CloseError
					if errors.As(err, &ce) {
						results[i].code = ce.Code
					}
					return
				}
			}
		}()
	}

	start := time.Now()
	errc := make(chan error, 1)
	go func() { errc <- stop() }()

	// While the drain runs: not ready, and a new client is turned away.
	testwait.For(t, 5*time.Second, "/ready to turn 503", func() bool {
		resp, err := http.Get("http://" + addr + "/ready")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusServiceUnavailable
	})
	if c, _, err := dialer.Dial("ws://"+addr+"/app/app-key?protocol=7", nil); err == nil {
		code := 0
		for {
			if _, _, err := c.ReadMessage(); err != nil {
				var ce *websocket.CloseError
				if errors.As(err, &ce) {
					code = ce.Code
				}
				break
			}
		}
		c.Close()
		if code != protocol.CodeReconnect {
			t.Fatalf("a connection made during the drain closed with %d, want 4200", code)
		}
	}

	wg.Wait()
	if err := <-errc; err != nil {
		t.Fatalf("Run returned %v, want nil (exit 0)", err)
	}
	total := time.Since(start)

	var times []time.Duration
	for i, r := range results {
		if r.code != protocol.CodeReconnect {
			t.Fatalf("client %d closed with %d, want 4200", i, r.code)
		}
		times = append(times, r.at.Sub(start))
	}
	slices.Sort(times)
	window := timeout * 3 / 4
	spread := times[len(times)-1] - times[0]
	// Closes in any tenth of the window: at most 30% of the clients.
	bucket := window / 10
	most := 0
	for i, j := 0, 0; i < len(times); i++ {
		for times[j] < times[i]-bucket {
			j++
		}
		most = max(most, i-j+1)
	}
	t.Logf("%d clients: first close %v, last %v (spread %v), at most %d in any %v; Run returned after %v",
		clients, times[0].Round(time.Millisecond), times[len(times)-1].Round(time.Millisecond), spread.Round(time.Millisecond), most, bucket, total.Round(time.Millisecond))
	if spread < window/3 {
		t.Fatalf("closes spread over %v, want at least a third of the %v window", spread, window)
	}
	if most > clients*3/10 {
		t.Fatalf("%d of %d clients closed within %v: not spread", most, clients, bucket)
	}
	if total > timeout+5*time.Second {
		t.Fatalf("Run took %v for a %v shutdown_timeout", total, timeout)
	}
}
