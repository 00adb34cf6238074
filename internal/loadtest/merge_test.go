package loadtest

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/herald-ws/herald/internal/testwait"
)

// TestCoordinatedProcessesMerge runs one fanout as bench/cluster-scale.sh
// does: three processes against two nodes, one of them publishing, the
// others subscribe-only, started from one --start-file; merged, their
// lines count every subscriber of every process in the expected
// deliveries and give the latency of every delivery.
func TestCoordinatedProcessesMerge(t *testing.T) {
	fs := startFakeServer(t)
	a := fs.ln.Addr().String()
	b := fs.addNode()
	dir := t.TempDir()
	start := filepath.Join(dir, "start")
	self := strconv.Itoa(os.Getpid())
	type out struct {
		code   int
		stdout string
	}
	procs := []struct {
		subs, pubs string
	}{{"12", "2"}, {"10", "0"}, {"8", "0"}}
	done := make(chan out, len(procs))
	for i, p := range procs {
		args := []string{"fanout", "--url", "ws://" + a + ",ws://" + b, "--api", "http://" + a + ",http://" + b,
			"--subscribers", p.subs, "--channels", "4", "--publishers", p.pubs, "--rate", "400",
			"--duration", "1s", "--warmup", "300ms", "--drain", "5s",
			"--server-pid", self + "," + self, "--watch-pid", "redis=" + self,
			"--ready-file", filepath.Join(dir, "ready"+strconv.Itoa(i)), "--start-file", start, "--start-wait", "30s", "--json"}
		go func() {
			var o, e bytes.Buffer
			code := Main(args, &o, &e)
			done <- out{code, o.String() + e.String()}
		}()
	}
	testwait.For(t, 20*time.Second, "every process to write its ready file", func() bool {
		for i := range procs {
			if _, err := os.Stat(filepath.Join(dir, "ready"+strconv.Itoa(i))); err != nil {
				return false
			}
		}
		return true
	})
	if got, _ := os.ReadFile(filepath.Join(dir, "ready1")); strings.TrimSpace(string(got)) != "10" {
		t.Errorf("ready file holds %q, want the 10 subscribed connections", got)
	}
	if err := writeFileAtomic(start, strconv.FormatInt(time.Now().Add(50*time.Millisecond).UnixNano(), 10)); err != nil {
		t.Fatal(err)
	}
	var all strings.Builder
	for range procs {
		o := <-done
		if o.code != 0 {
			t.Fatalf("a process exited %d:\n%s", o.code, o.stdout)
		}
		all.WriteString(o.stdout)
	}
	lines, err := readResults(strings.NewReader(all.String()))
	if err != nil || len(lines) != 3 {
		t.Fatalf("%d lines, %v\n%s", len(lines), err, all.String())
	}
	// Alone, a subscribe-only process expects nothing (it does not know
	// what the publisher sent), yet it received the publisher's events.
	for _, l := range lines {
		if l.Params["publishers"] == float64(0) && (l.ExpectedDeliveries != 0 || l.MeasuredDeliveries == 0) {
			t.Errorf("subscribe-only process: expected %d, measured %d", l.ExpectedDeliveries, l.MeasuredDeliveries)
		}
	}
	m, err := mergeResults(lines, map[int]int64{os.Getpid(): 0})
	if err != nil {
		t.Fatal(err)
	}
	if !m.OK || m.Connections != 30 || m.Processes != 3 {
		t.Fatalf("merged: ok %v (%s), %d connections, %d processes", m.OK, m.Verdict, m.Connections, m.Processes)
	}
	if m.ExpectedDeliveries == nil || *m.ExpectedDeliveries == 0 || m.DeliveryRatio == nil || *m.DeliveryRatio != 1 {
		t.Errorf("expected %v, measured %d, ratio %v", m.ExpectedDeliveries, m.MeasuredDeliveries, m.DeliveryRatio)
	}
	// Every subscriber got every measured event: 30 subscribers over 4
	// channels, so measured = Σ events(ch) × subscribers(ch).
	if m.Latency == nil || m.Latency.Count != m.MeasuredDeliveries || m.ConnectLatency == nil || m.ConnectLatency.Count != 30 {
		t.Errorf("latency %+v, connect latency %+v, measured %d", m.Latency, m.ConnectLatency, m.MeasuredDeliveries)
	}
	if len(m.Nodes) != 2 || m.Nodes[0].Connections == nil || *m.Nodes[0].Connections+*m.Nodes[1].Connections != 30 {
		t.Errorf("nodes %+v", m.Nodes)
	}
	if c0, c1 := fs.counts(a); c0 == 0 || c1 == 0 {
		t.Errorf("node a: %d connections, %d API requests", c0, c1)
	}
	if len(m.Watched) != 1 || m.Watched[0].Name != "redis" || m.Watched[0].CPUSeconds == nil || m.Watched[0].CPUMicrosPerDeliver == nil {
		t.Errorf("watched %+v", m.Watched)
	}
	if m.OrderViolations != 0 {
		t.Errorf("order violations %d", m.OrderViolations)
	}
}

