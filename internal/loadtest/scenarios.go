package loadtest

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
)

// openPhase connects the clients of idle and fanout and fills the connect
// figures of res. It reports whether the run can go on.
func (r *runner) openPhase(ctx context.Context, res *Result, st *runStats, cs *clientSet) bool {
	o := r.o
	cpu0, cpuOK := r.serverCPU()
	stop := r.progress(connectLine(st, o.Conns))
	elapsed, aborted := cs.open(ctx, o.Conns)
	stop()
	connected := st.connected.Load()
	res.ConnectSeconds = roundTo(elapsed.Seconds(), 3)
	if lat := st.setupLatency(); lat.Count > 0 {
		res.ConnectLatency = &lat
		if r.scenario == "fanout" {
			var s Snapshot
			s.Merge(&st.setup)
			res.ConnectHist = s.Export()
		}
	}
	res.ConnectStages = st.setupStages()
	if elapsed > 0 {
		res.ConnectRate = roundTo(float64(connected)/elapsed.Seconds(), 1)
	}
	if cpu1, ok := r.serverCPU(); ok && cpuOK && r.scenario == "idle" {
		res.ServerCPUSeconds = f64(roundTo(cpu1-cpu0, 3))
	}
	if !r.o.JSON {
		fmt.Fprintf(r.stderr, "[%s] %d/%d connections subscribed in %.2fs (%s conn/s), %d failed\n",
			r.scenario, connected, o.Conns, elapsed.Seconds(), human(res.ConnectRate), st.failed.Load())
	}
	switch {
	case ctx.Err() != nil:
		res.OK, res.Verdict = false, "interrupted while connecting"
		return false
	case aborted:
		res.OK = false
		res.Verdict = fmt.Sprintf("%d connections failed, more than --max-fail %.3g of %d", st.failed.Load(), o.MaxFail, o.Conns)
		return false
	case connected == 0:
		res.OK, res.Verdict = false, "no connection succeeded"
		return false
	}
	return true
}

// idle opens N subscribed connections and measures the server's RSS.
func (r *runner) idle(ctx context.Context) *Result {
	o := r.o
	st := newRunStats()
	cs := newClientSet(o, st)
	res := r.newResult()
	res.Params["connect_rate"] = o.ConnectRate
	res.Params["settle_s"] = o.Settle.Seconds()
	res.Params["hold_s"] = o.Hold.Seconds()
	defer r.finish(res, st, cs)

	rss0, rssOK := r.serverRSS()
	if rssOK {
		res.RSSBeforeBytes = i64(rss0)
	}
	kctx, kcancel := context.WithCancel(ctx)
	defer kcancel()
	defer cs.closeAll(10 * time.Second)
	if !r.openPhase(ctx, res, st, cs) {
		return res
	}
	go cs.keepAlive(kctx)

	liveLine := func(what string) func() string {
		return func() string {
			return fmt.Sprintf("%s: %d live, %d dropped, %d errors", what, st.live.Load(), st.dropped.Load(), st.errs.total())
		}
	}
	stop := r.progress(liveLine("settling"))
	sleepCtx(ctx, o.Settle)
	stop()
	if rss1, ok := r.serverRSS(); ok {
		res.RSSBytes = i64(rss1)
		if rssOK {
			n := st.connected.Load()
			res.RSSPerConnBytes = f64(roundTo(float64(rss1-rss0)/float64(n), 1))
			if rss1 <= rss0 {
				r.note("the server's RSS did not grow: it still held memory from earlier runs and returned some; restart it before an idle run for a meaningful RSS per connection")
			}
		}
	}
	if o.Hold > 0 {
		stop := r.progress(liveLine("holding"))
		sleepCtx(ctx, o.Hold)
		stop()
	}
	if d := st.dropped.Load(); d > 0 {
		res.OK = false
		res.Verdict = fmt.Sprintf("%d connections were lost while held", d)
	}
	return res
}

// quietFor is how long the processes of one run (--start-file) wait
// without a measured delivery before they stop.
const quietFor = 3 * time.Second

