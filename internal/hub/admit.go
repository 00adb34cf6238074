package hub

import (
	"context"
	"errors"
	"net/netip"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/herald-ws/herald/internal/apps"
	"github.com/herald-ws/herald/internal/guard"
	"github.com/herald-ws/herald/internal/protocol"
)

// Admitter admits connections: *Hub implements it, the transport calls it
// once per upgraded WebSocket connection.
type Admitter interface {
	// Admit decides whether the connection described by info is admitted
	// (protocol §1.2). On success the session has already queued
	// pusher:connection_established through conn.Send. To refuse it
	// returns a *ConnectError with the Pusher close code and message the
	// transport sends and closes with; any other error refuses with 4100.
	//
	// Admit runs before any message of the connection is handled; it may
	// block briefly (it runs on a worker goroutine, not on the event loop).
	// ctx bounds it (the transport's lifetime).
	Admit(ctx context.Context, conn Conn, info ConnInfo) (Session, error)
}

// Session is the hub's side of one admitted connection; *Client
// implements it.
//
// HandleMessage, Touch and Closed are called serially for one connection:
// never concurrently with one another, and never after Closed.
type Session interface {
	// HandleMessage receives one complete client message (text or binary,
	// reassembled from its fragments; text is valid UTF-8). msg belongs to
	// the session: the transport does not reuse it.
	HandleMessage(msg []byte)
	// Touch reports inbound activity: it is called before every message and
	// on every ping, pong and close control frame.
	Touch()
	// Closed reports that the socket is gone, whatever the reason. It is
	// called exactly once, after the last HandleMessage.
	Closed()
}

// RateLimited is implemented by a Session that answers a message the
// transport's per-connection rate refused itself (*Client answers a
// refused subscribe with pusher:subscription_error, so that the client's
// subscription fails instead of waiting forever). Without it the transport
// answers pusher:error 4301.
type RateLimited interface {
	RateLimited(msg []byte)
}

// ConnInfo is what the transport learnt of a connection's client, the
// facts Admit decides on.
type ConnInfo struct {
	// Key is the app key of the path ({prefix}/app/{key}).
	Key string
	// Protocol is the protocol query parameter, when HasProtocol (absent
	// means 7).
	Protocol    string
	HasProtocol bool
	RemoteAddr  string // the socket's peer
	Origin      string
	UserAgent   string
	// TLS is true when the client connected over TLS: to this server, or
	// to a trusted proxy that said so in X-Forwarded-Proto.
	TLS bool
	// ClientIP is the client's address: the peer, or the address a trusted
	// proxy named in X-Forwarded-For.
	ClientIP netip.Addr
}

// AppLookup finds an app by its key or id; apps.Store satisfies it. It
// returns an error matching apps.ErrNotFound (errors.Is) for an unknown one.
type AppLookup interface {
	ByKey(ctx context.Context, key string) (*apps.App, error)
	ByID(ctx context.Context, id string) (*apps.App, error)
}

// NodeLimits are the limits of the whole node that Admit applies before
// an app's own. Zero values are no limit.
type NodeLimits struct {
	// MaxConnections caps the admitted connections of the node, all apps
	// together (max_node_connections).
	MaxConnections int
	// IPConnectionsPerSecond limits new connections per public client
	// address (an IPv6 client by its /64), with bursts of
	// IPConnectionsBurst (ip_connections_per_second).
	IPConnectionsPerSecond float64
	IPConnectionsBurst     int
	// IPExempt are the client addresses the per-IP limit never charges
	// (ip_limit_exempt).
	IPExempt []netip.Prefix
	// MemoryLimit (bytes) and MemoryGuardPercent: while the process uses
	// more than the percentage of the limit, new connections are refused
	// (memory_guard_percent).
	MemoryLimit        int64
	MemoryGuardPercent int
}

// ConnectError refuses a connection at admission with a Pusher close code:
// the transport sends it as pusher:error and closes with the same code and
// message.
type ConnectError struct {
	Code    int
	Message string
}

func (e *ConnectError) Error() string { return e.Message }

// CloseCode is the Pusher close code the connection is refused with.
func (e *ConnectError) CloseCode() int { return e.Code }

// appLookupTimeout bounds the app lookup of one admission.
const appLookupTimeout = 5 * time.Second

// admission is the state of the node's own limits.
type admission struct {
	lookup AppLookup
	limits NodeLimits
	ip     *guard.IPLimiter // nil: no per-IP limit
	mem    *guard.Memory    // nil: no memory guard
	// admitted counts the node's connections, and the admissions under way
	// past the node cap's check.
	admitted atomic.Int64
}

