// Package transport is Herald's connection layer: it serves WebSocket
// clients at {prefix}/app/{key} and passes every other request to an
// http.Handler, on one port, plain or TLS.
//
// It is event-driven (github.com/lesismal/nbio, epoll): an idle connection
// holds no goroutine and no read buffer of its own. Outbound frames are
// queued per connection on a bounded queue and written by a small pool of
// flusher goroutines, several frames per write when they pile up.
//
// The rest of Herald meets this package only through the interfaces below;
// nothing outside it imports nbio.
package transport

import (
	"context"
	"errors"
	"net/netip"

	"github.com/herald-ws/herald/internal/apps"
)

// Sessions admits connections. The hub satisfies it through a small adapter.
type Sessions interface {
	// Open admits a connection that passed the protocol checks for app
	// (protocol version, key, TLS, enabled, origin). On success the session
	// has already queued pusher:connection_established through conn.Send.
	// To refuse, it returns an error that implements CloseCoder (for example
	// a *RefusedError) carrying a Pusher close code: 4004 over quota, 4100
	// over capacity, 4200 draining. Any other error refuses with 4100.
	//
	// Open runs before any message of the connection is handled; it may
	// block briefly (it runs on a worker goroutine, not on the event loop).
	Open(app *apps.App, conn Conn, info ConnInfo) (Session, error)
}

// Session is the hub's side of one admitted connection.
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

// Conn is what a session is given to talk to its client. Its methods may be
// called from any goroutine, concurrently, also after the connection has
// closed (they are then no-ops).
type Conn interface {
	// Send queues frame, a complete unmasked WebSocket frame such as
	// TextFrame returns. frame may be shared with other connections: it is
	// never modified and not retained after it is written. Send never
	// blocks. It returns false when the connection is closing or closed,
	// or when the queue would pass its byte bound; in that last case the
	// connection is closed with 4100 (slow consumer) and what was still
	// queued is dropped.
	//
	// at, when not 0, is when the message was published, in nanoseconds
	// since Config.Epoch: once the frame is written to the socket, the
	// time since the oldest such frame of the write is reported to
	// AppMetrics.DeliveryLatency.
	Send(frame []byte, at int64) bool
	// Close writes what is queued, then a close frame with code and reason
	// (reason cut to 123 bytes), then closes the socket once the client has
	// answered or after a short timeout. Only the first call counts.
	Close(code int, reason string)
}

// ConnInfo describes the client of a connection at admission.
type ConnInfo struct {
	RemoteAddr string // the socket's peer
	Origin     string
	UserAgent  string
	// TLS is true when the client connected over TLS: to this server, or
	// to a trusted proxy that said so in X-Forwarded-Proto.
	TLS bool
	// ClientIP is the client's address: the peer, or the address a trusted
	// proxy named in X-Forwarded-For.
	ClientIP netip.Addr
}

// AppLookup finds an app by its key; apps.Store satisfies it. It returns an
// error matching apps.ErrNotFound (errors.Is) for an unknown key.
type AppLookup interface {
	ByKey(ctx context.Context, key string) (*apps.App, error)
}

// CloseCoder is implemented by errors that carry a Pusher close code.
type CloseCoder interface {
	CloseCode() int
}

// RefusedError refuses a connection with a Pusher close code and message.
type RefusedError struct {
	Code    int
	Message string
}

func (e *RefusedError) Error() string { return e.Message }

// CloseCode implements CloseCoder.
func (e *RefusedError) CloseCode() int { return e.Code }

// closeCodeOf returns the close code and message carried by err, if any.
func closeCodeOf(err error) (int, string, bool) {
	var cc CloseCoder
	if errors.As(err, &cc) {
		return cc.CloseCode(), err.Error(), true
	}
	return 0, "", false
}
