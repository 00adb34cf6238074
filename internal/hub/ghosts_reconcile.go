package hub

import (
	"context"
	"sync"

	"github.com/herald-ws/herald/internal/apps"
	"github.com/herald-ws/herald/internal/protocol"
)

// Reconciliation: on each lease tick the cluster has the hub compare what
// it holds (its sockets' subscriptions and sign-ins) with what the State
// holds under this node, and repair both ways. An entry the State holds
// that no local socket has (a subscribe applied after its caller gave up,
// a ghost past maxGhosts) is removed like a ghost, with the usual
// follow-ups, once; a local subscription or sign-in the State lost (a
// Redis that restarted without its data while the lease survived, a late
// leave that removed a re-subscription) is recorded again. Each pass looks
// at about reconcileBudget entries in each direction and the next one
// resumes where it stopped, so a tick's cost is bounded however many
// sockets the node has; it runs on the caller's goroutine, never on the
// hub's timers.

// reconcileBudget is about how many entries one pass examines in each
// direction (a page or a client shard may go past it).
const reconcileBudget = 5000

// holdsBatch is how many entries one Holds call asks about.
const holdsBatch = 500

// reconcileCursor is where the next pass resumes; mu makes passes take
// turns.
type reconcileCursor struct {
	mu     sync.Mutex
	apps   []string // the held apps being walked
	app    int      // index in apps
	cursor uint64   // Held cursor in apps[app]
	shard  int      // next client shard to check
}

// Reconcile runs one pass of the lease tick's reconciliation (see above).
// It does nothing unless the State is a RepairState. Options.Apps finds
// the app of an entry whose socket is no longer on this node. It returns when the
// pass is done or ctx ends.
func (h *Hub) Reconcile(ctx context.Context) {
	rs, ok := h.state.(RepairState)
	if !ok {
		return
	}
	r := &h.recon
	r.mu.Lock()
	defer r.mu.Unlock()
	h.reconcileStale(ctx, rs)
	h.reconcileMissing(ctx, rs)
}

// reconcileStale walks the State's entries for this node and removes those
// no local socket has.
func (h *Hub) reconcileStale(ctx context.Context, rs RepairState) {
	r := &h.recon
	if r.app >= len(r.apps) {
		sctx, cancel := context.WithTimeout(ctx, h.opt.StateTimeout)
		ids, err := rs.HeldApps(sctx)
		cancel()
		if err != nil {
			h.log.Warn("reconcile: state unavailable", "err", err)
			return
		}
		r.apps, r.app, r.cursor = ids, 0, 0
	}
	budget := reconcileBudget
	for budget > 0 && r.app < len(r.apps) && ctx.Err() == nil {
		appID := r.apps[r.app]
		sctx, cancel := context.WithTimeout(ctx, h.opt.StateTimeout)
		entries, next, err := rs.Held(sctx, appID, r.cursor)
		cancel()
		if err != nil {
			h.log.Warn("reconcile: state unavailable", "app_id", appID, "err", err)
			return // resumes here next time
		}
		budget -= max(len(entries), 1)
		var app *apps.App
		for _, e := range entries {
			if ctx.Err() != nil {
				return
			}
			if h.heldLocally(appID, e) {
				continue
			}
			if e.User != "" {
				h.removeStaleUser(ctx, appID, e)
				continue
			}
			if app == nil {
				if app = h.appOf(e.Socket, appID); app == nil && h.opt.Apps != nil {
					app, err = h.opt.Apps.ByID(ctx, appID)
					if err != nil {
						h.log.Warn("reconcile: app unknown, its entries stay", "app_id", appID, "err", err)
						app = nil
						break
					}
				}
				if app == nil {
					break
				}
			}
			k := ghostKey{appID, e.Channel, e.Socket}
			if h.hasGhost(k) {
				continue // the ghost repair has it
			}
			if h.addGhost(app, e.Channel, e.Socket, protocol.Classify(e.Channel), "") {
				h.markStale(k)
				h.repairGhost(k)
			}
		}
		if next == 0 {
			r.app++
			r.cursor = 0
		} else {
			r.cursor = next
		}
	}
}

// appOf returns the app of a local socket of appID, or nil.
func (h *Hub) appOf(socketID, appID string) *apps.App {
	if c := h.client(socketID); c != nil {
		if a := c.app.Load(); a.ID == appID {
			return a
		}
	}
	return nil
}

// heldLocally reports whether a local socket has the entry. A socket whose
// message is being handled is asked again once that is done, so a
// subscribe whose State call has run but whose local record has not been
// made yet is not taken for a stale entry.
func (h *Hub) heldLocally(appID string, e HeldEntry) bool {
	c := h.client(e.Socket)
	if c == nil || c.app.Load().ID != appID {
		return false
	}
	has := func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		if c.gone {
			return false
		}
		if e.User != "" {
			return c.user != nil && c.user.ID == e.User
		}
		return c.subs.get(e.Channel) != nil
	}
	if has() {
		return true
	}
	c.op.Lock()
	defer c.op.Unlock()
	return has()
}

