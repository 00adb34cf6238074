package ingest

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"

	"github.com/herald-ws/herald/internal/apps"
	"github.com/herald-ws/herald/internal/hub"
	"github.com/herald-ws/herald/internal/redisurl"
)

// Publisher is the way into the hub, the same the HTTP API uses
// (httpapi.Hub's Publish), so that ingested events are fanned out,
// observed (webhooks, dashboard) and sent to the other nodes alike.
type Publisher interface {
	Publish(ctx context.Context, app *apps.App, req hub.PublishRequest) error
}

// Recorder counts what an Ingester does (the metrics package implements
// it). Calls must not block.
type Recorder interface {
	// Message counts one message received for appID with its result, one
	// of the Result* values.
	Message(appID, result string)
	// Ingesting reports whether this node is now subscribed for appID.
	Ingesting(appID string, on bool)
}

// The results of a message.
const (
	ResultPublished   = "published"
	ResultNotJSON     = "not_json"
	ResultBadPayload  = "bad_payload"
	ResultTooLarge    = "too_large"
	ResultInvalid     = "invalid"
	ResultRateLimited = "rate_limited"
	ResultDisabled    = "disabled"
	ResultFailed      = "failed"
	// ResultSaturated: the node stayed saturated (Options.Saturation) for
	// longer than Options.SaturatedWait, so the message was dropped.
	ResultSaturated = "saturated"
)

// Results lists every result, for metrics and docs.
func Results() []string {
	return []string{ResultPublished, ResultNotJSON, ResultBadPayload, ResultTooLarge, ResultInvalid, ResultRateLimited, ResultDisabled, ResultFailed, ResultSaturated}
}

// Options configure New. Apps and Publisher are required.
type Options struct {
	// Apps lists the apps; those with LaravelRedis set are ingested. It is
	// read at Start and every Refresh, and each message reads its app
	// again, so changed limits apply at once.
	Apps apps.Store
	// Publisher publishes the validated events.
	Publisher Publisher
	// RateLimits are the buckets shared with the HTTP API (nil: own).
	RateLimits *hub.RateLimits
	// Leases elect one node per app in a cluster; nil on a single node,
	// which then always ingests.
	Leases *Leases
	// Recorder and Refusals count (optional).
	Recorder Recorder
	Refusals hub.Refusals
	// Logger receives subscriptions, outages and sampled bad messages.
	Logger *slog.Logger
	// Refresh is how often Apps is listed again to follow added, removed
	// and changed apps (default 30 s).
	Refresh time.Duration
	// LogEvery is the least time between two logged bad messages of one
	// app (default 10 s); those in between are counted in the next line.
	LogEvery time.Duration
	// PublishTimeout bounds one Publish (default 5 s).
	PublishTimeout time.Duration
	// Now is the clock of the rate limits (default time.Now).
	Now func() time.Time
	// Saturation, when set, is the node's saturation signal, the one the
	// HTTP API answers 503 by (transport.Server.Saturation): the name of
	// the limit that saturates the node, "" when none does. While it
	// names one a worker holds its message, looking again every
	// saturatedPoll, for at most SaturatedWait per saturated spell; past
	// that, messages are dropped with ResultSaturated until the node is
	// no longer saturated. Laravel's Redis keeps nothing for a
	// subscriber, so holding longer would only move the queue there (and
	// get the subscription cut by its output buffer limit).
	Saturation func() string
	// SaturatedWait bounds the time a worker holds messages for a
	// saturated node (default 1 s, the HTTP API's Retry-After).
	SaturatedWait time.Duration
}

// Ingester runs one subscription per ingested app. Start it once; Close
// stops every goroutine and waits for them.
type Ingester struct {
	o      Options
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu      sync.Mutex
	workers map[string]*worker // by app id
}

