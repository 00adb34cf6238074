package client_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"github.com/herald-ws/herald/sdk/client"
)

// Connect, follow a public channel, and stop.
func Example() {
	c, err := client.New("app-key", client.Options{Host: "127.0.0.1", Port: 6001})
	if err != nil {
		panic(err)
	}
	defer c.Close()

	orders := c.Channel("orders")
	orders.Bind("order.updated", func(e client.Event) {
		var o struct {
			ID     int    `json:"id"`
			Status string `json:"status"`
		}
		if err := e.Unmarshal(&o); err == nil {
			fmt.Println("order", o.ID, "is", o.Status)
		}
	})
	orders.Subscribe()
	c.Connect()

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := orders.WaitSubscribed(ctx); err != nil {
		fmt.Println(err)
	}
}

// Authorize private channels through the application's auth endpoint, the
// way pusher-js does (Laravel: /broadcasting/auth).
func ExampleHTTPAuth() {
	c, _ := client.New("app-key", client.Options{
		Host: "realtime.example.com", TLS: true,
		ChannelAuthorizer: &client.HTTPAuth{
			Endpoint: "https://app.example.com/broadcasting/auth",
			Headers:  http.Header{"Authorization": {"Bearer " + "token"}},
		},
		UserAuthenticator: &client.HTTPAuth{Endpoint: "https://app.example.com/broadcasting/user-auth"},
	})
	defer c.Close()
	c.Subscribe("private-App.Models.User.1")
	c.SignIn()
	c.Connect()
}

// A trusted service signs its own subscriptions with the app secret.
func ExampleLocalAuth() {
	c, _ := client.New("app-key", client.Options{
		ChannelAuthorizer: &client.LocalAuth{
			Key: "app-key", Secret: "app-secret",
			Member: client.Member{ID: "worker-1", Info: json.RawMessage(`{"role":"worker"}`)},
		},
	})
	defer c.Close()
	c.Subscribe("presence-support")
	c.Connect()
}

// Authorize with any Go function.
func ExampleChannelAuthorizerFunc() {
	authorize := client.ChannelAuthorizerFunc(func(ctx context.Context, socketID, channel string) (client.ChannelAuth, error) {
		// Ask your own service for a signature here.
		return client.ChannelAuth{}, fmt.Errorf("%s may not join %s", socketID, channel)
	})
	c, _ := client.New("app-key", client.Options{ChannelAuthorizer: authorize})
	defer c.Close()
}

// Follow the connection state.
func ExampleClient_OnStateChange() {
	c, _ := client.New("app-key", client.Options{})
	defer c.Close()
	unbind := c.OnStateChange(func(sc client.StateChange) {
		fmt.Println(sc.Previous, "->", sc.Current, sc.Err)
	})
	defer unbind()
	c.Connect()
}

// Receive state changes on a Go channel instead.
func ExampleClient_StateChanges() {
	c, _ := client.New("app-key", client.Options{})
	defer c.Close()
	changes, stop := c.StateChanges(16)
	defer stop()
	c.Connect()
	for sc := range changes {
		if sc.Current == client.Connected || sc.Current == client.Failed {
			break
		}
	}
}

// Bind one event name on every channel, or every event at all.
func ExampleClient_Bind() {
	c, _ := client.New("app-key", client.Options{})
	defer c.Close()
	c.Bind(client.EventError, func(e client.Event) { fmt.Println("server error:", string(e.Data)) })
	unbind := c.BindAll(func(e client.Event) { fmt.Println(e.Channel, e.Name) })
	unbind() // stop receiving
}

// Presence: members, me, joins and leaves.
func ExampleChannel_Members() {
	c, _ := client.New("app-key", client.Options{ChannelAuthorizer: &client.LocalAuth{Key: "app-key", Secret: "app-secret", Member: client.Member{ID: "7"}}})
	defer c.Close()
	room := c.Channel("presence-room")
	room.OnMemberAdded(func(m client.Member) { fmt.Println("joined:", m.ID, string(m.Info)) })
	room.OnMemberRemoved(func(m client.Member) { fmt.Println("left:", m.ID) })
	room.Subscribe()
	c.Connect()
	if room.WaitSubscribed(context.Background()) == nil {
		me, _ := room.Me()
		fmt.Println("I am", me.ID, "with", room.MemberCount()-1, "others:", room.Members())
	}
}

// Client events go to the other subscribers of a private or presence channel.
func ExampleChannel_Trigger() {
	c, _ := client.New("app-key", client.Options{ChannelAuthorizer: &client.LocalAuth{Key: "app-key", Secret: "app-secret"}})
	defer c.Close()
	chat := c.Subscribe("private-chat")
	c.Connect()
	ctx := context.Background()
	if chat.WaitSubscribed(ctx) == nil {
		_ = chat.Trigger(ctx, "client-typing", map[string]bool{"typing": true})
	}
}

// Sign in and receive what the server sends to this user (SendToUser).
func ExampleUser() {
	c, _ := client.New("app-key", client.Options{
		UserAuthenticator: &client.LocalAuth{Key: "app-key", Secret: "app-secret", UserData: map[string]any{"id": "42"}},
	})
	defer c.Close()
	c.User().Bind("notice", func(e client.Event) { fmt.Println("to me:", string(e.Data)) })
	c.SignIn()
	c.Connect()
	_ = c.User().WaitSignedIn(context.Background())
}

// Recover the events missed while the connection was down (Herald with a
// history rule for orders-*): they arrive on the bindings, in order, before
// the live ones; when the server no longer has them, refetch.
func ExampleChannel_OnRecovery() {
	c, _ := client.New("app-key", client.Options{Host: "127.0.0.1", Port: 6001})
	defer c.Close()

	orders := c.Channel("orders-1")
	orders.Bind("order.updated", func(e client.Event) {
		fmt.Println("update at", e.Position.Offset) // replayed or live, never twice
	})
	orders.OnRecovery(func(r client.Recovery) {
		if !r.Recovered {
			fmt.Println("missed events are gone (", r.Reason, "): reload the orders")
		}
	})
	orders.Subscribe()
	c.Connect()
}

// Continue from a state rebuilt with the history endpoint (GET
// /apps/{id}/channels/{name}/history): the first subscription replays what
// came after it.
func ExampleChannel_SetPosition() {
	c, _ := client.New("app-key", client.Options{Host: "127.0.0.1", Port: 6001})
	defer c.Close()

	// epoch and last_offset from the history endpoint's answer.
	orders := c.Channel("orders-1")
	orders.SetPosition(client.Position{Epoch: "Yk3dX0aQ", Offset: 42})
	orders.Subscribe()
	c.Connect()
}
