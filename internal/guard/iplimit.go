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
// Memory is bounded without a goroutine (generations): the buckets'
// period is at least the time a bucket takes to refill, so a bucket
// unused for a whole generation is dropped, which changes nothing (it
// would be full again anyway). A flood of distinct addresses forgets the
// oldest buckets before they refilled.
type IPLimiter struct {
	rate   rate.Limit
	burst  int
	exempt []netip.Prefix

	mu      sync.Mutex
	buckets generations[*rate.Limiter]
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
	refill := time.Duration(float64(burst) / perSecond * float64(time.Second))
	return &IPLimiter{
		rate:    rate.Limit(perSecond),
		burst:   burst,
		buckets: newGenerations[*rate.Limiter](max(refill, 10*time.Second), maxEntries),
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
	b, ok := l.buckets.touch(key, now)
	if !ok {
		b = rate.NewLimiter(l.rate, l.burst)
		l.buckets.put(key, b)
	}
	return b.AllowN(now, 1)
}

// size returns the number of buckets held.
func (l *IPLimiter) size() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buckets.size()
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
