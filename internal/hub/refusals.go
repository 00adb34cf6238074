package hub

// Refusals counts what the limits refuse; the metrics package implements
// it. appID is "" for a limit of the whole node. limit is one of the Limit*
// names below. Refused must not block: it runs on the message and request
// paths. The hub, the transport, the HTTP API and ingest all report here.
type Refusals interface {
	Refused(appID, limit string)
}

// The limits Herald enforces, each named by its config key: the names are
// the limit label of herald_refusals_total, so they never change.
const (
	// The node's own limits (appID ""), and the connection's.
	LimitIPConnections   = "ip_connections_per_second"
	LimitNodeConnections = "max_node_connections"
	LimitMemory          = "memory_guard_percent"
	LimitWriteQueue      = "write_queue_kb"
	LimitMessageSize     = "max_message_size_kb"
	LimitMessages        = "connection_messages_per_second"
	LimitPendingMessages = "connection_pending_messages"
	LimitOutboundBudget  = "outbound_budget_mb"
	LimitSaturationDelay = "saturation_delay"
	LimitWorkers         = "max_workers"
	LimitRequestBody     = "max_request_body_kb"

	// The app's limits.
	LimitConnections           = "max_connections"
	LimitOrigin                = "allowed_origins"
	LimitRequireTLS            = "require_tls"
	LimitChannelsPerConnection = "max_channels_per_connection"
	LimitPresenceMembers       = "max_presence_members"
	LimitPresenceMemberSize    = "max_presence_member_size_kb"
	LimitClientEvents          = "client_events_per_second"
	LimitEventNameLength       = "max_event_name_length"
	LimitChannelNameLength     = "max_channel_name_length"
	LimitEventPayload          = "max_event_payload_kb"
	LimitEventChannels         = "max_event_channels_at_once"
	LimitBackendEvents         = "max_backend_events_per_second"
	LimitReadRequests          = "max_read_requests_per_second"
	LimitBatchSize             = "max_event_batch_size"
)

func (h *Hub) refused(appID, limit string) {
	if r := h.opt.Refusals; r != nil {
		r.Refused(appID, limit)
	}
}
