package loadtest

import (
	"context"
	"net"
	"net/netip"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/herald-ws/herald/internal/testwait"
)

func TestSourcePoolSpreadsExplicitAddresses(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var mu sync.Mutex
	seen := map[string]int{}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			h, _, _ := net.SplitHostPort(c.RemoteAddr().String())
			mu.Lock()
			seen[h]++
			mu.Unlock()
			c.Close()
		}
	}()
	srcs, _ := parseSourceIPs("127.0.0.2-4")
	p := newSourcePool(srcs, true, time.Second)
	for i := 0; i < 9; i++ {
		c, err := p.DialContext(context.Background(), "tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		c.Close()
	}
	// Each dial returned once its connection was queued for Accept; wait
	// until the accept loop has counted all nine.
	accepted := func() int {
		mu.Lock()
		defer mu.Unlock()
		n := 0
		for _, k := range seen {
			n += k
		}
		return n
	}
	if !testwait.Until(5*time.Second, func() bool { return accepted() >= 9 }) {
		t.Fatalf("accepted %d of 9 connections", accepted())
	}
	mu.Lock()
	defer mu.Unlock()
	for _, a := range []string{"127.0.0.2", "127.0.0.3", "127.0.0.4"} {
		if seen[a] != 3 {
			t.Errorf("%s used %d times, want 3 (%v)", a, seen[a], seen)
		}
	}
	if p.Used() != 3 {
		t.Errorf("Used() = %d", p.Used())
	}
}

// fakeDial fails with EADDRNOTAVAIL for the addresses in full.
func fakeDial(full map[netip.Addr]bool, got *[]netip.Addr, mu *sync.Mutex) func(context.Context, string, string, netip.Addr) (net.Conn, error) {
	return func(_ context.Context, _, _ string, local netip.Addr) (net.Conn, error) {
		mu.Lock()
		defer mu.Unlock()
		*got = append(*got, local)
		if full[local] {
			return nil, &net.OpError{Op: "dial", Net: "tcp", Err: syscall.EADDRNOTAVAIL}
		}
		c1, c2 := net.Pipe()
		c2.Close()
		return c1, nil
	}
}

func TestSourcePoolMovesOnWhenPortsRunOut(t *testing.T) {
	var mu sync.Mutex
	var got []netip.Addr
	full := map[netip.Addr]bool{{}: true, netip.MustParseAddr("127.0.0.2"): true}
	p := newSourcePool(nil, true, time.Second)
	p.dial = fakeDial(full, &got, &mu)
	for i := 0; i < 3; i++ {
		c, err := p.DialContext(context.Background(), "tcp", "127.0.0.1:1")
		if err != nil {
			t.Fatal(err)
		}
		c.Close()
	}
	want := []string{"invalid IP", "127.0.0.2", "127.0.0.3", "127.0.0.3", "127.0.0.3"}
	if len(got) != len(want) {
		t.Fatalf("dialled from %v", got)
	}
	for i := range want {
		if got[i].String() != want[i] {
			t.Errorf("dial %d from %v, want %s", i, got[i], want[i])
		}
	}
	if p.Used() != 1 {
		t.Errorf("Used() = %d", p.Used())
	}

	// Without auto-spreading (a remote target) the error is returned.
	got = nil
	p = newSourcePool(nil, false, time.Second)
	p.dial = fakeDial(full, &got, &mu)
	if _, err := p.DialContext(context.Background(), "tcp", "10.0.0.1:1"); !isAddrNotAvail(err) {
		t.Errorf("err = %v", err)
	}

	// Every explicit address full: a clear error.
	srcs, _ := parseSourceIPs("127.0.0.2")
	p = newSourcePool(srcs, true, time.Second)
	p.dial = fakeDial(full, &got, &mu)
	if _, err := p.DialContext(context.Background(), "tcp", "127.0.0.1:1"); err == nil || errKind("connect", err) != "connect: out of local ports" {
		t.Errorf("err = %v (%s)", err, errKind("connect", err))
	}
}
