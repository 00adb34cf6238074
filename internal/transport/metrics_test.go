package transport

import (
	"fmt"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/herald-ws/herald/internal/testwait"
)

// recMetrics records the transport's Metrics calls per app.
type recMetrics struct {
	mu     sync.Mutex
	events []string
	in     map[string]int
	out    map[string]int
	lat    map[string][]time.Duration
}

func newRecMetrics() *recMetrics {
	return &recMetrics{in: map[string]int{}, out: map[string]int{}, lat: map[string][]time.Duration{}}
}

func (m *recMetrics) App(appID string) AppMetrics { return recApp{m, appID} }

func (m *recMetrics) add(s string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.events = append(m.events, s)
}

// waitFor waits until the recorded events (sorted) are want.
func (m *recMetrics) waitFor(t *testing.T, want string) {
	t.Helper()
	var got []string
	if !testwait.Until(10*time.Second, func() bool {
		m.mu.Lock()
		got = append([]string(nil), m.events...)
		m.mu.Unlock()
		sort.Strings(got)
		return fmt.Sprint(got) == want
	}) {
		t.Fatalf("metrics events %v, want %s", got, want)
	}
}

type recApp struct {
	m  *recMetrics
	id string
}

func (a recApp) Opened()          { a.m.add(a.id + " opened") }
func (a recApp) Closed(code int)  { a.m.add(fmt.Sprintf("%s closed %d", a.id, code)) }
func (a recApp) Refused(code int) { a.m.add(fmt.Sprintf("%s refused %d", a.id, code)) }
func (a recApp) SlowConsumer()    { a.m.add(a.id + " slow") }
func (a recApp) BytesIn(n int) {
	a.m.mu.Lock()
	a.m.in[a.id] += n
	a.m.mu.Unlock()
}
func (a recApp) BytesOut(n int) {
	a.m.mu.Lock()
	a.m.out[a.id] += n
	a.m.mu.Unlock()
}

func (a recApp) DeliveryLatency(d time.Duration) {
	a.m.mu.Lock()
	a.m.lat[a.id] = append(a.m.lat[a.id], d)
	a.m.mu.Unlock()
}

// latencies returns the delivery latencies of app once its last one is at
// least until (the marker), or fails after a deadline.
func (m *recMetrics) latencies(t *testing.T, app string, until time.Duration) []time.Duration {
	t.Helper()
	var got []time.Duration
	if !testwait.Until(10*time.Second, func() bool {
		m.mu.Lock()
		got = append([]time.Duration(nil), m.lat[app]...)
		m.mu.Unlock()
		return len(got) > 0 && got[len(got)-1] >= until
	}) {
		t.Fatalf("delivery latencies %v, want a last one >= %v", got, until)
	}
	return got
}

// TestDeliveryLatencyPerWrite checks that a stamped frame is measured once,
// when written, from its stamp on the clock of Config.Epoch, and that an
// unstamped frame (at = 0: a reply, or metrics off) is not measured.
func TestDeliveryLatencyPerWrite(t *testing.T) {
	rm := newRecMetrics()
	// An epoch an hour back lets a frame stamped 1 stand out as the marker
	// (latency about an hour) that ends the sequence.
	epoch := time.Now().Add(-time.Hour)
	sess := newFakeSessions()
	srv := startServer(t, Config{Metrics: rm, Epoch: epoch}, sess)
	c := dialWS(t, srv.Addr().String(), "/app/key?protocol=7")
	s := sess.next(t)
	c.readText() // connection_established, sent with at = 0

	start := time.Now()
	if !s.conn.Send(TextFrame([]byte("stamped")), int64(time.Since(epoch))) {
		t.Fatal("Send refused")
	}
	if got := c.readText(); got != "stamped" {
		t.Fatalf("read %q", got)
	}
	s.conn.Send(TextFrame([]byte("unstamped")), 0)
	if got := c.readText(); got != "unstamped" {
		t.Fatalf("read %q", got)
	}
	s.conn.Send(TextFrame([]byte("marker")), 1)
	if got := c.readText(); got != "marker" {
		t.Fatalf("read %q", got)
	}
	got := rm.latencies(t, "key", time.Hour)
	elapsed := time.Since(start)
	if len(got) != 2 {
		t.Fatalf("latencies %v, want one for the stamped frame and one for the marker", got)
	}
	if got[0] < 0 || got[0] > elapsed {
		t.Fatalf("stamped frame latency %v, want within [0, %v]", got[0], elapsed)
	}
	if got[1] > time.Since(epoch) {
		t.Fatalf("marker latency %v, want about an hour", got[1])
	}
}

func TestMetricsHooks(t *testing.T) {
	rm := newRecMetrics()
	sess := newFakeSessions()
	srv := startServer(t, Config{Metrics: rm, CloseTimeout: 200 * time.Millisecond}, sess)
	addr := srv.Addr().String()

	// Refusals: an unknown key (app not known yet) and a session refusal.
	c := dialWS(t, addr, "/app/nope?protocol=7")
	c.expectClose(4001)
	c = dialWS(t, addr, "/app/full?protocol=7")
	c.expectClose(4004)
	rm.waitFor(t, "[ refused 4001 full refused 4004]")

	// A client that closes with 1000, one whose socket just goes (1006),
	// one the server closes (4009).
	a := dialWS(t, addr, "/app/key?protocol=7")
	sa := sess.next(t)
	a.readText()
	a.writeFrame(true, opText, []byte(`{"event":"pusher:ping"}`))
	<-sa.msgs
	a.writeFrame(true, opClose, closePayload(1000, "bye"))
	a.expectClose(1000)

	b := dialWS(t, addr, "/app/key?protocol=7")
	sess.next(t)
	b.readText()
	_ = b.nc.Close()

	d := dialWS(t, addr, "/app/key?protocol=7")
	sd := sess.next(t)
	d.readText()
	sd.conn.Close(4009, "go away")
	d.expectClose(4009)
	d.writeFrame(true, opClose, closePayload(4009, ""))

	rm.waitFor(t, "[ refused 4001 full refused 4004 key closed 1000 key closed 1006 key closed 4009 key opened key opened key opened]")
	rm.mu.Lock()
	defer rm.mu.Unlock()
	if rm.in["key"] != len(`{"event":"pusher:ping"}`) {
		t.Errorf("bytes in %d", rm.in["key"])
	}
	// Three connection_established frames and two close frames at least.
	if rm.out["key"] < 3*len(TextFrame(establishedJSON)) {
		t.Errorf("bytes out %d", rm.out["key"])
	}
}
