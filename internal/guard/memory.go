package guard

import (
	"bytes"
	"math"
	"os"
	"runtime/debug"
	"runtime/metrics"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// Memory reports when new connections should be refused: while the
// process uses more than a share of its memory limit, so that a node near
// its cgroup limit sheds load (clients back off and reconnect elsewhere) instead of being killed
// with every connection at once.
//
// Usage is the memory the Go runtime holds from the OS and has not given
// back (runtime/metrics: total less released), close to the resident size
// that a cgroup counts. It is read at most every sampleEvery, on an
// admission, so a connection storm costs one read per interval.
type Memory struct {
	threshold uint64 // bytes; usage above it refuses
	now       func() time.Time

	mu      sync.Mutex
	sample  [2]metrics.Sample
	over    atomic.Bool
	nextAt  atomic.Int64
	readMem func() uint64 // tests replace it
}

const memSampleEvery = 100 * time.Millisecond

// NewMemory returns a guard for limit bytes at percent, or nil when
// there is no limit or percent is not in 1..100.
func NewMemory(limit int64, percent int) *Memory {
	if limit <= 0 || percent <= 0 || percent > 100 {
		return nil
	}
	g := &Memory{threshold: uint64(float64(limit) * float64(percent) / 100), now: time.Now}
	g.sample[0].Name = "/memory/classes/total:bytes"
	g.sample[1].Name = "/memory/classes/heap/released:bytes"
	g.readMem = g.runtimeMem
	return g
}

// OverLimit reports whether usage is above the threshold (from a sample at
// most memSampleEvery old).
func (g *Memory) OverLimit() bool {
	now := g.now().UnixNano()
	if next := g.nextAt.Load(); now >= next && g.nextAt.CompareAndSwap(next, now+int64(memSampleEvery)) {
		g.over.Store(g.readMem() > g.threshold)
	}
	return g.over.Load()
}

func (g *Memory) runtimeMem() uint64 {
	g.mu.Lock()
	defer g.mu.Unlock()
	metrics.Read(g.sample[:])
	total, released := g.sample[0].Value.Uint64(), g.sample[1].Value.Uint64()
	if released > total {
		return 0
	}
	return total - released
}

// MemoryLimit returns the memory limit the guard applies when none is
// configured (see ResolveMemoryLimit), 0 when none is known.
func MemoryLimit() int64 {
	l, _ := ResolveMemoryLimit(0)
	return l
}

// Where a memory limit came from (ResolveMemoryLimit).
const (
	MemorySourceConfig   = "memory_limit_mb"
	MemorySourceCgroup   = "cgroup"
	MemorySourceGo       = "GOMEMLIMIT"
	MemorySourcePhysical = "physical memory"
)

// ResolveMemoryLimit returns the process's memory limit and where it came
// from: configured (bytes, when > 0), else the cgroup's limit (v2, then
// v1), else GOMEMLIMIT, else the machine's physical memory (Linux), else 0
// and "" (no limit known). The cgroup comes before GOMEMLIMIT because
// Herald sets GOMEMLIMIT below the cgroup's limit itself.
func ResolveMemoryLimit(configured int64) (int64, string) {
	if configured > 0 {
		return configured, MemorySourceConfig
	}
	for _, f := range []string{"/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"} {
		if l := readCgroupLimit(f); l > 0 {
			return l, MemorySourceCgroup
		}
	}
	if l := debug.SetMemoryLimit(-1); l > 0 && l < math.MaxInt64 {
		return l, MemorySourceGo
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		if l := parseMemTotal(b); l > 0 {
			return l, MemorySourcePhysical
		}
	}
	return 0, ""
}

// parseMemTotal reads MemTotal (in kB) from /proc/meminfo, in bytes.
func parseMemTotal(b []byte) int64 {
	for line := range bytes.SplitSeq(b, []byte("\n")) {
		rest, ok := bytes.CutPrefix(line, []byte("MemTotal:"))
		if !ok {
			continue
		}
		f := bytes.Fields(rest)
		if len(f) == 0 {
			return 0
		}
		n, err := strconv.ParseInt(string(f[0]), 10, 64)
		if err != nil || n <= 0 || n > math.MaxInt64>>10 {
			return 0
		}
		return n << 10
	}
	return 0
}

// GoMemLimitPercent is the share of the memory limit Herald gives the Go
// runtime as GOMEMLIMIT: the rest is for what the runtime does not count
// (the kernel's socket buffers, stacks in flight, fragmentation).
const GoMemLimitPercent = 90

// readCgroupLimit reads a cgroup limit file: "max" or a huge number mean
// no limit (0).
func readCgroupLimit(path string) int64 {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	return parseCgroupLimit(b)
}

func parseCgroupLimit(b []byte) int64 {
	s := string(bytes.TrimSpace(b))
	if s == "" || s == "max" {
		return 0
	}
	n, err := strconv.ParseInt(s, 10, 64)
	// cgroup v1 reports "no limit" as a page-rounded MaxInt64.
	if err != nil || n <= 0 || n >= math.MaxInt64/2 {
		return 0
	}
	return n
}
