package hub

import (
	"github.com/herald-ws/herald/internal/protocol"
)

// PublishRequest is one validated event from the HTTP API (or an SDK) for
// one or more channels of an app.
type PublishRequest struct {
	Name     string
	Channels []string
	Data     string
	// ExceptSocketID is the socket that must not receive the event
	// (Laravel's toOthers()).
	ExceptSocketID string
}

// ChannelInfo answers the HTTP API's channel queries.
type ChannelInfo struct {
	Name              string
	Kind              protocol.Kind
	Occupied          bool
	SubscriptionCount int
	UserCount         int
	// Cache is set for cache channels holding an event.
	Cache *CacheInfo
}

// CacheInfo is a cached event and its remaining lifetime in seconds.
type CacheInfo struct {
	Event string
	Data  string
	TTL   int
}
