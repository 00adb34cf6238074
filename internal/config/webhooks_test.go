package config

import (
	"strings"
	"testing"
	"time"

	"github.com/herald-ws/herald/internal/apps"
)

// setWebhookDefaults fills in the webhook_* defaults of a Config literal.
func setWebhookDefaults(c *Config) {
	c.WebhookBatchWindow = 250 * time.Millisecond
	c.WebhookBatchSize = 20
	c.WebhookTimeout = 4 * time.Second
	c.WebhookRetryFor = 5 * time.Minute
	c.WebhookBackoffMin = time.Second
	c.WebhookBackoffMax = 30 * time.Second
	c.WebhookQueueSize = 10000
	c.WebhookMaxPending = 10000
	c.WebhookQueueMB = 64
	c.HistoryMemoryMB = 64 // beside them in the table
	c.WebhookWorkers = 4
	c.WebhookPresenceDelay = 3 * time.Second
}

func TestWebhookSettingsFromFile(t *testing.T) {
	p := writeConfig(t, `
webhook_batch_window: 100ms
webhook_batch_size: 50
webhook_timeout: 2
webhook_retry_for: 10m
webhook_backoff_min: 500ms
webhook_backoff_max: 1m
webhook_queue_size: 100000
webhook_max_pending: 500
webhook_workers: 8
webhook_presence_delay: 0
apps:
  - id: a
    key: a
    secret: s
    webhooks:
      - url: https://hooks.example.com/pusher
        event_types: [channel_occupied]
        batch_size: 1
        timeout: 10s
        retry_for: 1h
      - url: https://hooks.example.com/other
        event_types: [client_event]
`)
	c := mustLoad(t, Source{File: p, Env: env(map[string]string{"HERALD_WEBHOOK_WORKERS": "16"})})
	got := [...]any{c.WebhookBatchWindow, c.WebhookBatchSize, c.WebhookTimeout, c.WebhookRetryFor,
		c.WebhookBackoffMin, c.WebhookBackoffMax, c.WebhookQueueSize, c.WebhookMaxPending, c.WebhookWorkers, c.WebhookPresenceDelay}
	want := [...]any{100 * time.Millisecond, 50, 2 * time.Second, 10 * time.Minute,
		500 * time.Millisecond, time.Minute, 100000, 500, 16, time.Duration(0)}
	if got != want {
		t.Errorf("settings %v, want %v", got, want)
	}
	w := c.Apps[0].Webhooks
	if w[0].BatchSize != 1 || w[0].Timeout != 10*time.Second || w[0].RetryFor != time.Hour {
		t.Errorf("target overrides %+v", w[0])
	}
	if w[1].BatchSize != 0 || w[1].Timeout != 0 || w[1].RetryFor != 0 {
		t.Errorf("a target without overrides keeps zeros: %+v", w[1])
	}
}

