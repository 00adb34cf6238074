package loadtest

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
)

// Production's background noise: what a load balancer, a monitoring
// system, an operator and ordinary clients do to a server while it fans
// out. Each kind runs on its own goroutine during the whole scenario (from
// before the first connection to the end of the measured window), so that
// a stall it causes shows in the scenario's figures; each kind's own
// latency and errors are reported under "noise".

// noiseOptions are the --probe-*, --scrape, --dashboard and --bg-churn
// flags.
type noiseOptions struct {
	TCP        time.Duration // bare TCP connect and close (an LB's TCP health check)
	HTTP       time.Duration // GET /up and GET /ready
	Scrape     time.Duration // GET /metrics, body read in full
	MetricsURL string        // default: the first --api + /metrics
	Dashboard  time.Duration // the dashboard's live feed (stats + event log)
	AdminToken string        // dashboard login
	DashPath   string        // dashboard path
	Churn      float64       // connections per second that connect, subscribe and close
	Production bool          // all of the above at production's rates
}

func (n *noiseOptions) register(fs *flag.FlagSet) {
	fs.DurationVar(&n.TCP, "probe-tcp", 0, "every `interval`, a bare TCP connect and close without a request (a load balancer's TCP health check); 0 = off")
	fs.DurationVar(&n.HTTP, "probe-http", 0, "every `interval`, GET /up and GET /ready on the first --api (an HTTP health check); 0 = off")
	fs.DurationVar(&n.Scrape, "scrape", 0, "every `interval`, GET --metrics-url and read it all (a Prometheus scrape); 0 = off")
	fs.StringVar(&n.MetricsURL, "metrics-url", "", "URL scraped by --scrape (default: the first --api + /metrics)")
	fs.DurationVar(&n.Dashboard, "dashboard", 0, "every `interval`, what an open dashboard polls (GET api/apps/<app-id>/stats and api/apps/<app-id>/log), after logging in with --admin-token; 0 = off")
	fs.StringVar(&n.AdminToken, "admin-token", "", "the server's admin token, for --dashboard")
	fs.StringVar(&n.DashPath, "dashboard-path", "/dashboard", "the dashboard's path, for --dashboard")
	fs.Float64Var(&n.Churn, "bg-churn", 0, "connections per second that connect, subscribe to a channel of their own (noise-0..9) and close, besides the scenario's; 0 = off")
	fs.BoolVar(&n.Production, "production-noise", false, "shorthand for --probe-tcp 1s --probe-http 1s --scrape 5s --bg-churn 20 and, when --admin-token is given, --dashboard 1s")
}

func (n *noiseOptions) validate() error {
	if n.Production {
		n.TCP = cmpOr(n.TCP, time.Second)
		n.HTTP = cmpOr(n.HTTP, time.Second)
		n.Scrape = cmpOr(n.Scrape, 5*time.Second)
		if n.Churn == 0 {
			n.Churn = 20
		}
		if n.AdminToken != "" {
			n.Dashboard = cmpOr(n.Dashboard, time.Second)
		}
	}
	if n.TCP < 0 || n.HTTP < 0 || n.Scrape < 0 || n.Dashboard < 0 || n.Churn < 0 {
		return errors.New("--probe-tcp, --probe-http, --scrape, --dashboard and --bg-churn must not be negative")
	}
	if n.Dashboard > 0 && n.AdminToken == "" {
		return errors.New("--dashboard needs --admin-token")
	}
	if n.Churn > 1000 {
		return errors.New("--bg-churn must be at most 1000 connections per second")
	}
	return nil
}

func (n *noiseOptions) any() bool {
	return n.TCP > 0 || n.HTTP > 0 || n.Scrape > 0 || n.Dashboard > 0 || n.Churn > 0
}

func cmpOr(d, def time.Duration) time.Duration {
	if d != 0 {
		return d
	}
	return def
}

// NoiseStats is what one kind of background noise saw.
type NoiseStats struct {
	Count   uint64    `json:"count"`
	Errors  uint64    `json:"errors"`
	LastErr string    `json:"last_error,omitempty"`
	Latency LatencyMS `json:"latency_ms"`
}

// noiseKind records one kind of noise.
type noiseKind struct {
	name string
	hist Histogram
	mu   sync.Mutex
	errs uint64
	last string
}

