// Package ingest receives what Laravel's redis broadcaster publishes and
// broadcasts it as if it had come through the HTTP API.
//
// Laravel's RedisBroadcaster (BROADCAST_DRIVER/BROADCAST_CONNECTION=redis)
// runs one EVAL that PUBLISHes json_encode(['event' => ..., 'data' =>
// $payload, 'socket' => $socketOrNull]) to prefix+channel for each channel,
// where prefix is the Redis connection's prefix option
// (database.redis.options.prefix, "laravel_database_" by default). For
// each app whose apps.App.LaravelRedis is set, an Ingester PSUBSCRIBEs
// prefix* on that Redis and hands each message to the same Publisher the
// HTTP API uses, after the same checks (hub.ValidatePublish) and the same
// per-app rate limit (hub.RateLimits, max_backend_events_per_second). data
// is sent to clients as its JSON text without Laravel's "socket" member,
// byte for byte what the pusher broadcaster sends; socket excludes that
// connection (toOthers()).
//
// Once per cluster: every node would receive each PUBLISH, so in a cluster
// a node ingests an app only while it holds the app's lease in the
// cluster's Redis (Leases: SET NX PX, renewed at a third of its TTL,
// released on Close). A node stops ingesting when it has not renewed for a
// TTL measured from before its last renewal was sent, which is no later
// than Redis expires the key, so two nodes never ingest the same app at
// once: delivery is at most once. Redis pub/sub keeps nothing, so what
// Laravel publishes while no node is subscribed is lost: from a crash of
// the holder until its lease expires and another node takes it (at most
// TTL plus the Poll interval, 10 s + 1 s by default), for about Poll after
// a graceful stop (the lease is released), and while Laravel's Redis is
// unreachable.
//
// Bad messages (not JSON, missing or mistyped fields, data over the limit,
// bad names, rate limited) are counted per app and result through
// Recorder and logged at most once per LogEvery per app with the number
// left out; they never stop the subscription.
//
// The node's saturation signal (Options.Saturation, the one the HTTP API
// answers 503 by) holds a message for at most Options.SaturatedWait per
// saturated spell; what still finds the node saturated is dropped and
// counted as ResultSaturated.
package ingest
