package enginetest

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/herald-ws/herald/internal/apps"
	"github.com/herald-ws/herald/internal/hub"
	"github.com/herald-ws/herald/internal/testwait"
)

// runHistory checks the History contract: offsets from 1, one more per
// event across nodes; delivery to every interested node, the appending
// one included, in offset order, once; reads of what is kept.
func runHistory(t *testing.T, newCluster NewCluster) {
	ctx := context.Background()
	rule := apps.HistoryRule{Pattern: "*", Size: 50, TTL: time.Minute}

	t.Run("history numbers and delivers in order", func(t *testing.T) {
		nodes, boxes := attached(t, newCluster, 3)
		ch := "orders-" + strconv.Itoa(int(time.Now().UnixNano()%1e6))
		must(t, nodes[0].Broker.Interest(ctx, "a", ch, true))
		must(t, nodes[1].Broker.Interest(ctx, "a", ch, true))
		page, err := nodes[0].History.Read(ctx, "a", ch, rule, 0, 10)
		must(t, err)
		if page.Epoch == "" || page.Top != 0 || len(page.Entries) != 0 {
			t.Fatalf("new history: %+v", page)
		}
		// Two nodes append at once.
		const per = 40
		var wg sync.WaitGroup
		errs := make(chan error, 2*per)
		for n := range 2 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range per {
					m := hub.BrokerMessage{AppID: "a", Channel: ch, Payload: fmt.Appendf(nil, `{"n":"%d-%d"}`, n, i), ExceptSocketID: "1.2"}
					pos, err := nodes[n].History.Append(ctx, rule, m)
					if err == nil && (pos.Epoch != page.Epoch || pos.Offset == 0 || pos.Offset > 2*per) {
						err = fmt.Errorf("position %+v", pos)
					}
					if err != nil {
						errs <- err
					}
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		for _, i := range []int{0, 1} {
			arrived(t, boxes[i], "a", 2*per)
			got := boxes[i].of("a")
			if len(got) != 2*per {
				t.Fatalf("node %d got %d events", i, len(got))
			}
			for j, m := range got {
				if m.Position.Epoch != page.Epoch || m.Position.Offset != uint64(j+1) || m.Channel != ch || m.ExceptSocketID != "1.2" {
					t.Fatalf("node %d event %d: %+v", i, j, m)
				}
			}
		}
		if got := boxes[2].of("a"); len(got) != 0 {
			t.Fatalf("node without interest got %d", len(got))
		}
		// Kept: the last 50 of 80.
		page, err = nodes[2].History.Read(ctx, "a", ch, rule, 70, 5)
		must(t, err)
		if page.Top != 2*per || page.First != uint64(2*per-rule.Size+1) || len(page.Entries) != 5 || page.Entries[0].Offset != 71 {
			t.Fatalf("read: top %d first %d entries %d", page.Top, page.First, len(page.Entries))
		}
		want := boxes[0].of("a")[70].Payload
		if string(page.Entries[0].Payload) != string(want) {
			t.Fatalf("entry 71 = %s, delivered %s", page.Entries[0].Payload, want)
		}
		page, err = nodes[2].History.Read(ctx, "a", ch, rule, 2*per, 5)
		must(t, err)
		if len(page.Entries) != 0 {
			t.Fatalf("after the top: %+v", page.Entries)
		}
		// Another app's channel of the same name is another history.
		other, err := nodes[0].History.Read(ctx, "b", ch, rule, 0, 5)
		must(t, err)
		if other.Top != 0 || other.Epoch == page.Epoch {
			t.Fatalf("other app: %+v", other)
		}
	})

	// A channel written without pause keeps its history (same epoch), but
	// an event older than the ttl is no longer kept: the cost is bounded
	// by the ttl as well as by the size.
	t.Run("events older than the ttl leave a live history", func(t *testing.T) {
		nodes, _ := attached(t, newCluster, 1)
		rule := apps.HistoryRule{Pattern: "*", Size: 10000, TTL: 300 * time.Millisecond}
		ch := "aging-" + strconv.Itoa(int(time.Now().UnixNano()%1e6))
		first, err := nodes[0].History.Append(ctx, rule, hub.BrokerMessage{AppID: "a", Channel: ch, Payload: []byte(`{}`)})
		must(t, err)
		testwait.For(t, 10*time.Second, "the first event trimmed", func() bool {
			pos, err := nodes[0].History.Append(ctx, rule, hub.BrokerMessage{AppID: "a", Channel: ch, Payload: []byte(`{}`)})
			must(t, err)
			if pos.Epoch != first.Epoch {
				// A pause longer than the ttl (a frozen or loaded
				// machine) ended the whole history: start again.
				first = pos
				return false
			}
			page, err := nodes[0].History.Read(ctx, "a", ch, rule, 0, 1)
			must(t, err)
			return page.Epoch == first.Epoch && page.Top > first.Offset && page.First > first.Offset
		})
	})

	t.Run("history expires as a whole", func(t *testing.T) {
		nodes, _ := attached(t, newCluster, 1)
		short := apps.HistoryRule{Pattern: "*", Size: 10, TTL: 100 * time.Millisecond}
		ch := "short-" + strconv.Itoa(int(time.Now().UnixNano()%1e6))
		pos, err := nodes[0].History.Append(ctx, short, hub.BrokerMessage{AppID: "a", Channel: ch, Payload: []byte(`{}`)})
		must(t, err)
		testwait.For(t, 5*time.Second, "a new epoch", func() bool {
			page, err := nodes[0].History.Read(ctx, "a", ch, short, 0, 10)
			return err == nil && page.Epoch != pos.Epoch && page.Top == 0
		})
	})
}
