package loadtest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/herald-ws/herald/internal/protocol"
)

// eventName is the name of every benchmark event.
const eventName = "bench"

// apiClient signs and sends HTTP API requests.
type apiClient struct {
	http     *http.Client
	base     string // scheme://host[:port][/prefix], no trailing slash
	appID    string
	key      string
	secret   string
	now      func() time.Time
	lastBody atomic.Pointer[string] // last error response, for the report
}

func newAPIClient(o *Options, base string, conns int) *apiClient {
	tr := &http.Transport{
		Proxy:               nil, // never route benchmark traffic through a proxy
		DialContext:         (&net.Dialer{Timeout: o.Timeout, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:        2 * conns,
		MaxIdleConnsPerHost: 2 * conns,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
		ForceAttemptHTTP2:   false,
	}
	return &apiClient{
		http:   &http.Client{Transport: tr, Timeout: o.Timeout},
		base:   strings.TrimRight(base, "/"),
		appID:  o.AppID,
		key:    o.Key,
		secret: o.Secret,
		now:    time.Now,
	}
}

// signedURL returns the full URL of a signed POST to path (which starts
// at /apps/...). Any path prefix of the base URL is requested but not
// signed, as the Pusher SDKs do.
func (a *apiClient) signedURL(method, path string, body []byte) string {
	q := protocol.SignRequest(method, path, nil, body, a.key, a.secret, a.now())
	return a.base + path + "?" + q.Encode()
}

// post sends a signed POST and returns the HTTP status.
func (a *apiClient) post(ctx context.Context, path string, body []byte) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, a.signedURL(http.MethodPost, path, body), bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := a.http.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 300))
		s := fmt.Sprintf("HTTP %d: %s", resp.StatusCode, strings.TrimSpace(string(b)))
		a.lastBody.Store(&s)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode, nil
}

// publisher is one sequential publisher: one request in flight, so the
// order of its events is defined and receivers can check it.
type publisher struct {
	id       int
	nPub     int
	api      *apiClient
	st       *runStats
	names    []string // JSON-quoted channel names
	payload  int
	batch    int
	perEvent int

	seq      uint64
	k        uint64 // events sent, for channel rotation
	body     []byte
	measured []uint64 // measured events per channel (delivered to every subscriber of it)

	requests atomic.Uint64
	events   atomic.Uint64
	failures atomic.Uint64
}

func quotedChannelNames(base string, n int) []string {
	out := make([]string, n)
	for i := range out {
		b, _ := json.Marshal(channelName(base, i))
		out[i] = string(b)
	}
	return out
}

// nextChannel returns the channel of this publisher's next event slot:
// the publishers interleave so that together they cover every channel.
func (p *publisher) nextChannel() int {
	ch := int((p.k*uint64(p.nPub)+uint64(p.id))*uint64(p.perEvent)) % len(p.names)
	p.k++
	return ch
}

// buildRequest builds the next request body, returning the API path, the
// channels of each event and the send timestamp written into the events.
func (p *publisher) buildRequest(now time.Time, chans []int) (path string, _ []int) {
	ts := now.UnixNano()
	b := p.body[:0]
	if p.batch <= 1 {
		first := p.nextChannel()
		b = append(b, `{"name":"`+eventName+`","channels":[`...)
		for j := 0; j < p.perEvent; j++ {
			ch := (first + j) % len(p.names)
			if j > 0 {
				b = append(b, ',')
			}
			b = append(b, p.names[ch]...)
			chans = append(chans, ch)
		}
		p.seq++
		b = append(b, `],"data":"`...)
		b = appendPayload(b, p.id, p.seq, ts, p.payload)
		b = append(b, `"}`...)
		p.body = b
		return "/apps/" + p.api.appID + "/events", chans
	}
	b = append(b, `{"batch":[`...)
	for j := 0; j < p.batch; j++ {
		ch := p.nextChannel()
		chans = append(chans, ch)
		if j > 0 {
			b = append(b, ',')
		}
		p.seq++
		b = append(b, `{"name":"`+eventName+`","channel":`...)
		b = append(b, p.names[ch]...)
		b = append(b, `,"data":"`...)
		b = appendPayload(b, p.id, p.seq, ts, p.payload)
		b = append(b, `"}`...)
	}
	b = append(b, `]}`...)
	p.body = b
	return "/apps/" + p.api.appID + "/batch_events", chans
}

// run publishes from start until end, paced at interval per request (0 =
// back to back). Events whose send time falls in the run's measured window
// are counted per channel.
func (p *publisher) run(ctx context.Context, start, end time.Time, interval time.Duration) {
	var chans []int
	for i := 0; ; i++ {
		if interval > 0 {
			if d := time.Until(start.Add(time.Duration(i) * interval)); d > 0 {
				t := time.NewTimer(d)
				select {
				case <-t.C:
				case <-ctx.Done():
					t.Stop()
					return
				}
			}
		}
		if ctx.Err() != nil {
			return
		}
		now := time.Now()
		if !now.Before(end) {
			return
		}
		var path string
		path, chans = p.buildRequest(now, chans[:0])
		status, err := p.api.post(ctx, path, p.body)
		p.requests.Add(1)
		switch {
		case err != nil:
			if ctx.Err() != nil {
				return
			}
			p.failures.Add(1)
			p.st.errs.add(errKind("publish", err))
		case status != http.StatusOK:
			p.failures.Add(1)
			p.st.errs.add("publish: HTTP " + strconv.Itoa(status))
		default:
			p.events.Add(uint64(len(chans) / p.perEvent))
			ts := now.UnixNano()
			if ts >= p.st.winStart.Load() && ts < p.st.winEnd.Load() {
				for _, ch := range chans {
					p.measured[ch]++
				}
			}
		}
	}
}

// apiBaseCheck validates the API base URL.
func apiBaseCheck(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return err
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return fmt.Errorf("--api %q: scheme must be http or https", raw)
	}
	if u.RawQuery != "" {
		return fmt.Errorf("--api %q: must not have a query", raw)
	}
	return nil
}
