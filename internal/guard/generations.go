package guard

import (
	"net/netip"
	"time"
)

// generations is a map by client address whose entries are forgotten
// without a goroutine: they live in two generations that rotate every
// period, so an entry not touched for a whole generation is dropped, and
// the map holds only the addresses seen in the last two periods. A flood
// of distinct addresses that fills maxEntries rotates early: the oldest
// entries are then forgotten sooner, a bounded leniency that is better
// than growing without end. The caller holds its own lock.
type generations[V any] struct {
	period     time.Duration
	maxEntries int
	cur, prev  map[netip.Prefix]V
	rotateAt   time.Time
}

func newGenerations[V any](period time.Duration, maxEntries int) generations[V] {
	if maxEntries <= 0 {
		maxEntries = defaultIPLimiterEntries
	}
	return generations[V]{
		period:     period,
		maxEntries: maxEntries,
		cur:        make(map[netip.Prefix]V),
		prev:       make(map[netip.Prefix]V),
	}
}

// touch rotates the generations when due (at now, before an entry is
// added) and returns the entry of key, moved to the current generation;
// without one, the caller puts the new entry.
func (g *generations[V]) touch(key netip.Prefix, now time.Time) (V, bool) {
	if now.After(g.rotateAt) || len(g.cur) >= g.maxEntries {
		// Every entry in cur was last touched before rotateAt (a later
		// call would have rotated), every one in prev a period before.
		if now.After(g.rotateAt.Add(g.period)) {
			clear(g.cur) // idle for a whole period too
		}
		g.prev, g.cur = g.cur, make(map[netip.Prefix]V, len(g.cur)/2+1)
		g.rotateAt = now.Add(g.period)
	}
	v, ok := g.cur[key]
	if !ok {
		if v, ok = g.prev[key]; ok {
			delete(g.prev, key)
			g.cur[key] = v
		}
	}
	return v, ok
}

// put sets the entry of key in the current generation (after touch).
func (g *generations[V]) put(key netip.Prefix, v V) { g.cur[key] = v }

// peek returns the entry of key without touching it.
func (g *generations[V]) peek(key netip.Prefix) (V, bool) {
	if v, ok := g.cur[key]; ok {
		return v, true
	}
	v, ok := g.prev[key]
	return v, ok
}

// size returns the number of entries held.
func (g *generations[V]) size() int { return len(g.cur) + len(g.prev) }
