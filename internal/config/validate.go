package config

import (
	"errors"
	"fmt"
	"net"
	"os"
	"reflect"
	"slices"
	"strconv"
	"strings"

	"github.com/herald-ws/herald/internal/apps"
	"github.com/herald-ws/herald/internal/redisurl"
	"github.com/herald-ws/herald/internal/settings"
)

// Validate checks a Config built in code the way Load checks a loaded one,
// and returns every problem at once (errors.Join). It reads the TLS files to
// check that they exist.
func (c *Config) Validate() error {
	v := validator{tables: tables()}
	v.config(c)
	return errors.Join(v.errs...)
}

// validator collects the problems of one Config.
type validator struct {
	tables  settings.Tables
	origins origins         // nil when validating a Config built in code
	failed  map[string]bool // paths that already have a decoding error
	errs    []error
}

// add records a problem at path unless path, or an enclosing path, already
// failed to decode (one error per mistake is enough).
func (v *validator) add(path, format string, args ...any) {
	for p := path; ; p = parentPath(p) {
		if v.failed[p] {
			return
		}
		if p == "" {
			break
		}
	}
	v.errs = append(v.errs, &fieldError{at: v.origins.of(path), path: path, msg: fmt.Sprintf(format, args...)})
}

func (v *validator) config(c *Config) {
	// Every range and enum of the server's table; the apps' are checked
	// by apps.Validate.
	v.tables.Of(reflect.TypeFor[Config]()).Problems(reflect.ValueOf(c).Elem(), func(key, msg string) {
		v.add(key, "%s", msg)
	})

	if c.Host != "" && (strings.ContainsAny(c.Host, " \t/[]") || (strings.Contains(c.Host, ":") && net.ParseIP(c.Host) == nil)) {
		v.add("host", "must be a host name or IP address without a port (e.g. 0.0.0.0 or ::), got %q", c.Host)
	}
	if c.PathPrefix != "" && !validPathPrefix(c.PathPrefix) {
		v.add("path_prefix", `must start with "/", not end with "/", and use only letters, digits and "._~-" between slashes (e.g. "/ws"), got %q`, c.PathPrefix)
	}
	if p := apps.RedisURLProblem(c.RedisURL); c.RedisURL != "" && c.RedisMode == redisurl.Single && p != "" {
		// The message every single-Redis setup has known.
		v.add("redis_url", "%s", p)
	} else if c.RedisURL != "" && slices.Contains(redisurl.Modes, c.RedisMode) {
		if _, err := redisurl.Parse(c.RedisMode, c.RedisURL); err != nil {
			v.add("redis_url", "must be a Redis URL for redis_mode %s (docs/scaling.md): %v", c.RedisMode, err)
		}
	}
	if c.MetricsAddr != "" {
		v.metricsAddr(c)
	}
	v.tls(c)
	v.acme(c)
	v.restart(c)
	v.webhookSettings(c)
	v.cidrList("trusted_proxies", c.TrustedProxies)
	v.cidrList("ip_limit_exempt", c.IPLimitExempt)
	if n := len(c.AdminToken); n > 0 && n < MinAdminTokenLength {
		v.add("admin_token", "must be at least %d characters (a long random string, e.g. from `openssl rand -hex 24`), got %d", MinAdminTokenLength, n)
	}

	if c.AppsStore != "" && c.AppsStore != "config" {
		if _, err := apps.ParseStoreURL(c.AppsStore); err != nil {
			// ParseStoreURL's errors never hold the password.
			v.add("apps_store", "%v", err)
		}
	}
	if len(c.Apps) == 0 && !c.DatabaseApps() {
		v.add("apps", "must list at least one app")
	}
	ids := make(map[string]int, len(c.Apps))
	keys := make(map[string]int, len(c.Apps))
	for i := range c.Apps {
		path := indexPath("apps", i)
		a := &c.Apps[i]
		v.app(a, path)
		if j, dup := ids[a.ID]; dup && a.ID != "" {
			v.add(joinPath(path, "id"), "%q is already the id of apps[%d]; ids must be unique", a.ID, j)
		} else {
			ids[a.ID] = i
		}
		if j, dup := keys[a.Key]; dup && a.Key != "" {
			v.add(joinPath(path, "key"), "%q is already the key of apps[%d]; keys must be unique", a.Key, j)
		} else {
			keys[a.Key] = i
		}
	}
}

