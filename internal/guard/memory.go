package guard

import (
	"bytes"
	"math"
	"os"
	"path/filepath"
	"runtime/debug"
	"runtime/metrics"
	"slices"
	"strconv"
	"strings"
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
// from: configured (bytes, when > 0), else the limit of the process's own
// cgroup (v2, then v1; see cgroupLimit), else GOMEMLIMIT, else the
// machine's physical memory (Linux), else 0 and "" (no limit known). The
// cgroup comes before GOMEMLIMIT because Herald sets GOMEMLIMIT below the
// cgroup's limit itself.
func ResolveMemoryLimit(configured int64) (int64, string) {
	return resolveMemoryLimit(configured, "/")
}

// resolveMemoryLimit is ResolveMemoryLimit with /proc and /sys/fs/cgroup
// read under root (tests give a directory of their own).
func resolveMemoryLimit(configured int64, root string) (int64, string) {
	if configured > 0 {
		return configured, MemorySourceConfig
	}
	if l := cgroupLimit(root); l > 0 {
		return l, MemorySourceCgroup
	}
	if l := debug.SetMemoryLimit(-1); l > 0 && l < math.MaxInt64 {
		return l, MemorySourceGo
	}
	if b, err := os.ReadFile(filepath.Join(root, "proc/meminfo")); err == nil {
		if l := parseMemTotal(b); l > 0 {
			return l, MemorySourcePhysical
		}
	}
	return 0, ""
}

// cgroupLimit returns the memory limit of the process's cgroup (0: none):
// the smallest limit of its cgroup and the cgroups above it, each of
// which applies. The cgroup is found in /proc/self/cgroup: a container
// with a cgroup namespace sees itself at the root of /sys/fs/cgroup, but
// a systemd service (MemoryMax=) or a container without one is below it
// (v2: /sys/fs/cgroup/system.slice/herald.service/memory.max; v1:
// /sys/fs/cgroup/memory/<path>/memory.limit_in_bytes, where a container's
// own mount shows its cgroup at the top, so the walk up finds it).
func cgroupLimit(root string) int64 {
	var v2, v1 string
	haveV2, haveV1 := false, false
	if b, err := os.ReadFile(filepath.Join(root, "proc/self/cgroup")); err == nil {
		for line := range strings.SplitSeq(string(b), "\n") {
			// hierarchy-ID:controller-list:cgroup-path
			id, rest, ok := strings.Cut(line, ":")
			if !ok {
				continue
			}
			ctrls, path, ok := strings.Cut(rest, ":")
			if !ok {
				continue
			}
			switch {
			case id == "0" && ctrls == "":
				v2, haveV2 = path, true
			case slices.Contains(strings.Split(ctrls, ","), "memory"):
				v1, haveV1 = path, true
			}
		}
	}
	if !haveV2 && !haveV1 {
		// No /proc/self/cgroup: the top of each hierarchy alone.
		haveV2, haveV1 = true, true
		v2, v1 = "/", "/"
	}
	if haveV2 {
		if l := smallestUp(filepath.Join(root, "sys/fs/cgroup"), v2, "memory.max"); l > 0 {
			return l
		}
	}
	if haveV1 {
		return smallestUp(filepath.Join(root, "sys/fs/cgroup/memory"), v1, "memory.limit_in_bytes")
	}
	return 0
}

// smallestUp returns the smallest limit in file found in the cgroup at
// path under mount and in each cgroup above it (0: none).
func smallestUp(mount, path, file string) int64 {
	var lowest int64
	dir := filepath.Join("/", path) // cleaned, never above the mount
	for {
		if l := readCgroupLimit(filepath.Join(mount, dir, file)); l > 0 && (lowest == 0 || l < lowest) {
			lowest = l
		}
		if dir == "/" {
			return lowest
		}
		dir = filepath.Dir(dir)
	}
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
