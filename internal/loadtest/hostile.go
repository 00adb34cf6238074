package loadtest

import (
	"context"
	"errors"
	"flag"
	"math/rand/v2"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
)

// Hostile clients run beside the fanout scenario's good subscribers (the
// mixed run of bench/README.md): they show whether the server's limits
// keep them from hurting the others. Each kind reconnects when it is cut,
// so the pressure lasts the whole run.
type hostileOptions struct {
	Pingers  int     // send WebSocket pings as fast as they can (reading)
	Stormers int     // subscribe to ever new channels as fast as they can (reading)
	Stalled  int     // subscribe to the bench channels and never read
	Rate     float64 // frames per second per pinger or stormer (0: as fast as possible)
}

// register defines the hostile flags (fanout only).
func (h *hostileOptions) register(fs *flag.FlagSet) {
	fs.IntVar(&h.Pingers, "hostile-pingers", 0, "`n` clients flooding WebSocket pings beside the subscribers")
	fs.IntVar(&h.Stormers, "hostile-stormers", 0, "`n` clients subscribing to new channels as fast as they can")
	fs.IntVar(&h.Stalled, "hostile-stalled", 0, "`n` clients subscribed to the bench channels that never read")
	fs.Float64Var(&h.Rate, "hostile-rate", 0, "frames per second of each pinger and stormer (`rate`; 0: as fast as it can, which on one machine also takes CPU from the load tool itself)")
}

func (h *hostileOptions) any() bool { return h.Pingers+h.Stormers+h.Stalled > 0 }

// hostileRun is the hostile clients of one run.
type hostileRun struct {
	cancel context.CancelFunc
	wg     sync.WaitGroup
	// per kind: connections opened, and closed by the server by code
	mu     sync.Mutex
	opened map[string]int64
	closed map[string]map[int]int64
	sent   atomic.Int64
	rate   float64
	// sources are the local addresses to dial from, in turn (none: the
	// system's choice).
	sources []netip.Addr
	next    atomic.Int64
}

// startHostile starts the hostile clients; stop ends them and returns
// what happened, for the report's params.
func startHostile(ctx context.Context, o *Options, h hostileOptions) *hostileRun {
	ctx, cancel := context.WithCancel(ctx)
	hr := &hostileRun{cancel: cancel, rate: h.Rate, opened: map[string]int64{}, closed: map[string]map[int]int64{}}
	url := o.wsURLs()[0] + "/app/" + o.Key + "?protocol=7&client=herald-bench-hostile"
	// --source-ips, when given, are the hostile clients' addresses too (in
	// turn): the attackers of a mixed run come from other addresses than
	// the good clients, as they would in production.
	hr.sources = o.sources
	for range h.Pingers {
		hr.loop(ctx, "pinger", url, 0, func(ws *websocket.Conn) error {
			hr.sent.Add(1)
			return ws.WriteControl(websocket.PingMessage, []byte("x"), time.Now().Add(time.Second))
		})
	}
	for i := range h.Stormers {
		n := 0
		hr.loop(ctx, "stormer", url, 0, func(ws *websocket.Conn) error {
			n++
			hr.sent.Add(1)
			return ws.WriteMessage(websocket.TextMessage, []byte(`{"event":"pusher:subscribe","data":{"channel":"storm-`+strconv.Itoa(i)+"-"+strconv.Itoa(n)+`"}}`))
		})
	}
	for i := range h.Stalled {
		ch := channelName(o.ChannelBase, i%max(o.Channels, 1))
		hr.loop(ctx, "stalled", url, 1024, func(ws *websocket.Conn) error {
			_ = ws.WriteMessage(websocket.TextMessage, []byte(`{"event":"pusher:subscribe","data":{"channel":"`+ch+`"}}`))
			select { // and nothing more: never read
			case <-ctx.Done():
			case <-time.After(time.Hour):
			}
			return ctx.Err()
		})
	}
	return hr
}

// loop keeps one hostile client connected, calling act in a loop; a
// client with rcvbuf > 0 has that kernel receive buffer and never reads.
func (hr *hostileRun) loop(ctx context.Context, kind, url string, rcvbuf int, act func(*websocket.Conn) error) {
	hr.wg.Add(1)
	go func() {
		defer hr.wg.Done()
		d := websocket.Dialer{HandshakeTimeout: 5 * time.Second, NetDialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			var nd net.Dialer
			if n := len(hr.sources); n > 0 {
				nd.LocalAddr = net.TCPAddrFromAddrPort(netip.AddrPortFrom(hr.sources[int(hr.next.Add(1))%n], 0))
			}
			nc, err := nd.DialContext(ctx, network, addr)
			if err == nil && rcvbuf > 0 {
				_ = nc.(*net.TCPConn).SetReadBuffer(rcvbuf)
			}
			return nc, err
		}}
		for ctx.Err() == nil {
			ws, _, err := d.DialContext(ctx, url, nil)
			if err != nil {
				sleepCtx(ctx, time.Duration(100+rand.IntN(100))*time.Millisecond)
				continue
			}
			hr.mu.Lock()
			hr.opened[kind]++
			hr.mu.Unlock()
			code := make(chan int, 1)
			if rcvbuf == 0 {
				go func() {
					for {
						if _, _, err := ws.ReadMessage(); err != nil {
							var ce *websocket.CloseError
							if errors.As(err, &ce) {
								code <- ce.Code
							} else {
								code <- 1006
							}
							return
						}
					}
				}()
			}
			stop := context.AfterFunc(ctx, func() { _ = ws.Close() })
			var tick *time.Ticker
			if hr.rate > 0 && rcvbuf == 0 {
				tick = time.NewTicker(time.Duration(float64(time.Second) / hr.rate))
			}
		acting:
			for ctx.Err() == nil && act(ws) == nil {
				if tick != nil {
					select {
					case <-tick.C:
					case <-ctx.Done():
					}
				}
				select {
				case c := <-code: // closed by the server
					code <- c
					break acting
				default:
				}
			}
			stop()
			if tick != nil {
				tick.Stop()
			}
			_ = ws.Close()
			c := 1006
			select {
			case c = <-code:
			case <-time.After(100 * time.Millisecond):
			}
			if ctx.Err() == nil {
				hr.mu.Lock()
				if hr.closed[kind] == nil {
					hr.closed[kind] = map[int]int64{}
				}
				hr.closed[kind][c]++
				hr.mu.Unlock()
				// pusher-js would back off; a hostile client need not, a
				// little pause keeps the load tool itself sane.
				sleepCtx(ctx, 50*time.Millisecond)
			}
		}
	}()
}

// stop ends the hostile clients and returns their figures.
func (hr *hostileRun) stop() map[string]any {
	hr.cancel()
	hr.wg.Wait()
	hr.mu.Lock()
	defer hr.mu.Unlock()
	out := map[string]any{"hostile_frames_sent": hr.sent.Load()}
	for k, n := range hr.opened {
		out["hostile_"+k+"_connections"] = n
	}
	for k, m := range hr.closed {
		for code, n := range m {
			out["hostile_"+k+"_closed_"+strconv.Itoa(code)] = n
		}
	}
	return out
}
