package transport

import (
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"
)

// TrustedProxies is the set of reverse proxies whose X-Forwarded-For and
// X-Forwarded-Proto headers are believed. From anyone else those headers
// are ignored: a client could otherwise pick the address its per-IP limit
// is charged to, or claim TLS for an app that requires it.
type TrustedProxies []netip.Prefix

// ParseTrustedProxies parses CIDRs ("10.0.0.0/8") and bare addresses.
func ParseTrustedProxies(list []string) (TrustedProxies, error) {
	out := make(TrustedProxies, 0, len(list))
	for _, s := range list {
		s = strings.TrimSpace(s)
		if p, err := netip.ParsePrefix(s); err == nil {
			out = append(out, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(s)
		if err != nil {
			return nil, fmt.Errorf("trusted proxy %q is neither a CIDR nor an IP address", s)
		}
		a = a.Unmap()
		out = append(out, netip.PrefixFrom(a, a.BitLen()))
	}
	return out, nil
}

// Contains reports whether a is one of the trusted proxies.
func (t TrustedProxies) Contains(a netip.Addr) bool {
	a = a.Unmap()
	for _, p := range t {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// ClientOf is clientOf for the other HTTP handlers (the dashboard): the
// client's address and whether it came over TLS (tlsConn: the socket did).
func (t TrustedProxies) ClientOf(r *http.Request, tlsConn bool) (netip.Addr, bool) {
	return t.clientOf(r, tlsConn)
}

// clientOf returns the client's address and whether it reached the proxy
// chain over TLS. The peer of the socket is the client unless it is a
// trusted proxy; then X-Forwarded-For is read from the right, skipping
// trusted proxies, and the first other address is the client (the left
// part of the header is whatever the client sent, so it cannot be
// believed). X-Forwarded-Proto counts only from a trusted peer.
func (t TrustedProxies) clientOf(r *http.Request, tlsConn bool) (netip.Addr, bool) {
	peer := addrOf(r.RemoteAddr)
	if len(t) == 0 || !peer.IsValid() || !t.Contains(peer) {
		return peer, tlsConn
	}
	client := peer
	values := r.Header.Values("X-Forwarded-For")
walk:
	for i := len(values) - 1; i >= 0; i-- {
		parts := strings.Split(values[i], ",")
		for j := len(parts) - 1; j >= 0; j-- {
			a, err := netip.ParseAddr(strings.TrimSpace(parts[j]))
			if err != nil {
				break walk // garbage: stop at the last address we could read
			}
			client = a.Unmap()
			if !t.Contains(client) {
				break walk
			}
		}
	}
	if proto := r.Header.Get("X-Forwarded-Proto"); proto != "" {
		// A chain of proxies may list several; the first is the client's.
		first, _, _ := strings.Cut(proto, ",")
		first = strings.ToLower(strings.TrimSpace(first))
		tlsConn = first == "https" || first == "wss"
	}
	return client, tlsConn
}

// addrOf parses "ip:port" (or a bare IP) into an address.
func addrOf(hostport string) netip.Addr {
	if ap, err := netip.ParseAddrPort(hostport); err == nil {
		return ap.Addr().Unmap()
	}
	host, _, err := net.SplitHostPort(hostport)
	if err != nil {
		host = hostport
	}
	a, err := netip.ParseAddr(host)
	if err != nil {
		return netip.Addr{}
	}
	return a.Unmap()
}
