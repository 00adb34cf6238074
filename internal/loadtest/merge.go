package loadtest

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
)

// Merged is one fanout run spread over several load-tool processes that
// shared one measured window (--start-file): sums where figures add up,
// latency from the merged histograms (never an average of percentiles),
// the expected deliveries from every process's subscribers per channel
// times every process's events per channel, and the servers' and watched
// processes' figures as one process sampled them at the window's edges.
type Merged struct {
	Scenario  string         `json:"scenario"` // "fanout-merged"
	Processes int            `json:"processes"`
	Params    map[string]any `json:"params"`
	OK        bool           `json:"ok"`
	Verdict   string         `json:"verdict,omitempty"`

	Connections    int64      `json:"connections"`
	ConnectErrors  int64      `json:"connect_errors"`
	Dropped        int64      `json:"dropped"`
	ConnectLatency *LatencyMS `json:"connect_latency_ms,omitempty"`

	EventsPublished    uint64     `json:"events_published"`
	PublishRequests    uint64     `json:"publish_requests"`
	PublishErrors      uint64     `json:"publish_errors"`
	Deliveries         uint64     `json:"deliveries"`
	DeliveriesPerSec   float64    `json:"deliveries_per_sec"`
	MeasuredDeliveries uint64     `json:"measured_deliveries"`
	ExpectedDeliveries *uint64    `json:"expected_deliveries"`
	DeliveryRatio      *float64   `json:"delivery_ratio"`
	OrderViolations    uint64     `json:"order_violations"`
	Latency            *LatencyMS `json:"latency_ms"`

	WindowSeconds                float64        `json:"window_seconds"`
	ServerCPUSeconds             *float64       `json:"server_cpu_seconds"`
	ServerCPUShare               *float64       `json:"server_cpu_cores"`
	DeliveriesPerServerCPUSecond *float64       `json:"deliveries_per_server_cpu_second"`
	ServerRSSBytes               *int64         `json:"server_rss_bytes"`
	ServerRSSPerConnBytes        *float64       `json:"server_rss_per_conn_bytes"`
	Nodes                        []NodeStats    `json:"nodes,omitempty"`
	Watched                      []WatchedStats `json:"watched,omitempty"`

	ClientCPUSeconds float64 `json:"client_cpu_seconds"`
	ClientRSSBytes   int64   `json:"client_rss_bytes"`

	Errors      int64            `json:"errors"`
	ErrorDetail map[string]int64 `json:"error_detail,omitempty"`
	Notes       []string         `json:"notes,omitempty"`
}

// NodeStats is one server process of a merged run.
type NodeStats struct {
	PID             int      `json:"pid"`
	Connections     *int64   `json:"connections"`
	RSSBeforeBytes  *int64   `json:"rss_before_bytes"`
	RSSBytes        *int64   `json:"rss_bytes"`
	RSSPerConnBytes *float64 `json:"rss_per_conn_bytes"`
	CPUSeconds      *float64 `json:"cpu_seconds"`
	CPUCores        *float64 `json:"cpu_cores"`
}

// WatchedStats is a --watch-pid process (Redis) of a merged run, with its
// CPU per delivery and per published event of the window.
type WatchedStats struct {
	Name                string   `json:"name"`
	PID                 int      `json:"pid"`
	CPUSeconds          *float64 `json:"cpu_seconds"`
	CPUCores            *float64 `json:"cpu_cores"`
	RSSBytes            *int64   `json:"rss_bytes"`
	CPUMicrosPerDeliver *float64 `json:"cpu_us_per_delivery"`
	CPUMicrosPerEvent   *float64 `json:"cpu_us_per_event"`
}

const mergeUsage = `Usage: herald-bench merge [--json] [--rss-before PID=BYTES,...] FILE...

Merges the JSON lines of one fanout run spread over several herald-bench
processes that started from one --start-file (bench/cluster-scale.sh does
this). Lines that do not start with '{' are skipped, so whole outputs can be
given; '-' reads stdin. Prints a table and one JSON line (--json: the line).

Flags:
`

