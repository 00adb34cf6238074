// Command listen follows one channel and prints what happens, surviving
// server restarts, drains and network cuts:
//
//	go run ./examples/listen -host 127.0.0.1 -port 6001 -key app-key -channel orders
//
// Each connection state change is a line "state: <name>"; each event on the
// channel is one JSON line {"channel":…,"event":…,"data":…} (data is the
// event's JSON when it is JSON, else a string). Private and presence
// channels need -auth (the app's auth endpoint) or -secret (signs locally).
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"

	"github.com/herald-ws/herald/sdk/client"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "listen:", err)
		os.Exit(1)
	}
}

// run listens until ctx is done or the server refuses the connection.
func run(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("listen", flag.ContinueOnError)
	host := fs.String("host", "127.0.0.1", "server host")
	port := fs.Int("port", 6001, "server port")
	key := fs.String("key", "app-key", "app key")
	channel := fs.String("channel", "", "channel to follow (required)")
	useTLS := fs.Bool("tls", false, "connect with wss://")
	path := fs.String("path", "", "path prefix before /app/{key}")
	auth := fs.String("auth", "", "auth endpoint URL for private and presence channels")
	secret := fs.String("secret", "", "app secret to sign private and presence subscriptions locally")
	user := fs.String("user", "listen", "user id on presence channels (with -secret)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *channel == "" {
		return fmt.Errorf("-channel is required")
	}
	opts := client.Options{Host: *host, Port: *port, TLS: *useTLS, Path: *path}
	switch {
	case *auth != "":
		opts.ChannelAuthorizer = &client.HTTPAuth{Endpoint: *auth}
	case *secret != "":
		opts.ChannelAuthorizer = &client.LocalAuth{Key: *key, Secret: *secret, Member: client.Member{ID: *user}}
	}
	c, err := client.New(*key, opts)
	if err != nil {
		return err
	}
	// Handlers run one at a time, but the final lines come from Close's
	// goroutine too: keep whole lines whole.
	var mu sync.Mutex
	emit := func(s string) {
		mu.Lock()
		fmt.Fprintln(stdout, s)
		mu.Unlock()
	}
	failed := make(chan error, 1)
	c.OnStateChange(func(sc client.StateChange) {
		emit("state: " + sc.Current.String())
		if sc.Current == client.Failed {
			select {
			case failed <- sc.Err:
			default:
			}
		}
	})
	ch := c.Channel(*channel)
	ch.BindAll(func(e client.Event) {
		if strings.HasPrefix(e.Name, "pusher:") {
			if e.Name == client.EventSubscriptionError {
				fmt.Fprintf(os.Stderr, "listen: subscription to %s failed: %s\n", e.Channel, e.Data)
			}
			return
		}
		var data any = string(e.Data)
		if json.Valid(e.Data) {
			data = json.RawMessage(e.Data)
		}
		line, err := json.Marshal(struct {
			Channel string `json:"channel"`
			Event   string `json:"event"`
			Data    any    `json:"data"`
		}{e.Channel, e.Name, data})
		if err == nil {
			emit(string(line))
		}
	})
	ch.Subscribe()
	c.Connect()
	select {
	case <-ctx.Done():
		return c.Close()
	case err := <-failed:
		c.Close()
		return fmt.Errorf("server refused the connection: %w", err)
	}
}
