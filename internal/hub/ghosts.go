package hub

import (
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
// for a normal leave, so the follow-up events happen once; a removal of
// something the State does not hold changes nothing and sends nothing.

// maxGhosts bounds the ghosts kept; past it the oldest are left to the
// node's lease (a Redis outage that long is one the lease handles).
const maxGhosts = 100000

type ghostKey struct{ app, channel, socket string }

type ghost struct {
	c    *Client
	app  *apps.App
	kind protocol.Kind
}

// addGhost records that the State may hold c's subscription to name.
func (h *Hub) addGhost(c *Client, name string, kind protocol.Kind) {
	h.ghostMu.Lock()
	defer h.ghostMu.Unlock()
	if h.ghosts == nil {
		h.ghosts = make(map[ghostKey]ghost)
	}
	if len(h.ghosts) >= maxGhosts {
		h.log.Warn("too many subscriptions awaiting removal from the shared state; left to the node lease", "app_id", c.App().ID, "channel", name)
		return
	}
	app := c.App()
	h.ghosts[ghostKey{app.ID, name, c.id}] = ghost{c: c, app: app, kind: kind}
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
		h.ghostMu.Lock()
		g, ok := h.ghosts[k]
		h.ghostMu.Unlock()
		if ok {
			h.repairGhost(k, g)
		}
	}
}

func (h *Hub) repairGhost(k ghostKey, g ghost) {
	// Serialised with the socket's own messages: a socket that subscribed
	// again meanwhile holds a live subscription, and that is the truth.
	g.c.op.Lock()
	defer g.c.op.Unlock()
	g.c.mu.Lock()
	live := !g.c.gone && g.c.subs.get(k.channel) != nil
	g.c.mu.Unlock()
	if live {
		h.dropGhost(k)
		return
	}
	ck := chanKey{k.app, k.channel}
	if g.kind.IsPresence() {
		unlock := h.lockPresence(ck)
		defer unlock()
	}
	ctx, cancel := h.stateCtx()
	res, err := h.state.Unsubscribe(ctx, k.app, k.channel, k.socket)
	cancel()
	if err != nil {
		return // next time
	}
	h.dropGhost(k)
	if res.Removed {
		h.log.Info("removed a subscription left in the shared state by a failed call", "app_id", k.app, "channel", k.channel, "socket", k.socket)
	}
	h.afterLeave(g.app, k.channel, g.kind, res)
}

func (h *Hub) dropGhost(k ghostKey) {
	h.ghostMu.Lock()
	delete(h.ghosts, k)
	h.ghostMu.Unlock()
}