// mergeMain runs `herald-bench merge`.
func mergeMain(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("herald-bench merge", flag.ContinueOnError)
	fs.SetOutput(stderr)
	jsonOnly := fs.Bool("json", false, "print only the JSON line")
	before := fs.String("rss-before", "", "each server's RSS before the run, `pid=bytes,...`, for RSS per connection per node")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), mergeUsage)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() == 0 {
		fmt.Fprint(stderr, "herald-bench merge: name at least one file\n\n")
		fs.Usage()
		return 2
	}
	rssBefore, err := parsePIDBytes(*before)
	if err != nil {
		fmt.Fprintf(stderr, "herald-bench merge: %v\n", err)
		return 2
	}
	var lines []Result
	for _, name := range fs.Args() {
		var r io.Reader = stdin
		if name != "-" {
			f, err := os.Open(name)
			if err != nil {
				fmt.Fprintf(stderr, "herald-bench merge: %v\n", err)
				return 1
			}
			defer f.Close()
			r = f
		}
		got, err := readResults(r)
		if err != nil {
			fmt.Fprintf(stderr, "herald-bench merge: %s: %v\n", name, err)
			return 1
		}
		lines = append(lines, got...)
	}
	m, err := mergeResults(lines, rssBefore)
	if err != nil {
		fmt.Fprintf(stderr, "herald-bench merge: %v\n", err)
		return 1
	}
	if !*jsonOnly {
		m.writeTable(stdout)
	}
	b, err := json.Marshal(m)
	if err != nil {
		fmt.Fprintf(stderr, "herald-bench merge: %v\n", err)
		return 1
	}
	fmt.Fprintf(stdout, "%s\n", b)
	if !m.OK {
		return 1
	}
	return 0
}

// parsePIDBytes parses pid=bytes pairs, comma-separated.
func parsePIDBytes(s string) (map[int]int64, error) {
	out := map[int]int64{}
	for _, f := range splitList(s) {
		p, b, ok := strings.Cut(f, "=")
		pid, err1 := strconv.Atoi(strings.TrimSpace(p))
		n, err2 := strconv.ParseInt(strings.TrimSpace(b), 10, 64)
		if !ok || err1 != nil || err2 != nil || pid <= 0 || n < 0 {
			return nil, fmt.Errorf("--rss-before %q: want pid=bytes", f)
		}
		out[pid] = n
	}
	return out, nil
}

// readResults decodes every line of r that starts with '{'.
func readResults(r io.Reader) ([]Result, error) {
	var out []Result
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 64<<20)
	n := 0
	for sc.Scan() {
		n++
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 || line[0] != '{' {
			continue
		}
		var res Result
		if err := json.Unmarshal(line, &res); err != nil {
			return nil, fmt.Errorf("line %d: %w", n, err)
		}
		out = append(out, res)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read: %w", err)
	}
	return out, nil
}

