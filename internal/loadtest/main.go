// Package loadtest is Herald's load tool, run as `herald-bench`
// (cmd/herald-bench, a binary of its own so that the server never links
// it). It drives any Pusher-protocol server (Herald, soketi, Reverb, …)
// over WebSocket and the signed HTTP API and measures it from the outside:
//
//   - idle: N subscribed connections; server RSS per connection, connect rate
//   - fanout: S subscribers over K channels, P HTTP API publishers at a
//     rate or as fast as possible; deliveries per second, delivery ratio,
//     order violations, latency percentiles, server CPU per delivery
//   - churn: connect, subscribe, unsubscribe, disconnect cycles per second
//
// Server CPU and RSS come from /proc/<pid>, so the server must run on the
// same machine for those figures; everything else works remotely too, but
// only loopback targets are accepted without --allow-remote.
package loadtest

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/pprof"
	"syscall"
	"time"
)

const usage = `Usage: herald-bench <scenario> [flags]

Load-test a Pusher-protocol server (Herald or any other) on this machine.

Scenarios:
  idle     open N connections over K channels, measure server RSS per
           connection and the connect rate
  fanout   S subscribers over K channels, P publishers over the HTTP API at
           --rate events/s (0 = as fast as possible); deliveries/s, delivery
           ratio, order violations, latency p50/p90/p99/p99.9/max, server
           CPU and deliveries per server CPU-second
  churn    C workers looping connect, subscribe, unsubscribe, disconnect;
           cycles/s and server CPU
  merge    merges the JSON lines of one fanout run spread over several
           processes (--ready-file/--start-file; bench/cluster-scale.sh)
  help     'herald-bench help <scenario>' lists a scenario's flags

Progress goes to stderr every second; the summary table and one JSON line go
to stdout (--json prints only the JSON line). Server CPU and RSS are read from
/proc/<pid> (--server-pid, or the process listening on the target port).

Examples:
  herald-bench idle --conns 19000 --channels 100 --server-pid $(pidof herald)
  herald-bench fanout --subscribers 1000 --channels 1 --duration 10s
  herald-bench fanout --subscribers 1000 --channels 1 --rate 20 --publishers 1
  herald-bench churn --conns 50 --duration 10s

Exit status: 0 when the run completed, 1 when it failed (too many connection
failures, nothing delivered), 2 for a usage error.
`

// Main runs `herald-bench` with args (the words after the program name)
// and returns the process exit code.
func Main(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	scenario := args[0]
	switch scenario {
	case "merge":
		return mergeMain(args[1:], os.Stdin, stdout, stderr)
	case "help", "-h", "-help", "--help":
		if len(args) > 1 && isScenario(args[1]) {
			fs, _ := newFlagSet(args[1], stdout)
			fs.SetOutput(stdout)
			fs.Usage()
			return 0
		}
		fmt.Fprint(stdout, usage)
		return 0
	}
	if !isScenario(scenario) {
		fmt.Fprintf(stderr, "herald-bench: unknown scenario %q\n\n%s", scenario, usage)
		return 2
	}
	fs, o := newFlagSet(scenario, stderr)
	if err := fs.Parse(args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "herald-bench %s: unexpected argument %q\n", scenario, fs.Arg(0))
		return 2
	}
	if err := o.validate(scenario); err != nil {
		fmt.Fprintf(stderr, "herald-bench %s: %v\n", scenario, err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	targets := append([]string(nil), o.urls...)
	if scenario == "fanout" {
		targets = append(targets, o.apis...)
	}
	if err := checkTargets(ctx, o.AllowRemote, nil, targets...); err != nil {
		fmt.Fprintf(stderr, "herald-bench %s: %v\n", scenario, err)
		return 2
	}
	if err := checkSources(o.AllowRemote, o.sources); err != nil {
		fmt.Fprintf(stderr, "herald-bench %s: %v\n", scenario, err)
		return 2
	}
	if o.CPUProfile != "" {
		f, err := os.Create(o.CPUProfile)
		if err != nil {
			fmt.Fprintf(stderr, "herald-bench %s: %v\n", scenario, err)
			return 2
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			fmt.Fprintf(stderr, "herald-bench %s: %v\n", scenario, err)
			return 2
		}
		defer pprof.StopCPUProfile()
	}
	r := &runner{o: o, scenario: scenario, stderr: stderr}
	if o.JSON {
		r.stderr = io.Discard
	}
	res := r.run(ctx)
	if !o.JSON {
		res.writeTable(stdout)
	}
	if err := res.writeJSON(stdout); err != nil {
		fmt.Fprintf(stderr, "herald-bench: %v\n", err)
		return 1
	}
	if !res.OK {
		return 1
	}
	return 0
}

func isScenario(s string) bool { return s == "idle" || s == "fanout" || s == "churn" }

func newFlagSet(scenario string, out io.Writer) (*flag.FlagSet, *Options) {
	o := defaultOptions(scenario)
	fs := flag.NewFlagSet("herald-bench "+scenario, flag.ContinueOnError)
	fs.SetOutput(out)
	o.register(fs, scenario)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: herald-bench %s [flags]\n\nFlags:\n", scenario)
		fs.PrintDefaults()
	}
	return fs, &o
}

