package guard

import (
	"net/netip"
	"sync"
	"time"
)

// Offenders remembers, for a while, the client addresses whose
// connections were closed for flooding (the message rate's 4301): a
// flooder that reconnects at once would otherwise start every new
// connection with a full burst of messages handled, which made its
// reconnections the main cost of a flood. An address is counted as by
// IPLimiter (an IPv6 client by its /64).
//
// Memory is bounded as IPLimiter's (generations of period ttl): an entry
// is forgotten between one and two ttl after its last offence, or earlier
// when a flood of distinct addresses fills maxEntries.
type Offenders struct {
	ttl time.Duration

	mu   sync.Mutex
	last generations[time.Time] // address → its last offence
}

// NewOffenders returns a memory of offences that lasts ttl; maxEntries
// bounds the entries of one generation (0: a default).
func NewOffenders(ttl time.Duration, maxEntries int) *Offenders {
	return &Offenders{ttl: ttl, last: newGenerations[time.Time](ttl, maxEntries)}
}

// Add records an offence of a at now. An invalid address (a Unix socket)
// is not recorded.
func (o *Offenders) Add(a netip.Addr, now time.Time) {
	if !a.IsValid() {
		return
	}
	key := ipKey(a)
	o.mu.Lock()
	defer o.mu.Unlock()
	o.last.touch(key, now)
	o.last.put(key, now)
}

// Has reports whether a offended within ttl before now.
func (o *Offenders) Has(a netip.Addr, now time.Time) bool {
	if !a.IsValid() {
		return false
	}
	key := ipKey(a)
	o.mu.Lock()
	defer o.mu.Unlock()
	at, ok := o.last.peek(key)
	return ok && now.Sub(at) < o.ttl
}

// size returns the number of entries held.
func (o *Offenders) size() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.last.size()
}
