package webhooks

import (
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
)

// Counters count webhook traffic. Batches are requests; events are the
// webhook events inside them.
type Counters struct {
	// Sent counts batches answered with a 2xx, SentEvents their events.
	Sent, SentEvents uint64
	// Failed counts batches given up (a final status, or RetryFor spent),
	// FailedEvents their events.
	Failed, FailedEvents uint64
	// Retried counts failed attempts that were scheduled again.
	Retried uint64
	// Dropped counts events lost to a bound: the intake queue, the delivery
	// queue, an app that could not be looked up, or a shutdown whose
	// context ended before the memory queue emptied.
	Dropped uint64
}

// Stats is a snapshot of the dispatcher's counters, in total and per app.
type Stats struct {
	Counters
	// Intake is the number of events waiting to be batched.
	Intake int
	// Apps has the counters of every app that has had any traffic.
	Apps map[string]Counters
}

// counters is the live, atomic form of Counters.
type counters struct {
	sent, sentEvents, failed, failedEvents, retried, dropped atomic.Uint64
	pm                                                       *appMetrics // nil: no metrics (and for the total)
}

func (c *counters) snapshot() Counters {
	return Counters{
		Sent: c.sent.Load(), SentEvents: c.sentEvents.Load(),
		Failed: c.failed.Load(), FailedEvents: c.failedEvents.Load(),
		Retried: c.retried.Load(), Dropped: c.dropped.Load(),
	}
}

// statsSet holds the total and the per-app counters. Readers take the
// per-app map without a lock (copy on write: apps are added rarely).
type statsSet struct {
	m     *metrics // nil: no metrics
	total counters
	mu    sync.Mutex
	apps  atomic.Pointer[map[string]*counters]
}

// app returns the counters of appID, creating them on first use.
func (s *statsSet) app(appID string) *counters {
	if m := s.apps.Load(); m != nil {
		if c, ok := (*m)[appID]; ok {
			return c
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	old := s.apps.Load()
	if old != nil {
		if c, ok := (*old)[appID]; ok {
			return c
		}
	}
	next := make(map[string]*counters, 1)
	if old != nil {
		for k, v := range *old {
			next[k] = v
		}
	}
	c := &counters{pm: s.m.forApp(appID)}
	next[appID] = c
	s.apps.Store(&next)
	return c
}

func (s *statsSet) dropped(appID string, n int) {
	s.total.dropped.Add(uint64(n))
	c := s.app(appID)
	c.dropped.Add(uint64(n))
	if c.pm != nil {
		c.pm.evDropped.Add(float64(n))
	}
}

// sent counts a batch answered 2xx, latency after its first event.
func (s *statsSet) sent(appID string, events int, latency time.Duration) {
	c := s.app(appID)
	for _, c := range [2]*counters{&s.total, c} {
		c.sent.Add(1)
		c.sentEvents.Add(uint64(events))
	}
	if c.pm != nil {
		c.pm.reqSent.Inc()
		c.pm.evSent.Add(float64(events))
		c.pm.delivery.Observe(max(latency, 0).Seconds())
	}
}

func (s *statsSet) failed(appID string, events int) {
	c := s.app(appID)
	for _, c := range [2]*counters{&s.total, c} {
		c.failed.Add(1)
		c.failedEvents.Add(uint64(events))
	}
	if c.pm != nil {
		c.pm.reqFailed.Inc()
		c.pm.evFailed.Add(float64(events))
	}
}

func (s *statsSet) retried(appID string) {
	s.total.retried.Add(1)
	c := s.app(appID)
	c.retried.Add(1)
	if c.pm != nil {
		c.pm.reqRetried.Inc()
	}
}

func (s *statsSet) snapshot() Stats {
	st := Stats{Counters: s.total.snapshot(), Apps: map[string]Counters{}}
	if m := s.apps.Load(); m != nil {
		for k, c := range *m {
			st.Apps[k] = c.snapshot()
		}
	}
	return st
}

// rateLog logs a message at most once per interval per key and reports
// how many were suppressed in between.
type rateLog struct {
	log      *slog.Logger
	interval time.Duration
	mu       sync.Mutex
	last     map[string]*rateEntry
}

type rateEntry struct {
	at         time.Time
	suppressed int
}

func newRateLog(l *slog.Logger, interval time.Duration) *rateLog {
	return &rateLog{log: l, interval: interval, last: map[string]*rateEntry{}}
}

func (r *rateLog) warn(key, msg string, args ...any) {
	now := time.Now()
	r.mu.Lock()
	e := r.last[key]
	if e == nil {
		if len(r.last) > 10000 { // bound the keys (they carry app ids)
			clear(r.last)
		}
		e = &rateEntry{}
		r.last[key] = e
	} else if now.Sub(e.at) < r.interval {
		e.suppressed++
		r.mu.Unlock()
		return
	}
	suppressed := e.suppressed
	e.at, e.suppressed = now, 0
	r.mu.Unlock()
	if suppressed > 0 {
		args = append(args, "suppressed", suppressed)
	}
	r.log.Warn(msg, args...)
}
