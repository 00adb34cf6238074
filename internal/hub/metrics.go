package hub

import "time"

// Source says where a message the hub fans out came from.
type Source uint8

// The sources of messages.
const (
	// SourceAPI is an event published through the HTTP API.
	SourceAPI Source = iota
	// SourceClient is a client event (client-*) sent by a connection.
	SourceClient
	// SourceCluster is a message published by another node.
	SourceCluster
	// SourceServer is a message the hub makes itself: member_added,
	// member_removed, subscription_count.
	SourceServer
)

// String is the source's metric label.
func (s Source) String() string {
	switch s {
	case SourceAPI:
		return "api"
	case SourceClient:
		return "client"
	case SourceCluster:
		return "cluster"
	case SourceServer:
		return "server"
	}
	return "unknown"
}

// Metrics counts what the hub fans out. It is optional: a nil Metrics
// costs one nil check per message. Its methods are called synchronously,
// once per message and channel (never per recipient), and must not block.
type Metrics interface {
	// Fanout reports one message from src for appID queued on deliveries
	// local sockets; elapsed runs from the moment the hub was handed the
	// message until the last local socket had it on its write queue.
	Fanout(appID string, src Source, deliveries int, elapsed time.Duration)
}

// fanoutDone reports a fanout that started at start (see Metrics.Fanout).
func (h *Hub) fanoutDone(appID string, src Source, deliveries int, start time.Time) {
	if m := h.opt.Metrics; m != nil {
		m.Fanout(appID, src, deliveries, time.Since(start))
	}
}

// fanoutStart is the start time of a fanout, or zero when nobody measures.
func (h *Hub) fanoutStart() time.Time {
	if h.opt.Metrics == nil {
		return time.Time{}
	}
	return time.Now()
}

// EachLocalChannel calls f for every channel that has a subscriber on this
// node, with its number of local subscribers, for metrics collected when
// scraped. It holds one shard's read lock at a time: f must be quick and
// must not call into the hub.
func (h *Hub) EachLocalChannel(f func(appID, channel string, subscribers int)) {
	for i := range h.channels {
		sh := &h.channels[i]
		sh.mu.RLock()
		for k, lc := range sh.m {
			lc.mu.RLock()
			n := len(lc.list)
			lc.mu.RUnlock()
			if n > 0 {
				f(k.app, k.name, n)
			}
		}
		sh.mu.RUnlock()
	}
}
