package server_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/url"
	"strings"

	"github.com/herald-ws/herald/sdk/server"
)

func newClient() *server.Client {
	return &server.Client{AppID: "app-id", Key: "app-key", Secret: "app-secret", Host: "127.0.0.1:6001"}
}

// Publish one event.
func Example() {
	pusher := newClient()
	err := pusher.Trigger(context.Background(), "orders", "order.updated", map[string]any{"id": 1, "status": "paid"})
	var apiErr *server.Error
	if errors.As(err, &apiErr) {
		log.Printf("refused with %d: %s", apiErr.Status, apiErr.Body)
	}
}

// Publish to several channels, excluding the sender's socket, and read the
// channels' counts back.
func ExampleClient_TriggerMultiWithParams() {
	res, err := newClient().TriggerMultiWithParams(context.Background(),
		[]string{"orders", "presence-ops"}, "order.updated", `{"id":1}`,
		server.TriggerParams{SocketID: "1234.5678", Info: "subscription_count,user_count"})
	if err == nil {
		fmt.Println(res.Channels["presence-ops"].UserCount)
	}
}

// Several events in one request.
func ExampleClient_TriggerBatch() {
	_, _ = newClient().TriggerBatch(context.Background(), []server.Event{
		{Channel: "orders", Name: "order.updated", Data: map[string]int{"id": 1}},
		{Channel: "private-customer.7", Name: "order.updated", Data: map[string]int{"id": 1}},
	})
}

// End-to-end encrypted channels: the payload is encrypted before it leaves.
func ExampleClient_Trigger_encrypted() {
	pusher := newClient()
	pusher.EncryptionMasterKey = make([]byte, 32) // your 32 random bytes
	_ = pusher.Trigger(context.Background(), "private-encrypted-ledger", "entry", map[string]int{"cents": 1200})
}

// Query channels and presence users.
func ExampleClient_Channels() {
	ctx := context.Background()
	pusher := newClient()
	list, err := pusher.Channels(ctx, server.ChannelsParams{FilterByPrefix: "presence-", Info: "user_count"})
	if err != nil {
		return
	}
	for name, ch := range list.Channels {
		users, _ := pusher.GetChannelUsers(ctx, name)
		fmt.Println(name, ch.UserCount, users)
	}
	info, _ := pusher.Channel(ctx, "cache-prices", server.ChannelParams{Info: "subscription_count,cache"})
	fmt.Println(info)
}

// Send to a signed-in user, and disconnect them.
func ExampleClient_SendToUser() {
	ctx := context.Background()
	pusher := newClient()
	_ = pusher.SendToUser(ctx, "42", "notice", `{"text":"your export is ready"}`)
	_ = pusher.TerminateUserConnections(ctx, "42")
}

// An auth endpoint for pusher-js, Laravel Echo or this SDK's HTTPAuth.
func ExampleClient_AuthorizePrivateChannel() {
	pusher := newClient()
	http.HandleFunc("/pusher/auth", func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		// Check here that the logged-in user may join the channel.
		var res []byte
		var err error
		form, _ := url.ParseQuery(string(body))
		if strings.HasPrefix(form.Get("channel_name"), "presence-") {
			res, err = pusher.AuthorizePresenceChannel(body, server.MemberData{UserID: "7", UserInfo: map[string]string{"name": "Ada"}})
		} else {
			res, err = pusher.AuthorizePrivateChannel(body)
		}
		if err != nil {
			http.Error(w, err.Error(), http.StatusForbidden)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Write(res)
	})
}

// A user-auth endpoint (pusher:signin).
func ExampleClient_AuthenticateUser() {
	pusher := newClient()
	http.HandleFunc("/pusher/user-auth", func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		res, err := pusher.AuthenticateUser(body, map[string]any{"id": "7", "user_info": map[string]string{"name": "Ada"}})
		if err != nil {
			http.Error(w, err.Error(), http.StatusForbidden)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Write(res)
	})
}

// Verify and read a webhook.
func ExampleClient_Webhook() {
	pusher := newClient()
	http.HandleFunc("/pusher/webhooks", func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		hook, err := pusher.Webhook(r.Header, body)
		if err != nil {
			http.Error(w, "bad signature", http.StatusUnauthorized)
			return
		}
		for _, e := range hook.Events {
			fmt.Println(e.Name, e.Channel, e.UserID)
		}
	})
}

// Rebuild a channel's state from its history (Herald, on channels a
// history rule covers), then hand the position to clients so that their
// subscriptions continue from it with no gap (recover).
func ExampleClient_History() {
	ctx := context.Background()
	pusher := newClient()
	p := server.HistoryParams{}
	for {
		page, err := pusher.History(ctx, "orders-42", p)
		if err != nil {
			log.Fatal(err)
		}
		for _, e := range page.Events {
			fmt.Println(e.Offset, e.Event, e.Data) // apply it to the state
		}
		if !page.More() {
			fmt.Println("continue from", page.Epoch, page.LastOffset)
			break
		}
		p.After = page.Events[len(page.Events)-1].Offset
	}
}