// removeStaleUser removes a sign-in record no local socket has. Sign-ins
// have no cluster-wide follow-ups: watchlist events are sent by each node
// for its own sockets.
func (h *Hub) removeStaleUser(ctx context.Context, appID string, e HeldEntry) {
	sctx, cancel := context.WithTimeout(ctx, h.opt.StateTimeout)
	_, _, err := h.state.UserOffline(sctx, appID, e.User, e.Socket)
	cancel()
	if err == nil {
		h.repairs.stale.Add(1)
	}
}

// markStale notes that a ghost was found by reconciliation (metrics).
func (h *Hub) markStale(k ghostKey) {
	h.ghostMu.Lock()
	if g, ok := h.ghosts[k]; ok {
		g.stale = true
		h.ghosts[k] = g
	}
	h.ghostMu.Unlock()
}

// reconcileMissing checks a few client shards' subscriptions and sign-ins
// against the State and records again what it lost.
func (h *Hub) reconcileMissing(ctx context.Context, rs RepairState) {
	r := &h.recon
	type local struct {
		c     *Client
		entry HeldEntry
		sub   *subscription
	}
	budget := reconcileBudget
	for budget > 0 && r.shard < shardCount && ctx.Err() == nil {
		sh := &h.clients[r.shard]
		sh.mu.RLock()
		clients := make([]*Client, 0, len(sh.m))
		for _, c := range sh.m {
			clients = append(clients, c)
		}
		sh.mu.RUnlock()
		byApp := make(map[string][]local)
		for _, c := range clients {
			appID := c.app.Load().ID
			c.mu.Lock()
			if !c.gone {
				for _, e := range c.subs {
					byApp[appID] = append(byApp[appID], local{c, HeldEntry{Channel: e.name, Socket: c.id}, e.sub})
				}
				if c.user != nil {
					byApp[appID] = append(byApp[appID], local{c: c, entry: HeldEntry{User: c.user.ID, Socket: c.id}})
				}
			}
			c.mu.Unlock()
		}
		for appID, all := range byApp {
			budget -= len(all)
			for i := 0; i < len(all); i += holdsBatch {
				batch := all[i:min(i+holdsBatch, len(all))]
				entries := make([]HeldEntry, len(batch))
				for j, l := range batch {
					entries[j] = l.entry
				}
				sctx, cancel := context.WithTimeout(ctx, h.opt.StateTimeout)
				held, err := rs.Holds(sctx, appID, entries)
				cancel()
				if err != nil {
					h.log.Warn("reconcile: state unavailable", "app_id", appID, "err", err)
					return // this shard again next time
				}
				for j, l := range batch {
					if j < len(held) && !held[j] {
						h.restore(ctx, l.c, l.entry, l.sub)
					}
				}
			}
		}
		r.shard++
	}
	if r.shard >= shardCount {
		r.shard = 0
	}
}

// restore records again a local subscription or sign-in the State lost,
// unless the socket let go of it meanwhile. A user who is now the only
// one of their kind is announced again with member_added, as Reregister
// does.
func (h *Hub) restore(ctx context.Context, c *Client, e HeldEntry, sub *subscription) {
	c.op.Lock()
	defer c.op.Unlock()
	c.mu.Lock()
	live := !c.gone
	var u *protocol.UserData
	if live && e.User != "" {
		u = c.user
		live = u != nil && u.ID == e.User
	} else if live {
		live = c.subs.get(e.Channel) == sub
	}
	c.mu.Unlock()
	if !live {
		return
	}
	app := c.app.Load()
	sctx, cancel := context.WithTimeout(ctx, h.opt.StateTimeout)
	defer cancel()
	if e.User != "" {
		if _, _, err := h.state.UserOnline(sctx, app.ID, e.User, c.id); err == nil {
			h.repairs.restored.Add(1)
		}
		return
	}
	if sub.kind.IsPresence() {
		unlock := h.lockPresence(chanKey{app.ID, e.Channel})
		defer unlock()
	}
	// No member cap: the socket was admitted already.
	res, err := h.state.Subscribe(sctx, app.ID, e.Channel, c.id, sub.member, 0)
	if err != nil {
		h.log.Warn("reconcile: state unavailable", "app_id", app.ID, "channel", e.Channel, "err", err)
		return
	}
	if res.Added {
		h.repairs.restored.Add(1)
		h.log.Info("recorded again a subscription the shared state had lost", "app_id", app.ID, "channel", e.Channel, "socket_id", c.id)
	}
	if res.FirstForUser && sub.member != nil {
		h.publishInternal(app, e.Channel, protocol.MemberAdded(e.Channel, *sub.member), c, SourceServer)
		if obs := h.opt.Observer; obs != nil {
			obs.MemberAdded(app.ID, e.Channel, sub.member.ID)
		}
	}
}
