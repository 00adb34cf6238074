package transport

import (
	"bufio"
	"net"
	"net/http"
	"reflect"
	"testing"
	"time"
)

// TestRequestHeaders: header names come out canonical whatever their
// spelling (nbio's parser takes the common ones from a table, the rest
// through http.CanonicalHeaderKey), every value of a repeated name is
// kept in order (the first values share one array per request;
// third_party/README.md), and the next request of the connection starts
// afresh.
func TestRequestHeaders(t *testing.T) {
	got := make(chan http.Header, 2)
	s := startServer(t, Config{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/up" { // not Start's poller probes
			got <- r.Header.Clone()
		}
		w.WriteHeader(http.StatusNoContent)
	})}, newFakeSessions())
	nc, err := net.Dial("tcp", s.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	_ = nc.SetDeadline(time.Now().Add(2 * time.Minute))
	br := bufio.NewReader(nc)
	requests := []struct {
		raw  string
		want http.Header
	}{
		{
			"GET /x HTTP/1.1\r\nhost: a\r\nx-forwarded-for: 1.1.1.1\r\nX-Forwarded-For: 2.2.2.2\r\nSec-WebSocket-Key: k1\r\n" +
				"SEC-WEBSOCKET-VERSION: 13\r\nAccept: a\r\nX-Odd-NAME: o\r\nx-odd-name: p\r\naccept: b\r\n\r\n",
			http.Header{"Host": {"a"}, "X-Forwarded-For": {"1.1.1.1", "2.2.2.2"}, "Sec-Websocket-Key": {"k1"},
				"Sec-Websocket-Version": {"13"}, "Accept": {"a", "b"}, "X-Odd-Name": {"o", "p"}},
		},
		{
			"GET /y HTTP/1.1\r\nHost: b\r\nSec-Websocket-Key: k2\r\nX-Forwarded-For: 3.3.3.3\r\nAccept: c\r\n\r\n",
			http.Header{"Host": {"b"}, "Sec-Websocket-Key": {"k2"}, "X-Forwarded-For": {"3.3.3.3"}, "Accept": {"c"}},
		},
	}
	var kept []http.Header
	for _, rq := range requests {
		if _, err := nc.Write([]byte(rq.raw)); err != nil {
			t.Fatal(err)
		}
		res, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		_ = res.Body.Close()
		// The handler ran before the response was written.
		var h http.Header
		select {
		case h = <-got:
		default:
			t.Fatal("the handler was not called")
		}
		kept = append(kept, h)
	}
	for i, rq := range requests {
		h := kept[i]
		for k, v := range rq.want {
			if !reflect.DeepEqual(h[k], v) {
				t.Errorf("request %d: %s = %q, want %q (all: %v)", i, k, h[k], v, h)
			}
		}
	}
}
