package webhooks

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/herald-ws/herald/internal/apps"
	"github.com/herald-ws/herald/internal/hub"
	"github.com/herald-ws/herald/internal/protocol"
)

// Options configure a Dispatcher. Zero values take the defaults shown.
type Options struct {
	// Apps looks up an app's webhooks, key and secret (required).
	Apps apps.Store
	// Client sends the requests (default: a client of its own that does not
	// follow redirects). Its own Timeout, if any, also applies.
	Client *http.Client
	// Window is how long a batch stays open for more events (250 ms).
	Window time.Duration
	// PresenceDelay holds member_added and member_removed back this long;
	// a leave and a rejoin (or a join and a leave) of the same user within
	// it cancel out (0: no delay; the server's default is 3 s, as Pusher).
	PresenceDelay time.Duration
	// PresenceGate, in a cluster, settles held member events across nodes
	// when they come due (see PresenceGate); nil: per node only.
	PresenceGate PresenceGate
	// MaxBatch is the most events in one request (20); a target's
	// BatchSize overrides it, as its Timeout and RetryFor override those.
	MaxBatch int
	// Timeout bounds one attempt, response included (4 s).
	Timeout time.Duration
	// RetryFor is how long after its creation a batch is retried (5 min).
	RetryFor time.Duration
	// RetryBase is the first backoff (1 s); it doubles per attempt, up to
	// RetryMax (30 s), with jitter (each delay is between half and all of it).
	RetryBase time.Duration
	RetryMax  time.Duration
	// QueueSize bounds the events waiting to be batched (10,000).
	QueueSize int
	// Queue holds the batches waiting for delivery (default: a MemoryQueue
	// of MaxPending batches).
	Queue Queue
	// MaxPending bounds the default MemoryQueue, in batches (10,000).
	MaxPending int
	// MaxBytes bounds the memory webhooks hold (64 MB): the events waiting
	// to be batched may use a quarter of it, and the default MemoryQueue
	// the whole of it in batch bodies. Past either bound the newest is
	// dropped (counted as dropped): what is already queued is older and
	// closer to delivery.
	MaxBytes int64
	// Workers is the number of concurrent deliveries (4).
	Workers int
	// Logger (default: discards).
	Logger *slog.Logger
	// Now is the clock for time_ms and the retry period (default: time.Now).
	Now func() time.Time
	// Registerer, when set, gets the dispatcher's Prometheus collectors
	// (herald_webhook_*; see metrics.go). One Dispatcher per registry.
	Registerer prometheus.Registerer
	// ObserveDelivery, when set, is called after every attempt with the app,
	// the HTTP status (0 when there was no response), the attempt's
	// duration and its error (nil for a 2xx). It must be quick.
	ObserveDelivery func(appID string, status int, took time.Duration, err error)
}

