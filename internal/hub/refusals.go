package hub

// Refusals counts what the limits refuse; the metrics package implements
// it. limit is one of the Limit* names (the config key of the limit).
// Refused must not block: it runs on the message path.
type Refusals interface {
	Refused(appID, limit string)
}

// The limits the hub enforces, named by their config keys.
const (
	LimitConnections           = "max_connections"
	LimitChannelsPerConnection = "max_channels_per_connection"
	LimitPresenceMembers       = "max_presence_members"
	LimitPresenceMemberSize    = "max_presence_member_size_kb"
	LimitClientEvents          = "client_events_per_second"
	LimitEventNameLength       = "max_event_name_length"
	LimitChannelNameLength     = "max_channel_name_length"
	LimitEventPayload          = "max_event_payload_kb"
	LimitEventChannels         = "max_event_channels_at_once"
	LimitBackendEvents         = "max_backend_events_per_second"
)

func (h *Hub) refused(appID, limit string) {
	if r := h.opt.Refusals; r != nil {
		r.Refused(appID, limit)
	}
}
