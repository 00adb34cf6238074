package config

import (
	"time"

	"github.com/herald-ws/herald/internal/apps"
)

// Limits of the webhook settings, shared with the per-target overrides
// (apps.RuleFor).
const (
	webhookMaxBatch   = apps.WebhookMaxBatch
	webhookMinTimeout = apps.WebhookMinTimeout
	webhookMaxTimeout = apps.WebhookMaxTimeout
	webhookMaxRetry   = apps.WebhookMaxRetry
	webhookMaxQueue   = 10_000_000
)

// webhookRule is the range of a server-wide webhook_* key; the per-target
// overrides are apps.RuleFor's.
func webhookRule(key string) (rule, bool) {
	const durHint = ` (e.g. "4s", "500ms", or 4 for seconds)`
	dur := func(lo, hi time.Duration, what string) rule {
		return rule{expect: what + durHint, min: int64(lo), max: int64(hi)}
	}
	switch key {
	case "webhook_batch_window":
		return dur(time.Millisecond, time.Minute, "a duration between 1ms and 1m"), true
	case "webhook_batch_size":
		return rule{expect: "a number of events between 1 and 1000", min: 1, max: webhookMaxBatch}, true
	case "webhook_timeout":
		return dur(webhookMinTimeout, webhookMaxTimeout, "a duration between 100ms and 5m"), true
	case "webhook_retry_for":
		return dur(time.Second, webhookMaxRetry, "a duration between 1s and 24h"), true
	case "webhook_backoff_min", "webhook_backoff_max":
		return dur(10*time.Millisecond, time.Hour, "a duration between 10ms and 1h"), true
	case "webhook_queue_size", "webhook_max_pending":
		return rule{expect: "a number between 1 and 10000000", min: 1, max: webhookMaxQueue}, true
	case "webhook_workers":
		return rule{expect: "a number between 1 and 1024", min: 1, max: 1024}, true
	case "webhook_presence_delay":
		return dur(0, time.Minute, "0s (no delay) or a duration up to 1m"), true
	}
	return rule{}, false
}

// webhookFlagHelp is the usage line of a webhook_* key's flag.
func webhookFlagHelp(key, dur string) (string, bool) {
	switch key {
	case "webhook_batch_window":
		return "keep a webhook batch open this `duration` for more events" + dur, true
	case "webhook_batch_size":
		return "send at most this many `events` in one webhook request", true
	case "webhook_timeout":
		return "give up one webhook attempt after this `duration`" + dur, true
	case "webhook_retry_for":
		return "retry a failed webhook for this `duration` after its first event" + dur, true
	case "webhook_backoff_min":
		return "wait this `duration` before the first retry of a webhook, doubling per attempt" + dur, true
	case "webhook_backoff_max":
		return "wait at most this `duration` between two attempts of a webhook" + dur, true
	case "webhook_queue_size":
		return "hold at most this many webhook `events` waiting to be batched (more are dropped and counted)", true
	case "webhook_max_pending":
		return "hold at most this many webhook `batches` waiting for delivery or a retry", true
	case "webhook_workers":
		return "run at most this many webhook `deliveries` at once per node", true
	case "webhook_presence_delay":
		return "hold member webhooks this `duration`; a leave and rejoin within it sends neither (0s: off)" + dur, true
	}
	return "", false
}

// webhookSettings checks what the ranges alone cannot.
func (v *validator) webhookSettings(c *Config) {
	if c.WebhookBackoffMax < c.WebhookBackoffMin {
		v.add("webhook_backoff_max", "must be at least webhook_backoff_min (%s), got %s", c.WebhookBackoffMin, c.WebhookBackoffMax)
	}
}
