package guard

import (
	"math"
	"net/netip"
	"os"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"testing"
	"time"
)

func itoa(n int) string { return strconv.Itoa(n) }

func TestIPLimiter(t *testing.T) {
	now := time.Unix(1000, 0)
	l := NewIPLimiter(2, 3, 50)
	a := netip.MustParseAddr("203.0.113.1")
	for i := 0; i < 3; i++ {
		if !l.allow(a, now) {
			t.Fatalf("burst connection %d refused", i)
		}
	}
	if l.allow(a, now) {
		t.Fatal("connection past the burst allowed")
	}
	if !l.allow(netip.MustParseAddr("203.0.113.2"), now) {
		t.Fatal("another address is charged to the first")
	}
	if !l.allow(a, now.Add(600*time.Millisecond)) {
		t.Fatal("bucket did not refill at the rate")
	}
	// One IPv6 host is counted by its /64.
	for i := 0; i < 3; i++ {
		l.allow(netip.MustParseAddr("2001:db8:1:1::"+itoa(i+1)), now)
	}
	if l.allow(netip.MustParseAddr("2001:db8:1:1::99"), now) {
		t.Fatal("a /64 got more than one bucket")
	}
	// Memory stays bounded under a flood of distinct addresses.
	for i := 0; i < 10_000; i++ {
		l.allow(netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}), now)
	}
	if n := l.size(); n > 2*50 {
		t.Fatalf("%d buckets held, bound is %d", n, 2*50)
	}
	// Idle buckets go.
	l.allow(a, now.Add(time.Minute))
	l.allow(a, now.Add(2*time.Minute))
	if n := l.size(); n != 1 {
		t.Fatalf("%d buckets after the others went idle, want 1", n)
	}
	// An invalid address (no IP) is not limited.
	for i := 0; i < 10; i++ {
		if !l.allow(netip.Addr{}, now) {
			t.Fatal("invalid address limited")
		}
	}
}

// Allow charges loopback, private and link-local addresses like public
// ones (behind a proxy on the same host every client is the loopback),
// and spares only the exempt prefixes.
func TestIPLimiterChargesEveryAddressButTheExempt(t *testing.T) {
	now := time.Unix(1000, 0)
	l := NewIPLimiter(0.001, 1, 0).Exempt([]netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")})
	for _, a := range []string{"10.1.2.3", "192.168.0.1", "fd00::7", "fe80::1", "::1", "198.51.100.1"} {
		ip := netip.MustParseAddr(a)
		if !l.Allow(ip, now) || l.Allow(ip, now) {
			t.Fatalf("%s is not limited", a)
		}
	}
	for _, a := range []string{"127.0.0.1", "127.0.0.2", "::ffff:127.0.0.1"} {
		for i := 0; i < 3; i++ {
			if !l.Allow(netip.MustParseAddr(a), now) {
				t.Fatalf("exempt %s limited", a)
			}
		}
	}
}

func TestMemoryOff(t *testing.T) {
	if NewMemory(0, 90) != nil || NewMemory(1<<30, -1) != nil || NewMemory(1<<30, 101) != nil {
		t.Fatal("a guard without a limit or percentage")
	}
}

func TestMemoryOverLimit(t *testing.T) {
	if !NewMemory(1<<20, 90).OverLimit() {
		t.Fatal("a process over a 1 MB limit is not over it")
	}
	if NewMemory(1<<40, 90).OverLimit() {
		t.Fatal("a process under a 1 TB limit is over it")
	}
}

func TestParseCgroupLimit(t *testing.T) {
	for in, want := range map[string]int64{
		"max\n":                 0,
		"":                      0,
		"536870912\n":           536870912,
		"9223372036854771712\n": 0, // cgroup v1 "no limit"
		"garbage":               0,
	} {
		if got := parseCgroupLimit([]byte(in)); got != want {
			t.Errorf("%q: got %d, want %d", in, got, want)
		}
	}
}

// The memory limit is the process's own cgroup's, found through
// /proc/self/cgroup: under a systemd service (MemoryMax=) or a container
// without a cgroup namespace the cgroup is below the top of
// /sys/fs/cgroup, where only the machine's (absent) limit is; a cgroup
// above with a smaller limit wins.
func TestCgroupLimitOfTheProcessCgroup(t *testing.T) {
	const mb = 1 << 20
	// GOMEMLIMIT (from the environment) comes before physical memory.
	old := debug.SetMemoryLimit(math.MaxInt64)
	t.Cleanup(func() { debug.SetMemoryLimit(old) })
	for _, tc := range []struct {
		name   string
		files  map[string]string
		want   int64
		source string
	}{
		{"v2 systemd service", map[string]string{
			"proc/self/cgroup": "0::/system.slice/herald.service\n",
			"sys/fs/cgroup/system.slice/herald.service/memory.max": "536870912\n",
			"sys/fs/cgroup/system.slice/memory.max":                "max\n",
		}, 512 * mb, MemorySourceCgroup},
		{"v2 namespace", map[string]string{
			"proc/self/cgroup":         "0::/\n",
			"sys/fs/cgroup/memory.max": "1073741824\n",
			"proc/meminfo":             "MemTotal:       16384000 kB\n",
		}, 1024 * mb, MemorySourceCgroup},
		{"v2 smaller parent", map[string]string{
			"proc/self/cgroup":                          "0::/kubepods/pod1/c1\n",
			"sys/fs/cgroup/kubepods/pod1/c1/memory.max": "max\n",
			"sys/fs/cgroup/kubepods/pod1/memory.max":    "268435456\n",
			"sys/fs/cgroup/kubepods/memory.max":         "1073741824\n",
		}, 256 * mb, MemorySourceCgroup},
		{"v1 container mount", map[string]string{
			"proc/self/cgroup":                           "12:cpu,cpuacct:/docker/abc\n11:memory:/docker/abc\n0::/\n",
			"sys/fs/cgroup/memory/memory.limit_in_bytes": "134217728\n",
		}, 128 * mb, MemorySourceCgroup},
		{"no limit: physical memory", map[string]string{
			"proc/self/cgroup":         "0::/user.slice\n",
			"sys/fs/cgroup/memory.max": "max\n",
			"proc/meminfo":             "MemTotal:        2048 kB\nMemFree: 1 kB\n",
		}, 2 * mb, MemorySourcePhysical},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			for name, body := range tc.files {
				p := filepath.Join(root, name)
				if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			got, source := resolveMemoryLimit(0, root)
			if got != tc.want || source != tc.source {
				t.Fatalf("got %d from %q, want %d from %q", got, source, tc.want, tc.source)
			}
			if got, source := resolveMemoryLimit(300*mb, root); got != 300*mb || source != MemorySourceConfig {
				t.Fatalf("memory_limit_mb set: got %d from %q", got, source)
			}
		})
	}
}

