package dashboard

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/herald-ws/herald/internal/hub"
	"github.com/herald-ws/herald/internal/protocol"
)

// ---- graphs ----

// sample is one second of an app's graphs.
type sample struct {
	T           int64   `json:"t"` // unix milliseconds
	Connections int64   `json:"connections"`
	InPerSec    float64 `json:"messages_in_per_second"`
	OutPerSec   float64 `json:"messages_out_per_second"`
}

// ring keeps the last samples of one app.
type ring struct {
	buf  []sample
	next int
	full bool
}

func (r *ring) add(s sample) {
	r.buf[r.next] = s
	r.next = (r.next + 1) % len(r.buf)
	if r.next == 0 {
		r.full = true
	}
}

func (r *ring) list() []sample {
	if !r.full {
		return append([]sample(nil), r.buf[:r.next]...)
	}
	out := make([]sample, 0, len(r.buf))
	out = append(out, r.buf[r.next:]...)
	return append(out, r.buf[:r.next]...)
}

// Run samples every app's totals once a second for the graphs until ctx
// is done.
func (d *Dashboard) Run(ctx context.Context) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	d.sample(time.Now())
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			d.sample(now)
		}
	}
}

func (d *Dashboard) sample(now time.Time) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	all, err := d.opt.Apps.All(ctx)
	cancel()
	if err != nil {
		return
	}
	size := max(int(d.opt.History/time.Second), 2)
	d.statsMu.Lock()
	defer d.statsMu.Unlock()
	for _, a := range all {
		tot := d.opt.Totals(a.ID)
		r := d.series[a.ID]
		if r == nil {
			r = &ring{buf: make([]sample, size)}
			d.series[a.ID] = r
		}
		s := sample{T: now.UnixMilli(), Connections: tot.Connections}
		if prev, ok := d.last[a.ID]; ok && r.next+boolInt(r.full) > 0 {
			last := r.buf[(r.next-1+len(r.buf))%len(r.buf)]
			secs := float64(now.UnixMilli()-last.T) / 1000
			if secs > 0 {
				s.InPerSec = float64(tot.MessagesIn-prev.MessagesIn) / secs
				s.OutPerSec = float64(tot.MessagesOut-prev.MessagesOut) / secs
			}
		}
		d.last[a.ID] = tot
		r.add(s)
	}
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

func (d *Dashboard) samples(appID string) []sample {
	d.statsMu.Lock()
	defer d.statsMu.Unlock()
	if r := d.series[appID]; r != nil {
		return r.list()
	}
	return []sample{}
}

// ---- debug console ----

// entry is one line of the debug console.
type entry struct {
	Seq      uint64 `json:"seq"`
	Time     int64  `json:"time"` // unix milliseconds
	Type     string `json:"type"`
	Channel  string `json:"channel,omitempty"`
	Event    string `json:"event,omitempty"`
	Data     string `json:"data,omitempty"`
	SocketID string `json:"socket_id,omitempty"`
	UserID   string `json:"user_id,omitempty"`
}

// logBook keeps a ring of recent entries per app, recording only while a
// dashboard is watching that app (it polled within watchWindow), so that
// the hot paths pay one map lookup when nobody looks.
type logBook struct {
	mu   sync.RWMutex
	apps map[string]*appLog
}

type appLog struct {
	watchedUntil atomic.Int64 // unix nanoseconds
	mu           sync.Mutex
	seq          uint64
	entries      []entry // ring
	next         int
}

const (
	logSize     = 500
	watchWindow = 15 * time.Second
	maxDataLen  = 4 << 10
)

func (b *logBook) init() { b.apps = make(map[string]*appLog) }

// watching returns the app's log when someone watches it.
func (b *logBook) watching(appID string) *appLog {
	b.mu.RLock()
	l := b.apps[appID]
	b.mu.RUnlock()
	if l == nil || time.Now().UnixNano() > l.watchedUntil.Load() {
		return nil
	}
	return l
}

// since returns the entries after seq and the last seq, and marks the app
// watched.
func (b *logBook) since(appID string, after uint64) ([]entry, uint64) {
	b.mu.Lock()
	l := b.apps[appID]
	if l == nil {
		l = &appLog{entries: make([]entry, 0, logSize)}
		b.apps[appID] = l
	}
	b.mu.Unlock()
	l.watchedUntil.Store(time.Now().Add(watchWindow).UnixNano())
	l.mu.Lock()
	defer l.mu.Unlock()
	out := []entry{}
	n, start := len(l.entries), 0
	if n == logSize {
		start = l.next // the oldest
	}
	for i := range n {
		e := l.entries[(start+i)%n]
		if e.Seq > after {
			out = append(out, e)
		}
	}
	return out, l.seq
}

func (l *appLog) add(e entry) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.seq++
	e.Seq = l.seq
	if len(l.entries) < logSize {
		l.entries = append(l.entries, e)
		return
	}
	l.entries[l.next] = e
	l.next = (l.next + 1) % logSize
}

// record adds an entry to an app's console if it is watched.
func (d *Dashboard) record(appID string, e entry) {
	if l := d.logs.watching(appID); l != nil {
		e.Time = time.Now().UnixMilli()
		l.add(e)
	}
}

func clipData(s string) string {
	return protocol.Clip(s, maxDataLen)
}

// APIEvent records an event published through the HTTP API (the server
// calls it before handing the event to the hub).
func (d *Dashboard) APIEvent(appID string, req hub.PublishRequest) {
	l := d.logs.watching(appID)
	if l == nil {
		return
	}
	for _, ch := range req.Channels {
		d.record(appID, entry{Type: "api_event", Channel: ch, Event: req.Name, Data: clipData(req.Data), SocketID: req.ExceptSocketID})
	}
}

// ---- hub.Observer ----

var _ hub.Observer = (*Dashboard)(nil)

func (d *Dashboard) ConnectionOpened(appID string) { d.record(appID, entry{Type: "connection_opened"}) }
func (d *Dashboard) ConnectionClosed(appID string) { d.record(appID, entry{Type: "connection_closed"}) }
func (d *Dashboard) ChannelOccupied(appID, channel string) {
	d.record(appID, entry{Type: "channel_occupied", Channel: channel})
}
func (d *Dashboard) ChannelVacated(appID, channel string) {
	d.record(appID, entry{Type: "channel_vacated", Channel: channel})
}
func (d *Dashboard) MemberAdded(appID, channel, userID string) {
	d.record(appID, entry{Type: "member_added", Channel: channel, UserID: userID})
}
func (d *Dashboard) MemberRemoved(appID, channel, userID string) {
	d.record(appID, entry{Type: "member_removed", Channel: channel, UserID: userID})
}
func (d *Dashboard) ClientEvent(appID, channel, event string, data []byte, socketID, userID string) {
	if d.logs.watching(appID) == nil {
		return // no copy of data when nobody looks
	}
	d.record(appID, entry{Type: "client_event", Channel: channel, Event: event, Data: clipData(string(data)), SocketID: socketID, UserID: userID})
}
func (d *Dashboard) CacheMiss(appID, channel string) {
	d.record(appID, entry{Type: "cache_miss", Channel: channel})
}
func (d *Dashboard) SubscriptionCount(string, string, int) {}

// Published is not logged: APIEvent has the event with its data.
func (d *Dashboard) Published(string, string, string, int) {}