func (a *admission) init(o Options) {
	a.lookup, a.limits = o.Apps, o.NodeLimits
	if l := o.NodeLimits; l.IPConnectionsPerSecond > 0 {
		a.ip = guard.NewIPLimiter(l.IPConnectionsPerSecond, l.IPConnectionsBurst, 0).Exempt(l.IPExempt)
	}
	a.mem = guard.NewMemory(o.NodeLimits.MemoryLimit, o.NodeLimits.MemoryGuardPercent)
}

// Admit implements Admitter.
func (h *Hub) Admit(ctx context.Context, conn Conn, info ConnInfo) (Session, error) {
	c, err := h.admit(ctx, conn, info, h.adm.lookup)
	if err != nil {
		return nil, err
	}
	return c, nil
}

// admit is the one place where a connection is admitted or refused, in
// the order of protocol §1.2: the protocol version, the node's own limits
// (cheapest first; all answer 4100, so that pusher-js backs off and tries
// again), the app and its settings, then draining and the app's quota.
// Close codes, messages and the limits counted are part of the protocol
// and of the metrics: they do not change.
func (h *Hub) admit(ctx context.Context, conn Conn, info ConnInfo, lookup AppLookup) (*Client, error) {
	if code, msg := checkProtocol(info); code != 0 {
		return nil, &ConnectError{Code: code, Message: msg}
	}
	a := &h.adm
	if a.ip != nil && !a.ip.Allow(info.ClientIP, h.now()) {
		return nil, h.refuseLimit("", LimitIPConnections, "Over capacity: too many new connections from your address")
	}
	// A slot is taken before the app is looked up, so that concurrent
	// admissions cannot pass the cap together; any refusal below gives it
	// back, an admitted connection when it closes (removeClient).
	a.admitted.Add(1)
	admitted := false
	defer func() {
		if !admitted {
			a.admitted.Add(-1)
		}
	}()
	if max := a.limits.MaxConnections; max > 0 && a.admitted.Load() > int64(max) {
		return nil, h.refuseLimit("", LimitNodeConnections, "Over capacity")
	}
	if a.mem != nil && a.mem.OverLimit() {
		return nil, h.refuseLimit("", LimitMemory, "Over capacity")
	}
	app, err := lookupApp(ctx, lookup, info.Key)
	switch {
	case errors.Is(err, apps.ErrNotFound) || (err == nil && app == nil):
		return nil, &ConnectError{Code: protocol.CodeAppNotFound, Message: "Application does not exist"}
	case err != nil:
		h.log.Warn("app lookup failed", "err", err)
		return nil, &ConnectError{Code: protocol.CodeOverCapacity, Message: "Over capacity"}
	case app.RequireTLS && !info.TLS:
		h.refused(app.ID, LimitRequireTLS)
		return nil, &ConnectError{Code: protocol.CodeSSLOnly, Message: "Application only accepts SSL connections, reconnect using wss://"}
	case !app.Enabled:
		return nil, &ConnectError{Code: protocol.CodeAppDisabled, Message: "Application disabled"}
	case !originAllowed(app.AllowedOrigins, info.Origin):
		h.refused(app.ID, LimitOrigin)
		return nil, &ConnectError{Code: protocol.CodeUnauthorized, Message: "Origin not allowed"}
	}
	// The refusals above are the node's; from here on they are the app's.
	conn.Bind(app.ID)
	c, err := h.connect(app, conn)
	if err != nil {
		return nil, err
	}
	admitted = true
	return c, nil
}

// lookupApp finds the app of key, within appLookupTimeout.
func lookupApp(ctx context.Context, lookup AppLookup, key string) (*apps.App, error) {
	if lookup == nil {
		return nil, apps.ErrNotFound
	}
	ctx, cancel := withLazyTimeout(ctx, appLookupTimeout)
	defer cancel()
	return lookup.ByKey(ctx, key)
}

// refuseLimit counts a refusal of one of the node's limits and returns its
// 4100.
func (h *Hub) refuseLimit(appID, limit, msg string) error {
	h.refused(appID, limit)
	return &ConnectError{Code: protocol.CodeOverCapacity, Message: msg}
}

// checkProtocol validates the protocol query parameter: absent is 7.
func checkProtocol(info ConnInfo) (int, string) {
	if !info.HasProtocol {
		return 0, ""
	}
	n, err := strconv.Atoi(info.Protocol)
	if err != nil {
		return protocol.CodeInvalidVersion, "Invalid version string format"
	}
	if n < protocol.MinProtocolVersion || n > protocol.MaxProtocolVersion {
		return protocol.CodeUnsupportedProtocol, "Unsupported protocol version"
	}
	return 0, ""
}