func TestOffenders(t *testing.T) {
	now := time.Unix(1000, 0)
	o := NewOffenders(10*time.Second, 50)
	a := netip.MustParseAddr("203.0.113.1")
	if o.Has(a, now) {
		t.Fatal("an address that never offended is remembered")
	}
	o.Add(a, now)
	if !o.Has(a, now.Add(9*time.Second)) {
		t.Fatal("an offence forgotten within its ttl")
	}
	if o.Has(netip.MustParseAddr("203.0.113.2"), now) {
		t.Fatal("another address is charged with the first's offence")
	}
	if o.Has(a, now.Add(10*time.Second)) {
		t.Fatal("an offence remembered past its ttl")
	}
	// A repeat offence renews it, across a rotation.
	o.Add(a, now.Add(15*time.Second))
	o.Add(netip.MustParseAddr("203.0.113.9"), now.Add(21*time.Second)) // rotates
	if !o.Has(a, now.Add(24*time.Second)) {
		t.Fatal("a renewed offence forgotten")
	}
	// One IPv6 host is counted by its /64.
	o.Add(netip.MustParseAddr("2001:db8:1:1::1"), now)
	if !o.Has(netip.MustParseAddr("2001:db8:1:1::99"), now) {
		t.Fatal("another address of the /64 is not remembered")
	}
	// Memory stays bounded under a flood of distinct addresses, and old
	// entries go.
	for i := 0; i < 10_000; i++ {
		o.Add(netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}), now.Add(30*time.Second))
	}
	if n := o.size(); n > 2*50 {
		t.Fatalf("%d entries held, bound is %d", n, 2*50)
	}
	o.Add(a, now.Add(time.Minute))
	o.Add(a, now.Add(2*time.Minute))
	if n := o.size(); n != 1 {
		t.Fatalf("%d entries after the others' ttl, want 1", n)
	}
	o.Add(netip.Addr{}, now)
	if o.Has(netip.Addr{}, now) {
		t.Fatal("an invalid address is remembered")
	}
}
