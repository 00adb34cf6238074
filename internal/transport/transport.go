// Package transport is Herald's connection layer: it serves WebSocket
// clients at {prefix}/app/{key} and passes every other request to an
// http.Handler, on one port, plain or TLS.
//
// It is event-driven (github.com/lesismal/nbio, epoll): an idle connection
// holds no goroutine and no read buffer of its own. Outbound frames are
// queued per connection on a bounded queue and written by a small pool of
// flusher goroutines, several frames per write when they pile up.
//
// The contracts it meets the rest of Herald through are the hub's: each
// connection is a hub.Conn, admitted (or refused) by a hub.Admitter that
// returns its hub.Session; limits are reported to hub.Refusals under the
// hub.Limit* names. The transport gathers the facts of a connection
// (hub.ConnInfo) and leaves every admission decision to the hub. Nothing
// outside this package imports nbio.
package transport
