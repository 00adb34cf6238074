package hub

import (
	"net/url"
	"strings"
)

// originAllowed applies an app's AllowedOrigins to the Origin header.
//
//   - no Origin header (a non-browser client) is allowed;
//   - an empty list or "*" allows any origin;
//   - an entry with a scheme ("https://a.com") must equal the origin
//     (case-insensitive, a trailing slash ignored);
//   - any other entry is a host pattern matched against the origin's host:
//     "example.com" matches that host only, "*.example.com" any subdomain
//     of it; a pattern with a port ("example.com:8080") also matches the
//     port.
func originAllowed(allowed []string, origin string) bool {
	if origin == "" || len(allowed) == 0 {
		return true
	}
	var host, hostPort string
	parsed := false
	for _, a := range allowed {
		a = strings.TrimSpace(a)
		switch {
		case a == "*":
			return true
		case a == "":
			continue
		case strings.Contains(a, "://"):
			if strings.EqualFold(strings.TrimSuffix(a, "/"), strings.TrimSuffix(origin, "/")) {
				return true
			}
			continue
		}
		if !parsed {
			parsed = true
			u, err := url.Parse(origin)
			if err != nil || u.Host == "" {
				return false
			}
			host, hostPort = strings.ToLower(u.Hostname()), strings.ToLower(u.Host)
		}
		if host == "" {
			continue
		}
		target := host
		if strings.LastIndex(a, ":") > strings.LastIndex(a, "]") {
			target = hostPort // the pattern names a port
		}
		a = strings.ToLower(a)
		if suffix, ok := strings.CutPrefix(a, "*."); ok {
			if strings.HasSuffix(target, "."+suffix) {
				return true
			}
			continue
		}
		if target == a {
			return true
		}
	}
	return false
}
