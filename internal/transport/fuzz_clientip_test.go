package transport

import (
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/herald-ws/herald/internal/guard"
)

// FuzzClientOf feeds hostile X-Forwarded-For and X-Forwarded-Proto values
// from a trusted and an untrusted peer: never a panic, and the address
// charged is always the peer or an address the header actually names.
func FuzzClientOf(f *testing.F) {
	f.Add("10.0.0.1:1234", "198.51.100.7, 10.0.0.2", "https")
	f.Add("203.0.113.1:1", "1.2.3.4", "http")
	f.Add("[fd00::1]:443", "2001:db8::1,,, ,garbage", "wss, http")
	f.Add("10.0.0.1:1", "::ffff:1.2.3.4", "")
	f.Add("nonsense", "", "")
	tp, err := ParseTrustedProxies([]string{"10.0.0.0/8", "fd00::/8"})
	if err != nil {
		f.Fatal(err)
	}
	lim := guard.NewIPLimiter(1, 1, 0)
	f.Fuzz(func(t *testing.T, remote, xff, proto string) {
		r := &http.Request{RemoteAddr: remote, Header: http.Header{}}
		r.Header.Set("X-Forwarded-For", xff)
		r.Header.Set("X-Forwarded-Proto", proto)
		ip, viaTLS := tp.clientOf(r, false)
		peer := addrOf(remote)
		if !peer.IsValid() || !tp.Contains(peer) {
			if ip != peer || viaTLS {
				t.Fatalf("untrusted peer %q: got %v tls=%v", remote, ip, viaTLS)
			}
			return
		}
		if ip != peer {
			// Must be one of the header's addresses.
			found := false
			for _, part := range splitComma(xff) {
				if a, err := netip.ParseAddr(part); err == nil && a.Unmap() == ip {
					found = true
				}
			}
			if !found {
				t.Fatalf("client %v is not in %q", ip, xff)
			}
		}
		_ = lim.Allow(ip, time.Unix(1000, 0)) // never panics, valid or not
	})
}

func splitComma(s string) []string {
	parts := strings.Split(s, ",")
	for i := range parts {
		parts[i] = strings.TrimSpace(parts[i])
	}
	return parts
}
