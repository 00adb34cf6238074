// Package guard holds the node's admission guards: a per-address rate of
// new connections and a memory guard. The hub decides when to consult
// them (hub.Admit); they only measure.
package guard

import (
	"net/netip"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// IPLimiter limits new connections per client address with a token bucket
// each (golang.org/x/time/rate). An IPv6 client is counted by its /64: one
// host usually holds a whole /64, and counting single addresses would let
// it open one bucket per address.
//
// Memory is bounded without a goroutine: buckets live in two generations
// that rotate every period, where period is at least the time a bucket
// takes to refill. A bucket unused for a whole generation is dropped,
// which changes nothing (it would be full again anyway), so the limiter
// holds only the addresses seen in the last two periods. A flood of
// distinct addresses that fills maxEntries rotates early: the oldest
// buckets are then forgotten before they refilled, a bounded leniency
// that is better than growing without end.
type IPLimiter struct {
	rate       rate.Limit
	burst      int
	period     time.Duration
	maxEntries int
	exempt     []netip.Prefix

	mu       sync.Mutex
	cur      map[netip.Prefix]*rate.Limiter
	prev     map[netip.Prefix]*rate.Limiter
	rotateAt time.Time
}

// defaultIPLimiterEntries bounds the buckets of one generation (about
// 100 bytes each).
const defaultIPLimiterEntries = 100_000

// NewIPLimiter returns a limiter of perSecond new connections per address
// with bursts of burst; maxEntries bounds the buckets of one generation
// (0: a default).
func NewIPLimiter(perSecond float64, burst int, maxEntries int) *IPLimiter {
	if burst < 1 {
		burst = 1
	}
	if maxEntries <= 0 {
		maxEntries = defaultIPLimiterEntries
	}
	refill := time.Duration(float64(burst) / perSecond * float64(time.Second))
	return &IPLimiter{
		rate:       rate.Limit(perSecond),
		burst:      burst,
		period:     max(refill, 10*time.Second),
		maxEntries: maxEntries,
		cur:        make(map[netip.Prefix]*rate.Limiter),
		prev:       make(map[netip.Prefix]*rate.Limiter),
	}
}

// Exempt sets the addresses that are never charged (ip_limit_exempt) and
// returns l; it is called before the limiter is used.
func (l *IPLimiter) Exempt(prefixes []netip.Prefix) *IPLimiter {
	l.exempt = prefixes
	return l
}

// Allow charges a new connection from a to its bucket and reports whether
// the bucket had a token. Every address is charged, loopback and private
// ones too, unless it is in the exempt list: behind a proxy on the same
// host every client is the loopback, and an exemption would leave them
// (and anyone on the host) unbounded. The caller charges the client's
// address as resolved through trusted_proxies.
func (l *IPLimiter) Allow(a netip.Addr, now time.Time) bool {
	a = a.Unmap()
	for _, p := range l.exempt {
		if p.Contains(a) {
			return true
		}
	}
	return l.allow(a, now)
}

// allow charges one connection to a's bucket, whatever the address. An
// invalid address (a Unix socket, say) is not limited.
func (l *IPLimiter) allow(a netip.Addr, now time.Time) bool {
	if !a.IsValid() {
		return true
	}
	key := ipKey(a)
	l.mu.Lock()
	defer l.mu.Unlock()
	if now.After(l.rotateAt) || len(l.cur) >= l.maxEntries {
		// Every bucket in cur was last used before rotateAt (a later call
		// would have rotated), every one in prev a period before that.
		if now.After(l.rotateAt.Add(l.period)) {
			clear(l.cur) // idle for a whole period too: all full again
		}
		l.prev, l.cur = l.cur, make(map[netip.Prefix]*rate.Limiter, len(l.cur)/2+1)
		l.rotateAt = now.Add(l.period)
	}
	b := l.cur[key]
	if b == nil {
		if b = l.prev[key]; b != nil {
			delete(l.prev, key)
		} else {
			b = rate.NewLimiter(l.rate, l.burst)
		}
		l.cur[key] = b
	}
	return b.AllowN(now, 1)
}

// size returns the number of buckets held.
func (l *IPLimiter) size() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.cur) + len(l.prev)
}

// ipKey is the address an IPv4 client is counted by, or the /64 of an IPv6
// client.
func ipKey(a netip.Addr) netip.Prefix {
	a = a.Unmap()
	if a.Is4() {
		return netip.PrefixFrom(a, 32)
	}
	p, _ := a.Prefix(64)
	return p
}
