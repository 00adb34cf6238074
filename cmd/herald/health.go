package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime/debug"
	"time"
)

// versionString is the -ldflags version when the build set one, else the
// VCS revision Go stamped into the binary (with "-dirty" for a modified
// tree), else "dev".
func versionString() string {
	if version != "dev" && version != "" {
		return version
	}
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return version
	}
	var rev, dirty string
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			if s.Value == "true" {
				dirty = "-dirty"
			}
		}
	}
	if rev == "" {
		return version
	}
	if len(rev) > 12 {
		rev = rev[:12]
	}
	return "dev-" + rev + dirty
}

// health is `herald health`: a container HEALTHCHECK for images without
// curl. It GETs /up and exits 0 on a 200 and 1 otherwise.
func health(args []string, stdout, stderr io.Writer, getenv func(string) string) int {
	fs := flag.NewFlagSet("herald health", flag.ContinueOnError)
	fs.SetOutput(stderr)
	url := fs.String("url", defaultHealthURL(getenv), "the `URL` to GET (default from HERALD_METRICS_ADDR, else HERALD_PORT)")
	timeout := fs.Duration("timeout", 3*time.Second, "give up after this `duration`")
	insecure := fs.Bool("insecure", false, "accept any TLS certificate (for an https URL on 127.0.0.1)")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: herald health [flags]\n\nGETs Herald's /up and exits 0 when it answers 200, 1 otherwise.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, *url, nil)
	if err != nil {
		fmt.Fprintf(stderr, "herald health: %v\n", err)
		return 2
	}
	tr := &http.Transport{}
	if *insecure {
		tr.TLSClientConfig = &tls.Config{InsecureSkipVerify: true} // asked for with --insecure
	}
	res, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		fmt.Fprintf(stderr, "herald health: %v\n", err)
		return 1
	}
	defer res.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(res.Body, 4096))
	if res.StatusCode != http.StatusOK {
		fmt.Fprintf(stderr, "herald health: %s answered %s\n", *url, res.Status)
		return 1
	}
	fmt.Fprintf(stdout, "herald health: %s ok\n", *url)
	return 0
}

// defaultHealthURL is /up on the metrics listener when HERALD_METRICS_ADDR
// sets one, else on the main port (HERALD_PORT, 6001 by default), always
// through 127.0.0.1 since the check runs next to the server.
func defaultHealthURL(getenv func(string) string) string {
	if addr := getenv("HERALD_METRICS_ADDR"); addr != "" {
		if _, port, err := net.SplitHostPort(addr); err == nil {
			return "http://127.0.0.1:" + port + "/up"
		}
	}
	port := getenv("HERALD_PORT")
	if port == "" {
		port = "6001"
	}
	return "http://" + net.JoinHostPort("127.0.0.1", port) + "/up"
}