// runner holds what every scenario shares.
type runner struct {
	o        *Options
	scenario string
	stderr   io.Writer
	pids     []int // server processes whose CPU and RSS are summed
	notes    []string
	fileLim  uint64
}

func (r *runner) note(format string, a ...any) {
	s := fmt.Sprintf(format, a...)
	r.notes = append(r.notes, s)
	fmt.Fprintln(r.stderr, "note:", s)
}

// run prepares the process (file limit, server pid) and runs the scenario.
func (r *runner) run(ctx context.Context) *Result {
	o := r.o
	lim, err := raiseFileLimit()
	r.fileLim = lim
	if err != nil {
		r.note("could not raise the open-file limit: %v", err)
	}
	need := uint64(o.Conns + o.Publishers + 64)
	if r.scenario == "churn" {
		need = uint64(o.Conns + 64)
	}
	if lim > 0 && lim < need {
		r.note("open-file limit %d is below the %d descriptors this run needs; expect connection failures", lim, need)
	}
	r.pids = r.findServers()
	cpu0 := selfCPUSeconds()
	nz := startNoise(ctx, o)
	var res *Result
	switch r.scenario {
	case "idle":
		res = r.idle(ctx)
	case "fanout":
		res = r.fanout(ctx)
	default:
		res = r.churn(ctx)
	}
	res.Noise = nz.stop()
	res.ClientCPUSeconds = roundTo(selfCPUSeconds()-cpu0, 3)
	if rss, err := procRSSBytes(os.Getpid()); err == nil {
		res.ClientRSSBytes = rss
	}
	if ctx.Err() != nil {
		r.note("interrupted; figures cover the part that ran")
	}
	res.Notes = append(res.Notes, r.notes...)
	return res
}

func (r *runner) newResult() *Result {
	o := r.o
	res := &Result{Scenario: r.scenario, Target: o.URL, OK: true, Params: map[string]any{
		"conns":    o.Conns,
		"channels": o.Channels,
	}}
	if len(r.pids) > 0 {
		res.ServerPID = r.pids[0]
	}
	if len(r.pids) > 1 {
		res.ServerPIDs = r.pids
		res.Params["nodes"] = len(o.urls)
	}
	return res
}

// finish fills the fields every scenario reports from st.
func (r *runner) finish(res *Result, st *runStats, cs *clientSet) {
	res.Connections = st.connected.Load()
	res.ConnectErrors = st.failed.Load()
	res.Dropped = st.dropped.Load()
	res.Errors = st.errs.total()
	res.ErrorDetail = st.errs.snapshot()
	if cs != nil {
		res.SourceIPs = cs.pool.Used()
	}
	_, _, v := st.totals()
	res.OrderViolations = v
}