// validPathPrefix accepts "/a", "/a/b-c", not "/", "a", "/a/", "//a", "/./a".
func validPathPrefix(p string) bool {
	if !strings.HasPrefix(p, "/") || strings.HasSuffix(p, "/") {
		return false
	}
	for seg := range strings.SplitSeq(p[1:], "/") {
		if seg == "" || seg == "." || seg == ".." {
			return false
		}
		for _, r := range seg {
			if !isIDChar(r) && r != '~' {
				return false
			}
		}
	}
	return true
}

// isIDChar reports whether r may appear in an app id or key: they are used
// in URL paths unescaped.
func isIDChar(r rune) bool { return apps.IsIDChar(r) }

// laravelRedis checks that a laravel_redis block written in the file names a
// URL (apps.Validate checks the URL itself, for every store).
func (v *validator) laravelRedis(l apps.LaravelRedis, path string) {
	if l.URL != "" {
		return
	}
	// The block was written but says nowhere to listen: ingestion would be
	// silently off, which is never what the author meant.
	_, written := v.origins[path]
	_, prefixSet := v.origins[joinPath(path, "prefix")]
	if written || prefixSet || l.Prefix != apps.DefaultLaravelRedisPrefix {
		v.add(joinPath(path, "url"), "must be set to Laravel's Redis URL (e.g. redis://127.0.0.1:6379/0) to ingest its redis broadcaster; remove laravel_redis to leave ingestion off")
	}
}

func (v *validator) metricsAddr(c *Config) {
	host, port, err := net.SplitHostPort(c.MetricsAddr)
	n, perr := strconv.Atoi(port)
	if err != nil || perr != nil || n < 1 || n > 65535 {
		v.add("metrics_addr", `must be host:port with a port 1-65535 (e.g. ":9601" or "127.0.0.1:9601"), got %q`, c.MetricsAddr)
		return
	}
	anyHost := func(h string) bool { return h == "" || h == "0.0.0.0" || h == "::" }
	if n == c.Port && (host == c.Host || anyHost(host) || anyHost(c.Host)) {
		v.add("metrics_addr", "must not be the main listener's address %s; leave it empty to serve /metrics on the main port", c.Addr())
	}
}

func (v *validator) tls(c *Config) {
	switch {
	case c.TLSCert != "" && c.TLSKey == "":
		v.add("tls_cert", "is set but tls_key is not; set both or neither")
	case c.TLSKey != "" && c.TLSCert == "":
		v.add("tls_key", "is set but tls_cert is not; set both or neither")
	}
	for _, f := range []struct{ key, path string }{{"tls_cert", c.TLSCert}, {"tls_key", c.TLSKey}} {
		if f.path == "" {
			continue
		}
		if msg := checkReadable(f.path); msg != "" {
			v.add(f.key, "%s", msg)
		}
	}
}

// cidrList checks that every entry of key is a CIDR or an IP address.
func (v *validator) cidrList(key string, list []string) {
	for i, p := range list {
		if _, _, err := net.ParseCIDR(p); err == nil {
			continue
		}
		if net.ParseIP(p) != nil {
			continue
		}
		v.add(indexPath(key, i), `must be a CIDR (e.g. "10.0.0.0/8") or an IP address, got %q`, p)
	}
}

// checkReadable returns why the PEM file at path cannot be used, or "".
func checkReadable(path string) string {
	fh, err := os.Open(path)
	if err != nil {
		var reason error = err
		var pe *os.PathError
		if errors.As(err, &pe) {
			reason = pe.Err
		}
		return fmt.Sprintf("cannot open %q: %v; expected a readable PEM file", path, reason)
	}
	defer fh.Close()
	st, err := fh.Stat()
	if err != nil {
		return fmt.Sprintf("cannot stat %q: %v", path, err)
	}
	if st.IsDir() {
		return fmt.Sprintf("%q is a directory; expected a PEM file", path)
	}
	return ""
}

// app checks one app with the rules every app store shares
// (apps.Validate), and places each problem at its path in the config.
func (v *validator) app(a *apps.App, path string) {
	for _, fe := range apps.Validate(a) {
		v.add(joinPath(path, fe.Path), "%s", fe.Msg)
	}
	v.laravelRedis(a.LaravelRedis, joinPath(path, "laravel_redis"))
}
