package loadtest

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestParseStartTime(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	for in, want := range map[string]time.Time{
		"":                       now,
		"  \n":                   now,
		"1800000001000000000\n":  now.Add(time.Second),
		"1799999999500000000":    now.Add(-500 * time.Millisecond),
		"1800000000000000000 \n": now,
	} {
		got, err := parseStartTime([]byte(in), now)
		if err != nil || !got.Equal(want) {
			t.Errorf("%q: %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"1800000001", "1800000001000", "soon", "-5", "1.5e18"} {
		if _, err := parseStartTime([]byte(in), now); err == nil {
			t.Errorf("%q accepted", in)
		}
	}
}

func TestWaitStartFile(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "start")
	if _, err := waitStartFile(context.Background(), p, 50*time.Millisecond); err == nil || !strings.Contains(err.Error(), "did not appear") {
		t.Errorf("missing file: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := waitStartFile(ctx, p, time.Minute); err == nil {
		t.Error("a cancelled wait returned no error")
	}
	at := time.Now().Add(time.Second).Round(0)
	if err := writeFileAtomic(p, strings.TrimSpace(itoaNS(at))); err != nil {
		t.Fatal(err)
	}
	got, err := waitStartFile(context.Background(), p, time.Second)
	if err != nil || !got.Equal(at) {
		t.Errorf("got %v, %v; want %v", got, err, at)
	}
	if names, _ := os.ReadDir(dir); len(names) != 1 {
		t.Errorf("the atomic write left %d files", len(names))
	}
}

func itoaNS(t time.Time) string { return itoa(t.UnixNano()) }

func TestParseWatchPIDs(t *testing.T) {
	w, err := parseWatchPIDs("redis=12, sentinel = 13")
	if err != nil || len(w) != 2 || w[0] != (watchedPID{"redis", 12}) || w[1] != (watchedPID{"sentinel", 13}) {
		t.Errorf("%+v %v", w, err)
	}
	for _, bad := range []string{"12", "=12", "redis=", "redis=x", "redis=-1", "a=1,a=2"} {
		if _, err := parseWatchPIDs(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestSubscribeOnlyNeedsAStartFile(t *testing.T) {
	for _, tc := range []struct {
		args []string
		ok   bool
	}{
		{[]string{"--publishers", "0"}, false},
		{[]string{"--publishers", "0", "--start-file", "/tmp/x"}, true},
		{[]string{"--publishers", "-1"}, false},
		{[]string{"--start-file", "/tmp/x", "--start-wait", "0s"}, false},
		{[]string{"--watch-pid", "redis"}, false},
	} {
		fs, o := newFlagSet("fanout", &strings.Builder{})
		if err := fs.Parse(tc.args); err != nil {
			t.Fatal(err)
		}
		if err := o.validate("fanout"); (err == nil) != tc.ok {
			t.Errorf("%v: %v", tc.args, err)
		}
	}
}
