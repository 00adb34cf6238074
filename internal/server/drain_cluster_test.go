package server

import (
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/herald-ws/herald/internal/config"
	"github.com/herald-ws/herald/internal/protocol"
	"github.com/herald-ws/herald/internal/testwait"
)

// TestDrainMovesClientsToTheOtherNode: two nodes share Redis; clients on
// node A are drained with 4200 and reconnect to node B (as a load balancer
// that dropped A would send them) while a backend publishes numbered events
// to B throughout. Each client receives, on A, an unbroken run of events
// up to its close, and on B an unbroken run from its new subscription to
// the last event: nothing published to the surviving node is lost or
// reordered on either side of the move, only the reconnect gap itself is
// not replayed (Pusher has no history). A exits cleanly.
func TestDrainMovesClientsToTheOtherNode(t *testing.T) {
	const clients = 300
	cc := clusterConfig(t)
	node := func(c *config.Config) {
		cc(c)
		c.ShutdownTimeout = 3 * time.Second
		c.IPConnectionsPerSecond = -1
	}
	_, addrA, stopA := startNode(t, node)
	_, addrB, _ := startNode(t, node)

	type record struct {
		onA, onB  []int
		closeCode int
		err       error
	}
	recs := make([]record, clients)
	dial := func(addr string) (*websocket.Conn, error) {
		c, _, err := websocket.DefaultDialer.Dial("ws://"+addr+"/app/app-key?protocol=7", nil)
		if err != nil {
			return nil, err
		}
		if _, _, err := c.ReadMessage(); err != nil { // connection_established
			c.Close()
			return nil, err
		}
		if err := subscribeTo(c, "news", ""); err != nil {
			c.Close()
			return nil, err
		}
		for {
			_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
			_, b, err := c.ReadMessage()
			if err != nil {
				c.Close()
				return nil, err
			}
			if strings.Contains(string(b), "subscription_succeeded") {
				return c, nil
			}
		}
	}
	// readSeqs appends the numbers of "seq" events until "end" or an error.
	readSeqs := func(c *websocket.Conn, into *[]int) (ended bool, err error) {
		for {
			_ = c.SetReadDeadline(time.Now().Add(20 * time.Second))
			_, b, err := c.ReadMessage()
			if err != nil {
				return false, err
			}
			var f frame
			if json.Unmarshal(b, &f) != nil || f.Channel != "news" {
				continue
			}
			switch f.Event {
			case "end":
				return true, nil
			case "seq":
				var s string
				_ = json.Unmarshal(f.Data, &s)
				n, _ := strconv.Atoi(s)
				*into = append(*into, n)
			}
		}
	}

	conns := make([]*websocket.Conn, clients)
	for i := range conns {
		c, err := dial(addrA)
		if err != nil {
			t.Fatalf("client %d: %v", i, err)
		}
		conns[i] = c
		t.Cleanup(func() { c.Close() })
	}
	var moved atomic.Int32
	var wg sync.WaitGroup
	for i, c := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := &recs[i]
			_, err := readSeqs(c, &r.onA)
			var ce *websocket.CloseError
			if !errors.As(err, &ce) {
				r.err = err
				return
			}
			r.closeCode = ce.Code
			b, err := dial(addrB)
			if err != nil {
				r.err = err
				return
			}
			defer b.Close()
			moved.Add(1)
			if ended, err := readSeqs(b, &r.onB); !ended {
				r.err = err
			}
		}()
	}

	// The backend publishes to B, one event after the other.
	stopPub := make(chan struct{})
	pubDone := make(chan int)
	var published atomic.Int64
	go func() {
		n := 0
		defer func() { pubDone <- n }()
		pace := time.NewTicker(2 * time.Millisecond)
		defer pace.Stop()
		for {
			select {
			case <-stopPub:
				return
			case <-pace.C:
			}
			// Not trigger: t.Fatal belongs to the test's goroutine.
			body := `{"name":"seq","channel":"news","data":"` + strconv.Itoa(n) + `"}`
			if status, b, err := apiPost(addrB, "/apps/app-id/events", body); err != nil || status != 200 {
				t.Errorf("publish %d: %d %s %v", n, status, b, err)
				return
			}
			n++
			published.Store(int64(n))
		}
	}()
	// Some events before the drain, and some after every client moved.
	const some = 50
	testwait.For(t, 20*time.Second, "events before the drain", func() bool { return published.Load() >= some })
	errA := make(chan error, 1)
	go func() { errA <- stopA() }()
	testwait.For(t, 20*time.Second, "every client to move to B", func() bool { return moved.Load() == clients })
	afterMove := published.Load()
	testwait.For(t, 20*time.Second, "events after the move", func() bool { return published.Load() >= afterMove+some })
	close(stopPub)
	last := <-pubDone - 1
	trigger(t, addrB, "news", "end", "")
	wg.Wait()
	if err := <-errA; err != nil {
		t.Fatalf("node A: Run returned %v", err)
	}

	gaps := 0
	for i, r := range recs {
		if r.err != nil {
			t.Fatalf("client %d: %v", i, r.err)
		}
		if r.closeCode != protocol.CodeReconnect {
			t.Fatalf("client %d closed with %d, want 4200", i, r.closeCode)
		}
		for _, run := range [][]int{r.onA, r.onB} {
			for j := 1; j < len(run); j++ {
				if run[j] != run[j-1]+1 {
					t.Fatalf("client %d: event %d followed by %d", i, run[j-1], run[j])
				}
			}
		}
		if len(r.onB) == 0 || r.onB[len(r.onB)-1] != last {
			t.Fatalf("client %d did not receive every event on B up to %d: %v", i, last, r.onB)
		}
		if len(r.onA) > 0 && r.onB[0] <= r.onA[len(r.onA)-1] {
			t.Fatalf("client %d received event %d twice", i, r.onB[0])
		}
		if len(r.onA) > 0 {
			gaps += r.onB[0] - r.onA[len(r.onA)-1] - 1
		}
	}
	t.Logf("%d clients moved from A to B; %d events published to B; reconnect gap %.1f events on average",
		clients, last+1, float64(gaps)/clients)
}