func TestMergeRefusesMixedRuns(t *testing.T) {
	h := (&Snapshot{}).Export()
	l := func(win int64) Result {
		return Result{Scenario: "fanout", OK: true, WindowStartNS: win, LatencyHist: h, Params: map[string]any{"publishers": 1.0}}
	}
	if _, err := mergeResults([]Result{l(1), l(2)}, nil); err == nil {
		t.Error("lines of two windows merged")
	}
	if _, err := mergeResults([]Result{l(0), l(0)}, nil); err == nil {
		t.Error("lines without a shared --start-file window merged")
	}
	idle := l(1)
	idle.Scenario = "idle"
	if _, err := mergeResults([]Result{l(1), idle}, nil); err == nil {
		t.Error("an idle line merged")
	}
	old := l(1)
	old.LatencyHist = nil
	if _, err := mergeResults([]Result{l(1), old}, nil); err == nil {
		t.Error("a line without a histogram merged")
	}
	if _, err := mergeResults(nil, nil); err == nil {
		t.Error("nothing merged")
	}
}

// TestMergeSumsAndExpects checks the arithmetic on hand-made lines: the
// expected deliveries need every process's subscribers per channel, and a
// failed process fails the merge.
func TestMergeSumsAndExpects(t *testing.T) {
	var h1, h2 Histogram
	for i := 0; i < 100; i++ {
		h1.Record(1e6)
	}
	h2.Record(50e6)
	var s1, s2 Snapshot
	s1.Merge(&h1)
	s2.Merge(&h2)
	cpu, rss := 2.0, int64(1<<30)
	pub := Result{Scenario: "fanout", OK: true, WindowStartNS: 7, LatencyHist: s1.Export(), Params: map[string]any{"publishers": 1.0},
		Connections: 3, DeliveriesPerSec: 100, WindowSeconds: 1, MeasuredDeliveries: 100,
		ChannelSubscribers: []int64{2, 1}, ChannelEvents: []uint64{10, 40}, TargetConnections: []int64{2, 1},
		ServerCPUSeconds: f64(1), Servers: []ProcStats{{PID: 11, CPUSeconds: f64(0.5), RSSBytes: i64(1000 + 2*500)}, {PID: 12, RSSBytes: i64(1000 + 500)}},
		Watched: []ProcStats{{Name: "redis", PID: 13, CPUSeconds: &cpu, RSSBytes: &rss}}}
	sub := Result{Scenario: "fanout", OK: false, Verdict: "2 connections were lost", WindowStartNS: 7, LatencyHist: s2.Export(), Params: map[string]any{"publishers": 0.0},
		Connections: 1, DeliveriesPerSec: 50, WindowSeconds: 1, MeasuredDeliveries: 1,
		ChannelSubscribers: []int64{0, 1}, ChannelEvents: []uint64{0, 0}, TargetConnections: []int64{0, 1}}
	m, err := mergeResults([]Result{sub, pub}, map[int]int64{11: 1000, 12: 1000})
	if err != nil {
		t.Fatal(err)
	}
	// 10 events × 2 subscribers + 40 events × (1 + 1).
	if m.ExpectedDeliveries == nil || *m.ExpectedDeliveries != 100 {
		t.Errorf("expected %v, want 100", m.ExpectedDeliveries)
	}
	if m.DeliveryRatio == nil || *m.DeliveryRatio != 1.01 {
		t.Errorf("ratio %v", m.DeliveryRatio)
	}
	if m.OK || !strings.Contains(m.Verdict, "process 1: 2 connections were lost") {
		t.Errorf("ok %v verdict %q", m.OK, m.Verdict)
	}
	if m.Latency.Count != 101 || m.Latency.Max != 50 || m.Latency.P50 > 1.1 {
		t.Errorf("latency %+v", m.Latency)
	}
	if m.DeliveriesPerSec != 150 || m.DeliveriesPerServerCPUSecond == nil || *m.DeliveriesPerServerCPUSecond != 150 {
		t.Errorf("deliveries/s %v, per server CPU-s %v", m.DeliveriesPerSec, m.DeliveriesPerServerCPUSecond)
	}
	n0, n1 := m.Nodes[0], m.Nodes[1]
	if *n0.Connections != 2 || *n1.Connections != 2 || *n0.RSSPerConnBytes != 500 || *n1.RSSPerConnBytes != 250 {
		t.Errorf("nodes %+v %+v", n0, n1)
	}
	if m.ServerRSSPerConnBytes == nil || *m.ServerRSSPerConnBytes != 375 {
		t.Errorf("RSS per connection %v", m.ServerRSSPerConnBytes)
	}
	// Redis: 2 CPU-s over 150 deliveries and 50 events.
	w := m.Watched[0]
	if *w.CPUMicrosPerDeliver != roundTo(2e6/150, 4) || *w.CPUMicrosPerEvent != 40000 {
		t.Errorf("watched %+v", w)
	}
	b, _ := json.Marshal(m)
	for _, k := range []string{`"nodes":[`, `"watched":[`, `"latency_ms":{`, `"delivery_ratio":1.01`} {
		if !bytes.Contains(b, []byte(k)) {
			t.Errorf("JSON lacks %s: %s", k, b)
		}
	}
}