func (k *noiseKind) done(start time.Time, err error) {
	if err != nil {
		k.mu.Lock()
		k.errs++
		k.last = err.Error()
		k.mu.Unlock()
		return
	}
	k.hist.Record(int64(time.Since(start)))
}

func (k *noiseKind) stats() NoiseStats {
	var s Snapshot
	s.Merge(&k.hist)
	k.mu.Lock()
	defer k.mu.Unlock()
	return NoiseStats{Count: s.Total + k.errs, Errors: k.errs, LastErr: k.last, Latency: s.LatencyMS()}
}

// noise runs the background noise of one run.
type noise struct {
	o      *Options
	kinds  []*noiseKind
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// startNoise starts every kind of noise the options ask for; stop ends
// them and returns their figures (nil when there was none).
func startNoise(ctx context.Context, o *Options) *noise {
	n := &noise{o: o}
	if !o.Noise.any() {
		return n
	}
	ctx, n.cancel = context.WithCancel(ctx)
	api := strings.TrimRight(o.apis[0], "/")
	wsURL := o.wsURLs()[0]
	hc := &http.Client{Timeout: o.Timeout, Transport: &http.Transport{
		Proxy: nil, MaxIdleConnsPerHost: 4, DisableCompression: true, IdleConnTimeout: 90 * time.Second,
	}}
	nz := &o.Noise
	if nz.TCP > 0 {
		addr := hostPort(wsURL)
		n.every(ctx, "tcp_probe", nz.TCP, func(ctx context.Context) error {
			c, err := (&net.Dialer{Timeout: o.Timeout}).DialContext(ctx, "tcp", addr)
			if err != nil {
				return err
			}
			return c.Close()
		})
	}
	if nz.HTTP > 0 {
		// A health checker opens a new connection per check.
		fresh := &http.Client{Timeout: o.Timeout, Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true}}
		n.every(ctx, "http_up", nz.HTTP, func(ctx context.Context) error { return get(ctx, fresh, api+"/up", nil) })
		n.every(ctx, "http_ready", nz.HTTP, func(ctx context.Context) error { return get(ctx, fresh, api+"/ready", nil) })
	}
	if nz.Scrape > 0 {
		u := nz.MetricsURL
		if u == "" {
			u = api + "/metrics"
		}
		n.every(ctx, "scrape", nz.Scrape, func(ctx context.Context) error { return get(ctx, hc, u, nil) })
	}
	if nz.Dashboard > 0 {
		jar, _ := cookiejar.New(nil)
		dc := &http.Client{Timeout: o.Timeout, Jar: jar, Transport: hc.Transport}
		base := api + "/" + strings.Trim(nz.DashPath, "/")
		lastSeq := "0"
		var busy sync.Mutex // the browser polls again only after the last poll
		n.every(ctx, "dashboard", nz.Dashboard, func(ctx context.Context) error {
			if !busy.TryLock() {
				return errSkipped
			}
			defer busy.Unlock()
			if len(jar.Cookies(mustURL(base))) == 0 {
				if err := dashLogin(ctx, dc, base, nz.AdminToken); err != nil {
					return err
				}
			}
			app := url.PathEscape(o.AppID)
			if err := get(ctx, dc, base+"/api/apps/"+app+"/stats", nil); err != nil {
				return err
			}
			var body []byte
			if err := get(ctx, dc, base+"/api/apps/"+app+"/log?after="+lastSeq, &body); err != nil {
				return err
			}
			if i := strings.LastIndex(string(body), `"last":`); i >= 0 {
				s := string(body[i+len(`"last":`):])
				s = strings.TrimRight(strings.TrimSpace(s), "}\n ")
				if _, err := strconv.ParseUint(s, 10, 64); err == nil {
					lastSeq = s
				}
			}
			return nil
		})
	}
	if nz.Churn > 0 {
		pool := newSourcePool(o.sources, allLoopback(o.urls), o.Timeout)
		dialer := newWSDialer(o, pool)
		interval := time.Duration(float64(time.Second) / nz.Churn)
		var seq atomic.Int64
		n.every(ctx, "bg_churn", interval, func(ctx context.Context) error {
			ch := "noise-" + strconv.FormatInt(seq.Add(1)%10, 10)
			ws, _, _, stage, err := connectSubscribe(ctx, dialer, wsURL, ch, o.Timeout, nil, nil)
			if err != nil {
				return fmt.Errorf("%s: %w", stage, err)
			}
			_ = ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), time.Now().Add(o.Timeout))
			return ws.Close()
		})
	}
	return n
}

