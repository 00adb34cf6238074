package config

import (
	"net"
	"net/mail"
	"net/url"
	"os"
	"strconv"
	"strings"
)

// DefaultACMEDirectoryURL is Let's Encrypt's production directory, the
// default of acme_directory_url.
const DefaultACMEDirectoryURL = "https://acme-v02.api.letsencrypt.org/directory"

// ACMEEnabled reports whether certificates come from an ACME CA
// (acme_domains is set).
func (c *Config) ACMEEnabled() bool { return len(c.ACMEDomains) > 0 }

// acme checks the ACME keys: host names autocert can obtain a certificate
// for, a cache directory, a usable directory URL, and no mix with
// tls_cert/tls_key.
func (v *validator) acme(c *Config) {
	if !c.ACMEEnabled() {
		if c.ACMEHTTPAddr != "" {
			v.add("acme_http_addr", "is set but acme_domains is empty; set acme_domains to turn ACME on, or leave acme_http_addr empty")
		}
		return
	}
	if c.TLSCert != "" || c.TLSKey != "" {
		v.add("acme_domains", "cannot be used with tls_cert/tls_key: certificates come either from files or from ACME; leave one of them empty")
	}
	seen := make(map[string]int, len(c.ACMEDomains))
	for i, d := range c.ACMEDomains {
		p := indexPath("acme_domains", i)
		if msg := acmeHostProblem(d); msg != "" {
			v.add(p, "%s, got %q", msg, safeKey(d))
			continue
		}
		norm := strings.ToLower(strings.TrimSuffix(d, "."))
		if j, dup := seen[norm]; dup {
			v.add(p, "%q is already acme_domains[%d]", d, j)
			continue
		}
		seen[norm] = i
	}

	switch fi, err := os.Stat(c.ACMECacheDir); {
	case c.ACMECacheDir == "":
		v.add("acme_cache_dir", "must be set with acme_domains: the ACME account key and certificates are kept there, so that a restart does not ask the CA again (and hit its rate limits)")
	case err == nil && !fi.IsDir():
		v.add("acme_cache_dir", "%q is not a directory", c.ACMECacheDir)
	case err != nil && !os.IsNotExist(err):
		v.add("acme_cache_dir", "cannot use %q: %v", c.ACMECacheDir, err)
	}

	if c.ACMEEmail != "" {
		if a, err := mail.ParseAddress(c.ACMEEmail); err != nil || a.Address != c.ACMEEmail {
			v.add("acme_email", "must be a plain e-mail address (e.g. ops@example.com), got %q", safeKey(c.ACMEEmail))
		}
	}

	v.acmeDirectoryURL(c.ACMEDirectoryURL)

	if c.ACMEHTTPAddr != "" {
		host, port, err := net.SplitHostPort(c.ACMEHTTPAddr)
		n, perr := strconv.Atoi(port)
		anyHost := func(h string) bool { return h == "" || h == "0.0.0.0" || h == "::" }
		switch {
		case err != nil || perr != nil || n < 1 || n > 65535:
			v.add("acme_http_addr", `must be host:port with a port 1-65535 (e.g. ":80"), got %q`, c.ACMEHTTPAddr)
		case n == c.Port && (host == c.Host || anyHost(host) || anyHost(c.Host)):
			v.add("acme_http_addr", "must not be the main listener's address %s (that one serves TLS); use the plain HTTP port, usually :80", c.Addr())
		case c.MetricsAddr != "" && c.MetricsAddr == c.ACMEHTTPAddr:
			v.add("acme_http_addr", "must not be metrics_addr (%s)", c.MetricsAddr)
		}
	}
}

// acmeDirectoryURL accepts https URLs, and http only on the loopback (a
// local pebble or a test CA): the account key is sent to it.
func (v *validator) acmeDirectoryURL(raw string) {
	const want = "must be the https:// URL of an ACME directory (e.g. " + DefaultACMEDirectoryURL + ")"
	u, err := url.Parse(raw)
	switch {
	case raw == "":
		v.add("acme_directory_url", "%s, got nothing", want)
	case err != nil:
		v.add("acme_directory_url", "%s; it does not parse as a URL", want)
	case u.Host == "":
		v.add("acme_directory_url", "%s, got no host", want)
	case u.Scheme == "https":
	case u.Scheme == "http" && isLoopbackHost(u.Hostname()):
	default:
		v.add("acme_directory_url", "%s (http:// only on the loopback), got scheme %q", want, u.Scheme)
	}
}

func isLoopbackHost(h string) bool {
	if h == "localhost" {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}

// acmeHostProblem says why name cannot get a certificate through autocert
// (HTTP-01 and TLS-ALPN-01 only: no IP address, no wildcard), or "".
func acmeHostProblem(name string) string {
	n := strings.TrimSuffix(name, ".")
	switch {
	case n == "":
		return "must be a host name (e.g. ws.example.com)"
	case strings.Contains(n, "*"):
		return "must be a host name without a wildcard: ACME's HTTP-01 and TLS-ALPN-01 challenges cannot obtain wildcard certificates (use tls_cert/tls_key with a DNS-01 client such as certbot or cert-manager)"
	case net.ParseIP(strings.Trim(n, "[]")) != nil:
		return "must be a host name, not an IP address"
	case len(n) > 253:
		return "must be a host name of at most 253 characters"
	case !strings.Contains(n, "."):
		return "must be a fully qualified host name with a dot (e.g. ws.example.com)"
	}
	for label := range strings.SplitSeq(n, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return "must be a host name: dot separated labels of 1-63 letters, digits or hyphens, not starting or ending with a hyphen"
		}
		for i := 0; i < len(label); i++ {
			ch := label[i]
			if !(ch >= 'a' && ch <= 'z' || ch >= 'A' && ch <= 'Z' || ch >= '0' && ch <= '9' || ch == '-') {
				return "must be a host name of letters, digits, hyphens and dots (write an internationalised name in its xn-- form)"
			}
		}
	}
	return ""
}
