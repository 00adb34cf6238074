// Package enginetest is the conformance suite of Herald's engines: every
// hub.State and hub.Broker (the memory engine, the Redis engine, and those
// to come) passes it, so that they keep the one behaviour the contracts in
// internal/hub/interfaces.go describe.
package enginetest

import (
	"context"
	"testing"

	"github.com/herald-ws/herald/internal/hub"
)

// Node is one node of an engine under test.
type Node struct {
	State  hub.State
	Broker hub.Broker
	// History is the node's channel history (history.go); every node of a
	// cluster shares one history.
	History hub.History
}

// NewCluster returns n nodes of one new, empty cluster (a shared store, a
// shared bus), on the real clock, ready to serve: their Brokers deliver to
// whoever they are attached to. It cleans them up when t ends.
type NewCluster func(t *testing.T, n int) []Node

// Run runs the whole suite.
func Run(t *testing.T, newCluster NewCluster) {
	states := func(t *testing.T, n int) []hub.State {
		out := make([]hub.State, n)
		for i, nd := range newCluster(t, n) {
			out[i] = nd.State
		}
		return out
	}
	runState(t, func(t *testing.T) hub.State { return states(t, 1)[0] })
	runStateCluster(t, states)
	runUsers(t, states)
	runBroker(t, newCluster)
	runHistory(t, newCluster)
}

// runUsers checks UserOnline and UserOffline: idempotent, counted across
// nodes, one first and one last per user however the calls race.
func runUsers(t *testing.T, newNodes func(t *testing.T, n int) []hub.State) {
	ctx := context.Background()
	t.Run("users", func(t *testing.T) {
		ns := newNodes(t, 2)
		a, b := ns[0], ns[1]
		check := func(what string, gotFlag bool, gotCount int, err error, wantFlag bool, wantCount int) {
			t.Helper()
			if err != nil || gotFlag != wantFlag || gotCount != wantCount {
				t.Fatalf("%s: %v %d %v, want %v %d", what, gotFlag, gotCount, err, wantFlag, wantCount)
			}
		}
		first, n, err := a.UserOnline(ctx, "a", "u1", "1.1")
		check("first socket", first, n, err, true, 1)
		first, n, err = a.UserOnline(ctx, "a", "u1", "1.1")
		check("same socket again", first, n, err, false, 1)
		first, n, err = b.UserOnline(ctx, "a", "u1", "2.1")
		check("socket on the other node", first, n, err, false, 2)
		first, n, err = b.UserOnline(ctx, "b", "u1", "2.2")
		check("other app", first, n, err, true, 1)
		last, n, err := a.UserOffline(ctx, "a", "u1", "9.9")
		check("unknown socket", last, n, err, false, 2)
		last, n, err = a.UserOffline(ctx, "a", "u1", "1.1")
		check("one left", last, n, err, false, 1)
		last, n, err = a.UserOffline(ctx, "a", "u1", "1.1")
		check("offline twice", last, n, err, false, 1)
		last, n, err = b.UserOffline(ctx, "a", "u1", "2.1")
		check("last socket", last, n, err, true, 0)
		last, n, err = b.UserOffline(ctx, "a", "u1", "2.1")
		check("after the last", last, n, err, false, 0)
		// Users are not channels.
		if chs, err := a.Channels(ctx, "b", ""); err != nil || len(chs) != 0 {
			t.Fatalf("Channels lists users: %v %v", chs, err)
		}
	})
	t.Run("users concurrent", func(t *testing.T) {
		ns := newNodes(t, 2)
		runUsersConcurrent(t, ns)
	})
}
