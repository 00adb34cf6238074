package webhooks

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"time"

	"github.com/herald-ws/herald/internal/apps"
	"github.com/herald-ws/herald/internal/protocol"
)

// Header names Herald sets on every webhook; a target's extra headers
// cannot override them.
const (
	headerKey       = "X-Pusher-Key"
	headerSignature = "X-Pusher-Signature"
	headerBatchID   = "X-Herald-Batch-Id"
)

// reserved reports whether an extra header would override one of ours.
func reserved(canonical string) bool {
	switch canonical {
	case "Content-Type", headerKey, headerSignature, headerBatchID, "Content-Length", "Host", "Transfer-Encoding":
		return true
	}
	return false
}

// statusError is a non-2xx answer.
type statusError struct{ status int }

func (e *statusError) Error() string { return fmt.Sprintf("webhook answered %d", e.status) }

func (d *Dispatcher) runWorker(ctx context.Context) {
	defer d.workers.Done()
	for {
		dl, err := d.queue.Next(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			d.rlog.warn("next", "webhook queue unavailable", "err", err)
			select {
			case <-ctx.Done():
				return
			case <-time.After(time.Duration(500+rand.IntN(500)) * time.Millisecond):
			}
			continue
		}
		d.deliver(ctx, dl)
	}
}

// deliver makes one attempt and settles the batch with the queue.
func (d *Dispatcher) deliver(ctx context.Context, dl *Delivery) {
	// The queue calls below must not fail because we are shutting down.
	qctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
	defer cancel()
	tg, ok, rerr := d.resolve(ctx, dl)
	switch {
	case rerr != nil:
		// The app store is unavailable (a database): try again later.
		d.rlog.warn("resolve:"+dl.AppID, "webhook target lookup failed, will retry", "app_id", dl.AppID, "batch", dl.ID, "err", rerr)
		d.settle(qctx, d.queue.Retry(qctx, dl, d.backoff(dl.Attempts+1)))
		return
	case !ok:
		d.stats.dropped(dl.AppID, dl.Events)
		d.rlog.warn("unknown:"+dl.AppID, "webhook batch for a target not in the configuration dropped", "app_id", dl.AppID,
			"url", redact(dl.URL), "batch", dl.ID, "events", dl.Events)
		d.settle(qctx, d.queue.Done(qctx, dl))
		return
	}
	dl.Attempts++
	start := time.Now()
	status, err := d.post(ctx, dl, tg)
	if d.opt.ObserveDelivery != nil {
		d.opt.ObserveDelivery(dl.AppID, status, time.Since(start), err)
	}
	switch {
	case err == nil:
		d.stats.sent(dl.AppID, dl.Events, d.opt.Now().Sub(time.UnixMilli(dl.CreatedMs)))
		d.settle(qctx, d.queue.Done(qctx, dl))
	case ctx.Err() != nil:
		// Shutting down mid-attempt: give it back, it was not delivered.
		dl.Attempts--
		d.settle(qctx, d.queue.Retry(qctx, dl, 0))
	case retryable(status, err):
		delay := d.backoff(dl.Attempts)
		deadline := time.UnixMilli(dl.CreatedMs).Add(d.retryFor(dl))
		if d.opt.Now().Add(delay).After(deadline) {
			d.stats.failed(dl.AppID, dl.Events)
			d.rlog.warn("fail:"+dl.AppID, "webhook given up after retries", "app_id", dl.AppID, "url", redact(dl.URL),
				"batch", dl.ID, "attempts", dl.Attempts, "events", dl.Events, "err", err)
			d.settle(qctx, d.queue.Done(qctx, dl))
			return
		}
		d.stats.retried(dl.AppID)
		d.rlog.warn("retry:"+dl.AppID, "webhook failed, will retry", "app_id", dl.AppID, "url", redact(dl.URL),
			"batch", dl.ID, "attempt", dl.Attempts, "in", delay, "err", err)
		d.settle(qctx, d.queue.Retry(qctx, dl, delay))
	default:
		d.stats.failed(dl.AppID, dl.Events)
		d.rlog.warn("fail:"+dl.AppID, "webhook refused (not retried)", "app_id", dl.AppID, "url", redact(dl.URL),
			"batch", dl.ID, "status", status, "events", dl.Events)
		d.settle(qctx, d.queue.Done(qctx, dl))
	}
}

