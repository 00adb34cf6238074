package loadtest

import (
	"math"
	"math/rand/v2"
	"sort"
	"sync"
	"testing"
)

func TestBucketsCoverValues(t *testing.T) {
	prev := -1
	check := func(v uint64) {
		i := bucketOf(v)
		if i < 0 || i >= numBuckets {
			t.Fatalf("bucketOf(%d) = %d out of range", v, i)
		}
		lo, w := bucketRange(i)
		if v < lo || v-lo >= w {
			t.Fatalf("value %d not in bucket %d [%d, %d+%d)", v, i, lo, lo, w)
		}
		if v >= 2*subHalf && float64(w) > float64(v)/subHalf {
			t.Fatalf("bucket of %d is %d wide, more than 1/%d of the value", v, w, subHalf)
		}
	}
	for v := uint64(0); v < 100000; v++ {
		check(v)
		if i := bucketOf(v); i < prev {
			t.Fatalf("bucketOf not monotonic at %d", v)
		} else {
			prev = i
		}
	}
	r := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < 100000; i++ {
		check(r.Uint64() >> uint(r.IntN(64)))
	}
	check(math.MaxUint64)
	check(1 << 63)
}

func TestQuantilesWithinPrecision(t *testing.T) {
	var h Histogram
	r := rand.New(rand.NewPCG(3, 4))
	vals := make([]int64, 200000)
	for i := range vals {
		// log-uniform between 10 µs and 10 s
		vals[i] = int64(math.Exp(math.Log(1e4) + r.Float64()*(math.Log(1e10)-math.Log(1e4))))
		h.Record(vals[i])
	}
	sort.Slice(vals, func(i, j int) bool { return vals[i] < vals[j] })
	var s Snapshot
	s.Merge(&h)
	if s.Total != uint64(len(vals)) {
		t.Fatalf("total %d", s.Total)
	}
	for _, q := range []float64{0.5, 0.9, 0.99, 0.999} {
		exact := float64(vals[int(math.Ceil(q*float64(len(vals))))-1])
		got := float64(s.Quantile(q))
		if math.Abs(got-exact)/exact > 1.0/subHalf {
			t.Errorf("q%.3f = %.0f, exact %.0f: off by more than 1/%d", q, got, exact, subHalf)
		}
		if got < exact {
			t.Errorf("q%.3f = %.0f below the exact %.0f (highest-equivalent convention)", q, got, exact)
		}
	}
	if s.Max != uint64(vals[len(vals)-1]) || s.Quantile(1) != s.Max {
		t.Errorf("max %d, want %d", s.Max, vals[len(vals)-1])
	}
}

func TestHistogramSmallAndEdgeCases(t *testing.T) {
	var s Snapshot
	if s.Quantile(0.5) != 0 || s.Mean() != 0 {
		t.Error("empty histogram")
	}
	var h Histogram
	h.Record(-5) // counts as 0
	h.Record(7)
	h.Record(7)
	h.Record(100)
	s.Merge(&h)
	if got := s.Quantile(0.5); got != 7 {
		t.Errorf("p50 = %d, want 7 (exact below %d)", got, 2*subHalf)
	}
	if got := s.Quantile(0); got != 0 {
		t.Errorf("p0 = %d", got)
	}
	if s.Max != 100 || s.Quantile(0.999) != 100 {
		t.Errorf("max %d p999 %d", s.Max, s.Quantile(0.999))
	}
	l := s.LatencyMS()
	if l.Count != 4 || l.Max != 0 { // 100 ns rounds to 0.000 ms
		t.Errorf("%+v", l)
	}
	h2 := Histogram{}
	h2.Record(2_500_000) // 2.5 ms
	var s2 Snapshot
	s2.Merge(&h2)
	if l := s2.LatencyMS(); l.Max != 2.5 || l.P50 != 2.5 {
		t.Errorf("%+v", l)
	}
}

func TestShardsMergeLikeOne(t *testing.T) {
	var shards [4]Histogram
	var one Histogram
	var wg sync.WaitGroup
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; i < 20000; i++ {
				v := int64(i*7 + w)
				shards[w].Record(v)
				one.Record(v) // shared by 4 goroutines: safe, only slower
			}
		}(w)
	}
	wg.Wait()
	var merged, single Snapshot
	for i := range shards {
		merged.Merge(&shards[i])
	}
	single.Merge(&one)
	if merged != single {
		t.Error("merged shards differ from one shared histogram")
	}
	if merged.Total != 80000 {
		t.Errorf("total %d", merged.Total)
	}
}

func BenchmarkHistogramRecord(b *testing.B) {
	var h Histogram
	for i := 0; i < b.N; i++ {
		h.Record(int64(i) * 1000)
	}
}
