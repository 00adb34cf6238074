// Package protocol holds the Pusher Channels protocol v7 as Herald speaks it:
// the wire messages in both directions, channel kinds and name rules, error
// and close codes, and every HMAC signature (channel auth, user sign-in, the
// HTTP API and webhooks). It does no I/O and keeps no state, so the hub, the
// transports, the HTTP API and the SDKs can all share it.
package protocol
