package main

import (
	"bytes"
	"net"
	"strings"
	"testing"

	"github.com/herald-ws/herald/internal/config"
)

func TestBannerWithACMENamesTheDomain(t *testing.T) {
	cfg := config.Default()
	cfg.ACMEDomains = []string{"ws.example.com"}
	var b bytes.Buffer
	printBanner(&b, cfg, &net.TCPAddr{IP: net.IPv4zero, Port: 443})
	for _, want := range []string{"wss://ws.example.com:443/app/{key}", "PUSHER_HOST=ws.example.com\n", "PUSHER_PORT=443\n", "PUSHER_SCHEME=https\n"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("banner lacks %q:\n%s", want, b.String())
		}
	}
	cfg.ACMEDomains = nil
	b.Reset()
	printBanner(&b, cfg, &net.TCPAddr{IP: net.IPv4zero, Port: 6001})
	if !strings.Contains(b.String(), "PUSHER_HOST=127.0.0.1\n") || !strings.Contains(b.String(), "PUSHER_SCHEME=http\n") {
		t.Errorf("plain banner:\n%s", b.String())
	}
}
