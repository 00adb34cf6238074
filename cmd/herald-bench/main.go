// Command herald-bench is Herald's load tool: it drives any Pusher-protocol
// server (Herald, soketi, Reverb, …) over WebSocket and the signed HTTP API
// and measures it from the outside (bench/README.md, docs/benchmarks.md).
//
// Usage:
//
//	herald-bench idle|fanout|churn [flags]
//	herald-bench help [scenario]
//
// It is a binary of its own so that the server never links the load tool
// and its client libraries (its own epoll receiver, gorilla and gobwas);
// `make build` builds it as bin/herald-bench beside bin/herald.
//
// Exit codes: 0 when the run completed, 1 when it failed (too many
// connection failures, nothing delivered), 2 for a usage error.
package main

import (
	"os"

	"github.com/herald-ws/herald/internal/loadtest"
)

func main() {
	os.Exit(loadtest.Main(os.Args[1:], os.Stdout, os.Stderr))
}
