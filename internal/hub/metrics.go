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

// fanoutDone reports a fanout that started at at (see Metrics.Fanout).
func (h *Hub) fanoutDone(appID string, src Source, deliveries int, at int64) {
	if m := h.opt.Metrics; m != nil {
		m.Fanout(appID, src, deliveries, time.Duration(h.clock()-at))
	}
}

// fanoutStart is the start of a fanout on the shared monotonic clock (see
// Options.Epoch). It is also the timestamp the
// fanout's frames carry to Conn.Send, so that the transport can measure
// delivery up to the socket write.
func (h *Hub) fanoutStart() int64 {
	// Always stamped, metrics or not: the stamp is also what tells the
	// transport a fanout frame from a reply (Conn.Send), and what its
	// saturation delay is measured on.
	return h.clock()
}

// clock reads the shared monotonic clock: nanoseconds since Options.Epoch,
// never 0 (0 means "not measured" to Conn.Send).
func (h *Hub) clock() int64 {
	return max(int64(time.Since(h.opt.Epoch)), 1)
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
