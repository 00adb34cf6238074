package config

import (
	"net"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestACMEFromFileEnvAndFlags(t *testing.T) {
	dir := t.TempDir()
	p := writeConfig(t, `
acme_domains: [ws.example.com, "Rt.Example.org."]
acme_email: ops@example.com
acme_cache_dir: `+dir+`
acme_http_addr: ":80"
`)
	c := mustLoad(t, Source{File: p})
	if !c.ACMEEnabled() || !c.TLSEnabled() {
		t.Fatalf("ACMEEnabled %v TLSEnabled %v, want both true", c.ACMEEnabled(), c.TLSEnabled())
	}
	if want := []string{"ws.example.com", "Rt.Example.org."}; !reflect.DeepEqual(c.ACMEDomains, want) {
		t.Errorf("acme_domains = %q, want %q", c.ACMEDomains, want)
	}
	if c.ACMEEmail != "ops@example.com" || c.ACMECacheDir != dir || c.ACMEHTTPAddr != ":80" || c.ACMEDirectoryURL != DefaultACMEDirectoryURL {
		t.Errorf("got %+v", c)
	}

	// Env over file, flags over env.
	c = mustLoad(t, Source{File: p,
		Env:   env(map[string]string{"HERALD_ACME_DOMAINS": "a.example.com,b.example.com", "HERALD_ACME_DIRECTORY_URL": "https://acme-staging-v02.api.letsencrypt.org/directory"}),
		Flags: map[string]string{"acme_domains": "c.example.com"}})
	if !reflect.DeepEqual(c.ACMEDomains, []string{"c.example.com"}) || c.ACMEDirectoryURL != "https://acme-staging-v02.api.letsencrypt.org/directory" {
		t.Errorf("domains %q url %q", c.ACMEDomains, c.ACMEDirectoryURL)
	}

	// Off by default; TLS off too.
	c = mustLoad(t, Source{})
	if c.ACMEEnabled() || c.TLSEnabled() {
		t.Errorf("ACME or TLS on by default")
	}
}

func TestACMEValidation(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	pem := filepath.Join(dir, "x.pem")
	if err := os.WriteFile(pem, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	base := "acme_cache_dir: " + dir + "\n"
	tests := []struct {
		name, yaml, want string
	}{
		{"with tls files", base + "acme_domains: [ws.example.com]\ntls_cert: " + pem + "\ntls_key: " + pem, "acme_domains: cannot be used with tls_cert/tls_key"},
		{"with tls cert only", base + "acme_domains: [ws.example.com]\ntls_cert: " + pem, "acme_domains: cannot be used with tls_cert/tls_key"},
		{"ip address", base + "acme_domains: [192.0.2.1]", "acme_domains[0]: must be a host name, not an IP address"},
		{"ipv6 address", base + `acme_domains: ["ws.example.com", "::1"]`, "acme_domains[1]: must be a host name, not an IP address"},
		{"wildcard", base + `acme_domains: ["*.example.com"]`, "acme_domains[0]: must be a host name without a wildcard"},
		{"no dot", base + "acme_domains: [localhost]", "acme_domains[0]: must be a fully qualified host name"},
		{"bad label", base + "acme_domains: [-ws.example.com]", "acme_domains[0]: must be a host name: dot separated labels"},
		{"underscore", base + "acme_domains: [w_s.example.com]", "acme_domains[0]: must be a host name of letters"},
		{"url", base + "acme_domains: [https://ws.example.com]", "acme_domains[0]: must be a host name of letters"},
		{"duplicate", base + "acme_domains: [ws.example.com, WS.example.com.]", `acme_domains[1]: "WS.example.com." is already acme_domains[0]`},
		{"no cache dir", "acme_domains: [ws.example.com]", "acme_cache_dir: must be set with acme_domains"},
		{"cache dir is a file", "acme_domains: [ws.example.com]\nacme_cache_dir: " + file, "acme_cache_dir: \"" + file + "\" is not a directory"},
		{"bad email", base + "acme_domains: [ws.example.com]\nacme_email: Ops <ops@example.com>", "acme_email: must be a plain e-mail address"},
		{"http directory", base + "acme_domains: [ws.example.com]\nacme_directory_url: http://ca.example.com/dir", `acme_directory_url: must be the https:// URL of an ACME directory (e.g. https://acme-v02.api.letsencrypt.org/directory) (http:// only on the loopback), got scheme "http"`},
		{"empty directory", base + "acme_domains: [ws.example.com]\nacme_directory_url: \"\"", "acme_directory_url: must be the https:// URL of an ACME directory"},
		{"directory without host", base + "acme_domains: [ws.example.com]\nacme_directory_url: https:///dir", "acme_directory_url: must be the https:// URL of an ACME directory (e.g. https://acme-v02.api.letsencrypt.org/directory), got no host"},
		{"http addr without domains", "acme_http_addr: \":80\"", "acme_http_addr: is set but acme_domains is empty"},
		{"http addr bad", base + "acme_domains: [ws.example.com]\nacme_http_addr: \"80\"", "acme_http_addr: must be host:port"},
		{"http addr is main port", base + "acme_domains: [ws.example.com]\nport: 443\nacme_http_addr: \":443\"", "acme_http_addr: must not be the main listener's address"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := writeConfig(t, tt.yaml+"\n")
			_, err := Load(Source{File: p})
			wantErrs(t, err, "config "+p, tt.want)
		})
	}

	// Errors from env and flags name the variable and the flag.
	_, err := Load(Source{Env: env(map[string]string{"HERALD_ACME_DOMAINS": "*.example.com", "HERALD_ACME_CACHE_DIR": dir})})
	wantErrs(t, err, "env HERALD_ACME_DOMAINS: must be a host name without a wildcard")
	_, err = Load(Source{Flags: map[string]string{"acme_domains": "ws.example.com"}})
	wantErrs(t, err, "must be set with acme_domains")

	// Accepted: loopback http directory (pebble), staging, a cache dir that does not exist yet.
	for _, ok := range []string{
		"acme_domains: [ws.example.com]\nacme_cache_dir: " + filepath.Join(dir, "new") + "\nacme_directory_url: http://127.0.0.1:14000/dir",
		"acme_domains: [ws.example.com, xn--bcher-kva.example]\nacme_cache_dir: " + dir + "\nacme_directory_url: https://acme-staging-v02.api.letsencrypt.org/directory\nacme_http_addr: \"0.0.0.0:80\"",
	} {
		if _, err := Load(Source{File: writeConfig(t, ok+"\n")}); err != nil {
			t.Errorf("%s:\n%v", ok, err)
		}
	}
}

func TestACMEFlagsRegistered(t *testing.T) {
	keys := scalarKeys()
	for _, k := range []string{"acme_domains", "acme_email", "acme_cache_dir", "acme_directory_url", "acme_http_addr"} {
		found := false
		for _, have := range keys {
			found = found || have == k
		}
		if !found {
			t.Errorf("%s is not a scalar key (no env variable or flag)", k)
		}
		if h := flagUsage(t, k); !strings.Contains(h, "`") {
			t.Errorf("%s has no flag help naming its value: %q", k, h)
		}
	}
}

// FuzzACMEHost checks that any name accepted for acme_domains is one
// autocert can serve: a lower-case-able ASCII host name with a dot, no IP
// address, no wildcard.
func FuzzACMEHost(f *testing.F) {
	for _, s := range []string{"ws.example.com", "*.example.com", "192.0.2.1", "::1", "[::1]", "a..b", "-a.b", "a.b.", "xn--bcher-kva.example", "é.example", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		if acmeHostProblem(name) != "" {
			return
		}
		n := strings.TrimSuffix(name, ".")
		if len(n) > 253 || !strings.Contains(n, ".") || strings.ContainsAny(n, "*:[]_ /") || net.ParseIP(n) != nil {
			t.Fatalf("accepted %q", name)
		}
		for _, r := range n {
			if r > 127 {
				t.Fatalf("accepted non-ASCII %q", name)
			}
		}
	})
}
