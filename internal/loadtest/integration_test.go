package loadtest

import (
	"bytes"
	"encoding/json"
	"math"
	"os"
	"strconv"
	"strings"
	"testing"
)

// runMain runs Main and decodes its JSON line.
func runMain(t *testing.T, args ...string) (Result, int, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := Main(args, &out, &errb)
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	var res Result
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &res); err != nil {
		t.Fatalf("last stdout line is not JSON: %v\nstdout:\n%s\nstderr:\n%s", err, out.String(), errb.String())
	}
	return res, code, out.String() + errb.String()
}

// lastLine returns the last line that starts with '{'.
func lastLine(s string) string {
	var last string
	for _, l := range strings.Split(s, "\n") {
		if strings.HasPrefix(l, "{") {
			last = l
		}
	}
	return last
}

func TestFanoutAgainstFakeServer(t *testing.T) {
	fs := startFakeServer(t)
	pid := strconv.Itoa(os.Getpid())
	for _, tc := range []struct {
		name  string
		extra []string
	}{
		{"fast", nil},
		{"rate", []string{"--rate", "200"}},
		{"batch", []string{"--batch", "4"}},
		{"multichannel", []string{"--channels-per-event", "3"}},
		{"goroutine-reader", []string{"--reader", "goroutine"}},
		{"quick-ack", []string{"--delayed-ack=false"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := append([]string{"fanout", "--url", fs.wsURL(), "--api", fs.apiURL(),
				"--subscribers", "30", "--channels", "3", "--publishers", "2",
				"--duration", "700ms", "--warmup", "200ms", "--drain", "3s", "--server-pid", pid, "--json"}, tc.extra...)
			res, code, out := runMain(t, args...)
			if code != 0 || !res.OK {
				t.Fatalf("exit %d, verdict %q\n%s", code, res.Verdict, out)
			}
			if res.Connections != 30 || res.ConnectErrors != 0 {
				t.Errorf("connections %d, errors %d", res.Connections, res.ConnectErrors)
			}
			if res.DeliveryRatio == nil || *res.DeliveryRatio != 1 {
				t.Errorf("delivery ratio %v, want 1 (measured %d of %d)\n%s", res.DeliveryRatio, res.MeasuredDeliveries, res.ExpectedDeliveries, out)
			}
			if res.OrderViolations != 0 {
				t.Errorf("order violations %d", res.OrderViolations)
			}
			if res.Latency == nil || res.Latency.Count != res.MeasuredDeliveries || res.Latency.Max <= 0 || res.Latency.P50 > res.Latency.P99 {
				t.Errorf("latency %+v", res.Latency)
			}
			if res.ServerCPUSeconds == nil || res.RSSBytes == nil {
				t.Errorf("server figures missing: cpu %v rss %v", res.ServerCPUSeconds, res.RSSBytes)
			}
			var raw map[string]any
			if err := json.Unmarshal([]byte(lastLine(out)), &raw); err != nil {
				t.Fatal(err)
			}
			for _, k := range []string{"scenario", "params", "connections", "connect_rate", "rss_bytes", "rss_per_conn_bytes",
				"deliveries", "deliveries_per_sec", "delivery_ratio", "order_violations", "latency_ms",
				"server_cpu_seconds", "deliveries_per_server_cpu_second", "errors"} {
				if _, ok := raw[k]; !ok {
					t.Errorf("JSON line lacks %q", k)
				}
			}
			for _, k := range []string{"p50", "p90", "p99", "p999", "max"} {
				if _, ok := raw["latency_ms"].(map[string]any)[k]; !ok {
					t.Errorf("latency_ms lacks %q", k)
				}
			}
			if fs.badSigs.Load() != 0 {
				t.Errorf("%d requests failed signature verification", fs.badSigs.Load())
			}
			if res.PublishErrors != 0 {
				t.Errorf("publish errors %d: %s", res.PublishErrors, res.LastAPIErr)
			}
		})
	}
}

// TestFanoutOverSeveralNodes spreads subscribers and publishers over the
// nodes of a (fake) cluster that shares its channels.
func TestFanoutOverSeveralNodes(t *testing.T) {
	fs := startFakeServer(t)
	a := fs.ln.Addr().String()
	b, c := fs.addNode(), fs.addNode()
	res, code, out := runMain(t, "fanout",
		"--url", "ws://"+a+",ws://"+b+",ws://"+c, "--api", "http://"+a+",http://"+b+",http://"+c,
		"--subscribers", "30", "--channels", "3", "--publishers", "3",
		"--duration", "500ms", "--warmup", "200ms", "--drain", "3s",
		"--server-pid", strconv.Itoa(os.Getpid())+","+strconv.Itoa(os.Getpid()), "--json")
	if code != 0 || !res.OK {
		t.Fatalf("exit %d, verdict %q\n%s", code, res.Verdict, out)
	}
	if res.DeliveryRatio == nil || *res.DeliveryRatio != 1 || res.OrderViolations != 0 {
		t.Errorf("delivery ratio %v, order violations %d", res.DeliveryRatio, res.OrderViolations)
	}
	for _, addr := range []string{a, b, c} {
		conns, reqs := fs.counts(addr)
		if conns != 10 || reqs == 0 {
			t.Errorf("node %s: %d connections (want 10), %d API requests (want some)", addr, conns, reqs)
		}
	}
	if len(res.ServerPIDs) != 2 || res.Params["nodes"] != float64(3) {
		t.Errorf("server_pids %v, params %v", res.ServerPIDs, res.Params)
	}
}

