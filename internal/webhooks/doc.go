// Package webhooks delivers Pusher webhooks: it observes the hub (it is a
// hub.Observer), batches the events per app and target, signs each batch
// once and POSTs it with retries.
//
// The contract, as Pusher documents it (protocol reference §8):
//
//   - body {"time_ms":…,"events":[…]} with the seven event types
//     (channel_occupied, channel_vacated, member_added, member_removed,
//     client_event, cache_miss, subscription_count);
//   - headers Content-Type: application/json (exactly), X-Pusher-Key and
//     X-Pusher-Signature, the hex HMAC-SHA256 of the body bytes sent; a
//     target's extra headers never override them, nor X-Herald-Batch-Id;
//   - a 2xx within Timeout is success; timeouts, connection errors, 429 and
//     5xx are retried with exponential backoff and jitter for RetryFor;
//     any other status is final.
//
// Delivery is at least once. A retried batch is the same request body (the
// same time_ms) with the same X-Herald-Batch-Id header, so a receiver can
// drop duplicates by that id.
//
// The Observer methods never block and never wait on the network: they
// append to a bounded intake queue and return. One goroutine batches, a few
// workers deliver. Whatever a bound refuses is counted in Stats (Dropped)
// and logged at a limited rate.
//
// Member events can be held for Options.PresenceDelay: a leave and a
// rejoin of the same user within it cancel out, as with Pusher. Counters
// are in Stats and, given Options.Registerer, in Prometheus metrics.
//
// Batches waiting for delivery or for a retry live in a Queue: in memory by
// default (lost on a crash; Close flushes them within its context), or in
// Redis (NewRedisQueue), where they survive a restart and a dead node's
// claimed batches return to the others after a lease.
package webhooks
