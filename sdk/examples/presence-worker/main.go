// Command presence-worker follows a presence channel as a member of its own
// and logs who comes and goes: the shape of a Go service that tracks which
// users are online (assigning work, counting seats) through Herald.
//
//	go run ./examples/presence-worker -port 6001 -key app-key -secret app-secret -channel presence-support
//
// It signs its subscription locally with the app secret (a trusted
// service); a service without the secret would use client.HTTPAuth with the
// application's auth endpoint instead.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/herald-ws/herald/sdk/client"
)

func main() {
	host := flag.String("host", "127.0.0.1", "server host")
	port := flag.Int("port", 6001, "server port")
	useTLS := flag.Bool("tls", false, "connect with wss://")
	key := flag.String("key", "app-key", "app key")
	secret := flag.String("secret", "app-secret", "app secret (signs the subscription)")
	channel := flag.String("channel", "presence-support", "presence channel to follow")
	id := flag.String("id", "worker-1", "this worker's user id on the channel")
	flag.Parse()
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))

	c, err := client.New(*key, client.Options{
		Host: *host, Port: *port, TLS: *useTLS,
		ChannelAuthorizer: &client.LocalAuth{
			Key: *key, Secret: *secret,
			Member: client.Member{ID: *id, Info: json.RawMessage(`{"role":"worker"}`)},
		},
		Logger: log,
	})
	if err != nil {
		log.Error("client", "err", err)
		os.Exit(1)
	}
	c.OnStateChange(func(sc client.StateChange) {
		log.Info("connection", "state", sc.Current.String(), "err", sc.Err)
	})

	ch := c.Channel(*channel)
	// After every (re)subscription the roster is complete again.
	ch.Bind(client.EventSubscriptionSucceeded, func(client.Event) {
		ids := []string{}
		for _, m := range ch.Members() {
			ids = append(ids, m.ID)
		}
		log.Info("subscribed", "channel", ch.Name(), "members", ids)
	})
	ch.OnMemberAdded(func(m client.Member) {
		log.Info("member joined", "id", m.ID, "info", string(m.Info), "online", ch.MemberCount())
	})
	ch.OnMemberRemoved(func(m client.Member) {
		log.Info("member left", "id", m.ID, "online", ch.MemberCount())
	})
	ch.Bind(client.EventSubscriptionError, func(e client.Event) {
		log.Error("subscription failed", "channel", ch.Name(), "error", string(e.Data))
	})
	ch.Subscribe()
	c.Connect()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	<-ctx.Done()
	c.Close()
}