// fanout subscribes S clients over K channels and publishes through P
// publishers.
func (r *runner) fanout(ctx context.Context) *Result {
	o := r.o
	if o.hostileOnly(r.scenario) {
		return r.hostileOnly(ctx)
	}
	st := newRunStats()
	cs := newClientSet(o, st)
	res := r.newResult()
	res.Params["publishers"] = o.Publishers
	res.Params["rate"] = o.Rate
	res.Params["duration_s"] = o.Duration.Seconds()
	res.Params["warmup_s"] = o.Warmup.Seconds()
	res.Params["payload"] = o.Payload
	if o.Batch > 1 {
		res.Params["batch"] = o.Batch
	}
	if o.ChannelsPerEvt > 1 {
		res.Params["channels_per_event"] = o.ChannelsPerEvt
	}
	if o.IgnoreRetryAfter {
		res.Params["ignore_retry_after"] = true
	}
	defer r.finish(res, st, cs)

	rss0, rssOK := r.serverRSS()
	if rssOK {
		res.RSSBeforeBytes = i64(rss0)
	}
	kctx, kcancel := context.WithCancel(ctx)
	defer kcancel()
	defer cs.closeAll(10 * time.Second)
	if !r.openPhase(ctx, res, st, cs) {
		return res
	}
	go cs.keepAlive(kctx)
	if rss, ok := r.serverRSS(); ok {
		res.RSSBytes = i64(rss)
		if rssOK {
			res.RSSPerConnBytes = f64(roundTo(float64(rss-rss0)/float64(st.connected.Load()), 1))
		}
	}
	if !sleepCtx(ctx, o.Settle) {
		res.OK, res.Verdict = false, "interrupted"
		return res
	}
	cs.mu.Lock()
	subs := append([]int64(nil), cs.subsPerChannel...)
	if len(cs.perTarget) > 1 {
		res.TargetConnections = append([]int64(nil), cs.perTarget...)
	}
	cs.mu.Unlock()
	t0 := time.Now()
	if o.ReadyFile != "" {
		if err := writeFileAtomic(o.ReadyFile, strconv.FormatInt(st.connected.Load(), 10)+"\n"); err != nil {
			res.OK, res.Verdict = false, fmt.Sprintf("--ready-file: %v", err)
			return res
		}
	}
	if o.StartFile != "" {
		stop := r.progress(func() string {
			return fmt.Sprintf("subscribed, waiting for %s: %d live, %d dropped", o.StartFile, st.live.Load(), st.dropped.Load())
		})
		at, err := waitStartFile(ctx, o.StartFile, o.StartWait)
		stop()
		if err != nil {
			res.OK, res.Verdict = false, fmt.Sprintf("--start-file: %v", err)
			return res
		}
		if late := time.Since(at); late > o.Warmup {
			r.note("started %v after the start time in --start-file, past the warmup: the measured window began before this process was ready", late.Round(time.Millisecond))
		}
		t0 = at
		res.ChannelSubscribers = subs
	}

	if o.Hostile.any() {
		hr := startHostile(ctx, o, o.Hostile)
		defer func() {
			for k, v := range hr.stop() {
				res.Params[k] = v
			}
		}()
	}
	apis := make([]*apiClient, len(o.apis))
	for i, base := range o.apis {
		apis[i] = newAPIClient(o, base, o.Publishers)
	}
	names := quotedChannelNames(o.ChannelBase, o.Channels)
	pubs := make([]*publisher, o.Publishers)
	for i := range pubs {
		// Publisher i sends every request to node i%nodes, so that its
		// events keep their order (per publisher, as a cluster promises).
		api := apis[i%len(apis)]
		pubs[i] = &publisher{id: i, nPub: o.Publishers, api: api, st: st, names: names, payload: o.Payload,
			batch: o.Batch, perEvent: o.ChannelsPerEvt, measured: make([]uint64, o.Channels),
			honourRetryAfter: !o.IgnoreRetryAfter}
	}
	var interval time.Duration
	if o.Rate > 0 {
		// Each request carries Batch events; P publishers share the rate.
		interval = time.Duration(float64(time.Second) * float64(o.Publishers*o.Batch) / o.Rate)
	}
	start := t0.Add(o.Warmup)
	end := start.Add(o.Duration)
	st.winStart.Store(start.UnixNano())
	st.winEnd.Store(end.UnixNano())
	res.WindowStartNS = start.UnixNano()

	pubTotals := func() (req, ev, fail uint64) {
		for _, p := range pubs {
			req += p.requests.Load()
			ev += p.events.Load()
			fail += p.failures.Load()
		}
		return
	}
	pubRefusals := func() (refused uint64, waited time.Duration) {
		for _, p := range pubs {
			refused += p.refused.Load()
			waited += time.Duration(p.waited.Load())
		}
		return
	}
	var lastD, lastE uint64
	lastT := t0
	stop := r.progress(func() string {
		d, _, v := st.totals()
		_, e, f := pubTotals()
		now := time.Now()
		dt := now.Sub(lastT).Seconds()
		phase := "warmup"
		if now.After(start) {
			phase = "measuring"
		}
		if now.After(end) {
			phase = "draining"
		}
		rf, _ := pubRefusals()
		s := fmt.Sprintf("%s: %s deliveries/s, %s events/s published, %d live, %d violations, %d publish errors (%d refused), %d errors",
			phase, human(float64(d-lastD)/dt), human(float64(e-lastE)/dt), st.live.Load(), v, f, rf, st.errs.total())
		lastD, lastE, lastT = d, e, now
		return s
	})
	pctx, pcancel := context.WithCancel(ctx)
	defer pcancel()
	var wg sync.WaitGroup
	for i, p := range pubs {
		wg.Add(1)
		// Stagger paced publishers so that their events do not come in bursts.
		first := t0.Add(time.Duration(i) * interval / time.Duration(len(pubs)))
		go func(p *publisher) {
			defer wg.Done()
			p.run(pctx, first, end, interval)
		}(p)
	}

	// Sample the server's CPU and the delivery count at the edges of the
	// measured window.
	sleepCtx(ctx, time.Until(start))
	w0 := r.sampleWindow()
	procs0 := r.sampleProcs()
	d0, _, _ := st.totals()
	sleepCtx(ctx, time.Until(end))
	w1 := r.sampleWindow()
	procs1 := r.sampleProcs()
	d1, _, _ := st.totals()
	window, serverCPU := w0.measured(w1, res)
	res.Servers, res.Watched = r.procStats(procs0, procs1)
	wg.Wait()

	// Drain: wait for the deliveries still in flight.
	expected := func() uint64 {
		var e uint64
		for _, p := range pubs {
			for ch, n := range p.measured {
				e += n * uint64(subs[ch])
			}
		}
		return e
	}
	exp := expected()
	drainEnd := time.Now().Add(o.Drain)
	// A process alone knows what its subscribers expect. The processes of
	// one run (--start-file) receive each other's events and cannot know,
	// so each stops once no measured event has arrived for quietFor: they
	// end together, and none closes its connections (work for the
	// servers) while the others still measure. On a saturated box
	// deliveries stall for seconds, so a second is not enough.
	quietRule := o.StartFile != ""
	lastM, quietSince := uint64(0), time.Now()
	for time.Now().Before(drainEnd) && ctx.Err() == nil {
		_, m, _ := st.totals()
		if !quietRule && m >= exp {
			break
		}
		if m != lastM {
			lastM, quietSince = m, time.Now()
		} else if quietRule && time.Since(quietSince) >= quietFor {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	stop()
	if o.StartFile != "" {
		res.ChannelEvents = make([]uint64, o.Channels)
		for _, p := range pubs {
			for ch, n := range p.measured {
				res.ChannelEvents[ch] += n
			}
		}
	}

	total, measured, _ := st.totals()
	req, ev, fail := pubTotals()
	res.EventsPublished = ev
	res.PublishRequests = req
	res.PublishErrors = fail
	refused, waited := pubRefusals()
	res.PublishRefused = refused
	res.PublishAccepted = req - fail
	if refused > 0 {
		res.PublishBackoffSeconds = f64(roundTo(waited.Seconds(), 3))
	}
	res.PublishRate = roundTo(float64(ev)/(o.Warmup+o.Duration).Seconds(), 1)
	for _, a := range apis {
		if p := a.lastBody.Load(); p != nil {
			res.LastAPIErr = *p
		}
	}
	res.Deliveries = total
	res.MeasuredDeliveries = measured
	res.ExpectedDeliveries = exp
	if window > 0 {
		res.DeliveriesPerSec = roundTo(float64(d1-d0)/window, 1)
	}
	if exp > 0 {
		res.DeliveryRatio = f64(roundTo(float64(measured)/float64(exp), 6))
	}
	snap := st.latency()
	lat := snap.LatencyMS()
	res.Latency = &lat
	res.LatencyHist = snap.Export()
	var rtt Snapshot
	for _, p := range pubs {
		rtt.Merge(&p.rtt)
	}
	if rtt.Total > 0 {
		l := rtt.LatencyMS()
		res.PublishLatency = &l
	}
	if serverCPU > 0 {
		res.DeliveriesPerServerCPUSecond = f64(roundTo(float64(d1-d0)/serverCPU, 1))
	}
	switch {
	case ctx.Err() != nil:
		res.OK, res.Verdict = false, "interrupted"
	case measured == 0:
		res.OK, res.Verdict = false, "no event was delivered in the measured window"
	case req > 0 && fail == req:
		res.OK, res.Verdict = false, "every publish request failed"
	}
	return res
}

// windowSample is what a scenario samples at each edge of its measured
// window: the server's CPU (when known), the load tool's own and the time.
type windowSample struct {
	server   float64
	serverOK bool
	self     float64
	at       time.Time
}

func (r *runner) sampleWindow() windowSample {
	server, ok := r.serverCPU()
	return windowSample{server: server, serverOK: ok, self: selfCPUSeconds(), at: time.Now()}
}

// measured records in res the window from w to end: its length, the load
// tool's CPU share and the server's CPU seconds and share. It returns the
// window's seconds and the server's CPU seconds (rounded as recorded; 0
// when unknown), for the scenario's rates per server CPU-second.
func (w windowSample) measured(end windowSample, res *Result) (window, serverCPU float64) {
	window = end.at.Sub(w.at).Seconds()
	res.WindowSeconds = roundTo(window, 3)
	if window > 0 {
		res.ClientCPUShare = f64(roundTo((end.self-w.self)/window, 3))
	}
	if w.serverOK && end.serverOK {
		serverCPU = roundTo(end.server-w.server, 3)
		res.ServerCPUSeconds = f64(serverCPU)
		if window > 0 {
			res.ServerCPUShare = f64(roundTo(serverCPU/window, 3))
		}
	}
	return window, serverCPU
}

// hostileOnly runs the hostile clients alone (Options.hostileOnly): it
// writes its --ready-file at once, starts them at the time in the
// --start-file (as a single process starts them after its subscribers are
// ready), measures its own and the server's CPU over the same window as
// the measuring process and stops them once the window is over.
// (Without this a hostile-only process had no subscriber to wait for, and
// --subscribers 0 was refused, so a script waiting for its ready file
// waited for ever.)
func (r *runner) hostileOnly(ctx context.Context) *Result {
	o := r.o
	st := newRunStats()
	res := r.newResult()
	res.Params["duration_s"] = o.Duration.Seconds()
	res.Params["warmup_s"] = o.Warmup.Seconds()
	res.Params["hostile_only"] = true
	defer r.finish(res, st, nil)
	if o.ReadyFile != "" {
		if err := writeFileAtomic(o.ReadyFile, "0\n"); err != nil {
			res.OK, res.Verdict = false, fmt.Sprintf("--ready-file: %v", err)
			return res
		}
	}
	t0, err := waitStartFile(ctx, o.StartFile, o.StartWait)
	if err != nil {
		res.OK, res.Verdict = false, fmt.Sprintf("--start-file: %v", err)
		return res
	}
	hr := startHostile(ctx, o, o.Hostile)
	start := t0.Add(o.Warmup)
	end := start.Add(o.Duration)
	res.WindowStartNS = start.UnixNano()
	sleepCtx(ctx, time.Until(start))
	w0 := r.sampleWindow()
	sleepCtx(ctx, time.Until(end))
	w0.measured(r.sampleWindow(), res)
	for k, v := range hr.stop() {
		res.Params[k] = v
	}
	if ctx.Err() != nil {
		res.OK, res.Verdict = false, "interrupted"
	}
	return res
}

// churn runs C workers, each looping connect, subscribe, unsubscribe and
// disconnect.
func (r *runner) churn(ctx context.Context) *Result {
	o := r.o
	st := newRunStats()
	res := r.newResult()
	res.Params["duration_s"] = o.Duration.Seconds()
	res.Params["warmup_s"] = o.Warmup.Seconds()
	pool := newSourcePool(o.sources, allLoopback(o.urls), o.Timeout)
	dialer := newWSDialer(o, pool)
	defer func() {
		r.finish(res, st, nil)
		res.SourceIPs = pool.Used()
	}()
	urls := o.wsURLs()

	t0 := time.Now()
	start := t0.Add(o.Warmup)
	end := start.Add(o.Duration)
	var attempts, allCycles atomic.Int64
	// For churn the shards count cycles in the window ("measured") and
	// their duration (hist).
	lastC, lastT := int64(0), t0
	stop := r.progress(func() string {
		c := allCycles.Load()
		now := time.Now()
		s := fmt.Sprintf("%s cycles/s, %d cycles, %d failed", human(float64(c-lastC)/now.Sub(lastT).Seconds()), c, st.failed.Load())
		if e := st.errs.top(); e != "" {
			s += " (" + e + ")"
		}
		lastC, lastT = c, now
		return s
	})
	wctx, wcancel := context.WithDeadline(ctx, end)
	defer wcancel()
	var wg sync.WaitGroup
	for w := 0; w < o.Conns; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			sh := &st.shards[w%nShards]
			channel := channelName(o.ChannelBase, w%o.Channels)
			unsub := []byte(`{"event":"pusher:unsubscribe","data":{"channel":` + strconv.Quote(channel) + `}}`)
			closeMsg := websocket.FormatCloseMessage(websocket.CloseNormalClosure, "")
			for wctx.Err() == nil {
				t1 := time.Now()
				attempts.Add(1)
				ws, _, _, stage, err := connectSubscribe(wctx, dialer, urls[w%len(urls)], channel, o.Timeout, nil, nil)
				if err != nil {
					// A deadline set from wctx can fire just before wctx
					// reports done: failures at the end are not errors.
					if wctx.Err() != nil || !time.Now().Before(end) {
						return
					}
					st.failed.Add(1)
					st.errs.add(errKind(stage, err))
					sleepCtx(wctx, 20*time.Millisecond)
					continue
				}
				err = ws.WriteMessage(websocket.TextMessage, unsub)
				if err == nil {
					err = ws.WriteControl(websocket.CloseMessage, closeMsg, time.Now().Add(o.Timeout))
				}
				ws.Close()
				if err != nil {
					st.failed.Add(1)
					st.errs.add(errKind("unsubscribe/close", err))
					continue
				}
				t2 := time.Now()
				st.connected.Add(1)
				allCycles.Add(1)
				if !t2.Before(start) && t2.Before(end) {
					sh.measured.Add(1)
					sh.hist.Record(int64(t2.Sub(t1)))
				}
			}
		}(w)
	}
	sleepCtx(ctx, time.Until(start))
	w0 := r.sampleWindow()
	sleepCtx(ctx, time.Until(end))
	window, serverCPU := w0.measured(r.sampleWindow(), res)
	wcancel()
	wg.Wait()
	stop()

	_, cycles, _ := st.totals()
	res.Cycles = cycles
	if window > 0 {
		res.CyclesPerSec = roundTo(float64(cycles)/window, 1)
	}
	lat := st.latency().LatencyMS()
	res.CycleLatency = &lat
	if serverCPU > 0 {
		res.CyclesPerServerCPUSecond = f64(roundTo(float64(cycles)/serverCPU, 1))
	}
	a := attempts.Load()
	switch {
	case ctx.Err() != nil:
		res.OK, res.Verdict = false, "interrupted"
	case cycles == 0:
		res.OK, res.Verdict = false, "no cycle completed in the measured window"
	case a > 0 && float64(st.failed.Load()) > o.MaxFail*float64(a):
		res.OK = false
		res.Verdict = fmt.Sprintf("%d of %d cycles failed, more than --max-fail %.3g", st.failed.Load(), a, o.MaxFail)
	}
	return res
}