// mergeResults merges the fanout lines of one coordinated run.
func mergeResults(lines []Result, rssBefore map[int]int64) (*Merged, error) {
	if len(lines) == 0 {
		return nil, errors.New("no JSON line found")
	}
	m := &Merged{Scenario: "fanout-merged", Processes: len(lines), OK: true, Params: map[string]any{}, ErrorDetail: map[string]int64{}}
	var lat, conn Snapshot
	// ref is the line whose server and watched figures are reported: the
	// publishing process's (all sample the same window, it drives it).
	ref := -1
	var windowDeliveries float64
	var verdicts []string
	notes := map[string]bool{}
	for i := range lines {
		l := &lines[i]
		if l.Scenario != "fanout" {
			return nil, fmt.Errorf("line %d is a %q run; only fanout lines merge", i+1, l.Scenario)
		}
		if l.WindowStartNS != lines[0].WindowStartNS || (len(lines) > 1 && l.WindowStartNS == 0) {
			return nil, fmt.Errorf("line %d measured another window (start %d, line 1: %d): merge the lines of one run started from one --start-file", i+1, l.WindowStartNS, lines[0].WindowStartNS)
		}
		if l.LatencyHist == nil {
			return nil, fmt.Errorf("line %d has no latency_hist (written by an older herald-bench?)", i+1)
		}
		if err := l.LatencyHist.AddTo(&lat); err != nil {
			return nil, fmt.Errorf("line %d: latency_hist: %w", i+1, err)
		}
		if l.ConnectHist != nil {
			if err := l.ConnectHist.AddTo(&conn); err != nil {
				return nil, fmt.Errorf("line %d: connect_latency_hist: %w", i+1, err)
			}
		}
		if !l.OK {
			m.OK = false
			verdicts = append(verdicts, fmt.Sprintf("process %d: %s", i+1, l.Verdict))
		}
		m.Connections += l.Connections
		m.ConnectErrors += l.ConnectErrors
		m.Dropped += l.Dropped
		m.EventsPublished += l.EventsPublished
		m.PublishRequests += l.PublishRequests
		m.PublishErrors += l.PublishErrors
		m.Deliveries += l.Deliveries
		m.DeliveriesPerSec += l.DeliveriesPerSec
		windowDeliveries += l.DeliveriesPerSec * l.WindowSeconds
		m.MeasuredDeliveries += l.MeasuredDeliveries
		m.OrderViolations += l.OrderViolations
		m.ClientCPUSeconds += l.ClientCPUSeconds
		m.ClientRSSBytes += l.ClientRSSBytes
		m.Errors += l.Errors
		for k, v := range l.ErrorDetail {
			m.ErrorDetail[k] += v
		}
		for _, n := range l.Notes {
			notes[n] = true
		}
		if pubs, _ := l.Params["publishers"].(float64); pubs > 0 && ref < 0 {
			ref = i
		}
	}
	if ref < 0 {
		ref = 0
		notes["no process published: server and watched figures are the first process's"] = true
	}
	r := &lines[ref]
	for k, v := range r.Params {
		m.Params[k] = v
	}
	m.Params["conns"] = m.Connections
	m.DeliveriesPerSec = roundTo(m.DeliveriesPerSec, 1)
	m.WindowSeconds = r.WindowSeconds
	m.ClientCPUSeconds = roundTo(m.ClientCPUSeconds, 3)
	ll := lat.LatencyMS()
	m.Latency = &ll
	if conn.Total > 0 {
		cl := conn.LatencyMS()
		m.ConnectLatency = &cl
	}
	if exp, ok := expectedDeliveries(lines); ok {
		m.ExpectedDeliveries = &exp
		if exp > 0 {
			m.DeliveryRatio = f64(roundTo(float64(m.MeasuredDeliveries)/float64(exp), 6))
		}
	} else {
		notes["expected deliveries unknown: a line lacks channel_subscribers/channel_events (run with --start-file) or the lines disagree on --channels"] = true
	}

	m.ServerCPUSeconds = r.ServerCPUSeconds
	m.ServerCPUShare = r.ServerCPUShare
	if c := r.ServerCPUSeconds; c != nil && *c > 0 {
		m.DeliveriesPerServerCPUSecond = f64(roundTo(windowDeliveries / *c, 1))
	}
	perNode := nodeConnections(lines, len(r.Servers))
	var rssSum, beforeSum int64
	rssAll, beforeAll := len(r.Servers) > 0, len(r.Servers) > 0
	for i, s := range r.Servers {
		n := NodeStats{PID: s.PID, RSSBytes: s.RSSBytes, CPUSeconds: s.CPUSeconds}
		if perNode != nil {
			n.Connections = i64(perNode[i])
		}
		if s.CPUSeconds != nil && m.WindowSeconds > 0 {
			n.CPUCores = f64(roundTo(*s.CPUSeconds/m.WindowSeconds, 3))
		}
		if b, ok := rssBefore[s.PID]; ok {
			n.RSSBeforeBytes = i64(b)
			beforeSum += b
		} else {
			beforeAll = false
		}
		if s.RSSBytes != nil {
			rssSum += *s.RSSBytes
		} else {
			rssAll = false
		}
		if n.RSSBeforeBytes != nil && n.RSSBytes != nil && n.Connections != nil && *n.Connections > 0 {
			n.RSSPerConnBytes = f64(roundTo(float64(*n.RSSBytes-*n.RSSBeforeBytes)/float64(*n.Connections), 1))
		}
		m.Nodes = append(m.Nodes, n)
	}
	if rssAll {
		m.ServerRSSBytes = i64(rssSum)
		if beforeAll && m.Connections > 0 {
			m.ServerRSSPerConnBytes = f64(roundTo(float64(rssSum-beforeSum)/float64(m.Connections), 1))
		}
	}
	if len(r.Servers) > 0 && perNode == nil {
		notes["connections per node unknown: the lines' target_connections do not match the servers (list --server-pid in --url order)"] = true
	}
	for _, w := range r.Watched {
		ws := WatchedStats{Name: w.Name, PID: w.PID, CPUSeconds: w.CPUSeconds, RSSBytes: w.RSSBytes}
		if c := w.CPUSeconds; c != nil {
			if m.WindowSeconds > 0 {
				ws.CPUCores = f64(roundTo(*c/m.WindowSeconds, 3))
			}
			if windowDeliveries > 0 {
				ws.CPUMicrosPerDeliver = f64(roundTo(*c*1e6/windowDeliveries, 4))
			}
			if ev := windowEvents(lines); ev > 0 {
				ws.CPUMicrosPerEvent = f64(roundTo(*c*1e6/float64(ev), 3))
			}
		}
		m.Watched = append(m.Watched, ws)
	}
	switch {
	case len(verdicts) > 0:
		m.Verdict = strings.Join(verdicts, "; ")
	case m.MeasuredDeliveries == 0:
		m.OK, m.Verdict = false, "no event was delivered in the measured window"
	}
	for n := range notes {
		m.Notes = append(m.Notes, n)
	}
	sort.Strings(m.Notes)
	if len(m.ErrorDetail) == 0 {
		m.ErrorDetail = nil
	}
	return m, nil
}