func TestMergeCommandLine(t *testing.T) {
	var o, e bytes.Buffer
	if code := Main([]string{"merge"}, &o, &e); code != 2 {
		t.Errorf("merge without files: exit %d", code)
	}
	if code := Main([]string{"merge", "--rss-before", "x=1", "f"}, &o, &e); code != 2 {
		t.Errorf("bad --rss-before: exit %d", code)
	}
	if code := Main([]string{"merge", filepath.Join(t.TempDir(), "missing")}, &o, &e); code != 1 {
		t.Errorf("missing file: exit %d", code)
	}
	// A file with tables and progress around the JSON lines, as a
	// process's whole output is.
	var h Histogram
	h.Record(2e6)
	var s Snapshot
	s.Merge(&h)
	line, _ := json.Marshal(Result{Scenario: "fanout", OK: true, WindowStartNS: 5, LatencyHist: s.Export(), MeasuredDeliveries: 1, Params: map[string]any{"publishers": 1.0}})
	f := filepath.Join(t.TempDir(), "p0.out")
	if err := os.WriteFile(f, []byte("herald-bench fanout ...\n  latency ms  p50 2\n"+string(line)+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	o.Reset()
	if code := Main([]string{"merge", "--json", f}, &o, &e); code != 0 {
		t.Fatalf("merge: exit %d: %s", code, e.String())
	}
	var m Merged
	if err := json.Unmarshal(o.Bytes(), &m); err != nil || m.Processes != 1 || m.Latency.P50 != 2 {
		t.Errorf("%v %+v: %s", err, m, o.String())
	}
}
