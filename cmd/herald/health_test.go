package main

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestHealthExitCodes(t *testing.T) {
	status := http.StatusOK
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/up" {
			http.NotFound(w, r)
			return
		}
		w.WriteHeader(status)
	}))
	defer srv.Close()
	noEnv := func(string) string { return "" }
	var out, errOut bytes.Buffer
	if code := health([]string{"--url", srv.URL + "/up"}, &out, &errOut, noEnv); code != 0 {
		t.Fatalf("healthy server: exit %d, stderr %s", code, errOut.String())
	}
	status = http.StatusServiceUnavailable
	errOut.Reset()
	if code := health([]string{"--url", srv.URL + "/up"}, &out, &errOut, noEnv); code != 1 {
		t.Fatalf("503: exit %d, want 1", code)
	}
	if !strings.Contains(errOut.String(), "503") {
		t.Fatalf("503 not reported: %s", errOut.String())
	}
	srv.Close()
	errOut.Reset()
	if code := health([]string{"--url", srv.URL + "/up", "--timeout", "1s"}, &out, &errOut, noEnv); code != 1 {
		t.Fatalf("closed server: exit %d, want 1", code)
	}
	if code := health([]string{"--bogus"}, &out, &errOut, noEnv); code != 2 {
		t.Fatalf("bad flag: exit %d, want 2", code)
	}
}

func TestHealthDefaultURL(t *testing.T) {
	for _, tc := range []struct {
		env  map[string]string
		want string
	}{
		{nil, "http://127.0.0.1:6001/up"},
		{map[string]string{"HERALD_PORT": "7000"}, "http://127.0.0.1:7000/up"},
		{map[string]string{"HERALD_PORT": "7000", "HERALD_METRICS_ADDR": "0.0.0.0:9090"}, "http://127.0.0.1:9090/up"},
		{map[string]string{"HERALD_METRICS_ADDR": ":9091"}, "http://127.0.0.1:9091/up"},
	} {
		if got := defaultHealthURL(func(k string) string { return tc.env[k] }); got != tc.want {
			t.Errorf("env %v: %s, want %s", tc.env, got, tc.want)
		}
	}
}

func TestVersionFallsBackToBuildInfo(t *testing.T) {
	// Without -ldflags the version is "dev" or "dev-<revision>" (a test
	// binary has no VCS stamp, a go build in a checkout has).
	if v := versionString(); !strings.HasPrefix(v, "dev") {
		t.Fatalf("versionString() = %q", v)
	}
}