// expectedDeliveries is Σ over channels of (events published to it in the
// window by every process) × (its subscribers in every process).
func expectedDeliveries(lines []Result) (uint64, bool) {
	k := len(lines[0].ChannelSubscribers)
	if k == 0 {
		return 0, false
	}
	subs := make([]uint64, k)
	events := make([]uint64, k)
	for _, l := range lines {
		if len(l.ChannelSubscribers) != k || (len(l.ChannelEvents) != k && len(l.ChannelEvents) != 0) {
			return 0, false
		}
		for ch := 0; ch < k; ch++ {
			subs[ch] += uint64(l.ChannelSubscribers[ch])
			if l.ChannelEvents != nil {
				events[ch] += l.ChannelEvents[ch]
			}
		}
	}
	var e uint64
	for ch := range subs {
		e += subs[ch] * events[ch]
	}
	return e, true
}

// windowEvents is the number of events published in the window by every
// process, each counted once (not per channel it named).
func windowEvents(lines []Result) uint64 {
	var n uint64
	for _, l := range lines {
		cpe := 1.0
		if v, ok := l.Params["channels_per_event"].(float64); ok && v > 1 {
			cpe = v
		}
		var s uint64
		for _, e := range l.ChannelEvents {
			s += e
		}
		n += uint64(float64(s) / cpe)
	}
	return n
}

// nodeConnections sums target_connections over the lines when every line
// has one entry per server; nil otherwise.
func nodeConnections(lines []Result, nodes int) []int64 {
	if nodes == 0 {
		return nil
	}
	out := make([]int64, nodes)
	for _, l := range lines {
		if len(l.TargetConnections) != nodes {
			return nil
		}
		for i, n := range l.TargetConnections {
			out[i] += n
		}
	}
	return out
}

