package loadtest

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// The ways of reading subscribed connections (--reader).
const (
	readerEpoll     = "epoll"
	readerGoroutine = "goroutine"
)

// Options are the settings of one run; flags fill them.
type Options struct {
	URL         string // WebSocket base, ws://host:port[/prefix]
	API         string // HTTP API base, http://host:port[/prefix]
	AppID       string
	Key         string
	Secret      string
	ServerPIDs  string // comma-separated
	AllowRemote bool
	JSON        bool

	Conns       int // idle: connections; fanout: subscribers; churn: workers
	Channels    int
	ChannelBase string

	Publishers     int
	Rate           float64 // events/s over all publishers; 0 = as fast as possible
	Duration       time.Duration
	Warmup         time.Duration
	Drain          time.Duration
	Payload        int
	Batch          int // events per request (>1 uses batch_events)
	ChannelsPerEvt int // channels per event (the "channels" array)
	// IgnoreRetryAfter makes publishers retry a refused publish (429, 503)
	// at once instead of waiting what its Retry-After states.
	IgnoreRetryAfter bool
	Settle           time.Duration
	Hold             time.Duration
	ConnectRate      float64 // new connections per second; 0 = unlimited
	DialConcurrency  int
	Timeout          time.Duration
	MaxFail          float64 // share of failed connections that fails the run
	SourceIPs        string
	ReadBuffer       int
	DelayedAck       bool
	Reader           string // readerEpoll or readerGoroutine
	Progress         time.Duration
	CPUProfile       string
	ReadyFile        string         // fanout: written once every connection is subscribed
	StartFile        string         // fanout: waited for before publishing; holds the start time
	StartWait        time.Duration  // longest wait for StartFile
	WatchPIDs        string         // name=pid,...: other processes measured in the window (Redis)
	Noise            noiseOptions   // background noise (probes.go)
	Hostile          hostileOptions // fanout: hostile clients beside (hostile.go)

	sources []netip.Addr
	urls    []string // URL split
	apis    []string // API split
	pids    []int    // ServerPIDs parsed
	watch   []watchedPID
}

// watchedPID is a process measured beside the servers (--watch-pid), such
// as the Redis of a cluster: its CPU in the window is reported on its own.
type watchedPID struct {
	name string
	pid  int
}

func defaultOptions(scenario string) Options {
	o := Options{
		URL:             "ws://127.0.0.1:6001",
		API:             "http://127.0.0.1:6001",
		AppID:           "app-id",
		Key:             "app-key",
		Secret:          "app-secret",
		Channels:        100,
		ChannelBase:     "bench-",
		Publishers:      4,
		Duration:        10 * time.Second,
		Warmup:          2 * time.Second,
		Drain:           5 * time.Second,
		Payload:         100,
		Batch:           1,
		ChannelsPerEvt:  1,
		Settle:          5 * time.Second,
		DialConcurrency: 256,
		Timeout:         10 * time.Second,
		MaxFail:         0.01,
		ReadBuffer:      4096,
		DelayedAck:      true,
		Reader:          readerEpoll,
		Progress:        time.Second,
		StartWait:       10 * time.Minute,
	}
	switch scenario {
	case "idle":
		o.Conns = 1000
	case "fanout":
		o.Conns = 1000
		o.Channels = 1
	case "churn":
		o.Conns = 50
		o.Channels = 10
		o.Settle = 0
		o.Warmup = time.Second
	}
	return o
}