func (o *Options) defaults() {
	if o.Window <= 0 {
		o.Window = 250 * time.Millisecond
	}
	if o.MaxBatch <= 0 {
		o.MaxBatch = 20
	}
	if o.Timeout <= 0 {
		o.Timeout = 4 * time.Second
	}
	if o.RetryFor <= 0 {
		o.RetryFor = 5 * time.Minute
	}
	if o.RetryBase <= 0 {
		o.RetryBase = time.Second
	}
	if o.RetryMax <= 0 {
		o.RetryMax = 30 * time.Second
	}
	if o.RetryMax < o.RetryBase {
		o.RetryMax = o.RetryBase
	}
	if o.QueueSize <= 0 {
		o.QueueSize = 10000
	}
	if o.MaxPending <= 0 {
		o.MaxPending = 10000
	}
	if o.MaxBytes <= 0 {
		o.MaxBytes = DefaultMaxBytes
	}
	if o.Workers <= 0 {
		o.Workers = 4
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
}

// DefaultMaxBytes is Options.MaxBytes's default (webhook_queue_mb).
const DefaultMaxBytes = 64 << 20

// appTTL is how long the batcher trusts an app it looked up; a changed
// webhook configuration takes effect within it.
const appTTL = time.Second

// dropLogEvery spaces the log lines about intake drops.
const dropLogEvery = 10 * time.Second

// Dispatcher batches, signs and delivers webhooks. It implements
// hub.Observer; ConnectionOpened, ConnectionClosed and Published have no
// webhook and do nothing.
type Dispatcher struct {
	opt    Options
	queue  Queue
	client *http.Client
	ownTr  *http.Transport // closed at Close when the client is ours
	log    *slog.Logger
	rlog   *rateLog
	stats  statsSet

	intake chan event
	// intakeBytes is the size of the events in intake (see eventSize).
	intakeBytes atomic.Int64
	closed      atomic.Bool
	dropLogAt   atomic.Int64 // unix nanoseconds of the last intake drop log

	// interest tells the Observer methods which event types an app wants,
	// so that events no target wants are not even queued. Copy on write;
	// an unknown or expired app is queued and looked up by the batcher.
	interestMu sync.Mutex
	interest   atomic.Pointer[map[string]*appInterest]

	startOnce, closeOnce sync.Once
	stopBatcher          chan struct{}
	batcherDone          chan struct{}
	workerCtx            context.Context
	stopWorkers          context.CancelFunc
	workers              sync.WaitGroup
	closeErr             error
}

type appInterest struct {
	mask    atomic.Uint32
	expires atomic.Int64 // unix nanoseconds
}

var _ hub.Observer = (*Dispatcher)(nil)

// New returns a Dispatcher; call Start to run it and Close to stop it.
func New(opt Options) (*Dispatcher, error) {
	if opt.Apps == nil {
		return nil, errors.New("webhooks: Options.Apps is required")
	}
	opt.defaults()
	d := &Dispatcher{
		opt:         opt,
		queue:       opt.Queue,
		client:      opt.Client,
		log:         opt.Logger,
		rlog:        newRateLog(opt.Logger, 10*time.Second),
		intake:      make(chan event, opt.QueueSize),
		stopBatcher: make(chan struct{}),
		batcherDone: make(chan struct{}),
	}
	if d.queue == nil {
		d.queue = NewMemoryQueueBytes(opt.MaxPending, opt.MaxBytes)
	}
	m, err := newMetrics(opt.Registerer, func() float64 { return float64(len(d.intake)) })
	if err != nil {
		return nil, err
	}
	d.stats.m = m
	if d.client == nil {
		d.ownTr = &http.Transport{
			Proxy:               http.ProxyFromEnvironment,
			MaxIdleConnsPerHost: opt.Workers,
			IdleConnTimeout:     90 * time.Second,
			TLSHandshakeTimeout: opt.Timeout,
			ForceAttemptHTTP2:   true,
		}
		d.client = &http.Client{
			Transport: d.ownTr,
			// A webhook that redirects is misconfigured: report, do not follow.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		}
	}
	return d, nil
}

// Start runs the batcher and the workers until Close (or until ctx ends,
// which stops them without flushing). It may be called once.
func (d *Dispatcher) Start(ctx context.Context) {
	d.startOnce.Do(func() {
		d.workerCtx, d.stopWorkers = context.WithCancel(ctx)
		go d.runBatcher()
		d.workers.Add(d.opt.Workers)
		for range d.opt.Workers {
			go d.runWorker(d.workerCtx)
		}
	})
}

// Close stops accepting events, flushes the open batches into the queue
// and, for a memory queue, waits until every batch is delivered or given
// up, or ctx ends; what is left then is dropped (counted and logged). A
// durable queue keeps what is left for the next node. Close waits for its
// goroutines and is safe to call more than once.
func (d *Dispatcher) Close(ctx context.Context) error {
	d.closeOnce.Do(func() { d.closeErr = d.close(ctx) })
	return d.closeErr
}

func (d *Dispatcher) close(ctx context.Context) error {
	d.closed.Store(true)
	started := d.workerCtx != nil
	d.startOnce.Do(func() {}) // a Start after Close does nothing
	if !started {
		d.discardIntake()
		d.closeIdle()
		return nil
	}
	close(d.stopBatcher)
	<-d.batcherDone

	var err error
	if !d.queue.Durable() {
		err = d.waitEmpty(ctx)
	}
	d.stopWorkers()
	d.workers.Wait()
	if mq, ok := d.queue.(*MemoryQueue); ok {
		if left := mq.drain(); len(left) > 0 {
			events := 0
			for _, dl := range left {
				d.stats.dropped(dl.AppID, dl.Events)
				events += dl.Events
			}
			d.log.Warn("webhooks dropped at shutdown", "batches", len(left), "events", events)
		}
	}
	d.closeIdle()
	return err
}

func (d *Dispatcher) closeIdle() {
	if d.ownTr != nil {
		d.ownTr.CloseIdleConnections()
	}
}

// waitEmpty waits until the queue holds nothing, or ctx ends.
func (d *Dispatcher) waitEmpty(ctx context.Context) error {
	t := time.NewTicker(10 * time.Millisecond)
	defer t.Stop()
	for {
		n, err := d.queue.Len(ctx)
		if err == nil && n == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-d.workerCtx.Done():
			return d.workerCtx.Err()
		case <-t.C:
		}
	}
}

// discardIntake counts what is left in the intake as dropped.
func (d *Dispatcher) discardIntake() {
	for {
		select {
		case ev := <-d.intake:
			d.stats.dropped(ev.appID, 1)
		default:
			return
		}
	}
}

// Stats returns a snapshot of the counters.
func (d *Dispatcher) Stats() Stats {
	st := d.stats.snapshot()
	st.Intake = len(d.intake)
	return st
}

// ---- hub.Observer ----

// enqueue is the whole hot path: a look at the app's interest, then a
// non-blocking send of the event by value.
func (d *Dispatcher) enqueue(ev event) {
	if d.closed.Load() {
		return
	}
	now := d.opt.Now()
	if m := d.interest.Load(); m != nil {
		if in, ok := (*m)[ev.appID]; ok && in.mask.Load()&ev.kind.bit() == 0 && now.UnixNano() < in.expires.Load() {
			return
		}
	}
	ev.timeMs = now.UnixMilli()
	size := ev.size()
	if d.intakeBytes.Add(size) > d.opt.MaxBytes/4 {
		d.intakeBytes.Add(-size)
		d.dropIntake(ev, now)
		return
	}
	select {
	case d.intake <- ev:
	default:
		d.intakeBytes.Add(-size)
		d.dropIntake(ev, now)
	}
}

// dropIntake counts an event the intake had no room for.
func (d *Dispatcher) dropIntake(ev event, now time.Time) {
	d.stats.dropped(ev.appID, 1)
	// At most one log line per interval, decided without a lock: a
	// flood of drops must not serialise the callers.
	if last := d.dropLogAt.Load(); now.UnixNano()-last >= int64(dropLogEvery) && d.dropLogAt.CompareAndSwap(last, now.UnixNano()) {
		d.log.Warn("webhook intake queue full: events dropped", "app_id", ev.appID, "event", ev.kind.String(),
			"dropped_total", d.stats.total.dropped.Load())
	}
}

// wants reports whether appID may want events of kind k (true when unknown).
func (d *Dispatcher) wants(appID string, k kind) bool {
	if m := d.interest.Load(); m != nil {
		if in, ok := (*m)[appID]; ok && in.mask.Load()&k.bit() == 0 && d.opt.Now().UnixNano() < in.expires.Load() {
			return false
		}
	}
	return true
}

// ConnectionOpened implements hub.Observer (no webhook).
func (d *Dispatcher) ConnectionOpened(string) {}

// ConnectionClosed implements hub.Observer (no webhook).
func (d *Dispatcher) ConnectionClosed(string) {}

// Published implements hub.Observer (no webhook).
func (d *Dispatcher) Published(string, string, string, int) {}

// ChannelOccupied implements hub.Observer.
func (d *Dispatcher) ChannelOccupied(appID, channel string) {
	d.enqueue(event{kind: kindChannelOccupied, appID: appID, channel: channel})
}

// ChannelVacated implements hub.Observer.
func (d *Dispatcher) ChannelVacated(appID, channel string) {
	d.enqueue(event{kind: kindChannelVacated, appID: appID, channel: channel})
}

// MemberAdded implements hub.Observer.
func (d *Dispatcher) MemberAdded(appID, channel, userID string) {
	d.enqueue(event{kind: kindMemberAdded, appID: appID, channel: channel, userID: userID})
}

// MemberRemoved implements hub.Observer.
func (d *Dispatcher) MemberRemoved(appID, channel, userID string) {
	d.enqueue(event{kind: kindMemberRemoved, appID: appID, channel: channel, userID: userID})
}

// ClientEvent implements hub.Observer. data is copied (only when some
// target may want it): the caller may reuse it.
func (d *Dispatcher) ClientEvent(appID, channel, name string, data []byte, socketID, userID string) {
	if d.closed.Load() || !d.wants(appID, kindClientEvent) {
		return
	}
	d.enqueue(event{kind: kindClientEvent, appID: appID, channel: channel, name: name,
		data: string(data), socketID: socketID, userID: userID})
}

// CacheMiss implements hub.Observer.
func (d *Dispatcher) CacheMiss(appID, channel string) {
	d.enqueue(event{kind: kindCacheMiss, appID: appID, channel: channel})
}

// SubscriptionCount implements hub.Observer.
func (d *Dispatcher) SubscriptionCount(appID, channel string, count int) {
	d.enqueue(event{kind: kindSubscriptionCount, appID: appID, channel: channel, count: count})
}

// ---- batching ----

// batch is an open batch of one app and one target.
type batch struct {
	key      batchKey
	app      *apps.App
	target   *apps.Webhook
	events   []event
	deadline time.Time
	sealed   bool
}

type batchKey struct {
	appID  string
	target int
}

type cachedApp struct {
	app *apps.App // nil: unknown app
	at  time.Time
}

// batcher is the state of the batching goroutine (owned by it).
type batcher struct {
	open     map[batchKey]*batch
	order    []*batch // by deadline (the window is constant)
	apps     map[string]cachedApp
	presence presenceHold
}

func (d *Dispatcher) runBatcher() {
	defer close(d.batcherDone)
	b := &batcher{open: map[batchKey]*batch{}, apps: map[string]cachedApp{}}
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	var armedAt time.Time // when the timer fires (zero: stopped)
	for {
		select {
		case ev := <-d.intake:
			d.intakeBytes.Add(-ev.size())
			d.add(b, ev)
		case <-timer.C:
			armedAt = time.Time{}
			now := time.Now()
			d.releaseHeld(b, now)
			d.flushDue(b, now)
		case <-d.stopBatcher:
			timer.Stop()
			for {
				select {
				case ev := <-d.intake:
					d.intakeBytes.Add(-ev.size())
					d.add(b, ev)
					continue
				default:
				}
				break
			}
			d.releaseHeld(b, time.Time{}) // shutting down: no more waiting
			for _, bt := range b.order {
				d.flush(b, bt)
			}
			return
		case <-d.workerCtx.Done():
			timer.Stop()
			return
		}
		// Keep the timer on the earliest open batch or held member event.
		for len(b.order) > 0 && b.order[0].sealed {
			b.order[0] = nil
			b.order = b.order[1:]
		}
		next := b.presence.nextHeld()
		if len(b.order) > 0 && (next.IsZero() || b.order[0].deadline.Before(next)) {
			next = b.order[0].deadline
		}
		if !next.Equal(armedAt) {
			if next.IsZero() {
				timer.Stop()
			} else {
				timer.Reset(time.Until(next))
			}
			armedAt = next
		}
	}
}

// lookup returns the app (nil when unknown), through a short cache, and
// refreshes what the Observer methods know of its interest.
func (d *Dispatcher) lookup(b *batcher, appID string) *apps.App {
	now := time.Now()
	if c, ok := b.apps[appID]; ok && now.Sub(c.at) < appTTL {
		return c.app
	}
	ctx, cancel := context.WithTimeout(d.workerCtx, time.Second)
	app, err := d.opt.Apps.ByID(ctx, appID)
	cancel()
	if err != nil && !errors.Is(err, apps.ErrNotFound) {
		d.rlog.warn("lookup:"+appID, "app lookup failed", "app_id", appID, "err", err)
		return nil // not cached: try again with the next event
	}
	if len(b.apps) > 100000 {
		clear(b.apps)
	}
	b.apps[appID] = cachedApp{app: app, at: now}
	var mask uint32
	if app != nil {
		for i := range app.Webhooks {
			mask |= kindMask(app.Webhooks[i].EventTypes)
		}
	}
	d.setInterest(appID, mask, d.opt.Now().Add(appTTL))
	return app
}

func (d *Dispatcher) setInterest(appID string, mask uint32, until time.Time) {
	if m := d.interest.Load(); m != nil {
		if in, ok := (*m)[appID]; ok {
			in.mask.Store(mask)
			in.expires.Store(until.UnixNano())
			return
		}
	}
	d.interestMu.Lock()
	defer d.interestMu.Unlock()
	old := d.interest.Load()
	next := map[string]*appInterest{}
	if old != nil && len(*old) < 100000 {
		for k, v := range *old {
			next[k] = v
		}
	}
	in := &appInterest{}
	in.mask.Store(mask)
	in.expires.Store(until.UnixNano())
	next[appID] = in
	d.interest.Store(&next)
}

func (d *Dispatcher) add(b *batcher, ev event) {
	if d.holds(ev) {
		d.hold(b, ev)
		return
	}
	d.batch(b, ev)
}

// batch adds ev to the open batch of every target that wants it.
func (d *Dispatcher) batch(b *batcher, ev event) {
	app := d.lookup(b, ev.appID)
	if app == nil {
		return
	}
	for i := range app.Webhooks {
		w := &app.Webhooks[i]
		if kindMask(w.EventTypes)&ev.kind.bit() == 0 || !matches(w.Filter, ev.channel) {
			continue
		}
		key := batchKey{ev.appID, i}
		bt := b.open[key]
		if bt != nil && bt.app != app {
			d.flush(b, bt) // the app's settings changed: keep batches apart
			bt = nil
		}
		if bt == nil {
			bt = &batch{key: key, app: app, target: w, deadline: time.Now().Add(d.opt.Window),
				events: make([]event, 0, min(d.opt.MaxBatch, 8))}
			b.open[key] = bt
			b.order = append(b.order, bt)
		}
		bt.events = append(bt.events, ev)
		if len(bt.events) >= cmp.Or(w.BatchSize, d.opt.MaxBatch) {
			d.flush(b, bt)
		}
	}
}

// matches applies a target's channel filter (both parts when set).
func matches(f apps.WebhookFilter, channel string) bool {
	return (f.ChannelNameStartsWith == "" || len(channel) >= len(f.ChannelNameStartsWith) && channel[:len(f.ChannelNameStartsWith)] == f.ChannelNameStartsWith) &&
		(f.ChannelNameEndsWith == "" || len(channel) >= len(f.ChannelNameEndsWith) && channel[len(channel)-len(f.ChannelNameEndsWith):] == f.ChannelNameEndsWith)
}

func (d *Dispatcher) flushDue(b *batcher, now time.Time) {
	for _, bt := range b.order {
		if bt.sealed {
			continue
		}
		if bt.deadline.After(now) {
			break
		}
		d.flush(b, bt)
	}
}

// flush seals a batch, serialises and signs it once and queues it.
func (d *Dispatcher) flush(b *batcher, bt *batch) {
	if bt.sealed {
		return
	}
	bt.sealed = true
	if b.open[bt.key] == bt {
		delete(b.open, bt.key)
	}
	timeMs := bt.events[0].timeMs
	body := encodeBody(timeMs, bt.events)
	dl := &Delivery{
		ID:    newID(),
		AppID: bt.app.ID,
		// The URL identifies the target; the headers are not stored (they
		// may hold credentials) and are taken from the config at delivery.
		URL:       bt.target.URL,
		Key:       bt.app.Key,
		Signature: protocol.SignBytes(bt.app.Secret, body),
		Body:      body,
		Events:    len(bt.events),
		CreatedMs: timeMs,
		// Fixed with the batch, so that every node retries it alike.
		TimeoutMs:  cmp.Or(bt.target.Timeout, d.opt.Timeout).Milliseconds(),
		RetryForMs: cmp.Or(bt.target.RetryFor, d.opt.RetryFor).Milliseconds(),
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	err := d.queue.Push(ctx, dl)
	cancel()
	if err != nil {
		d.stats.dropped(dl.AppID, dl.Events)
		d.rlog.warn("push:"+dl.AppID, "webhook batch dropped", "app_id", dl.AppID, "events", dl.Events, "err", err)
	}
}

func newID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
