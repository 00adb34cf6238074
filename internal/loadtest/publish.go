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

// post sends a signed POST and returns the HTTP status and, for a
// refusal (429 or 503), the wait its Retry-After states (see retryAfter).
func (a *apiClient) post(ctx context.Context, path string, body []byte) (int, time.Duration, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, a.signedURL(http.MethodPost, path, body), bytes.NewReader(body))
	if err != nil {
		return 0, 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := a.http.Do(req)
	if err != nil {
		return 0, 0, err
	}
	defer resp.Body.Close()
	var wait time.Duration
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 300))
		s := fmt.Sprintf("HTTP %d: %s", resp.StatusCode, strings.TrimSpace(string(b)))
		a.lastBody.Store(&s)
		if refusal(resp.StatusCode) {
			wait = retryAfter(resp.Header.Get("Retry-After"), a.now())
		}
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode, wait, nil
}

// refusal reports whether status asks the publisher to come back later
// (rate limited or saturated) rather than saying the request was wrong.
func refusal(status int) bool {
	return status == http.StatusTooManyRequests || status == http.StatusServiceUnavailable
}

// defaultRetryAfter is the wait after a refusal without a usable
// Retry-After: the HTTP API's own value for a saturated node.
const defaultRetryAfter = time.Second

// maxRetryAfter caps what a server can make a publisher wait, so that a
// wrong header cannot stall a run.
const maxRetryAfter = time.Minute

// retryAfter parses a Retry-After value (RFC 9110 10.2.3: delay-seconds or
// an HTTP-date, relative to now). A missing or malformed value gives
// defaultRetryAfter; 0 or a date in the past gives 0.
func retryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return defaultRetryAfter
	}
	if secs, err := strconv.ParseUint(v, 10, 32); err == nil {
		return min(time.Duration(secs)*time.Second, maxRetryAfter)
	}
	if t, err := http.ParseTime(v); err == nil {
		return min(max(t.Sub(now), 0), maxRetryAfter)
	}
	return defaultRetryAfter
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

	// honourRetryAfter makes the publisher wait what a refusal's
	// Retry-After states before its next request, as a well-behaved
	// backend does; without it a refused request is retried at once (a
	// hostile publisher).
	honourRetryAfter bool

	requests atomic.Uint64
	events   atomic.Uint64
	failures atomic.Uint64
	refused  atomic.Uint64 // failures that were 429 or 503
	waited   atomic.Int64  // nanoseconds spent honouring Retry-After
	// rtt is the round trip of the accepted requests sent in the measured
	// window: the API answers once the events are queued for the local
	// subscribers, so it is the server's ingress and fanout as a
	// publisher sees them.
	rtt Histogram
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
// are counted per channel. A refused request's events are not sent again
// (the next request carries new ones); after honouring a Retry-After, a
// paced publisher resumes its pace from then on, without catching up on
// the slots it missed.
func (p *publisher) run(ctx context.Context, start, end time.Time, interval time.Duration) {
	var chans []int
	next := start
	for {
		if interval > 0 {
			if !sleepCtx(ctx, time.Until(next)) {
				return
			}
			next = next.Add(interval)
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
		status, wait, err := p.api.post(ctx, path, p.body)
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
			if !refusal(status) {
				break
			}
			p.refused.Add(1)
			if !p.honourRetryAfter {
				break
			}
			// Never past the end of the run: the wait is the server's
			// word, the run's length the tool's.
			wait = min(wait, time.Until(end))
			t0 := time.Now()
			if !sleepCtx(ctx, wait) {
				return
			}
			p.waited.Add(int64(time.Since(t0)))
			if interval > 0 && next.Before(time.Now()) {
				next = time.Now()
			}
		default:
			p.events.Add(uint64(len(chans) / p.perEvent))
			ts := now.UnixNano()
			if ts >= p.st.winStart.Load() && ts < p.st.winEnd.Load() {
				p.rtt.Record(int64(time.Since(now)))
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