// register defines the flags of scenario on fs.
func (o *Options) register(fs *flag.FlagSet, scenario string) {
	fs.StringVar(&o.URL, "url", o.URL, "WebSocket base URL of the server (`ws://host:port`, optionally with a path prefix); several, comma-separated, spread the connections over the nodes of a cluster in turn")
	fs.StringVar(&o.API, "api", o.API, "HTTP API base URL (`http://host:port`); several, comma-separated, give each publisher a node in turn")
	fs.StringVar(&o.AppID, "app-id", o.AppID, "app id")
	fs.StringVar(&o.Key, "key", o.Key, "app key")
	fs.StringVar(&o.Secret, "secret", o.Secret, "app secret")
	fs.StringVar(&o.ServerPIDs, "server-pid", o.ServerPIDs, "pid of the server, for its CPU and RSS (default: the process listening on each target port, if visible); several, comma-separated, are summed")
	fs.BoolVar(&o.AllowRemote, "allow-remote", o.AllowRemote, "allow targets that are not loopback addresses")
	fs.BoolVar(&o.JSON, "json", o.JSON, "print only the JSON result line (no progress, no table)")
	fs.IntVar(&o.Channels, "channels", o.Channels, "number of channels, named <channel-prefix>0..N-1")
	fs.StringVar(&o.ChannelBase, "channel-prefix", o.ChannelBase, "channel name prefix (public channels)")
	fs.Float64Var(&o.ConnectRate, "connect-rate", o.ConnectRate, "new connections per second (0 = as fast as --dial-concurrency allows)")
	fs.IntVar(&o.DialConcurrency, "dial-concurrency", o.DialConcurrency, "connection handshakes in flight at once")
	fs.DurationVar(&o.Timeout, "timeout", o.Timeout, "timeout of one connect+subscribe and of one HTTP request")
	fs.Float64Var(&o.MaxFail, "max-fail", o.MaxFail, "share of connections that may fail before the run fails (0..1)")
	fs.StringVar(&o.SourceIPs, "source-ips", o.SourceIPs, "local addresses to spread connections over, e.g. `127.0.0.1-127.0.0.20` (default: the kernel's choice, then further 127.0.0.x when ports run out)")
	fs.IntVar(&o.ReadBuffer, "read-buffer", o.ReadBuffer, "read buffer bytes per connection")
	fs.StringVar(&o.Reader, "reader", o.Reader, "how subscribed connections are read: `epoll` (a few pollers, Linux) or goroutine (one per connection)")
	fs.BoolVar(&o.DelayedAck, "delayed-ack", o.DelayedAck, "delay the TCP ACKs of received events (Linux), so that the tool's ACKs do not run the server's TCP input path inside its own reads")
	fs.DurationVar(&o.Progress, "progress", o.Progress, "progress line interval on stderr (0 = none)")
	fs.StringVar(&o.WatchPIDs, "watch-pid", o.WatchPIDs, "other processes to measure in the window beside the servers, `name=pid,...` (e.g. redis=1234): their CPU seconds and RSS are reported under \"watched\"")
	fs.StringVar(&o.CPUProfile, "cpu-profile", "", "write the load tool's own CPU profile to `file` (to check what the tool costs)")
	o.Noise.register(fs)
	switch scenario {
	case "idle":
		fs.IntVar(&o.Conns, "conns", o.Conns, "connections to open")
		fs.DurationVar(&o.Settle, "settle", o.Settle, "wait after the last subscription before reading the server's RSS")
		fs.DurationVar(&o.Hold, "hold", o.Hold, "keep the connections open this long after measuring")
	case "fanout":
		fs.IntVar(&o.Conns, "subscribers", o.Conns, "subscribed connections (spread evenly over the channels)")
		fs.IntVar(&o.Conns, "conns", o.Conns, "same as --subscribers")
		fs.IntVar(&o.Publishers, "publishers", o.Publishers, "concurrent HTTP API publishers (each has one request in flight); 0 = subscribe only, another process publishes (see --start-file)")
		fs.StringVar(&o.ReadyFile, "ready-file", o.ReadyFile, "once every connection is subscribed, write the number of subscribed connections to `file` (runs spread over several processes)")
		fs.StringVar(&o.StartFile, "start-file", o.StartFile, "after connecting, wait until `file` exists and holds the start time (Unix ns; the warmup begins then), so that several processes measure the same window; their JSON lines merge with 'herald-bench merge'")
		fs.DurationVar(&o.StartWait, "start-wait", o.StartWait, "longest wait for --start-file")
		fs.Float64Var(&o.Rate, "rate", o.Rate, "events per second over all publishers (0 = as fast as possible)")
		fs.DurationVar(&o.Duration, "duration", o.Duration, "measured window")
		fs.DurationVar(&o.Warmup, "warmup", o.Warmup, "publishing before the measured window (not counted)")
		fs.DurationVar(&o.Drain, "drain", o.Drain, "longest wait after the window for outstanding deliveries")
		fs.IntVar(&o.Payload, "payload", o.Payload, "event data bytes")
		fs.IntVar(&o.Batch, "batch", o.Batch, "events per HTTP request; above 1 uses POST /batch_events (max 10)")
		fs.IntVar(&o.ChannelsPerEvt, "channels-per-event", o.ChannelsPerEvt, "channels named in each event's \"channels\" array (max 100)")
		fs.BoolVar(&o.IgnoreRetryAfter, "ignore-retry-after", false, "retry a refused publish (HTTP 429 or 503) at once instead of waiting its Retry-After (a hostile publisher; by default each publisher waits what the server states)")
		fs.DurationVar(&o.Settle, "settle", 0, "wait after the last subscription before publishing")
		o.Settle = 0
		o.Hostile.register(fs)
	case "churn":
		fs.IntVar(&o.Conns, "conns", o.Conns, "concurrent workers, each looping connect, subscribe, unsubscribe, disconnect")
		fs.IntVar(&o.Conns, "workers", o.Conns, "same as --conns")
		fs.DurationVar(&o.Duration, "duration", o.Duration, "measured window")
		fs.DurationVar(&o.Warmup, "warmup", o.Warmup, "cycling before the measured window (not counted)")
	}
}

