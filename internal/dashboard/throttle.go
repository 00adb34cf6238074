package dashboard

import (
	"net/netip"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// loginThrottle limits failed logins per client address (an IPv6 client
// by its /64): ten wrong tokens at once, then one a second. Guessing is
// hopeless, a typo is not punished, and one address guessing does not lock
// the others out. Addresses are kept in two generations swapped every
// throttleGeneration (or when the current one is full), so an address
// that stopped trying costs nothing after two generations and the memory
// stays bounded whatever the number of addresses.
type loginThrottle struct {
	mu       sync.Mutex
	cur, old map[netip.Addr]*rate.Limiter
	since    time.Time
}

const (
	throttleGeneration = 5 * time.Minute
	throttleMaxAddrs   = 10000
	throttleBurst      = 10
)

func newLoginThrottle() *loginThrottle {
	return &loginThrottle{cur: map[netip.Addr]*rate.Limiter{}, since: time.Now()}
}

// reserve takes a failure token for addr before the token is compared:
// ok is false when addr has no failure left (the login is refused without
// looking at the token); otherwise cancel gives the token back (a
// successful login costs nothing).
func (t *loginThrottle) reserve(addr netip.Addr) (cancel func(), ok bool) {
	key := throttleKey(addr)
	now := time.Now()
	t.mu.Lock()
	if now.Sub(t.since) > throttleGeneration || len(t.cur) >= throttleMaxAddrs {
		t.old, t.cur, t.since = t.cur, make(map[netip.Addr]*rate.Limiter, len(t.cur)/2+1), now
	}
	lim := t.cur[key]
	if lim == nil {
		if lim = t.old[key]; lim == nil {
			lim = rate.NewLimiter(rate.Every(time.Second), throttleBurst)
		}
		t.cur[key] = lim
	}
	t.mu.Unlock()
	r := lim.ReserveN(now, 1)
	if !r.OK() || r.DelayFrom(now) > 0 {
		r.CancelAt(now)
		return nil, false
	}
	return func() { r.CancelAt(now) }, true
}

// throttleKey is the address an IPv6 client is counted under: its /64,
// what one host usually gets.
func throttleKey(a netip.Addr) netip.Addr {
	a = a.Unmap()
	if a.Is6() {
		p, _ := a.Prefix(64)
		return p.Addr()
	}
	return a
}
