package loadtest

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/herald-ws/herald/internal/testwait"
)

// A process of hostile clients alone (--subscribers 0 --publishers 0 with
// --start-file): it writes its ready file at once, waits for the start
// file, runs its clients over the window and ends with their figures.
// Before, --subscribers 0 was refused and a script waiting for its ready
// file waited for ever.
func TestHostileOnlyProcess(t *testing.T) {
	fs := startFakeServer(t)
	dir := t.TempDir()
	ready, start := filepath.Join(dir, "ready"), filepath.Join(dir, "start")
	type outcome struct {
		code     int
		out, err string
	}
	done := make(chan outcome, 1)
	go func() {
		var out, errb bytes.Buffer
		code := Main([]string{"fanout", "--url", fs.wsURL(), "--api", fs.apiURL(),
			"--subscribers", "0", "--publishers", "0", "--channels", "2",
			"--duration", "300ms", "--warmup", "100ms", "--start-file", start, "--ready-file", ready,
			"--hostile-pingers", "2", "--hostile-rate", "100", "--source-ips", "127.0.0.2", "--json"}, &out, &errb)
		done <- outcome{code, out.String(), errb.String()}
	}()
	testwait.For(t, 10*time.Second, "the ready file", func() bool {
		select {
		case o := <-done:
			t.Fatalf("ended before writing its ready file: exit %d\n%s%s", o.code, o.out, o.err)
		default:
		}
		_, err := os.Stat(ready)
		return err == nil
	})
	if err := os.WriteFile(start, []byte(strconv.FormatInt(time.Now().UnixNano(), 10)), 0o600); err != nil {
		t.Fatal(err)
	}
	var o outcome
	select {
	case o = <-done:
	case <-time.After(20 * time.Second):
		t.Fatal("the hostile-only process did not end after its window")
	}
	var res Result
	if err := json.Unmarshal([]byte(lastLine(o.out)), &res); err != nil {
		t.Fatalf("no JSON line (%v): exit %d\n%s%s", err, o.code, o.out, o.err)
	}
	if o.code != 0 || !res.OK {
		t.Fatalf("exit %d, verdict %q\n%s", o.code, res.Verdict, o.err)
	}
	if res.Params["hostile_only"] != true {
		t.Errorf("params %v: not marked hostile_only", res.Params)
	}
	if n, _ := res.Params["hostile_pinger_connections"].(float64); n < 2 {
		t.Errorf("params %v: want 2 pinger connections at least", res.Params)
	}
	if n, _ := res.Params["hostile_frames_sent"].(float64); n == 0 {
		t.Errorf("params %v: no frame sent", res.Params)
	}
}

// --subscribers 0 is a hostile-only process or an error.
func TestSubscribersZeroNeedsHostileOnly(t *testing.T) {
	for _, args := range [][]string{
		{"--subscribers", "0", "--publishers", "0", "--start-file", "x", "--hostile-pingers", "1"},
	} {
		o := defaultOptions("fanout")
		fs := flag.NewFlagSet("fanout", flag.ContinueOnError)
		o.register(fs, "fanout")
		if err := fs.Parse(args); err != nil {
			t.Fatal(err)
		}
		if err := o.validate("fanout"); err != nil {
			t.Errorf("%v refused: %v", args, err)
		}
	}
	for _, args := range [][]string{
		{"--subscribers", "0", "--publishers", "0", "--start-file", "x"},
		{"--subscribers", "0", "--publishers", "1", "--hostile-pingers", "1"},
		{"--subscribers", "0", "--publishers", "0", "--hostile-pingers", "1"},
	} {
		o := defaultOptions("fanout")
		fs := flag.NewFlagSet("fanout", flag.ContinueOnError)
		o.register(fs, "fanout")
		if err := fs.Parse(args); err != nil {
			t.Fatal(err)
		}
		if err := o.validate("fanout"); err == nil {
			t.Errorf("%v accepted", args)
		}
	}
}
