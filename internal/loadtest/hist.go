package loadtest

import (
	"errors"
	"fmt"
	"math"
	"math/bits"
	"sync/atomic"
)

// The latency histogram is HDR-style log-linear: values below 2*subHalf are
// counted exactly, and every power-of-two range above is split into subHalf
// equal buckets, so a bucket is never wider than 1/subHalf (1.6%) of the
// values it holds. Values are nanoseconds; the whole uint64 range fits in
// numBuckets buckets (30 KB of counters).
const (
	subBits    = 7
	subHalf    = 1 << (subBits - 1) // 64
	numBuckets = (64-subBits)*subHalf + 2*subHalf
)

// bucketOf returns the bucket index of v.
func bucketOf(v uint64) int {
	if v < 2*subHalf {
		return int(v)
	}
	e := bits.Len64(v) - subBits // >= 1
	return e*subHalf + int(v>>uint(e))
}

// bucketRange returns the smallest value of bucket i and its width.
func bucketRange(i int) (lo, width uint64) {
	if i < 2*subHalf {
		return uint64(i), 1
	}
	e := uint(i/subHalf - 1)
	m := uint64(i%subHalf + subHalf)
	return m << e, 1 << e
}

// Histogram is a concurrent latency histogram: Record is lock-free (one
// atomic add per value, plus a compare-and-swap when a new maximum is
// seen). Give each worker its own Histogram and Merge them into a Snapshot
// at the end; sharing one between a few goroutines is safe, only slower.
type Histogram struct {
	counts [numBuckets]atomic.Uint64
	total  atomic.Uint64
	sum    atomic.Uint64
	max    atomic.Uint64
}

// Record counts one value; negative values count as 0.
func (h *Histogram) Record(v int64) {
	if v < 0 {
		v = 0
	}
	u := uint64(v)
	h.counts[bucketOf(u)].Add(1)
	h.total.Add(1)
	h.sum.Add(u)
	for {
		m := h.max.Load()
		if u <= m || h.max.CompareAndSwap(m, u) {
			break
		}
	}
}

// Count returns the number of recorded values.
func (h *Histogram) Count() uint64 { return h.total.Load() }

// Snapshot is a plain (not concurrent) histogram that several Histograms
// are merged into to compute quantiles.
type Snapshot struct {
	Counts [numBuckets]uint64
	Total  uint64
	Sum    uint64
	Max    uint64
}

// Merge adds the current counts of h to s.
func (s *Snapshot) Merge(h *Histogram) {
	for i := range h.counts {
		if c := h.counts[i].Load(); c != 0 {
			s.Counts[i] += c
		}
	}
	s.Total += h.total.Load()
	s.Sum += h.sum.Load()
	if m := h.max.Load(); m > s.Max {
		s.Max = m
	}
}

// Quantile returns the value at quantile q (0..1) as the highest value
// equivalent to the bucket that holds it (HdrHistogram's convention), never
// more than the largest value recorded. It returns 0 for an empty histogram.
func (s *Snapshot) Quantile(q float64) uint64 {
	if s.Total == 0 {
		return 0
	}
	if q >= 1 {
		return s.Max
	}
	if q < 0 {
		q = 0
	}
	rank := uint64(math.Ceil(q * float64(s.Total)))
	if rank == 0 {
		rank = 1
	}
	var seen uint64
	for i, c := range s.Counts {
		seen += c
		if seen >= rank {
			lo, w := bucketRange(i)
			v := lo + w - 1
			if v > s.Max {
				v = s.Max
			}
			return v
		}
	}
	return s.Max
}

// Mean returns the arithmetic mean of the recorded values.
func (s *Snapshot) Mean() float64 {
	if s.Total == 0 {
		return 0
	}
	return float64(s.Sum) / float64(s.Total)
}

// LatencyMS is the latency summary printed in reports, in milliseconds.
type LatencyMS struct {
	Count uint64  `json:"count"`
	Mean  float64 `json:"mean"`
	P50   float64 `json:"p50"`
	P90   float64 `json:"p90"`
	P99   float64 `json:"p99"`
	P999  float64 `json:"p999"`
	Max   float64 `json:"max"`
}

// LatencyMS summarises a snapshot of nanosecond values in milliseconds.
func (s *Snapshot) LatencyMS() LatencyMS {
	ms := func(ns uint64) float64 { return round3(float64(ns) / 1e6) }
	return LatencyMS{
		Count: s.Total,
		Mean:  round3(s.Mean() / 1e6),
		P50:   ms(s.Quantile(0.50)),
		P90:   ms(s.Quantile(0.90)),
		P99:   ms(s.Quantile(0.99)),
		P999:  ms(s.Quantile(0.999)),
		Max:   ms(s.Max),
	}
}

func round3(f float64) float64 { return math.Round(f*1000) / 1000 }

// HistJSON is a Snapshot in a form that survives a JSON line and can be
// merged exactly with the snapshots of other processes (`herald-bench
// merge`): quantiles of a run spread over several load-tool processes come
// from the sum of their bucket counts, never from an average of their
// percentiles. Buckets lists the non-empty buckets as [index, count] pairs
// in index order; SubBits names the bucket layout, so that a reader with a
// different layout refuses the histogram instead of misreading it.
type HistJSON struct {
	Unit    string      `json:"unit"` // always "ns"
	SubBits int         `json:"sub_bits"`
	Total   uint64      `json:"total"`
	Sum     uint64      `json:"sum"`
	Max     uint64      `json:"max"`
	Buckets [][2]uint64 `json:"buckets"`
}

// Export returns the mergeable form of s.
func (s *Snapshot) Export() *HistJSON {
	h := &HistJSON{Unit: "ns", SubBits: subBits, Total: s.Total, Sum: s.Sum, Max: s.Max, Buckets: [][2]uint64{}}
	for i, c := range s.Counts {
		if c != 0 {
			h.Buckets = append(h.Buckets, [2]uint64{uint64(i), c})
		}
	}
	return h
}

// AddTo adds the counts of h to s. It refuses a histogram of another
// layout, a bucket index out of range, a count total that does not match
// Total, and a Max below the highest bucket's lowest value: input written
// by another program or another version is checked, not trusted.
func (h *HistJSON) AddTo(s *Snapshot) error {
	if h.Unit != "ns" || h.SubBits != subBits {
		return fmt.Errorf("histogram of unit %q and %d sub-bucket bits; this tool reads unit \"ns\" and %d", h.Unit, h.SubBits, subBits)
	}
	var n, top uint64
	for _, b := range h.Buckets {
		if b[0] >= numBuckets {
			return fmt.Errorf("histogram bucket %d out of range (0..%d)", b[0], numBuckets-1)
		}
		if n+b[1] < n {
			return errors.New("histogram counts overflow")
		}
		n += b[1]
		if b[1] > 0 {
			top = b[0]
		}
	}
	if n != h.Total {
		return fmt.Errorf("histogram buckets hold %d values but total says %d", n, h.Total)
	}
	if lo, _ := bucketRange(int(top)); n > 0 && h.Max < lo {
		return fmt.Errorf("histogram max %d is below its highest bucket (%d)", h.Max, lo)
	}
	for _, b := range h.Buckets {
		s.Counts[b[0]] += b[1]
	}
	s.Total += h.Total
	s.Sum += h.Sum
	if h.Max > s.Max {
		s.Max = h.Max
	}
	return nil
}
