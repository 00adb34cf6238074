package loadtest

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"sort"
	"strings"
	"text/tabwriter"
)

// Result is everything one run measured; it is printed as a table and as
// one JSON line. Figures that could not be measured (no server pid) are
// null in JSON; figures that do not apply to the scenario are left out.
type Result struct {
	Scenario  string         `json:"scenario"`
	Target    string         `json:"target"`
	Params    map[string]any `json:"params"`
	ServerPID int            `json:"server_pid,omitempty"`
	// ServerPIDs lists every server process measured when there are several
	// (a cluster); CPU and RSS figures are their sums.
	ServerPIDs []int  `json:"server_pids,omitempty"`
	OK         bool   `json:"ok"`
	Verdict    string `json:"verdict,omitempty"`

	Connections    int64   `json:"connections"`
	ConnectErrors  int64   `json:"connect_errors"`
	ConnectSeconds float64 `json:"connect_seconds,omitempty"`
	ConnectRate    float64 `json:"connect_rate,omitempty"`
	// ConnectLatency is the time of each connection's connect (TCP,
	// upgrade, connection_established) and subscribe, from its dial.
	ConnectLatency *LatencyMS `json:"connect_latency_ms,omitempty"`
	// ConnectStages splits ConnectLatency by stage (tcp, upgrade,
	// established, subscribed) and adds launch_lag, the tool's own delay
	// against its --connect-rate schedule: a slow stage points at the
	// kernel's accept queue, the server's HTTP path or its hub, and a
	// large launch_lag at the tool.
	ConnectStages map[string]LatencyMS `json:"connect_stages_ms,omitempty"`
	Dropped       int64                `json:"dropped"`
	SourceIPs     int                  `json:"source_ips,omitempty"`

	RSSBeforeBytes  *int64   `json:"rss_before_bytes"`
	RSSBytes        *int64   `json:"rss_bytes"`
	RSSPerConnBytes *float64 `json:"rss_per_conn_bytes"`

	EventsPublished uint64  `json:"events_published,omitempty"`
	PublishRequests uint64  `json:"publish_requests,omitempty"`
	PublishRate     float64 `json:"publish_rate,omitempty"`
	PublishErrors   uint64  `json:"publish_errors,omitempty"`
	// PublishAccepted counts the requests answered 200; PublishRefused
	// those refused with 429 or 503 (a part of PublishErrors), and
	// PublishBackoffSeconds the publishers' time spent honouring their
	// Retry-After (summed over publishers; null when they ignore it).
	PublishAccepted       uint64   `json:"publish_accepted,omitempty"`
	PublishRefused        uint64   `json:"publish_refused,omitempty"`
	PublishBackoffSeconds *float64 `json:"publish_backoff_seconds,omitempty"`
	// PublishLatency is the round trip of the accepted publish requests
	// sent in the measured window.
	PublishLatency     *LatencyMS `json:"publish_latency_ms,omitempty"`
	Deliveries         uint64     `json:"deliveries,omitempty"`
	DeliveriesPerSec   float64    `json:"deliveries_per_sec,omitempty"`
	ExpectedDeliveries uint64     `json:"expected_deliveries,omitempty"`
	MeasuredDeliveries uint64     `json:"measured_deliveries,omitempty"`
	DeliveryRatio      *float64   `json:"delivery_ratio,omitempty"`
	OrderViolations    uint64     `json:"order_violations"`
	Latency            *LatencyMS `json:"latency_ms,omitempty"`
	// LatencyHist and ConnectHist are the histograms behind latency_ms and
	// connect_latency_ms as bucket counts, so that the lines of several
	// processes merge exactly (herald-bench merge).
	LatencyHist *HistJSON `json:"latency_hist,omitempty"`
	ConnectHist *HistJSON `json:"connect_latency_hist,omitempty"`
	// TargetConnections counts the subscribed connections per --url, in
	// its order (several nodes only).
	TargetConnections []int64 `json:"target_connections,omitempty"`
	// WindowStartNS is the measured window's start (Unix ns); the lines of
	// processes started from one --start-file share it.
	WindowStartNS int64 `json:"window_start_unix_ns,omitempty"`
	// ChannelSubscribers and ChannelEvents are this process's subscribers
	// per channel and the events it published in the window per channel
	// (with --start-file only): merged, they give the expected deliveries
	// of the whole run.
	ChannelSubscribers []int64  `json:"channel_subscribers,omitempty"`
	ChannelEvents      []uint64 `json:"channel_events,omitempty"`
	// Servers breaks the server figures down per process (several
	// --server-pid); Watched has the --watch-pid processes.
	Servers []ProcStats `json:"servers,omitempty"`
	Watched []ProcStats `json:"watched,omitempty"`

	Cycles       uint64     `json:"cycles,omitempty"`
	CyclesPerSec float64    `json:"cycles_per_sec,omitempty"`
	CycleLatency *LatencyMS `json:"cycle_latency_ms,omitempty"`

	WindowSeconds                float64  `json:"window_seconds,omitempty"`
	ServerCPUSeconds             *float64 `json:"server_cpu_seconds"`
	ServerCPUShare               *float64 `json:"server_cpu_cores,omitempty"`
	DeliveriesPerServerCPUSecond *float64 `json:"deliveries_per_server_cpu_second,omitempty"`
	CyclesPerServerCPUSecond     *float64 `json:"cycles_per_server_cpu_second,omitempty"`
	ClientCPUSeconds             float64  `json:"client_cpu_seconds"`
	ClientCPUShare               *float64 `json:"client_cpu_cores,omitempty"`
	ClientRSSBytes               int64    `json:"client_rss_bytes"`

	// Noise is what each kind of background noise (--probe-tcp, ...) saw.
	Noise map[string]NoiseStats `json:"noise,omitempty"`

	Errors      int64            `json:"errors"`
	ErrorDetail map[string]int64 `json:"error_detail,omitempty"`
	LastAPIErr  string           `json:"last_api_error,omitempty"`
	Notes       []string         `json:"notes,omitempty"`
}

