package hub

import (
	"strconv"
	"sync/atomic"

	"github.com/herald-ws/herald/internal/apps"
	"github.com/herald-ws/herald/internal/protocol"
)

// Ghosts: a subscription the State may still hold after the hub let go of
// it, because the State call that should have removed it (an unsubscribe,
// a disconnect) or that may have added it (a subscribe that failed or timed
// out: it may have run all the same) returned an error. Left alone, a
// ghost keeps a presence member without member_removed, a channel without
// channel_vacated, counts too high and max_presence_members partly filled,
// until the node's lease ends. The hub keeps each one and retries the
// removal (repairGhosts, every second, on the goroutine that does the
// hub's State work, never on the timer goroutine). The State decides what
// the removal means (last socket of the user, channel vacated) exactly as
// for a normal leave, so the follow-up events happen once.
//
// A leave that timed out may still have been applied afterwards: the retry
// then finds nothing to remove. With a RepairState every attempt at one
// leave carries the same op, and the State keeps the outcome of the
// attempt that removed the socket under it, so the retry reports that
// outcome; the hub acts on the first answer it gets for a ghost and then
// forgets the ghost, so the follow-ups happen once whichever attempt did
// the removal. Without one (the memory State, which cannot time out after
// applying) a removal of something the State does not hold sends nothing.

// maxGhosts bounds the ghosts kept; past it the oldest are left to the
// lease tick's reconciliation (Reconcile) and the node's lease.
const maxGhosts = 100000

type ghostKey struct{ app, channel, socket string }

type ghost struct {
	app  *apps.App
	kind protocol.Kind
	// op names the leave for RepairState.Leave: the one that failed, or a
	// new one for a subscribe that failed or an entry Reconcile found.
	op string
	// stale: found by Reconcile rather than left by a failed call.
	stale bool
}

// RepairCounts count what the hub repaired in the State since it started.
type RepairCounts struct {
	// Ghosts are subscriptions removed by a retry after a failed or timed
	// out call (the removal itself or its lost outcome).
	Ghosts uint64
	// Stale are entries the State held for this node without a local
	// subscription or sign-in, found and removed by Reconcile.
	Stale uint64
	// Restored are local subscriptions and sign-ins the State had lost,
	// recorded again by Reconcile.
	Restored uint64
}

type repairCounters struct{ ghosts, stale, restored atomic.Uint64 }

// Repairs returns what the hub repaired in the State so far (metrics).
func (h *Hub) Repairs() RepairCounts {
	return RepairCounts{Ghosts: h.repairs.ghosts.Load(), Stale: h.repairs.stale.Load(), Restored: h.repairs.restored.Load()}
}

// newOp names a new leave of socketID: unique in the cluster because
// socket ids are.
func (h *Hub) newOp(socketID string) string {
	buf := make([]byte, 0, 64)
	buf = append(append(buf, socketID...), ':')
	return string(strconv.AppendUint(buf, h.ops.Add(1), 36))
}

// stateLeave removes socketID from channel in the State under op.
func (h *Hub) stateLeave(appID, channel, socketID, op string) (UnsubscribeResult, error) {
	ctx, cancel := h.stateCtx()
	defer cancel()
	if rs, ok := h.state.(RepairState); ok {
		return rs.Leave(ctx, appID, channel, socketID, op)
	}
	return h.state.Unsubscribe(ctx, appID, channel, socketID)
}

// addGhost records that the State may hold socketID's subscription to
// name; op is the failed leave's, or "" for a new one. It reports whether
// the ghost was kept.
func (h *Hub) addGhost(app *apps.App, name, socketID string, kind protocol.Kind, op string) bool {
	if op == "" {
		op = h.newOp(socketID)
	}
	h.ghostMu.Lock()
	defer h.ghostMu.Unlock()
	if h.ghosts == nil {
		h.ghosts = make(map[ghostKey]ghost)
	}
	k := ghostKey{app.ID, name, socketID}
	if _, ok := h.ghosts[k]; ok {
		return true
	}
	if len(h.ghosts) >= maxGhosts {
		h.burst.Warn("too many subscriptions awaiting removal from the shared state; left to the lease tick", "app_id", app.ID, "channel", name)
		return false
	}
	h.ghosts[k] = ghost{app: app, kind: kind, op: op}
	return true
}

func (h *Hub) hasGhost(k ghostKey) bool {
	h.ghostMu.Lock()
	defer h.ghostMu.Unlock()
	_, ok := h.ghosts[k]
	return ok
}

// Ghosts returns how many subscriptions await removal from the State.
func (h *Hub) Ghosts() int {
	h.ghostMu.Lock()
	defer h.ghostMu.Unlock()
	return len(h.ghosts)
}

// repairGhosts retries the removal of every ghost once.
func (h *Hub) repairGhosts() {
	h.ghostMu.Lock()
	if len(h.ghosts) == 0 {
		h.ghostMu.Unlock()
		return
	}
	keys := make([]ghostKey, 0, len(h.ghosts))
	for k := range h.ghosts {
		keys = append(keys, k)
	}
	h.ghostMu.Unlock()
	for _, k := range keys {
		h.repairGhost(k)
	}
}

// repairGhost retries one ghost's removal; it reports whether the ghost is
// settled (removed, or found live).
func (h *Hub) repairGhost(k ghostKey) bool {
	h.repairMu.Lock()
	defer h.repairMu.Unlock()
	// Serialised with the socket's own messages: a socket that subscribed
	// again meanwhile holds a live subscription, and that is the truth.
	if c := h.client(k.socket); c != nil {
		c.op.Lock()
		defer c.op.Unlock()
		c.mu.Lock()
		live := !c.gone && c.subs.get(k.channel) != nil
		c.mu.Unlock()
		if live {
			h.dropGhost(k)
			return true
		}
	}
	h.ghostMu.Lock()
	g, ok := h.ghosts[k]
	h.ghostMu.Unlock()
	if !ok {
		return true // settled by another pass meanwhile
	}
	if g.kind.IsPresence() {
		unlock := h.lockPresence(chanKey{k.app, k.channel})
		defer unlock()
	}
	res, err := h.stateLeave(k.app, k.channel, k.socket, g.op)
	if err != nil {
		return false // next time
	}
	h.dropGhost(k)
	if res.Removed {
		if g.stale {
			h.repairs.stale.Add(1)
		} else {
			h.repairs.ghosts.Add(1)
		}
		h.log.Info("removed a subscription left in the shared state by a failed call", "app_id", k.app, "channel", k.channel, "socket_id", k.socket)
	}
	h.afterLeave(g.app, k.channel, g.kind, res)
	if !res.Removed && g.app.EnableSubscriptionCount && !g.kind.IsPresence() && g.kind != protocol.ServerToUser {
		// A late removal changes the count without telling anyone.
		h.markCountDirty(g.app, k.channel)
	}
	return true
}

func (h *Hub) dropGhost(k ghostKey) {
	h.ghostMu.Lock()
	delete(h.ghosts, k)
	h.ghostMu.Unlock()
}
