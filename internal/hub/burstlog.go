package hub

import (
	"log/slog"
	"sync"
	"time"
)

// burstInterval is how long a burstLog counts a warning after logging it.
const burstInterval = 10 * time.Second

// burstLog logs the warnings that come once per socket or subscription,
// thousands at once in a mass disconnect during a Redis outage (each
// failed removal): per message, the first of an interval as is, and the
// others of the interval as one line when it ends, with their count and
// the attributes of the last one.
type burstLog struct {
	log      *slog.Logger
	now      func() time.Time
	interval time.Duration

	mu     sync.Mutex
	bursts map[string]*burst // by message
}

type burst struct {
	start time.Time // when the interval's first warning was logged
	more  int       // warnings since, not logged yet
	last  []any     // the last one's attributes
}

func newBurstLog(l *slog.Logger, now func() time.Time, interval time.Duration) *burstLog {
	return &burstLog{log: l, now: now, interval: interval, bursts: make(map[string]*burst)}
}

// Warn logs msg at once if it is the first of its interval, else counts it.
func (l *burstLog) Warn(msg string, args ...any) {
	now := l.now()
	l.mu.Lock()
	b := l.bursts[msg]
	if b != nil && now.Sub(b.start) < l.interval {
		b.more++
		b.last = args
		l.mu.Unlock()
		return
	}
	l.bursts[msg] = &burst{start: now}
	l.mu.Unlock()
	if b != nil {
		l.report(msg, b)
	}
	l.log.Warn(msg, args...)
}

// Flush logs the count of every interval that ended, or of every
// interval when all (the hub's timers call it every second, and with all
// when they stop), so that a burst's count does not wait for the next
// warning of its kind.
func (l *burstLog) Flush(all bool) {
	now := l.now()
	var ended map[string]*burst
	l.mu.Lock()
	for msg, b := range l.bursts {
		if all || now.Sub(b.start) >= l.interval {
			if ended == nil {
				ended = make(map[string]*burst)
			}
			ended[msg] = b
			delete(l.bursts, msg)
		}
	}
	l.mu.Unlock()
	for msg, b := range ended {
		l.report(msg, b)
	}
}

// report logs the warnings of an ended interval that were only counted.
func (l *burstLog) report(msg string, b *burst) {
	if b.more == 0 {
		return
	}
	args := append(append([]any(nil), b.last...), "more", b.more, "interval", l.interval)
	l.log.Warn(msg, args...)
}
