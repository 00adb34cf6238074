// Command publish-orders is a service that publishes order updates through
// Herald's HTTP API: each order moves through its states, the update goes to
// the public "orders" channel and to the customer's private channel in one
// batch, and the order count of the "orders" channel is read back.
//
//	go run ./examples/publish-orders -host 127.0.0.1:6001 -app-id app-id -key app-key -secret app-secret
//
// Follow it with: go run ./examples/listen -channel orders
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/herald-ws/herald/sdk/server"
)

// Order is the payload of an order update.
type Order struct {
	ID       int    `json:"id"`
	Customer string `json:"customer"`
	Status   string `json:"status"`
}

func main() {
	host := flag.String("host", "127.0.0.1:6001", "server host:port")
	secure := flag.Bool("tls", false, "use https")
	appID := flag.String("app-id", "app-id", "app id")
	key := flag.String("key", "app-key", "app key")
	secret := flag.String("secret", "app-secret", "app secret")
	count := flag.Int("orders", 3, "number of orders to walk through")
	every := flag.Duration("every", time.Second, "pause between updates")
	flag.Parse()
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))

	pusher := &server.Client{AppID: *appID, Key: *key, Secret: *secret, Host: *host, Secure: *secure}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	statuses := []string{"placed", "paid", "shipped", "delivered"}
	for id := 1; id <= *count; id++ {
		for _, st := range statuses {
			o := Order{ID: id, Customer: fmt.Sprintf("c%d", id%2+1), Status: st}
			// Each call has its own deadline; retries on 5xx and network
			// errors happen inside it.
			callCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
			res, err := pusher.TriggerBatch(callCtx, []server.Event{
				{Channel: "orders", Name: "order.updated", Data: o, Info: "subscription_count"},
				{Channel: "private-customer." + o.Customer, Name: "order.updated", Data: o},
			})
			cancel()
			var apiErr *server.Error
			switch {
			case err == nil:
				watchers := 0
				if res != nil && len(res.Batch) > 0 {
					watchers = res.Batch[0].SubscriptionCount
				}
				log.Info("published", "order", o.ID, "status", o.Status, "watchers", watchers)
			case ctx.Err() != nil:
				return
			case errors.As(err, &apiErr):
				log.Error("refused", "status", apiErr.Status, "body", apiErr.Body)
			default:
				log.Error("publish failed", "err", err)
			}
			select {
			case <-time.After(*every):
			case <-ctx.Done():
				return
			}
		}
	}
}