func TestFanoutRateIsRespected(t *testing.T) {
	fs := startFakeServer(t)
	res, code, out := runMain(t, "fanout", "--url", fs.wsURL(), "--api", fs.apiURL(),
		"--subscribers", "5", "--channels", "1", "--publishers", "1", "--rate", "50",
		"--duration", "1s", "--warmup", "0s", "--json")
	if code != 0 {
		t.Fatalf("exit %d\n%s", code, out)
	}
	if res.EventsPublished < 30 || res.EventsPublished > 55 {
		t.Errorf("published %d events in 1 s at --rate 50", res.EventsPublished)
	}
}

func TestIdleAgainstFakeServer(t *testing.T) {
	fs := startFakeServer(t)
	res, code, out := runMain(t, "idle", "--url", fs.wsURL(), "--conns", "50", "--channels", "5",
		"--settle", "100ms", "--connect-rate", "1000", "--server-pid", strconv.Itoa(os.Getpid()))
	if code != 0 || !res.OK {
		t.Fatalf("exit %d, verdict %q\n%s", code, res.Verdict, out)
	}
	if res.Connections != 50 || fs.subscribes.Load() != 50 {
		t.Errorf("connections %d, subscribes %d", res.Connections, fs.subscribes.Load())
	}
	if res.ConnectRate <= 0 || res.ConnectRate > 1100 {
		t.Errorf("connect rate %v with --connect-rate 1000", res.ConnectRate)
	}
	if res.RSSPerConnBytes == nil || res.RSSBeforeBytes == nil {
		t.Errorf("RSS figures missing")
	}
	if !strings.Contains(out, "server RSS per conn") || !strings.Contains(out, `"scenario":"idle"`) {
		t.Errorf("summary table or JSON line missing:\n%s", out)
	}
	// Every stage of setup is timed for every connection, and their sum is
	// the connect+subscribe time.
	var sum float64
	for _, name := range []string{"tcp", "upgrade", "established", "subscribed", "launch_lag"} {
		l, ok := res.ConnectStages[name]
		if !ok || l.Count != 50 {
			t.Errorf("stage %s: %+v (present %v), want 50 connections", name, l, ok)
		}
		if name != "launch_lag" {
			sum += l.Mean
		}
		if !strings.Contains(out, "  "+name+" ms") {
			t.Errorf("stage %s missing from the table:\n%s", name, out)
		}
	}
	if lat := res.ConnectLatency; lat == nil || math.Abs(sum-lat.Mean) > 0.05*lat.Mean+0.01 {
		t.Errorf("stage means sum to %.3f ms, connect+subscribe mean %+v", sum, lat)
	}
}

func TestChurnAgainstFakeServer(t *testing.T) {
	fs := startFakeServer(t)
	res, code, out := runMain(t, "churn", "--url", fs.wsURL(), "--conns", "4", "--channels", "2",
		"--duration", "500ms", "--warmup", "100ms", "--json")
	if code != 0 || !res.OK {
		t.Fatalf("exit %d, verdict %q\n%s", code, res.Verdict, out)
	}
	if res.Cycles == 0 || res.CyclesPerSec <= 0 || res.CycleLatency == nil {
		t.Errorf("cycles %d, %v/s", res.Cycles, res.CyclesPerSec)
	}
	if fs.subscribes.Load() == 0 {
		t.Errorf("server saw no subscribe")
	}
}

func TestConnectFailuresAreCountedNotFatal(t *testing.T) {
	fs := startFakeServer(t)
	// Wrong key: every handshake fails with HTTP 404.
	res, code, out := runMain(t, "idle", "--url", fs.wsURL(), "--key", "nope", "--conns", "5",
		"--settle", "0s", "--max-fail", "1", "--json")
	if res.ConnectErrors != 5 || res.Connections != 0 {
		t.Fatalf("connect errors %d, connections %d\n%s", res.ConnectErrors, res.Connections, out)
	}
	if code != 1 || res.OK {
		t.Errorf("a run with no connection must fail: exit %d ok %v", code, res.OK)
	}
	if len(res.ErrorDetail) == 0 {
		t.Errorf("no error detail")
	}
}

func TestMaxFailAborts(t *testing.T) {
	res, code, _ := runMain(t, "idle", "--url", "ws://127.0.0.1:1", "--conns", "200", "--dial-concurrency", "4",
		"--settle", "0s", "--json")
	if code != 1 || res.OK || !strings.Contains(res.Verdict, "max-fail") {
		t.Errorf("exit %d ok %v verdict %q", code, res.OK, res.Verdict)
	}
	if res.ConnectErrors >= 200 {
		t.Errorf("kept dialing after the failure share was passed: %d errors", res.ConnectErrors)
	}
}

func TestUsage(t *testing.T) {
	var out, errb bytes.Buffer
	if code := Main(nil, &out, &errb); code != 2 {
		t.Errorf("no args: exit %d", code)
	}
	out.Reset()
	if code := Main([]string{"help"}, &out, &errb); code != 0 || !strings.Contains(out.String(), "fanout") {
		t.Errorf("help: exit %d\n%s", code, out.String())
	}
	out.Reset()
	if code := Main([]string{"help", "fanout"}, &out, &errb); code != 0 || !strings.Contains(out.String(), "-publishers") {
		t.Errorf("help fanout: exit %d\n%s", code, out.String())
	}
	if code := Main([]string{"nope"}, &out, &errb); code != 2 {
		t.Errorf("unknown scenario: exit %d", code)
	}
	if code := Main([]string{"fanout", "--batch", "11"}, &out, &errb); code != 2 {
		t.Errorf("bad flag value: exit %d", code)
	}
	errb.Reset()
	if code := Main([]string{"idle", "--url", "ws://10.1.2.3:6001"}, &out, &errb); code != 2 || !strings.Contains(errb.String(), "allow-remote") {
		t.Errorf("remote target: exit %d, %s", code, errb.String())
	}
}
