package ingest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/herald-ws/herald/internal/apps"
	"github.com/herald-ws/herald/internal/hub"
	"github.com/herald-ws/herald/internal/protocol"
)

// worker ingests one app: it takes the app's lease (in a cluster), holds a
// PSUBSCRIBE on Laravel's Redis while it has it, and publishes each
// message. Its messages are handled one at a time, in order, on its own
// goroutine, so a flood or a bad message of one app never delays another.
type worker struct {
	in     *Ingester
	appID  string
	cfg    apps.LaravelRedis
	rdb    redis.UniversalClient
	log    *slog.Logger
	cancel context.CancelFunc
	done   chan struct{}
	active atomic.Bool

	// Sampled logging of bad messages (worker goroutine only).
	lastLog    time.Time
	suppressed int
	// waitUntil ends the current saturated spell's wait (zero: the node
	// was not saturated at the last message; worker goroutine only).
	waitUntil time.Time
}

func (in *Ingester) newWorker(appID string, cfg apps.LaravelRedis) (*worker, error) {
	ro, err := redisOptions(cfg.Mode, cfg.URL)
	if err != nil {
		return nil, err
	}
	where := strings.Join(ro.Addrs, ",")
	if ro.MasterName != "" {
		where = ro.MasterName + " via " + where
	}
	return &worker{
		in:    in,
		appID: appID,
		cfg:   cfg,
		rdb:   redis.NewUniversalClient(ro),
		log:   in.o.Logger.With("app_id", appID, "redis", where, "prefix", cfg.Prefix),
		done:  make(chan struct{}),
	}, nil
}

func (w *worker) start(parent context.Context) {
	ctx, cancel := context.WithCancel(parent)
	w.cancel = cancel
	go w.run(ctx)
}

// stop ends the worker, waits for it and closes its Redis client.
func (w *worker) stop() {
	w.cancel()
	<-w.done
	_ = w.rdb.Close()
}

func (w *worker) run(ctx context.Context) {
	defer close(w.done)
	l := w.in.o.Leases
	if l == nil {
		w.subscribe(ctx)
		return
	}
	fails := 0
	for ctx.Err() == nil {
		held, until, err := l.take(ctx, w.appID)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			if fails == 0 {
				w.log.Warn("cannot reach the cluster's Redis for the ingest lease; retrying", "err", err)
			}
			fails++
			sleep(ctx, max(l.poll, backoff(fails)))
			continue
		}
		fails = 0
		if !held {
			sleep(ctx, l.poll)
			continue
		}
		w.log.Info("this node ingests the app (lease taken)")
		hctx, cancel := context.WithCancel(ctx)
		kept := make(chan struct{})
		go func() {
			defer close(kept)
			l.keep(hctx, w.appID, until, func(reason string) {
				w.log.Warn("lease lost, another node may ingest the app", "reason", reason)
				cancel()
			})
		}()
		w.subscribe(hctx)
		cancel()
		<-kept
		if ctx.Err() != nil {
			// Stopping: hand the app over at once rather than after the TTL.
			if err := l.release(w.appID); err != nil {
				w.log.Warn("releasing the lease failed; another node takes over when it expires", "err", err)
			}
		}
	}
}

func (w *worker) setActive(on bool) {
	if w.active.Swap(on) != on {
		if r := w.in.o.Recorder; r != nil {
			r.Ingesting(w.appID, on)
		}
	}
}

// subscribe holds the PSUBSCRIBE until ctx ends, reconnecting with
// back-off when Laravel's Redis goes away (go-redis subscribes again on
// the new connection).
func (w *worker) subscribe(ctx context.Context) {
	defer w.setActive(false)
	ps := w.rdb.PSubscribe(ctx, pattern(w.cfg.Prefix))
	defer ps.Close()
	// ReceiveTimeout may be waiting on the socket: closing the PubSub ends it.
	stop := context.AfterFunc(ctx, func() { _ = ps.Close() })
	defer stop()
	fails := 0
	for {
		msg, err := ps.ReceiveTimeout(ctx, time.Second)
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, redis.ErrClosed) {
				return
			}
			if isTimeout(err) && w.active.Load() {
				// Idle: check the connection; the PONG comes back here.
				pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
				perr := ps.Ping(pctx)
				cancel()
				if perr == nil || ctx.Err() != nil {
					continue
				}
				err = perr
			}
			if w.active.Load() || fails == 0 {
				w.log.Error("Laravel's Redis unreachable; reconnecting", "err", err)
			}
			w.setActive(false)
			fails++
			if !sleep(ctx, backoff(fails)) {
				return
			}
			continue
		}
		switch msg := msg.(type) {
		case *redis.Subscription:
			if msg.Kind == "psubscribe" {
				if fails > 0 {
					w.log.Info("Laravel's Redis is back")
				}
				fails = 0
				w.setActive(true)
			}
		case *redis.Message:
			w.handle(ctx, msg.Channel, msg.Payload)
		}
	}
}

