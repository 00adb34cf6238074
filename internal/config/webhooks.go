package config

// webhookSettings checks what the ranges alone cannot.
func (v *validator) webhookSettings(c *Config) {
	if c.WebhookBackoffMax < c.WebhookBackoffMin {
		v.add("webhook_backoff_max", "must be at least webhook_backoff_min (%s), got %s", c.WebhookBackoffMin, c.WebhookBackoffMax)
	}
}