func (d *Dispatcher) settle(_ context.Context, err error) {
	if err != nil {
		// A durable queue will hand the batch out again after its lease.
		d.rlog.warn("settle", "webhook queue update failed", "err", err)
	}
}

// target is where and how a batch is posted, from the operator's
// configuration at delivery time.
type target struct {
	url       string
	headers   map[string]string
	key       string
	signature string
}

// resolve finds dl's target in the configuration: the app dl names, and
// its webhook whose URL is dl's (the URL only identifies the target). A
// batch is outside input once it went through Redis, so its URL, headers,
// key and signature are never used as they are: a forged or stale batch
// cannot make Herald POST elsewhere or with other headers, and the body is
// signed with the app's current secret. ok is false when no configured
// target matches (the app or the webhook is gone, or the batch is forged);
// err is set when the app store could not answer.
func (d *Dispatcher) resolve(ctx context.Context, dl *Delivery) (t target, ok bool, err error) {
	app, err := d.opt.Apps.ByID(ctx, dl.AppID)
	if errors.Is(err, apps.ErrNotFound) || err == nil && app == nil {
		return target{}, false, nil
	}
	if err != nil {
		return target{}, false, err
	}
	for _, w := range app.Webhooks {
		if w.URL == dl.URL {
			return target{url: w.URL, headers: w.Headers, key: app.Key, signature: protocol.SignBytes(app.Secret, dl.Body)}, true, nil
		}
	}
	return target{}, false, nil
}

// post sends the batch once to t. It returns the status (0 without a
// response) and nil for a 2xx.
func (d *Dispatcher) post(ctx context.Context, dl *Delivery, t target) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, d.timeout(dl))
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, t.url, bytes.NewReader(dl.Body))
	if err != nil {
		return 0, &statusError{status: 0}
	}
	for name, value := range t.headers {
		canon := http.CanonicalHeaderKey(name)
		if reserved(canon) {
			continue
		}
		req.Header.Set(canon, value)
	}
	if req.Header.Get("User-Agent") == "" {
		req.Header.Set("User-Agent", "Herald-Webhooks/1")
	}
	// Set last and exactly (no charset: pusher-http-node compares it).
	req.Header["Content-Type"] = []string{"application/json"}
	req.Header[headerKey] = []string{t.key}
	req.Header[headerSignature] = []string{t.signature}
	req.Header[headerBatchID] = []string{dl.ID}
	resp, err := d.client.Do(req)
	if err != nil {
		return 0, err
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return resp.StatusCode, nil
	}
	return resp.StatusCode, &statusError{status: resp.StatusCode}
}

// Bounds on what a batch may carry (the config's ranges): a batch read
// back from Redis is outside input, and a huge timeout would stall a
// worker.
const (
	maxBatchTimeout  = 5 * time.Minute
	maxBatchRetryFor = 24 * time.Hour
)

// timeout bounds one attempt at dl.
func (d *Dispatcher) timeout(dl *Delivery) time.Duration {
	if dl.TimeoutMs > 0 && dl.TimeoutMs <= maxBatchTimeout.Milliseconds() {
		return time.Duration(dl.TimeoutMs) * time.Millisecond
	}
	return d.opt.Timeout
}

// retryFor is how long after its first event dl is retried.
func (d *Dispatcher) retryFor(dl *Delivery) time.Duration {
	if dl.RetryForMs > 0 && dl.RetryForMs <= maxBatchRetryFor.Milliseconds() {
		return time.Duration(dl.RetryForMs) * time.Millisecond
	}
	return d.opt.RetryFor
}

// retryable: no response (timeout, connection error), 429 or 5xx.
func retryable(status int, err error) bool {
	var se *statusError
	if errors.As(err, &se) && se.status == 0 {
		return false // the request could not be built: the URL is wrong
	}
	return status == 0 || status == http.StatusTooManyRequests || status >= 500
}

// backoff is RetryBase·2^(attempt-1), at most RetryMax, with equal jitter.
func (d *Dispatcher) backoff(attempt int) time.Duration {
	delay := d.opt.RetryMax
	if attempt < 31 {
		if b := d.opt.RetryBase << (attempt - 1); b > 0 && b < delay {
			delay = b
		}
	}
	half := delay / 2
	return half + rand.N(delay-half+1)
}

// redact keeps a URL's scheme, host and path: the user info and the query
// often carry credentials.
func redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(invalid URL)"
	}
	u.User, u.RawQuery, u.Fragment = nil, "", ""
	return u.String()
}