// slack is what a message may carry beyond its data (event name, channel,
// socket, JSON punctuation) before it is refused unread.
const slack = 64 << 10

// handle publishes one message, or counts and logs why not.
func (w *worker) handle(ctx context.Context, channel, payload string) {
	result, err := w.process(ctx, channel, payload)
	if r := w.in.o.Recorder; r != nil {
		r.Message(w.appID, result)
	}
	if result != ResultPublished {
		w.logBad(result, channel, len(payload), err)
	}
}

func (w *worker) process(ctx context.Context, channel, payload string) (string, error) {
	o := &w.in.o
	app, err := o.Apps.ByID(ctx, w.appID)
	if err != nil {
		if errors.Is(err, apps.ErrNotFound) {
			return ResultDisabled, err
		}
		return ResultFailed, err
	}
	if !app.Enabled {
		return ResultDisabled, errors.New("the app is disabled")
	}
	if max := app.MaxEventPayloadBytes(); max > 0 && len(payload) > max+slack {
		w.refused(hub.LimitEventPayload)
		return ResultTooLarge, errors.New("message far over max_event_payload_kb; not read")
	}
	m, err := Parse(w.cfg.Prefix, channel, []byte(payload))
	if err != nil {
		if errors.Is(err, ErrNotJSON) {
			return ResultNotJSON, err
		}
		return ResultBadPayload, err
	}
	req := hub.PublishRequest{Name: m.Event, Channels: []string{m.Channel}, Data: m.Data, ExceptSocketID: m.Socket}
	if pe := hub.ValidatePublish(app, &req); pe != nil {
		if pe.Limit != "" {
			w.refused(pe.Limit)
		}
		if pe.Problem == hub.DataTooLarge {
			return ResultTooLarge, pe
		}
		return ResultInvalid, pe
	}
	// Like the HTTP API: a message refused for saturation spends no token.
	if limit := w.awaitCapacity(ctx); limit != "" {
		w.refused(limit)
		return ResultSaturated, fmt.Errorf("the node stayed saturated (%s) for %v; message dropped", limit, o.SaturatedWait)
	}
	if ok, _, _ := o.RateLimits.Take(app.ID, hub.RateBackend, app.MaxBackendEventsPerSecond, len(req.Channels), o.Now()); !ok {
		w.refused(hub.LimitBackendEvents)
		return ResultRateLimited, errors.New("over max_backend_events_per_second")
	}
	pctx, cancel := context.WithTimeout(ctx, o.PublishTimeout)
	defer cancel()
	if err := o.Publisher.Publish(pctx, app, req); err != nil {
		return ResultFailed, err
	}
	return ResultPublished, nil
}

// saturatedPoll is how often a held message looks at the signal again.
const saturatedPoll = 20 * time.Millisecond

// awaitCapacity waits while the node is saturated, for what is left of
// the current spell's SaturatedWait. It returns the limit that still
// saturates the node then (or when the worker stops), "" when the message
// may go. The first message of a spell waits up to SaturatedWait, later
// ones only for the rest of it, so a long spell costs one wait, not one
// per message.
func (w *worker) awaitCapacity(ctx context.Context) string {
	sat := w.in.o.Saturation
	if sat == nil {
		return ""
	}
	limit := sat()
	if limit == "" {
		w.waitUntil = time.Time{}
		return ""
	}
	if w.waitUntil.IsZero() {
		w.waitUntil = time.Now().Add(w.in.o.SaturatedWait)
	}
	t := time.NewTicker(saturatedPoll)
	defer t.Stop()
	for time.Now().Before(w.waitUntil) {
		select {
		case <-ctx.Done():
			return limit
		case <-t.C:
		}
		if limit = sat(); limit == "" {
			w.waitUntil = time.Time{}
			return ""
		}
	}
	return limit
}

func (w *worker) refused(limit string) {
	if r := w.in.o.Refusals; r != nil {
		r.Refused(w.appID, limit)
	}
}

// logBad logs a message that was not published, at most once per LogEvery
// (so a flood cannot fill the disk), with the count of those left out.
func (w *worker) logBad(result, channel string, size int, err error) {
	now := time.Now()
	if !w.lastLog.IsZero() && now.Sub(w.lastLog) < w.in.o.LogEvery {
		w.suppressed++
		return
	}
	n := w.suppressed
	w.lastLog, w.suppressed = now, 0
	reason := ""
	if err != nil {
		reason = err.Error()
		reason = protocol.Clip(reason, 200) // it may quote a channel name of any length
	}
	w.log.Warn("message not published", "result", result, "channel", clip(channel), "bytes", size, "err", reason, "not_logged_before", n)
}
