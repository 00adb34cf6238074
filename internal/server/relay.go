package server

import (
	"bufio"
	"context"
	"encoding/json"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/herald-ws/herald/internal/apps"
	"github.com/herald-ws/herald/internal/httpapi"
	"github.com/herald-ws/herald/internal/hub"
)

// A restart in place runs two processes of one node for the length of the
// old one's drain, each with the state of its own clients (alone, state is
// in memory). An event published through the HTTP API of one of them must
// reach the clients of both: those that have moved to the new process and
// those still waiting on the old one for their 4200. The relay joins the
// two for that time over a socket pair the restart hands over (WithRelay):
// each forwards the events and user terminations its HTTP API accepted,
// and delivers what the other forwards to its own clients only (never
// forwarded back). A client is on one process at a time, and the old
// process sends nothing to a client after its 4200, so no client gets an
// event twice. In a cluster Redis does this, and the relay is not used.

// relayQueue bounds the messages waiting for the other process; past it
// they are dropped (and logged): the relay must never slow the HTTP API.
const relayQueue = 4096

// relayMsg is one line on the relay: a publish (N, C, D, X) or a user
// termination (T) for app A.
type relayMsg struct {
	A string   `json:"a"`
	N string   `json:"n,omitempty"`
	C []string `json:"c,omitempty"`
	D string   `json:"d,omitempty"`
	X string   `json:"x,omitempty"`
	T string   `json:"t,omitempty"`
}

// WithRelay joins the HTTP API of this node to another process of the
// same node, over each connection received on conns, until it closes (the
// other process exited) or Run ends. Ignored in a cluster.
func WithRelay(conns <-chan net.Conn) Option {
	return func(o *options) { o.relay = conns }
}

// relay is the running side of WithRelay.
type relay struct {
	s       *Server
	log     *slog.Logger // the relay component's, built with the relay
	peer    atomic.Pointer[relayPeer]
	dropped atomic.Int64
}

type relayPeer struct {
	out chan []byte
}

// forward queues m for the other process, if one is joined.
func (r *relay) forward(m relayMsg) {
	p := r.peer.Load()
	if p == nil {
		return
	}
	b, err := json.Marshal(m)
	if err != nil {
		return
	}
	select {
	case p.out <- append(b, '\n'):
	default:
		if r.dropped.Add(1) == 1 {
			r.log.Warn("relay to the other process is full: events dropped for its clients")
		}
	}
}

// run serves the connections handed over on conns, one at a time, until
// ctx is done.
func (r *relay) run(ctx context.Context, conns <-chan net.Conn) {
	for {
		select {
		case <-ctx.Done():
			return
		case c := <-conns:
			r.serve(ctx, c)
		}
	}
}

// serve joins the other process over c until c or ctx ends.
func (r *relay) serve(ctx context.Context, c net.Conn) {
	log := r.log
	log.Info("joined to the other process: events are relayed during the restart")
	p := &relayPeer{out: make(chan []byte, relayQueue)}
	r.peer.Store(p)
	var wg sync.WaitGroup
	done := make(chan struct{})
	wg.Add(1)
	go func() { // the writer
		defer wg.Done()
		w := bufio.NewWriter(c)
		for {
			select {
			case <-done:
				return
			case b := <-p.out:
				_, err := w.Write(b)
				// Write what has piled up in one go.
				for err == nil && len(p.out) > 0 {
					_, err = w.Write(<-p.out)
				}
				if err == nil {
					err = w.Flush()
				}
				if err != nil {
					_ = c.Close()
					return
				}
			}
		}
	}()
	stop := context.AfterFunc(ctx, func() { _ = c.Close() })
	sc := bufio.NewScanner(c)
	// A line holds one request's event, JSON-escaped again (at most 6
	// bytes for one).
	sc.Buffer(make([]byte, 0, 64<<10), 6*r.s.cfg.MaxRequestBodyBytes()+(64<<10))
	for sc.Scan() {
		var m relayMsg
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			log.Warn("bad message, leaving", "err", err)
			break
		}
		r.deliver(ctx, m)
	}
	if err := sc.Err(); err != nil && ctx.Err() == nil {
		log.Warn("reading from the other process", "err", err)
	}
	stop()
	r.peer.CompareAndSwap(p, nil)
	close(done)
	_ = c.Close()
	wg.Wait()
	log.Info("the other process has left the relay")
}

// deliver hands a message from the other process to this one's clients.
func (r *relay) deliver(ctx context.Context, m relayMsg) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	app, err := r.s.apps.ByID(ctx, m.A)
	if err != nil || app == nil {
		return // an app this process does not serve
	}
	if m.T != "" {
		// Local only: the other process terminated its own.
		r.s.hub.HandleBrokerMessage(hub.BrokerMessage{AppID: app.ID, TerminateUser: m.T})
		return
	}
	if err := r.s.hub.Publish(ctx, app, hub.PublishRequest{Name: m.N, Channels: m.C, Data: m.D, ExceptSocketID: m.X}); err != nil {
		r.log.Warn("delivering an event from the other process", "app_id", app.ID, "err", err)
	}
}

// relayHub forwards what the HTTP API publishes and terminates to the
// other process, after doing it here.
type relayHub struct {
	httpapi.Hub
	r *relay
}

func (h relayHub) Publish(ctx context.Context, app *apps.App, req hub.PublishRequest) error {
	err := h.Hub.Publish(ctx, app, req)
	if err == nil {
		h.r.forward(relayMsg{A: app.ID, N: req.Name, C: req.Channels, D: req.Data, X: req.ExceptSocketID})
	}
	return err
}

func (h relayHub) TerminateUser(ctx context.Context, app *apps.App, userID string) error {
	err := h.Hub.TerminateUser(ctx, app, userID)
	if err == nil {
		h.r.forward(relayMsg{A: app.ID, T: userID})
	}
	return err
}
