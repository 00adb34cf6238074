package httpapi

import (
	"bytes"
	"context"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/herald-ws/herald/internal/apps"
	"github.com/herald-ws/herald/internal/hub"
	"github.com/herald-ws/herald/internal/protocol"
)

type noopHub struct{}

func (noopHub) Publish(context.Context, *apps.App, hub.PublishRequest) error { return nil }
func (noopHub) Channel(_ context.Context, _ *apps.App, name string) (hub.ChannelInfo, error) {
	return hub.ChannelInfo{Name: name}, nil
}
func (noopHub) Channels(context.Context, *apps.App, string) ([]hub.ChannelInfo, error) {
	return nil, nil
}
func (noopHub) PresenceUsers(context.Context, *apps.App, string) ([]protocol.Member, error) {
	return nil, nil
}
func (noopHub) TerminateUser(context.Context, *apps.App, string) error { return nil }

// discardWriter is a reusable http.ResponseWriter.
type discardWriter struct {
	h    http.Header
	code int
}

func (w *discardWriter) Header() http.Header         { return w.h }
func (w *discardWriter) WriteHeader(code int)        { w.code = code }
func (w *discardWriter) Write(b []byte) (int, error) { return len(b), nil }

type rewindBody struct{ bytes.Reader }

func (*rewindBody) Close() error { return nil }

// BenchmarkTrigger measures one signed single-channel trigger, the shape
// Laravel sends, through the whole handler with a hub that does nothing.
func BenchmarkTrigger(b *testing.B) {
	body := []byte(`{"name":"App\\Events\\OrderShipped","channels":["private-orders.42"],"data":"{\"order\":{\"id\":42,\"status\":\"shipped\"}}","socket_id":"1234.5678"}`)
	h := New(Options{Apps: mustStatic(b, testApp()), Hub: noopHub{}, Now: func() time.Time { return testNow }})
	q := protocol.SignRequest("POST", "/apps/3/events", nil, body, testKey, testSecret, testNow)
	u, err := url.ParseRequestURI("/apps/3/events?" + q.Encode())
	if err != nil {
		b.Fatal(err)
	}
	rb := &rewindBody{}
	r := &http.Request{Method: "POST", URL: u, Header: http.Header{"Content-Type": {"application/json"}},
		Body: rb, ContentLength: int64(len(body)), Host: "herald", Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1}
	w := &discardWriter{h: http.Header{}}
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		rb.Reset(body)
		clear(w.h)
		w.code = 0
		h.ServeHTTP(w, r)
		if w.code != 200 {
			b.Fatalf("status %d", w.code)
		}
	}
}

func (noopHub) History(context.Context, *apps.App, string, uint64, int) (hub.HistoryPage, error) {
	return hub.HistoryPage{}, hub.ErrNoHistory
}