// writeTable prints the merged run for a person.
func (m *Merged) writeTable(w io.Writer) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	row := func(k, format string, a ...any) { fmt.Fprintf(tw, "  %s\t"+format+"\n", append([]any{k}, a...)...) }
	status := "ok"
	if !m.OK {
		status = "FAILED: " + m.Verdict
	}
	fmt.Fprintf(tw, "herald-bench merge: fanout over %d processes: %s\n", m.Processes, status)
	row("connections", "%s ok, %s failed, %s dropped", human(float64(m.Connections)), human(float64(m.ConnectErrors)), human(float64(m.Dropped)))
	if l := m.ConnectLatency; l != nil {
		row("connect+subscribe ms", "p50 %.3f  p90 %.3f  p99 %.3f  max %.3f", l.P50, l.P90, l.P99, l.Max)
	}
	row("published", "%s events in %s requests, %d failed", human(float64(m.EventsPublished)), human(float64(m.PublishRequests)), m.PublishErrors)
	row("deliveries", "%s (%s/s in the %.1f s window)", human(float64(m.Deliveries)), human(m.DeliveriesPerSec), m.WindowSeconds)
	if m.DeliveryRatio != nil {
		row("delivery ratio", "%.6f (%s of %s expected)", *m.DeliveryRatio, human(float64(m.MeasuredDeliveries)), human(float64(*m.ExpectedDeliveries)))
	}
	row("order violations", "%d", m.OrderViolations)
	if l := m.Latency; l != nil {
		row("latency ms", "p50 %.3f  p90 %.3f  p99 %.3f  p99.9 %.3f  max %.3f  (mean %.3f, n=%s)", l.P50, l.P90, l.P99, l.P999, l.Max, l.Mean, human(float64(l.Count)))
	}
	if m.ServerCPUSeconds != nil {
		row("server CPU (all nodes)", "%.2f s (%.2f cores)", *m.ServerCPUSeconds, deref(m.ServerCPUShare))
	}
	if m.DeliveriesPerServerCPUSecond != nil {
		row("deliveries / server CPU-s", "%s", human(*m.DeliveriesPerServerCPUSecond))
	}
	if m.ServerRSSBytes != nil {
		s := bytesHuman(float64(*m.ServerRSSBytes))
		if m.ServerRSSPerConnBytes != nil {
			s += fmt.Sprintf(", %s per connection", bytesHuman(*m.ServerRSSPerConnBytes))
		}
		row("server RSS (all nodes)", "%s", s)
	}
	for i, n := range m.Nodes {
		s := fmt.Sprintf("pid %d", n.PID)
		if n.Connections != nil {
			s += fmt.Sprintf(", %s conns", human(float64(*n.Connections)))
		}
		if n.RSSBytes != nil {
			s += ", RSS " + bytesHuman(float64(*n.RSSBytes))
		}
		if n.RSSPerConnBytes != nil {
			s += fmt.Sprintf(" (%s/conn)", bytesHuman(*n.RSSPerConnBytes))
		}
		if n.CPUSeconds != nil {
			s += fmt.Sprintf(", CPU %.2f s (%.2f cores)", *n.CPUSeconds, deref(n.CPUCores))
		}
		row(fmt.Sprintf("node %d", i), "%s", s)
	}
	for _, wd := range m.Watched {
		s := fmt.Sprintf("pid %d", wd.PID)
		if wd.CPUSeconds != nil {
			s += fmt.Sprintf(", CPU %.2f s (%.2f cores)", *wd.CPUSeconds, deref(wd.CPUCores))
		}
		if wd.CPUMicrosPerDeliver != nil {
			s += fmt.Sprintf(", %.3f µs per delivery", *wd.CPUMicrosPerDeliver)
		}
		if wd.CPUMicrosPerEvent != nil {
			s += fmt.Sprintf(", %.1f µs per event", *wd.CPUMicrosPerEvent)
		}
		if wd.RSSBytes != nil {
			s += ", RSS " + bytesHuman(float64(*wd.RSSBytes))
		}
		row(wd.Name, "%s", s)
	}
	row("load tools", "%.2f CPU-s, RSS %s", m.ClientCPUSeconds, bytesHuman(float64(m.ClientRSSBytes)))
	row("errors", "%d", m.Errors)
	ekeys := make([]string, 0, len(m.ErrorDetail))
	for k := range m.ErrorDetail {
		ekeys = append(ekeys, k)
	}
	sort.Slice(ekeys, func(i, j int) bool { return m.ErrorDetail[ekeys[i]] > m.ErrorDetail[ekeys[j]] })
	for _, k := range ekeys {
		row("", "%6d  %s", m.ErrorDetail[k], k)
	}
	for _, n := range m.Notes {
		row("note", "%s", n)
	}
	tw.Flush()
}

func deref(p *float64) float64 {
	if p == nil {
		return 0
	}
	return *p
}