// findServers returns the server processes to measure: --server-pid, or
// the process listening on each loopback target's port. It returns none
// (and notes why) when any of them cannot be read, so that a figure never
// covers only part of a cluster.
func (r *runner) findServers() []int {
	o := r.o
	pids := o.pids
	if len(pids) == 0 {
		seen := map[int]bool{}
		for _, u := range o.urls {
			if !isLoopbackTarget(u) {
				r.note("server CPU and RSS not measured: pass --server-pid (it must run on this machine)")
				return nil
			}
			port, err := targetPort(u)
			if err != nil {
				return nil
			}
			pid, err := findListeningPID(port)
			if err != nil {
				r.note("server CPU and RSS not measured: %v", err)
				return nil
			}
			if !seen[pid] {
				seen[pid] = true
				pids = append(pids, pid)
			}
		}
	}
	for _, pid := range pids {
		if _, err := procCPUSeconds(pid); err != nil {
			r.note("cannot read /proc/%d: %v; server CPU and RSS not measured", pid, err)
			return nil
		}
	}
	return pids
}

// procSample is one reading of a process's CPU seconds and RSS.
type procSample struct {
	cpu   float64
	rss   int64
	cpuOK bool
	rssOK bool
}

// sampleProcs reads every server (when there are several) and every
// watched process, in that order.
func (r *runner) sampleProcs() []procSample {
	var pids []int
	if len(r.pids) > 1 {
		pids = append(pids, r.pids...)
	}
	for _, w := range r.o.watch {
		pids = append(pids, w.pid)
	}
	out := make([]procSample, len(pids))
	for i, pid := range pids {
		var err error
		out[i].cpu, err = procCPUSeconds(pid)
		out[i].cpuOK = err == nil
		out[i].rss, err = procRSSBytes(pid)
		out[i].rssOK = err == nil
	}
	return out
}

// procStats turns the samples at the window's edges into per-process
// figures: the servers' (several only) and the watched processes'.
func (r *runner) procStats(at0, at1 []procSample) (servers, watched []ProcStats) {
	stat := func(i, pid int, name string) ProcStats {
		ps := ProcStats{Name: name, PID: pid}
		if i < len(at0) && i < len(at1) && at0[i].cpuOK && at1[i].cpuOK {
			ps.CPUSeconds = f64(roundTo(at1[i].cpu-at0[i].cpu, 3))
		}
		if i < len(at0) && at0[i].rssOK {
			ps.RSSBytes = i64(at0[i].rss)
		}
		return ps
	}
	i := 0
	if len(r.pids) > 1 {
		for _, pid := range r.pids {
			servers = append(servers, stat(i, pid, ""))
			i++
		}
	}
	for _, w := range r.o.watch {
		watched = append(watched, stat(i, w.pid, w.name))
		i++
	}
	return servers, watched
}

// serverCPU returns the CPU seconds of every server process, summed.
func (r *runner) serverCPU() (float64, bool) {
	if len(r.pids) == 0 {
		return 0, false
	}
	var sum float64
	for _, pid := range r.pids {
		v, err := procCPUSeconds(pid)
		if err != nil {
			return 0, false
		}
		sum += v
	}
	return sum, true
}

func (r *runner) serverRSS() (int64, bool) {
	if len(r.pids) == 0 {
		return 0, false
	}
	var sum int64
	for _, pid := range r.pids {
		v, err := procRSSBytes(pid)
		if err != nil {
			return 0, false
		}
		sum += v
	}
	return sum, true
}

// progress prints line() to stderr every interval until stop is called.
func (r *runner) progress(line func() string) (stop func()) {
	if r.o.JSON || r.o.Progress <= 0 {
		return func() {}
	}
	done, finished := make(chan struct{}), make(chan struct{})
	start := time.Now()
	go func() {
		defer close(finished)
		t := time.NewTicker(r.o.Progress)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				fmt.Fprintf(r.stderr, "[%s %6.1fs] %s\n", r.scenario, time.Since(start).Seconds(), line())
			}
		}
	}()
	return func() { close(done); <-finished }
}

// sleepCtx waits d or until ctx ends; it reports whether d elapsed.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// connectLine is the progress line while connections open.
func connectLine(st *runStats, n int) func() string {
	last, lastT := int64(0), time.Now()
	return func() string {
		c := st.connected.Load()
		now := time.Now()
		rate := float64(c-last) / now.Sub(lastT).Seconds()
		last, lastT = c, now
		s := fmt.Sprintf("connecting: %d/%d subscribed (%s/s), %d in flight, %d failed", c, n, human(rate), st.dialing.Load(), st.failed.Load())
		if e := st.errs.top(); e != "" {
			s += " (" + e + ")"
		}
		return s
	}
}
