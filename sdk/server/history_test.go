package server_test

import (
	"errors"
	"fmt"
	"strconv"
	"testing"

	"github.com/herald-ws/herald/sdk/client"
	"github.com/herald-ws/herald/sdk/internal/heraldtest"
	"github.com/herald-ws/herald/sdk/server"
)

// History reads what herald kept of a channel, pages through it, and its
// positions are the ones subscribers get; a channel without history and
// a bad request are *Error 4xx, not retried.
func TestHistoryAgainstHerald(t *testing.T) {
	n := heraldtest.Start(t, herald.Path(t), heraldtest.Options{Extra: `history: [{pattern: "orders-*", size: 5, ttl: 5m}]`})
	sdk := api(n.Port)
	ctx := ctxT(t)
	_, ev := subscriber(t, n.Port, "u1", "orders-1")

	empty, err := sdk.History(ctx, "orders-1", server.HistoryParams{})
	if err != nil {
		t.Fatal(err)
	}
	if empty.Channel != "orders-1" || empty.Epoch == "" || empty.FirstOffset != 0 || empty.LastOffset != 0 || len(empty.Events) != 0 || empty.More() {
		t.Fatalf("before any event: %+v", empty)
	}
	for i := 1; i <= 7; i++ {
		if err := sdk.Trigger(ctx, "orders-1", "order.updated", map[string]int{"id": i}); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, "7 events", func() bool { return ev.find("order.updated", `{"id":7}`) })

	// The last 5 are kept (size 5), oldest first, with the subscribers' positions.
	h, err := sdk.History(ctx, "orders-1", server.HistoryParams{})
	if err != nil {
		t.Fatal(err)
	}
	if h.Epoch != empty.Epoch || h.FirstOffset != 3 || h.LastOffset != 7 || len(h.Events) != 5 || h.More() {
		t.Fatalf("after 7 events: %+v", h)
	}
	positions := map[string]client.Position{}
	ev.mu.Lock()
	for _, e := range ev.list {
		if e.Name == "order.updated" {
			positions[string(e.Data)] = e.Position
		}
	}
	ev.mu.Unlock()
	for i, e := range h.Events {
		off := uint64(i + 3)
		data := fmt.Sprintf(`{"id":%d}`, off)
		if e.Offset != off || e.Event != "order.updated" || e.Data != data {
			t.Fatalf("event %d: %+v", i, e)
		}
		if p := positions[data]; p.Epoch != h.Epoch || p.Offset != off {
			t.Fatalf("subscriber got %s at %+v, history says %s:%d", data, p, h.Epoch, off)
		}
	}

	// Paging: after 3, two at a time.
	var got []string
	after := uint64(3)
	for {
		page, err := sdk.History(ctx, "orders-1", server.HistoryParams{After: after, Limit: 2})
		if err != nil {
			t.Fatal(err)
		}
		if len(page.Events) > 2 {
			t.Fatalf("limit 2: %d events", len(page.Events))
		}
		for _, e := range page.Events {
			got = append(got, strconv.FormatUint(e.Offset, 10))
		}
		if !page.More() {
			break
		}
		after = page.Events[len(page.Events)-1].Offset
	}
	if fmt.Sprint(got) != "[4 5 6 7]" {
		t.Fatalf("pages after 3: %v", got)
	}

	// No rule matches: 404; a limit over 1000: 400.
	var apiErr *server.Error
	if _, err := sdk.History(ctx, "news", server.HistoryParams{}); !errors.As(err, &apiErr) || apiErr.Status != 404 {
		t.Fatalf("channel without history: %v", err)
	}
	if _, err := sdk.History(ctx, "orders-1", server.HistoryParams{Limit: 1001}); !errors.As(err, &apiErr) || apiErr.Status != 400 {
		t.Fatalf("limit 1001: %v", err)
	}
	if _, err := sdk.History(ctx, "", server.HistoryParams{}); err == nil {
		t.Fatal("empty channel name accepted")
	}
}