// New checks o and returns an Ingester that does nothing until Start.
func New(o Options) (*Ingester, error) {
	if o.Apps == nil || o.Publisher == nil {
		return nil, errors.New("ingest: Options.Apps and Options.Publisher are required")
	}
	if o.RateLimits == nil {
		o.RateLimits = new(hub.RateLimits)
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Refresh <= 0 {
		o.Refresh = 30 * time.Second
	}
	if o.LogEvery <= 0 {
		o.LogEvery = 10 * time.Second
	}
	if o.PublishTimeout <= 0 {
		o.PublishTimeout = 5 * time.Second
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.SaturatedWait <= 0 {
		o.SaturatedWait = time.Second
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Ingester{o: o, ctx: ctx, cancel: cancel, workers: make(map[string]*worker)}, nil
}

// Start lists the apps, starts their subscriptions and the refresh loop.
// It does not wait for Redis: each subscription connects, and reconnects,
// in the background.
func (in *Ingester) Start() {
	in.reconcile()
	in.wg.Add(1)
	go func() {
		defer in.wg.Done()
		t := time.NewTicker(in.o.Refresh)
		defer t.Stop()
		for {
			select {
			case <-in.ctx.Done():
				return
			case <-t.C:
				in.reconcile()
			}
		}
	}()
}

// Close stops every subscription, releases the leases (so another node
// takes over at once) and waits for the goroutines.
func (in *Ingester) Close() {
	in.cancel()
	in.wg.Wait()
	in.mu.Lock()
	ws := in.workers
	in.workers = map[string]*worker{}
	in.mu.Unlock()
	for _, w := range ws {
		w.stop()
	}
}

// Ingesting returns the ids of the apps this node is subscribed for now.
func (in *Ingester) Ingesting() []string {
	in.mu.Lock()
	defer in.mu.Unlock()
	var out []string
	for id, w := range in.workers {
		if w.active.Load() {
			out = append(out, id)
		}
	}
	return out
}

// reconcile starts a worker per app with LaravelRedis and stops those of
// apps gone, turned off or changed.
func (in *Ingester) reconcile() {
	ctx, cancel := context.WithTimeout(in.ctx, 10*time.Second)
	list, err := in.o.Apps.All(ctx)
	cancel()
	if err != nil {
		if in.ctx.Err() == nil {
			in.o.Logger.Warn("listing apps failed; keeping the current subscriptions", "err", err)
		}
		return
	}
	want := make(map[string]apps.LaravelRedis)
	for _, a := range list {
		if a.LaravelRedis.Enabled() {
			want[a.ID] = a.LaravelRedis
		}
	}
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.ctx.Err() != nil {
		return
	}
	for id, w := range in.workers {
		if cfg, ok := want[id]; !ok || cfg != w.cfg {
			w.stop()
			delete(in.workers, id)
		}
	}
	for id, cfg := range want {
		if in.workers[id] != nil {
			continue
		}
		w, err := in.newWorker(id, cfg)
		if err != nil {
			// The config validator checks the URL; a store that skipped it
			// gets this line at each refresh.
			in.o.Logger.Error("cannot ingest the app's laravel_redis", "app_id", id, "err", err)
			continue
		}
		in.workers[id] = w
		w.start(in.ctx)
	}
}

// backoff returns the wait after the n-th consecutive failure: exponential
// from 100 ms, capped at 5 s, with full jitter.
func backoff(n int) time.Duration {
	d := 100 * time.Millisecond << min(n, 6)
	d = min(d, 5*time.Second)
	return time.Duration(rand.Int64N(int64(d)) + 1)
}

// sleep waits d or until ctx ends (false).
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// redisOptions parses a laravel_redis URL, read as mode says (one Redis,
// Sentinel or a Redis Cluster, as the cluster's redis_mode), into client
// options tuned like the cluster's: short timeouts, no retries (a retried
// command could publish twice; here it would only be a PING), RESP2.
func redisOptions(mode, url string) (*redis.UniversalOptions, error) {
	ro, err := redisurl.Parse(mode, url)
	if err != nil {
		// redisurl never quotes the URL (it may hold a password).
		return nil, fmt.Errorf("laravel_redis.url is not a valid %s URL: %w", cmp.Or(mode, redisurl.Single), err)
	}
	ro.MaxRetries = -1
	ro.DialTimeout = 2 * time.Second
	ro.DialerRetries = 1
	ro.ReadTimeout = 2 * time.Second
	ro.WriteTimeout = 2 * time.Second
	ro.ContextTimeoutEnabled = true
	ro.Protocol = 2
	ro.DisableIdentity = true
	ro.MaintNotificationsConfig = &maintnotifications.Config{Mode: maintnotifications.ModeDisabled}
	return ro, nil
}

// pattern is the PSUBSCRIBE pattern matching every channel under prefix,
// with the glob's special characters in prefix escaped.
func pattern(prefix string) string {
	var b strings.Builder
	for _, r := range prefix {
		if strings.ContainsRune(`*?[]\`, r) {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	b.WriteByte('*')
	return b.String()
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