// validate checks the options and resolves derived fields.
func (o *Options) validate(scenario string) error {
	if o.Conns < 1 && !o.hostileOnly(scenario) {
		return errors.New("--conns/--subscribers must be at least 1 (0 only for a process of hostile clients alone: fanout with --publishers 0, --start-file and a --hostile-* flag)")
	}
	if o.Channels < 1 {
		return errors.New("--channels must be at least 1")
	}
	if o.DialConcurrency < 1 {
		return errors.New("--dial-concurrency must be at least 1")
	}
	if o.Timeout <= 0 {
		return errors.New("--timeout must be positive")
	}
	if o.MaxFail < 0 || o.MaxFail > 1 {
		return errors.New("--max-fail must be between 0 and 1")
	}
	if o.ReadBuffer < 256 {
		o.ReadBuffer = 256
	}
	if o.Reader != readerEpoll && o.Reader != readerGoroutine {
		return fmt.Errorf("--reader must be %s or %s", readerEpoll, readerGoroutine)
	}
	if o.ConnectRate < 0 {
		return errors.New("--connect-rate must not be negative")
	}
	if err := o.Noise.validate(); err != nil {
		return err
	}
	if scenario == "fanout" {
		if o.Publishers < 0 || o.Publishers > 1000 {
			return errors.New("--publishers must be between 0 and 1000")
		}
		if o.Publishers == 0 && o.StartFile == "" {
			return errors.New("--publishers 0 (subscribe only) needs --start-file, so that the window is the publishing process's")
		}
		if o.StartFile != "" && o.StartWait <= 0 {
			return errors.New("--start-wait must be positive")
		}
		if o.Rate < 0 {
			return errors.New("--rate must not be negative")
		}
		if o.Payload < 40 || o.Payload > maxMessage/2 {
			return errors.New("--payload must be between 40 bytes (sequence number and timestamp) and 512 KiB")
		}
		if o.Batch < 1 || o.Batch > 10 {
			return errors.New("--batch must be between 1 and 10")
		}
		if o.ChannelsPerEvt < 1 || o.ChannelsPerEvt > 100 || o.ChannelsPerEvt > o.Channels {
			return errors.New("--channels-per-event must be between 1 and min(100, --channels)")
		}
		if o.Batch > 1 && o.ChannelsPerEvt > 1 {
			return errors.New("--batch and --channels-per-event cannot be combined (a batch item names one channel)")
		}
	}
	if (scenario == "fanout" || scenario == "churn") && o.Duration <= 0 {
		return errors.New("--duration must be positive")
	}
	if o.Warmup < 0 || o.Drain < 0 || o.Settle < 0 || o.Hold < 0 {
		return errors.New("durations must not be negative")
	}
	var err error
	if o.sources, err = parseSourceIPs(o.SourceIPs); err != nil {
		return err
	}
	if o.urls = splitList(o.URL); len(o.urls) == 0 {
		return errors.New("--url must name at least one server")
	}
	if o.apis = splitList(o.API); len(o.apis) == 0 {
		return errors.New("--api must name at least one server")
	}
	for _, a := range o.apis {
		if err := apiBaseCheck(a); err != nil {
			return err
		}
	}
	if o.watch, err = parseWatchPIDs(o.WatchPIDs); err != nil {
		return err
	}
	o.pids = nil
	for _, p := range splitList(o.ServerPIDs) {
		n, err := strconv.Atoi(p)
		if err != nil || n <= 0 {
			return fmt.Errorf("--server-pid %q: not a process id", p)
		}
		o.pids = append(o.pids, n)
	}
	return nil
}

// parseWatchPIDs parses --watch-pid: name=pid pairs, comma-separated.
func parseWatchPIDs(s string) ([]watchedPID, error) {
	var out []watchedPID
	seen := map[string]bool{}
	for _, f := range splitList(s) {
		name, p, ok := strings.Cut(f, "=")
		name = strings.TrimSpace(name)
		n, err := strconv.Atoi(strings.TrimSpace(p))
		if !ok || name == "" || err != nil || n <= 0 {
			return nil, fmt.Errorf("--watch-pid %q: want name=pid", f)
		}
		if seen[name] {
			return nil, fmt.Errorf("--watch-pid: %q named twice", name)
		}
		seen[name] = true
		out = append(out, watchedPID{name: name, pid: n})
	}
	return out, nil
}

