package main

import (
	"bufio"
	"context"
	"io"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/herald-ws/herald/sdk/internal/heraldtest"
	"github.com/herald-ws/herald/sdk/server"
)

// herald is the herald binary, built on first use (or $HERALD_BIN).
var herald heraldtest.Binary

func TestMain(m *testing.M) {
	code := m.Run()
	herald.Cleanup()
	os.Exit(code)
}

// TestListenSurvivesRestart runs the example against herald, restarts the
// server, and checks the output lines.
func TestListenSurvivesRestart(t *testing.T) {
	n := heraldtest.Start(t, herald.Path(t), heraldtest.Options{})
	pr, pw := io.Pipe()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"-host", "127.0.0.1", "-port", strconv.Itoa(n.Port), "-key", heraldtest.Key, "-channel", "orders"}, pw)
		pw.Close()
	}()
	lines := make(chan string, 100)
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	expect := func(want string) {
		t.Helper()
		timeout := time.After(15 * time.Second)
		for {
			select {
			case l := <-lines:
				if l == want {
					return
				}
			case <-timeout:
				t.Fatalf("no line %q", want)
			}
		}
	}
	sdk := &server.Client{AppID: heraldtest.AppID, Key: heraldtest.Key, Secret: heraldtest.Secret, Host: "127.0.0.1:" + strconv.Itoa(n.Port)}
	// Publish until the subscription is in place (the example offers no
	// hook to wait on), then expect the exact line.
	publish := func(data string) {
		t.Helper()
		heraldtest.Eventually(t, 15*time.Second, "listen to subscribe", func() bool {
			info, err := sdk.Channel(context.Background(), "orders", server.ChannelParams{})
			return err == nil && info.Occupied
		})
		if err := sdk.Trigger(context.Background(), "orders", "updated", data); err != nil {
			t.Fatal(err)
		}
	}
	expect("state: connecting")
	expect("state: connected")
	publish(`{"id":1}`)
	expect(`{"channel":"orders","event":"updated","data":{"id":1}}`)
	n.Restart()
	expect("state: connected")
	publish("not json")
	expect(`{"channel":"orders","event":"updated","data":"not json"}`)
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	expect("state: disconnected")
}
