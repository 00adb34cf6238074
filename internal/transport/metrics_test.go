package transport

import (
	"fmt"
	"sort"
	"sync"
	"testing"
	"time"
)

// recMetrics records the transport's Metrics calls per app.
type recMetrics struct {
	mu     sync.Mutex
	events []string
	in     map[string]int
	out    map[string]int
}

func newRecMetrics() *recMetrics {
	return &recMetrics{in: map[string]int{}, out: map[string]int{}}
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
	deadline := time.Now().Add(10 * time.Second)
	for {
		m.mu.Lock()
		got := append([]string(nil), m.events...)
		m.mu.Unlock()
		sort.Strings(got)
		if fmt.Sprint(got) == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("metrics events %v, want %s", got, want)
		}
		time.Sleep(5 * time.Millisecond)
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
