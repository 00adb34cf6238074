package loadtest

import (
	"net"
	"os"
	"testing"
)

func TestParseStatCPU(t *testing.T) {
	line := "1234 (herald (x) y) S 1 1234 1234 0 -1 4194560 2000 0 0 0 250 150 0 0 20 0 12 0 100 1000000 500 18446744073709551615\n"
	got, err := parseStatCPU([]byte(line))
	if err != nil || got != 4.0 {
		t.Errorf("got %v, %v; want 4.0 s (400 ticks)", got, err)
	}
	for _, bad := range []string{"", "1234 (x) S 1 2", "1234 x S 1 2 3 4 5 6 7 8 9 10 11 12 13 14"} {
		if _, err := parseStatCPU([]byte(bad)); err == nil {
			t.Errorf("accepted %q", bad)
		}
	}
}

func TestParseVmRSS(t *testing.T) {
	st := "Name:\therald\nVmPeak:\t  100 kB\nVmRSS:\t   20480 kB\nThreads:\t4\n"
	if got, err := parseVmRSS([]byte(st)); err != nil || got != 20480*1024 {
		t.Errorf("got %d, %v", got, err)
	}
	if _, err := parseVmRSS([]byte("Name:\tkthreadd\n")); err == nil {
		t.Error("no VmRSS accepted")
	}
}

func TestOwnProcessFigures(t *testing.T) {
	if _, err := procCPUSeconds(os.Getpid()); err != nil {
		t.Error(err)
	}
	if rss, err := procRSSBytes(os.Getpid()); err != nil || rss <= 0 {
		t.Error(rss, err)
	}
}

func TestListeningInodes(t *testing.T) {
	table := `  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:1771 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 111 1 0000000000000000 100 0 0 10 0
   1: 0100007F:1771 0100007F:D2F0 01 00000000:00000000 00:00000000 00000000     0        0 222 1 0000000000000000 20 4 30 10 -1
   2: 00000000:40AB 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 333 1 0000000000000000 100 0 0 10 0
`
	if got := listeningInodes([]byte(table), 0x1771); len(got) != 1 || got[0] != "111" {
		t.Errorf("port 6001: %v", got)
	}
	if got := listeningInodes([]byte(table), 0x40AB); len(got) != 1 || got[0] != "333" {
		t.Errorf("port 16555: %v", got)
	}
	if got := listeningInodes([]byte(table), 80); len(got) != 0 {
		t.Errorf("port 80: %v", got)
	}
}

func TestFindListeningPID(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	pid, err := findListeningPID(ln.Addr().(*net.TCPAddr).Port)
	if err != nil {
		t.Fatalf("cannot find our own listening socket: %v", err)
	}
	if pid != os.Getpid() {
		t.Errorf("pid %d, want %d", pid, os.Getpid())
	}
}
