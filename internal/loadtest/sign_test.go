package loadtest

import (
	"encoding/json"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/herald-ws/herald/internal/protocol"
)

func verifySigned(t *testing.T, raw string, body []byte, prefix, key, secret string, now time.Time) error {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	path := strings.TrimPrefix(u.Path, prefix)
	return protocol.VerifyRequest(protocol.SignedRequest{Method: "POST", Path: path, Query: u.Query(), Body: body}, key, secret, now, 600*time.Second)
}

func TestSignedRequestsVerify(t *testing.T) {
	now := time.Unix(1764230400, 0)
	for _, base := range []string{"http://127.0.0.1:6001", "http://127.0.0.1:6001/", "http://127.0.0.1:6001/pusher"} {
		o := defaultOptions("fanout")
		o.API = base
		a := newAPIClient(&o, o.API, 1)
		a.now = func() time.Time { return now }
		body := []byte(`{"name":"bench","channels":["bench-0"],"data":"HB1.0.1.2.xx"}`)
		raw := a.signedURL("POST", "/apps/app-id/events", body)
		prefix := ""
		if strings.HasSuffix(base, "/pusher") {
			prefix = "/pusher"
			if !strings.HasPrefix(raw, "http://127.0.0.1:6001/pusher/apps/app-id/events?") {
				t.Errorf("prefix not requested: %s", raw)
			}
		}
		if err := verifySigned(t, raw, body, prefix, "app-key", "app-secret", now); err != nil {
			t.Errorf("%s: %v", base, err)
		}
		if err := verifySigned(t, raw, append([]byte(nil), append(body[:len(body)-1], ' ', '}')...), prefix, "app-key", "app-secret", now); err == nil {
			t.Errorf("%s: a changed body still verifies", base)
		}
		if err := verifySigned(t, raw, body, prefix, "app-key", "other-secret", now); err == nil {
			t.Errorf("%s: verifies with another secret", base)
		}
	}
}

func TestPublisherBodies(t *testing.T) {
	o := defaultOptions("fanout")
	now := time.Unix(1764230400, 5)
	mk := func(batch, per, channels, nPub, id int) *publisher {
		a := newAPIClient(&o, o.API, 1)
		a.now = func() time.Time { return now }
		return &publisher{id: id, nPub: nPub, api: a, st: newRunStats(), names: quotedChannelNames("bench-", channels),
			payload: 100, batch: batch, perEvent: per, measured: make([]uint64, channels)}
	}
	// Single event, one channel: publishers interleave over the channels.
	seen := map[int]bool{}
	for id := 0; id < 3; id++ {
		p := mk(1, 1, 10, 3, id)
		for i := 0; i < 10; i++ {
			path, chans := p.buildRequest(now, nil)
			if path != "/apps/app-id/events" || len(chans) != 1 {
				t.Fatalf("path %s chans %v", path, chans)
			}
			seen[chans[0]] = true
			var b struct {
				Name     string   `json:"name"`
				Channels []string `json:"channels"`
				Data     string   `json:"data"`
			}
			if err := json.Unmarshal(p.body, &b); err != nil {
				t.Fatalf("body %s: %v", p.body, err)
			}
			if b.Name != "bench" || len(b.Channels) != 1 || b.Channels[0] != channelName("bench-", chans[0]) || len(b.Data) != 100 {
				t.Errorf("body %s", p.body)
			}
			pub, seq, ts, ok := parsePayload([]byte(strings.TrimPrefix(b.Data, payloadMagic)))
			if !ok || pub != id || seq != uint64(i+1) || ts != now.UnixNano() {
				t.Errorf("payload %q: %d %d %d", b.Data, pub, seq, ts)
			}
		}
	}
	if len(seen) != 10 {
		t.Errorf("3 publishers covered %d of 10 channels", len(seen))
	}
	// Several channels per event.
	p := mk(1, 3, 5, 1, 0)
	_, chans := p.buildRequest(now, nil)
	if len(chans) != 3 || !strings.Contains(string(p.body), `"channels":["bench-0","bench-1","bench-2"]`) {
		t.Errorf("chans %v body %s", chans, p.body)
	}
	// Batch.
	p = mk(4, 1, 3, 1, 0)
	path, chans := p.buildRequest(now, nil)
	var bb struct {
		Batch []struct {
			Name, Channel, Data string
		} `json:"batch"`
	}
	if err := json.Unmarshal(p.body, &bb); err != nil || path != "/apps/app-id/batch_events" || len(bb.Batch) != 4 || len(chans) != 4 {
		t.Fatalf("batch %s %v %v", path, err, p.body)
	}
	for i, it := range bb.Batch {
		_, seq, _, _ := parsePayload([]byte(strings.TrimPrefix(it.Data, payloadMagic)))
		if seq != uint64(i+1) || it.Channel != channelName("bench-", chans[i]) {
			t.Errorf("item %d: %+v", i, it)
		}
	}
}
