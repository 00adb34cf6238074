package transport

import (
	"net/url"
	"strings"
	"testing"
)

var protocolSeeds = []string{
	"protocol=7&client=js&version=8.4.0&flash=false",
	"", "protocol", "protocol=", "protocol=7", "client=js&protocol=6&protocol=7",
	"prot%6Fcol=5", "protocol=%zz&protocol=7", "proto+col=1", "protocol=a+b%20c",
	"protocol=7;x=1&protocol=8", "&&protocol=9&", "%zz=1&protocol=2", "protocol=7=8",
	strings.Repeat("a=1&", 70) + "protocol=7",
}

// FuzzProtocolParam: protocolParam gives what url.ParseQuery gives for the
// protocol parameter, whatever the query.
func FuzzProtocolParam(f *testing.F) {
	for _, s := range protocolSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		got, ok := protocolParam(raw)
		v, _ := url.ParseQuery(raw)
		p, wok := v["protocol"]
		want := ""
		if wok && len(p) > 0 {
			want = p[0]
		} else {
			wok = false
		}
		if got != want || ok != wok {
			t.Fatalf("protocolParam(%q) = %q, %v; url.ParseQuery: %q, %v", raw, got, ok, want, wok)
		}
	})
}

// TestProtocolParamAllocs: pusher-js's query costs no allocation (four
// through url.ParseQuery's map).
func TestProtocolParamAllocs(t *testing.T) {
	raw := "protocol=7&client=js&version=8.4.0&flash=false"
	var p string
	n := testing.AllocsPerRun(100, func() { p, _ = protocolParam(raw) })
	if p != "7" {
		t.Fatalf("protocol %q", p)
	}
	if n > 0 {
		t.Errorf("%.0f allocations, want none", n)
	}
}