func TestWebhookSettingsErrors(t *testing.T) {
	const app = "apps:\n  - {id: a, key: a, secret: s, webhooks: [{url: 'https://x', event_types: [client_event], "
	tests := []struct{ yaml, want string }{
		{"webhook_batch_window: 0", "webhook_batch_window: must be a duration between 1ms and 1m"},
		{"webhook_batch_window: 2m", "webhook_batch_window: must be a duration between 1ms and 1m"},
		{"webhook_batch_size: 0", "webhook_batch_size: must be a number of events between 1 and 1000, got 0"},
		{"webhook_batch_size: many", `webhook_batch_size: must be a number of events between 1 and 1000, got "many"`},
		{"webhook_timeout: 10ms", "webhook_timeout: must be a duration between 100ms and 5m (e.g. \"4s\", \"500ms\", or 4 for seconds), got 10ms"},
		{"webhook_retry_for: 0", "webhook_retry_for: must be a duration between 1s and 24h"},
		{"webhook_retry_for: 48h", "webhook_retry_for: must be a duration between 1s and 24h"},
		{"webhook_backoff_min: 1ms", "webhook_backoff_min: must be a duration between 10ms and 1h"},
		{"webhook_backoff_min: 10s\nwebhook_backoff_max: 5s", "webhook_backoff_max: must be at least webhook_backoff_min (10s), got 5s"},
		{"webhook_queue_size: -1", "webhook_queue_size: must be a number between 1 and 10000000, got -1"},
		{"webhook_max_pending: 0", "webhook_max_pending: must be a number between 1 and 10000000, got 0"},
		{"webhook_workers: 0", "webhook_workers: must be a number between 1 and 1024, got 0"},
		{"webhook_presence_delay: -1s", "webhook_presence_delay: must be 0s (no delay) or a duration up to 1m"},
		{"webhook_presence_delay: 5m", "webhook_presence_delay: must be 0s (no delay) or a duration up to 1m"},
		{app + "batch_size: 5000}]}", "apps[0].webhooks[0].batch_size: must be 0 (webhook_batch_size) or a number of events between 1 and 1000, got 5000"},
		{app + "batch_size: -1}]}", "apps[0].webhooks[0].batch_size: must be 0 (webhook_batch_size) or a number of events between 1 and 1000, got -1"},
		{app + "timeout: 1ms}]}", "apps[0].webhooks[0].timeout: must be 0 (webhook_timeout) or a duration between 100ms and 5m"},
		{app + "timeout: soon}]}", `apps[0].webhooks[0].timeout: must be 0 (webhook_timeout) or a duration between 100ms and 5m (e.g. "4s", "500ms", or 4 for seconds), got "soon"`},
		{app + "retry_for: 500ms}]}", "apps[0].webhooks[0].retry_for: must be 0 (webhook_retry_for) or a duration between 1s and 24h"},
		{app + "retry_for: 25h}]}", "apps[0].webhooks[0].retry_for: must be 0 (webhook_retry_for) or a duration between 1s and 24h"},
		{app + "headers: {x-herald-batch-id: a}}]}", "apps[0].webhooks[0].headers.x-herald-batch-id: is set by Herald on every webhook and cannot be overridden"},
		{app + "headers: {Host: a}}]}", "apps[0].webhooks[0].headers.Host: is set by Herald"},
		{app + "timeouts: 1s}]}", `apps[0].webhooks[0]: unknown key "timeouts" (did you mean "timeout"?)`},
	}
	for _, tt := range tests {
		t.Run(tt.yaml, func(t *testing.T) {
			p := writeConfig(t, tt.yaml)
			_, err := Load(Source{File: p})
			wantErrs(t, err, "config "+p+" line ", tt.want)
		})
	}
	_, err := Load(Source{Env: env(map[string]string{"HERALD_WEBHOOK_TIMEOUT": "forever"})})
	wantErrs(t, err, `env HERALD_WEBHOOK_TIMEOUT: must be a duration between 100ms and 5m`)
	_, err = Load(Source{Flags: map[string]string{"webhook_batch_size": "0"}})
	wantErrs(t, err, `flag --webhook-batch-size: must be a number of events between 1 and 1000, got 0`)
}

// Validate checks a Config built in code the same way.
func TestWebhookSettingsValidate(t *testing.T) {
	c := Default()
	c.WebhookWorkers = 0
	c.Apps[0].Webhooks = []apps.Webhook{{URL: "https://x", EventTypes: []string{"client_event"}, Timeout: time.Hour}}
	err := c.Validate()
	wantErrs(t, err, "webhook_workers: must be a number between 1 and 1024", "apps[0].webhooks[0].timeout: must be 0 (webhook_timeout)")
	if n := strings.Count(err.Error(), "\n") + 1; n != 2 {
		t.Errorf("%d errors, want 2: %v", n, err)
	}
}

// Every webhook key has flag help of its own, not the generic line.
func TestWebhookFlagHelp(t *testing.T) {
	for _, k := range scalarKeys() {
		if strings.HasPrefix(k, "webhook_") && !strings.Contains(flagUsage(t, k), "`") {
			t.Errorf("%s has no flag help", k)
		}
	}
}