// every runs f every interval (each call on its own goroutine, so that a
// slow answer does not delay the next probe) until ctx ends.
func (n *noise) every(ctx context.Context, name string, interval time.Duration, f func(context.Context) error) {
	k := &noiseKind{name: name}
	n.kinds = append(n.kinds, k)
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		var calls sync.WaitGroup
		defer calls.Wait()
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			calls.Add(1)
			go func() {
				defer calls.Done()
				start := time.Now()
				err := f(ctx)
				if ctx.Err() != nil || errors.Is(err, errSkipped) {
					return // cut short by the end of the run: not an error
				}
				k.done(start, err)
			}()
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
}

// done counts the calls of kind name that have finished so far.
func (n *noise) done(name string) uint64 {
	for _, k := range n.kinds {
		if k.name == name {
			k.mu.Lock()
			defer k.mu.Unlock()
			return k.hist.Count() + k.errs
		}
	}
	return 0
}

// errSkipped: a call that did not run (the previous one is still going).
var errSkipped = errors.New("skipped")

// stop ends the noise and returns each kind's figures.
func (n *noise) stop() map[string]NoiseStats {
	if n.cancel == nil {
		return nil
	}
	n.cancel()
	n.wg.Wait()
	out := make(map[string]NoiseStats, len(n.kinds))
	for _, k := range n.kinds {
		out[k.name] = k.stats()
	}
	return out
}

// get GETs u, reads the body in full (into *body when body is not nil)
// and fails on a status other than 200.
func get(ctx context.Context, c *http.Client, u string, body *[]byte) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: HTTP %d", req.URL.Path, resp.StatusCode)
	}
	if body != nil {
		*body = b
	}
	return nil
}

// dashLogin logs in as the dashboard's login form does.
func dashLogin(ctx context.Context, c *http.Client, base, token string) error {
	form := url.Values{"token": {token}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/login", strings.NewReader(form.Encode()))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	// Not followed: the redirect is to the page, the cookie is what counts.
	cc := *c
	cc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	resp, err := cc.Do(req)
	if err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther && resp.StatusCode != http.StatusOK {
		return fmt.Errorf("dashboard login: HTTP %d", resp.StatusCode)
	}
	return nil
}

func mustURL(s string) *url.URL {
	u, err := url.Parse(s)
	if err != nil {
		return &url.URL{}
	}
	return u
}

// hostPort returns host:port of a ws:// or http:// URL.
func hostPort(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return raw
	}
	if u.Port() != "" {
		return u.Host
	}
	if p, err := targetPort(raw); err == nil {
		return net.JoinHostPort(u.Hostname(), strconv.Itoa(p))
	}
	return u.Host
}

// setupLatency is the connect+subscribe time of the connections opened.
func (st *runStats) setupLatency() LatencyMS {
	var s Snapshot
	s.Merge(&st.setup)
	return s.LatencyMS()
}

// The stages of a connection's setup, in order; each is timed from the end
// of the one before (the first from the dial).
const (
	stageTCP         = iota // TCP connect (the kernel's handshake and the server's accept queue)
	stageUpgrade            // HTTP upgrade request to its 101 response
	stageEstablished        // 101 to pusher:connection_established
	stageSubscribed         // pusher:subscribe to subscription_succeeded
	numSetupStages
)

var setupStageNames = [numSetupStages]string{"tcp", "upgrade", "established", "subscribed"}

// setupStages is the latency of each stage of setup, and the tool's own
// lateness against its connect schedule (launch_lag), when measured.
func (st *runStats) setupStages() map[string]LatencyMS {
	out := map[string]LatencyMS{}
	for i := range st.stages {
		var s Snapshot
		s.Merge(&st.stages[i])
		if l := s.LatencyMS(); l.Count > 0 {
			out[setupStageNames[i]] = l
		}
	}
	var s Snapshot
	s.Merge(&st.launchLag)
	if l := s.LatencyMS(); l.Count > 0 {
		out["launch_lag"] = l
	}
	if len(out) == 0 {
		return nil
	}
	return out
}