// ProcStats is one process's cost in the measured window: CPU seconds
// (utime+stime) between the window's edges and VmRSS at its start.
type ProcStats struct {
	Name       string   `json:"name,omitempty"`
	PID        int      `json:"pid"`
	CPUSeconds *float64 `json:"cpu_seconds"`
	RSSBytes   *int64   `json:"rss_bytes"`
}

func f64(v float64) *float64 { return &v }
func i64(v int64) *int64     { return &v }

func roundTo(v float64, digits int) float64 {
	p := math.Pow(10, float64(digits))
	return math.Round(v*p) / p
}

// writeJSON prints the result as one line.
func (r *Result) writeJSON(w io.Writer) error {
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, "%s\n", b)
	return err
}

// writeTable prints the human summary.
func (r *Result) writeTable(w io.Writer) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	row := func(k, format string, a ...any) { fmt.Fprintf(tw, "  %s\t"+format+"\n", append([]any{k}, a...)...) }
	status := "ok"
	if !r.OK {
		status = "FAILED: " + r.Verdict
	}
	fmt.Fprintf(tw, "herald-bench %s against %s: %s\n", r.Scenario, r.Target, status)
	keys := make([]string, 0, len(r.Params))
	for k := range r.Params {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var ps []string
	for _, k := range keys {
		ps = append(ps, fmt.Sprintf("%s=%v", k, r.Params[k]))
	}
	row("params", "%s", strings.Join(ps, " "))
	row("connections", "%s ok, %s failed, %s dropped", human(float64(r.Connections)), human(float64(r.ConnectErrors)), human(float64(r.Dropped)))
	if r.ConnectSeconds > 0 {
		row("connect rate", "%s conn/s (%.2f s)", human(r.ConnectRate), r.ConnectSeconds)
	}
	if l := r.ConnectLatency; l != nil && l.Count > 0 {
		row("connect+subscribe ms", "p50 %.3f  p90 %.3f  p99 %.3f  p99.9 %.3f  max %.3f", l.P50, l.P90, l.P99, l.P999, l.Max)
	}
	for _, name := range append(setupStageNames[:], "launch_lag") {
		if l, ok := r.ConnectStages[name]; ok {
			row("  "+name+" ms", "p50 %.3f  p90 %.3f  p99 %.3f  p99.9 %.3f  max %.3f", l.P50, l.P90, l.P99, l.P999, l.Max)
		}
	}
	if r.SourceIPs > 1 {
		row("source addresses", "%d", r.SourceIPs)
	}
	if r.RSSBytes != nil {
		row("server RSS", "%s", bytesHuman(float64(*r.RSSBytes)))
	}
	if r.RSSBeforeBytes != nil {
		row("server RSS before", "%s", bytesHuman(float64(*r.RSSBeforeBytes)))
	}
	if r.RSSPerConnBytes != nil {
		row("server RSS per conn", "%s", bytesHuman(*r.RSSPerConnBytes))
	}
	if r.Scenario == "fanout" {
		row("published", "%s events in %s requests (%s ev/s), %d failed", human(float64(r.EventsPublished)), human(float64(r.PublishRequests)), human(r.PublishRate), r.PublishErrors)
		if r.PublishRefused > 0 {
			backoff := "retried at once"
			if r.PublishBackoffSeconds != nil && *r.PublishBackoffSeconds > 0 {
				backoff = fmt.Sprintf("%.1f publisher-s waiting Retry-After", *r.PublishBackoffSeconds)
			}
			row("refused", "%s of %s requests accepted, %s refused (429/503; %s)", human(float64(r.PublishAccepted)), human(float64(r.PublishRequests)), human(float64(r.PublishRefused)), backoff)
		}
		if l := r.PublishLatency; l != nil {
			row("publish round trip ms", "p50 %.3f  p99 %.3f  max %.3f", l.P50, l.P99, l.Max)
		}
		row("deliveries", "%s (%s/s in the window)", human(float64(r.Deliveries)), human(r.DeliveriesPerSec))
		if r.DeliveryRatio != nil {
			row("delivery ratio", "%.6f (%s of %s expected)", *r.DeliveryRatio, human(float64(r.MeasuredDeliveries)), human(float64(r.ExpectedDeliveries)))
		}
		row("order violations", "%d", r.OrderViolations)
		if l := r.Latency; l != nil {
			row("latency ms", "p50 %.3f  p90 %.3f  p99 %.3f  p99.9 %.3f  max %.3f  (mean %.3f, n=%s)", l.P50, l.P90, l.P99, l.P999, l.Max, l.Mean, human(float64(l.Count)))
		}
	}
	if r.Scenario == "churn" {
		row("cycles", "%s (%s/s)", human(float64(r.Cycles)), human(r.CyclesPerSec))
		if l := r.CycleLatency; l != nil {
			row("cycle ms", "p50 %.3f  p90 %.3f  p99 %.3f  p99.9 %.3f  max %.3f", l.P50, l.P90, l.P99, l.P999, l.Max)
		}
	}
	if r.ServerCPUSeconds != nil {
		extra := ""
		if r.ServerCPUShare != nil {
			extra = fmt.Sprintf(" (%.2f cores)", *r.ServerCPUShare)
		}
		row("server CPU", "%.2f s%s", *r.ServerCPUSeconds, extra)
	}
	if r.DeliveriesPerServerCPUSecond != nil {
		row("deliveries / server CPU-s", "%s", human(*r.DeliveriesPerServerCPUSecond))
	}
	if r.CyclesPerServerCPUSecond != nil {
		row("cycles / server CPU-s", "%s", human(*r.CyclesPerServerCPUSecond))
	}
	tool := fmt.Sprintf("%.2f CPU-s", r.ClientCPUSeconds)
	if r.ClientCPUShare != nil {
		tool += fmt.Sprintf(" (%.2f cores in the window)", *r.ClientCPUShare)
	}
	row("load tool", "%s, RSS %s", tool, bytesHuman(float64(r.ClientRSSBytes)))
	nkeys := make([]string, 0, len(r.Noise))
	for k := range r.Noise {
		nkeys = append(nkeys, k)
	}
	sort.Strings(nkeys)
	for _, k := range nkeys {
		n := r.Noise[k]
		row("noise "+k, "%d, %d failed; ms p50 %.3f  p99 %.3f  max %.3f%s", n.Count, n.Errors, n.Latency.P50, n.Latency.P99, n.Latency.Max, map[bool]string{true: " (" + n.LastErr + ")", false: ""}[n.LastErr != ""])
	}
	row("errors", "%d", r.Errors)
	ekeys := make([]string, 0, len(r.ErrorDetail))
	for k := range r.ErrorDetail {
		ekeys = append(ekeys, k)
	}
	sort.Slice(ekeys, func(i, j int) bool { return r.ErrorDetail[ekeys[i]] > r.ErrorDetail[ekeys[j]] })
	for _, k := range ekeys {
		row("", "%6d  %s", r.ErrorDetail[k], k)
	}
	if r.LastAPIErr != "" {
		row("last API error", "%s", r.LastAPIErr)
	}
	for _, n := range r.Notes {
		row("note", "%s", n)
	}
	tw.Flush()
}

// human formats a count with k/M suffixes.
func human(v float64) string {
	a := math.Abs(v)
	switch {
	case a >= 1e9:
		return fmt.Sprintf("%.2fG", v/1e9)
	case a >= 1e6:
		return fmt.Sprintf("%.2fM", v/1e6)
	case a >= 1e4:
		return fmt.Sprintf("%.1fk", v/1e3)
	case a == math.Trunc(a):
		return fmt.Sprintf("%.0f", v)
	default:
		return fmt.Sprintf("%.1f", v)
	}
}

func bytesHuman(v float64) string {
	a := math.Abs(v)
	switch {
	case a >= 1<<30:
		return fmt.Sprintf("%.2f GiB", v/(1<<30))
	case a >= 1<<20:
		return fmt.Sprintf("%.1f MiB", v/(1<<20))
	case a >= 1<<10:
		return fmt.Sprintf("%.1f KiB", v/(1<<10))
	default:
		return fmt.Sprintf("%.0f B", v)
	}
}
