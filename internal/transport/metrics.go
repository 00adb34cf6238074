package transport

import "time"

// Metrics receives the transport's counts (Prometheus, in Herald). It is
// optional: with a nil Metrics the transport counts nothing and pays one
// nil check where it would.
type Metrics interface {
	// App returns the counters of one app ("" for a connection refused
	// before its app is known). The transport asks once per connection, at
	// admission, and keeps the result on the connection, so that counting
	// costs no lookup.
	App(appID string) AppMetrics
}

// AppMetrics counts one app's connections. Its methods are called from any
// goroutine, concurrently, and must not block.
type AppMetrics interface {
	// Opened counts an admitted connection.
	Opened()
	// Closed counts the end of an admitted connection with the close code
	// that ended it: the one we sent, the client's (1005 when its close
	// frame had none), or 1006 when the socket went without a close frame.
	Closed(code int)
	// Refused counts a connection refused at admission with a close code.
	Refused(code int)
	// SlowConsumer counts a connection closed because its write queue
	// passed its byte bound.
	SlowConsumer()
	// BytesIn counts the payload bytes of one message received.
	BytesIn(n int)
	// BytesOut counts bytes the kernel took from a socket.
	BytesOut(n int)
	// DeliveryLatency reports, once per write of queued frames to the
	// socket, the time from the publication of the oldest stamped frame
	// of the write (Conn.Send's at) until the write call returned.
	DeliveryLatency(d time.Duration)
}
