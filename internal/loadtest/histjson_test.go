package loadtest

import (
	"encoding/json"
	"math/rand/v2"
	"strings"
	"testing"
)

// TestExportedHistogramsMergeExactly records two very different latency
// distributions in two "processes", sends each through its JSON form, and
// checks that the merged quantiles are those of one histogram that saw
// every value, which averaging the two processes' percentiles is not.
func TestExportedHistogramsMergeExactly(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	var fast, slow, all Histogram
	for i := 0; i < 90000; i++ { // a loaded process: 0.2-1.2 ms
		v := int64(200_000 + rng.IntN(1_000_000))
		fast.Record(v)
		all.Record(v)
	}
	for i := 0; i < 10000; i++ { // a starved one: 20-120 ms
		v := int64(20_000_000 + rng.IntN(100_000_000))
		slow.Record(v)
		all.Record(v)
	}
	var merged Snapshot
	var avgP99 float64
	for _, h := range []*Histogram{&fast, &slow} {
		var s Snapshot
		s.Merge(h)
		avgP99 += float64(s.Quantile(0.99)) / 2
		b, err := json.Marshal(s.Export())
		if err != nil {
			t.Fatal(err)
		}
		var back HistJSON
		if err := json.Unmarshal(b, &back); err != nil {
			t.Fatal(err)
		}
		if err := back.AddTo(&merged); err != nil {
			t.Fatal(err)
		}
	}
	var want Snapshot
	want.Merge(&all)
	if merged != want {
		t.Fatal("merged exported histograms differ from one histogram of every value")
	}
	for _, q := range []float64{0.5, 0.9, 0.99, 0.999, 1} {
		if got, w := merged.Quantile(q), want.Quantile(q); got != w {
			t.Errorf("q%.3f: merged %d, want %d", q, got, w)
		}
	}
	// The true p99 lies in the slow tail (10 % of the values are above
	// 20 ms); the mean of the two p99s is about half the slow one's.
	if p99 := float64(merged.Quantile(0.99)); p99 < 100e6 || avgP99 > 0.7*p99 {
		t.Errorf("p99 %.0f ns, mean of per-process p99s %.0f ns: the test's distributions do not show the difference", p99, avgP99)
	}
}

func TestExportEmptyAndSmall(t *testing.T) {
	var s Snapshot
	e := s.Export()
	b, _ := json.Marshal(e)
	if !strings.Contains(string(b), `"buckets":[]`) || e.Total != 0 {
		t.Errorf("empty export %s", b)
	}
	var h Histogram
	h.Record(5)
	h.Record(5)
	h.Record(1 << 40)
	s.Merge(&h)
	e = s.Export()
	if len(e.Buckets) != 2 || e.Buckets[0] != [2]uint64{5, 2} || e.Total != 3 || e.Max != 1<<40 {
		t.Errorf("export %+v", e)
	}
}

func TestHistJSONRejectsForeignInput(t *testing.T) {
	good := func() HistJSON {
		return HistJSON{Unit: "ns", SubBits: subBits, Total: 3, Sum: 30, Max: 12, Buckets: [][2]uint64{{5, 1}, {12, 2}}}
	}
	for name, mut := range map[string]func(*HistJSON){
		"unit":        func(h *HistJSON) { h.Unit = "ms" },
		"layout":      func(h *HistJSON) { h.SubBits = 5 },
		"index":       func(h *HistJSON) { h.Buckets[1][0] = numBuckets },
		"total":       func(h *HistJSON) { h.Total = 4 },
		"max":         func(h *HistJSON) { h.Max = 6 },
		"overflowing": func(h *HistJSON) { h.Buckets = [][2]uint64{{1, 1 << 63}, {2, 1 << 63}}; h.Total = 0 },
	} {
		h := good()
		mut(&h)
		var s Snapshot
		if err := h.AddTo(&s); err == nil {
			t.Errorf("%s: accepted %+v", name, h)
		}
		if s.Total != 0 {
			t.Errorf("%s: a refused histogram changed the snapshot", name)
		}
	}
	h := good()
	var s Snapshot
	if err := h.AddTo(&s); err != nil || s.Total != 3 || s.Quantile(1) != 12 {
		t.Errorf("good histogram: %v, %+v", err, s.LatencyMS())
	}
}

// FuzzHistJSON feeds `herald-bench merge`'s histogram reader arbitrary
// JSON: it must refuse or accept without panicking, and what it accepts
// must give quantiles within the recorded range.
func FuzzHistJSON(f *testing.F) {
	var h Histogram
	for _, v := range []int64{1, 100, 1e6, 3e9} {
		h.Record(v)
	}
	var s Snapshot
	s.Merge(&h)
	b, _ := json.Marshal(s.Export())
	f.Add(b)
	f.Add([]byte(`{"unit":"ns","sub_bits":7,"total":1,"sum":1,"max":1,"buckets":[[1,1]]}`))
	f.Add([]byte(`{"unit":"ns","sub_bits":7,"buckets":[[99999999,1]]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		var hj HistJSON
		if json.Unmarshal(data, &hj) != nil {
			return
		}
		var s Snapshot
		if hj.AddTo(&s) != nil {
			return
		}
		if s.Total > 0 {
			if q := s.Quantile(0.99); q > s.Max {
				t.Fatalf("p99 %d above max %d", q, s.Max)
			}
		}
	})
}