// splitList splits a comma-separated flag value, dropping empty items.
func splitList(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

// wsURLs returns the WebSocket URL of the app on each server, as pusher-js
// builds it.
func (o *Options) wsURLs() []string {
	out := make([]string, len(o.urls))
	for i, base := range o.urls {
		out[i] = strings.TrimRight(base, "/") + "/app/" + url.PathEscape(o.Key) + "?protocol=7&client=herald-bench&version=1.0&flash=false"
	}
	return out
}

// targetPort returns the TCP port of a WebSocket base URL.
func targetPort(base string) (int, error) {
	u, err := url.Parse(base)
	if err != nil {
		return 0, err
	}
	if p := u.Port(); p != "" {
		return strconv.Atoi(p)
	}
	if u.Scheme == "wss" {
		return 443, nil
	}
	return 80, nil
}

// checkTargets refuses a URL whose host is not a loopback address unless
// remote targets are allowed. Host names are resolved and every address
// they resolve to must be loopback. It also refuses non-loopback source
// addresses for a loopback-only run.
func checkTargets(ctx context.Context, allowRemote bool, resolver func(ctx context.Context, host string) ([]netip.Addr, error), urls ...string) error {
	for _, raw := range urls {
		u, err := url.Parse(raw)
		if err != nil {
			return fmt.Errorf("target %q: %v", raw, err)
		}
		switch u.Scheme {
		case "ws", "wss", "http", "https":
		default:
			return fmt.Errorf("target %q: scheme must be ws, wss, http or https", raw)
		}
		host := u.Hostname()
		if host == "" {
			return fmt.Errorf("target %q: no host", raw)
		}
		if allowRemote {
			continue
		}
		addrs, err := hostAddrs(ctx, host, resolver)
		if err != nil {
			return fmt.Errorf("target %q: %v (only loopback targets are allowed without --allow-remote)", raw, err)
		}
		for _, a := range addrs {
			if !a.Unmap().IsLoopback() {
				return fmt.Errorf("target %q resolves to %s, which is not a loopback address; pass --allow-remote to load a remote server", raw, a)
			}
		}
	}
	return nil
}

func hostAddrs(ctx context.Context, host string, resolver func(ctx context.Context, host string) ([]netip.Addr, error)) ([]netip.Addr, error) {
	if a, err := netip.ParseAddr(strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")); err == nil {
		return []netip.Addr{a}, nil
	}
	if strings.EqualFold(host, "localhost") {
		return []netip.Addr{netip.MustParseAddr("127.0.0.1")}, nil
	}
	if resolver == nil {
		resolver = func(ctx context.Context, host string) ([]netip.Addr, error) {
			return net.DefaultResolver.LookupNetIP(ctx, "ip", host)
		}
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	addrs, err := resolver(ctx, host)
	if err != nil {
		return nil, err
	}
	if len(addrs) == 0 {
		return nil, fmt.Errorf("%s resolves to no address", host)
	}
	return addrs, nil
}

// checkSources refuses non-loopback source addresses unless remote targets
// are allowed.
func checkSources(allowRemote bool, sources []netip.Addr) error {
	if allowRemote {
		return nil
	}
	for _, a := range sources {
		if !a.Unmap().IsLoopback() {
			return fmt.Errorf("source address %s is not a loopback address; pass --allow-remote to use it", a)
		}
	}
	return nil
}

// allLoopback reports whether every URL targets a loopback host.
func allLoopback(urls []string) bool {
	for _, u := range urls {
		if !isLoopbackTarget(u) {
			return false
		}
	}
	return len(urls) > 0
}

// isLoopbackTarget reports whether the WebSocket URL's host is a loopback
// IPv4 address (then auto-spreading over 127.0.0.x source addresses is
// possible).
func isLoopbackTarget(raw string) bool {
	u, err := url.Parse(raw)
	if err != nil {
		return false
	}
	a, err := netip.ParseAddr(u.Hostname())
	return err == nil && a.Unmap().Is4() && a.Unmap().IsLoopback()
}

func channelName(base string, i int) string { return base + strconv.Itoa(i) }

// hostileOnly reports whether the options ask for a fanout process that
// runs hostile clients and nothing else (--subscribers 0 --publishers 0):
// the mixed run's attackers in a process (and Go runtime) of their own,
// started from the same --start-file as the process that measures.
func (o *Options) hostileOnly(scenario string) bool {
	return scenario == "fanout" && o.Conns == 0 && o.Publishers == 0 && o.StartFile != "" && o.Hostile.any()
}
