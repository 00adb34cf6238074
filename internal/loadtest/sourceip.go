package loadtest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// maxSourceIPs bounds --source-ips so that a typo ("127.0.0.1-127.1.0.0")
// cannot ask for millions of addresses.
const maxSourceIPs = 4096

// parseSourceIPs parses a list of local addresses: comma-separated items,
// each an address ("127.0.0.2", "::1"), an IPv4 range given in full
// ("127.0.0.1-127.0.0.20") or by its last byte ("127.0.0.1-20"), or an IPv4
// prefix ("127.0.0.0/28", every address in it). An empty string is an
// empty list.
func parseSourceIPs(s string) ([]netip.Addr, error) {
	var out []netip.Addr
	seen := map[netip.Addr]bool{}
	add := func(a netip.Addr) error {
		if seen[a] {
			return nil
		}
		if len(out) >= maxSourceIPs {
			return fmt.Errorf("more than %d source addresses", maxSourceIPs)
		}
		seen[a] = true
		out = append(out, a)
		return nil
	}
	for _, item := range strings.Split(s, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		switch {
		case strings.Contains(item, "/"):
			p, err := netip.ParsePrefix(item)
			if err != nil || !p.Addr().Is4() {
				return nil, fmt.Errorf("source address %q: want an IPv4 prefix like 127.0.0.0/28", item)
			}
			if p.Bits() < 32-12 {
				return nil, fmt.Errorf("source address %q: prefix too large (at most /20)", item)
			}
			for a := p.Masked().Addr(); p.Contains(a); a = a.Next() {
				if err := add(a); err != nil {
					return nil, err
				}
			}
		case strings.Contains(item, "-"):
			from, to, _ := strings.Cut(item, "-")
			lo, err := netip.ParseAddr(strings.TrimSpace(from))
			if err != nil || !lo.Is4() {
				return nil, fmt.Errorf("source address range %q: %q is not an IPv4 address", item, from)
			}
			to = strings.TrimSpace(to)
			var hi netip.Addr
			if n, err := strconv.Atoi(to); err == nil && !strings.Contains(to, ".") {
				if n < 0 || n > 255 {
					return nil, fmt.Errorf("source address range %q: last byte %d out of range", item, n)
				}
				b := lo.As4()
				b[3] = byte(n)
				hi = netip.AddrFrom4(b)
			} else if hi, err = netip.ParseAddr(to); err != nil || !hi.Is4() {
				return nil, fmt.Errorf("source address range %q: %q is not an IPv4 address or a last byte", item, to)
			}
			if hi.Less(lo) {
				return nil, fmt.Errorf("source address range %q: end before start", item)
			}
			for a := lo; ; a = a.Next() {
				if err := add(a); err != nil {
					return nil, err
				}
				if a == hi {
					break
				}
			}
		default:
			a, err := netip.ParseAddr(item)
			if err != nil {
				return nil, fmt.Errorf("source address %q: not an IP address", item)
			}
			if err := add(a.Unmap()); err != nil {
				return nil, err
			}
		}
	}
	return out, nil
}

// sourcePool dials TCP connections from a set of local addresses. With an
// explicit list it spreads connections over the list round-robin. Without
// one it lets the kernel choose (127.0.0.1 for a loopback target) and, when
// the target is loopback and the kernel runs out of ephemeral ports
// (EADDRNOTAVAIL), moves on to 127.0.0.2, 127.0.0.3, … up to 127.0.0.254.
type sourcePool struct {
	explicit []netip.Addr
	auto     bool // may move to further 127.0.0.x addresses
	timeout  time.Duration
	dial     func(ctx context.Context, network, addr string, local netip.Addr) (net.Conn, error)

	rr atomic.Uint64

	mu      sync.Mutex
	autoIdx int // 0 = kernel's choice; n = 127.0.0.(n+1)
	used    map[netip.Addr]bool
}

func newSourcePool(explicit []netip.Addr, autoSpread bool, timeout time.Duration) *sourcePool {
	p := &sourcePool{explicit: explicit, auto: autoSpread && len(explicit) == 0, timeout: timeout, used: map[netip.Addr]bool{}}
	p.dial = p.dialFrom
	return p
}

// errNoSourcePorts is returned when every source address is out of ports.
var errNoSourcePorts = errors.New("out of local ports on every source address (try --source-ips with more addresses)")

func isAddrNotAvail(err error) bool { return errors.Is(err, syscall.EADDRNOTAVAIL) }

// Used returns how many distinct source addresses were bound so far (0
// when the kernel chose every time).
func (p *sourcePool) Used() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.used)
}

func (p *sourcePool) note(a netip.Addr) {
	p.mu.Lock()
	if !p.used[a] {
		p.used[a] = true
	}
	p.mu.Unlock()
}

// DialContext has the signature of net.Dialer.DialContext.
func (p *sourcePool) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	if len(p.explicit) > 0 {
		start := p.rr.Add(1) - 1
		var lastErr error
		for i := 0; i < len(p.explicit); i++ {
			a := p.explicit[(start+uint64(i))%uint64(len(p.explicit))]
			c, err := p.dial(ctx, network, addr, a)
			if err == nil {
				p.note(a)
				return c, nil
			}
			if !isAddrNotAvail(err) {
				return nil, err
			}
			lastErr = err
		}
		return nil, fmt.Errorf("%w: %v", errNoSourcePorts, lastErr)
	}
	for {
		p.mu.Lock()
		idx := p.autoIdx
		p.mu.Unlock()
		var a netip.Addr
		if idx > 0 {
			a = netip.AddrFrom4([4]byte{127, 0, 0, byte(idx + 1)})
		}
		c, err := p.dial(ctx, network, addr, a)
		if err == nil {
			if a.IsValid() {
				p.note(a)
			}
			return c, nil
		}
		if !isAddrNotAvail(err) || !p.auto {
			return nil, err
		}
		p.mu.Lock()
		if p.autoIdx == idx { // nobody has moved on yet
			if p.autoIdx >= 253 {
				p.mu.Unlock()
				return nil, fmt.Errorf("%w: %v", errNoSourcePorts, err)
			}
			p.autoIdx++
		}
		p.mu.Unlock()
	}
}

func (p *sourcePool) dialFrom(ctx context.Context, network, addr string, local netip.Addr) (net.Conn, error) {
	// No TCP keep-alive: Go's default costs four setsockopt calls per
	// connection, the tool's own CPU that competes with the server's on a
	// small box (churn, the setup ramp), for probes a loopback benchmark
	// never needs.
	d := net.Dialer{Timeout: p.timeout, KeepAlive: -1}
	if local.IsValid() {
		d.LocalAddr = net.TCPAddrFromAddrPort(netip.AddrPortFrom(local, 0))
		d.Control = bindAddressNoPort
	}
	return d.DialContext(ctx, network, addr)
}
