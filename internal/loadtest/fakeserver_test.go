package loadtest

import (
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/herald-ws/herald/internal/protocol"
)

// fakeServer is a tiny Pusher-protocol server for the integration tests:
// public channels, the signed trigger and batch endpoints, pusher:ping.
type fakeServer struct {
	t        *testing.T
	ln       net.Listener
	srv      *http.Server
	key      string
	secret   string
	appID    string
	mu       sync.Mutex
	channels map[string]map[*fakeConn]bool
	nextID   atomic.Int64

	subscribes   atomic.Int64
	unsubscribes atomic.Int64
	badSigs      atomic.Int64

	// Per listening address (a "node" when there are several): WebSocket
	// connections and API requests received.
	perAddr sync.Map // string -> *nodeCounts
	extra   []net.Listener
}

type nodeCounts struct{ conns, requests atomic.Int64 }

func (fs *fakeServer) node(r *http.Request) *nodeCounts {
	addr := r.Context().Value(http.LocalAddrContextKey).(net.Addr).String()
	v, _ := fs.perAddr.LoadOrStore(addr, &nodeCounts{})
	return v.(*nodeCounts)
}

// addNode serves the same state on one more port, as one more node of a
// cluster would, and returns its address.
func (fs *fakeServer) addNode() string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fs.t.Fatal(err)
	}
	fs.extra = append(fs.extra, ln)
	go func() { _ = fs.srv.Serve(ln) }()
	return ln.Addr().String()
}

func (fs *fakeServer) counts(addr string) (conns, requests int64) {
	v, ok := fs.perAddr.Load(addr)
	if !ok {
		return 0, 0
	}
	n := v.(*nodeCounts)
	return n.conns.Load(), n.requests.Load()
}

type fakeConn struct {
	ws  *websocket.Conn
	wmu sync.Mutex
}

func (c *fakeConn) write(b []byte) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	_ = c.ws.SetWriteDeadline(time.Now().Add(5 * time.Second))
	_ = c.ws.WriteMessage(websocket.TextMessage, b)
}

func startFakeServer(t *testing.T) *fakeServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	fs := &fakeServer{t: t, ln: ln, key: "app-key", secret: "app-secret", appID: "app-id", channels: map[string]map[*fakeConn]bool{}}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /app/{key}", fs.ws)
	mux.HandleFunc("POST /apps/{id}/events", fs.trigger)
	mux.HandleFunc("POST /apps/{id}/batch_events", fs.trigger)
	fs.srv = &http.Server{Handler: mux}
	go func() { _ = fs.srv.Serve(ln) }()
	t.Cleanup(func() { _ = fs.srv.Close() })
	return fs
}

func (fs *fakeServer) wsURL() string  { return "ws://" + fs.ln.Addr().String() }
func (fs *fakeServer) apiURL() string { return "http://" + fs.ln.Addr().String() }

func (fs *fakeServer) ws(w http.ResponseWriter, r *http.Request) {
	if r.PathValue("key") != fs.key {
		http.Error(w, "unknown app", http.StatusNotFound)
		return
	}
	up := websocket.Upgrader{ReadBufferSize: 1024, WriteBufferSize: 1024}
	ws, err := up.Upgrade(w, r, nil)
	if err != nil {
		return
	}
	fs.node(r).conns.Add(1)
	c := &fakeConn{ws: ws}
	id := fs.nextID.Add(1)
	c.write([]byte(`{"event":"pusher:connection_established","data":"{\"socket_id\":\"1.` + itoa(id) + `\",\"activity_timeout\":120}"}`))
	defer func() {
		fs.mu.Lock()
		for _, set := range fs.channels {
			delete(set, c)
		}
		fs.mu.Unlock()
		ws.Close()
	}()
	for {
		_, b, err := ws.ReadMessage()
		if err != nil {
			return
		}
		var m struct {
			Event string `json:"event"`
			Data  struct {
				Channel string `json:"channel"`
			} `json:"data"`
		}
		if json.Unmarshal(b, &m) != nil {
			continue
		}
		switch m.Event {
		case "pusher:subscribe":
			fs.subscribes.Add(1)
			fs.mu.Lock()
			if fs.channels[m.Data.Channel] == nil {
				fs.channels[m.Data.Channel] = map[*fakeConn]bool{}
			}
			fs.channels[m.Data.Channel][c] = true
			fs.mu.Unlock()
			q, _ := json.Marshal(m.Data.Channel)
			c.write([]byte(`{"event":"pusher_internal:subscription_succeeded","channel":` + string(q) + `,"data":"{}"}`))
		case "pusher:unsubscribe":
			fs.unsubscribes.Add(1)
			fs.mu.Lock()
			delete(fs.channels[m.Data.Channel], c)
			fs.mu.Unlock()
		case "pusher:ping":
			c.write([]byte(`{"event":"pusher:pong","data":{}}`))
		}
	}
}

func (fs *fakeServer) trigger(w http.ResponseWriter, r *http.Request) {
	fs.node(r).requests.Add(1)
	body, _ := io.ReadAll(r.Body)
	path := r.URL.Path
	err := protocol.VerifyRequest(protocol.SignedRequest{Method: r.Method, Path: path, Query: r.URL.Query(), Body: body}, fs.key, fs.secret, time.Now(), 600*time.Second)
	if err != nil || r.PathValue("id") != fs.appID {
		fs.badSigs.Add(1)
		http.Error(w, "bad signature", http.StatusUnauthorized)
		return
	}
	type ev struct {
		Name     string   `json:"name"`
		Channel  string   `json:"channel"`
		Channels []string `json:"channels"`
		Data     string   `json:"data"`
	}
	var events []ev
	if strings.HasSuffix(path, "/batch_events") {
		var b struct {
			Batch []ev `json:"batch"`
		}
		if json.Unmarshal(body, &b) != nil {
			http.Error(w, "bad body", http.StatusBadRequest)
			return
		}
		events = b.Batch
	} else {
		var e ev
		if json.Unmarshal(body, &e) != nil {
			http.Error(w, "bad body", http.StatusBadRequest)
			return
		}
		events = []ev{e}
	}
	for _, e := range events {
		chans := e.Channels
		if e.Channel != "" {
			chans = append(chans, e.Channel)
		}
		for _, ch := range chans {
			frame, _ := json.Marshal(map[string]string{"event": e.Name, "channel": ch, "data": e.Data})
			fs.mu.Lock()
			var targets []*fakeConn
			for c := range fs.channels[ch] {
				targets = append(targets, c)
			}
			fs.mu.Unlock()
			for _, c := range targets {
				c.write(frame)
			}
		}
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write([]byte("{}"))
}

func itoa(v int64) string {
	b, _ := json.Marshal(v)
	return string(b)
}
