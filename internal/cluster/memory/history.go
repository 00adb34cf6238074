package memory

import (
	"container/list"
	"context"
	"errors"
	"math/rand/v2"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/herald-ws/herald/internal/apps"
	"github.com/herald-ws/herald/internal/hub"
)

// History is the hub.History of a Cluster, kept in this process: per
// channel, a slice of the last events bounded by the rule's size and ttl,
// and for all channels together a byte cap. Past the cap, the channels
// written least recently are dropped whole (their next event starts a new
// epoch), so a burst of new channels never costs more than the cap.
//
// Append delivers under the channel's lock, synchronously, to every node
// of the Cluster with interest in the channel: every node then sees the
// channel's events in offset order.
type History struct {
	c   *Cluster
	now func() time.Time

	mu    sync.Mutex
	chans map[interestKey]*histChan
	lru   list.List // of *histChan, most recently written first

	maxBytes              atomic.Int64
	bytes, events, nchans atomic.Int64
	evicted               atomic.Uint64
}

// entryOverhead is what an entry costs beyond its payload (its slice
// header, offset and time), counted against the byte cap.
const entryOverhead = 48

// DefaultHistoryBytes is the default cap on the bytes the memory history
// holds (history_memory_mb).
const DefaultHistoryBytes = 64 << 20

type histChan struct {
	key  interestKey
	elem *list.Element // in History.lru, guarded by History.mu

	mu      sync.Mutex
	dead    bool // dropped from the map (evicted, expired)
	epoch   string
	top     uint64
	entries []histEntry // oldest first, contiguous offsets
	bytes   int64
	expires time.Time // the whole history ends then without a new event
}

type histEntry struct {
	offset  uint64
	at      time.Time
	payload []byte
}

var _ hub.History = (*History)(nil)

// History returns the Cluster's History (one for all its nodes).
func (c *Cluster) History() *History { return c.hist }

func newHistory(c *Cluster, now func() time.Time) *History {
	h := &History{c: c, now: now, chans: make(map[interestKey]*histChan)}
	h.maxBytes.Store(DefaultHistoryBytes)
	return h
}

// SetMaxBytes sets the cap on the bytes held (payloads and a fixed
// overhead per event); n <= 0 restores the default.
func (h *History) SetMaxBytes(n int64) {
	if n <= 0 {
		n = DefaultHistoryBytes
	}
	h.maxBytes.Store(n)
}

// newEpoch names a new history: 16 random characters.
func newEpoch() string {
	s := strconv.FormatUint(rand.Uint64(), 36) + strconv.FormatUint(rand.Uint64(), 36)
	return s[:16]
}

// channel returns the live history of (app, channel), creating it; the
// caller locks it and must check dead.
func (h *History) channel(appID, channel string, write bool) *histChan {
	k := interestKey{app: appID, name: channel}
	h.mu.Lock()
	defer h.mu.Unlock()
	ch := h.chans[k]
	if ch == nil {
		ch = &histChan{key: k, epoch: newEpoch()}
		ch.elem = h.lru.PushFront(ch)
		h.chans[k] = ch
		h.nchans.Add(1)
	} else if write {
		h.lru.MoveToFront(ch.elem)
	}
	return ch
}

// drop removes a channel's history; the caller holds ch.mu.
func (h *History) drop(ch *histChan) {
	h.mu.Lock()
	if h.chans[ch.key] == ch {
		delete(h.chans, ch.key)
		h.lru.Remove(ch.elem)
		h.nchans.Add(-1)
	}
	h.mu.Unlock()
	ch.dead = true
	h.bytes.Add(-ch.bytes)
	h.events.Add(-int64(len(ch.entries)))
	ch.entries, ch.bytes = nil, 0
}

// locked returns the channel's history locked and current: a history that
// expired as a whole is dropped and a new one (new epoch) begins.
func (h *History) locked(appID, channel string, write bool, now time.Time) *histChan {
	for {
		ch := h.channel(appID, channel, write)
		ch.mu.Lock()
		if ch.dead {
			ch.mu.Unlock()
			continue
		}
		if !ch.expires.IsZero() && now.After(ch.expires) {
			h.drop(ch)
			ch.mu.Unlock()
			continue
		}
		return ch
	}
}

// trim drops the entries over size or older than ttl.
func (h *History) trim(ch *histChan, rule apps.HistoryRule, now time.Time) {
	cut := 0
	if over := len(ch.entries) - rule.Size; over > 0 {
		cut = over
	}
	for cut < len(ch.entries) && now.Sub(ch.entries[cut].at) > rule.TTL {
		cut++
	}
	if cut == 0 {
		return
	}
	var freed int64
	for i := range cut {
		freed += int64(len(ch.entries[i].payload)) + entryOverhead
		ch.entries[i] = histEntry{}
	}
	ch.entries = ch.entries[cut:]
	ch.bytes -= freed
	h.bytes.Add(-freed)
	h.events.Add(-int64(cut))
}

// Append implements hub.History.
func (h *History) Append(ctx context.Context, rule apps.HistoryRule, m hub.BrokerMessage) (hub.Position, error) {
	if m.AppID == "" || m.Channel == "" {
		return hub.Position{}, errors.New("memory: history event without app or channel")
	}
	if err := ctx.Err(); err != nil {
		return hub.Position{}, err
	}
	now := h.now()
	ch := h.locked(m.AppID, m.Channel, true, now)
	ch.top++
	pos := hub.Position{Epoch: ch.epoch, Offset: ch.top}
	// The payload is the caller's; keep a copy of our own.
	p := append([]byte(nil), m.Payload...)
	ch.entries = append(ch.entries, histEntry{offset: ch.top, at: now, payload: p})
	size := int64(len(p)) + entryOverhead
	ch.bytes += size
	h.bytes.Add(size)
	h.events.Add(1)
	ch.expires = now.Add(rule.TTL)
	h.trim(ch, rule, now)
	m.Payload = p
	m.Position = pos
	h.deliver(m)
	ch.mu.Unlock()
	h.evict()
	return pos, nil
}

// deliver hands m to every node with interest in its channel, under the
// channel's lock (which orders them).
func (h *History) deliver(m hub.BrokerMessage) {
	k := interestKey{app: m.AppID, name: m.Channel}
	for _, n := range *h.c.nodes.Load() {
		if n.wants(k) {
			if r := n.recv.Load(); r != nil {
				r.HandleBrokerMessage(m)
			}
		}
	}
}

// evict drops the least recently written channels, and any that expired
// at the end of the list, until the bytes held are within the cap.
func (h *History) evict() {
	now := h.now()
	for {
		h.mu.Lock()
		back := h.lru.Back()
		if back == nil {
			h.mu.Unlock()
			return
		}
		ch := back.Value.(*histChan)
		h.mu.Unlock()
		ch.mu.Lock()
		over := h.bytes.Load() > h.maxBytes.Load()
		expired := !ch.expires.IsZero() && now.After(ch.expires)
		if !over && !expired {
			ch.mu.Unlock()
			return
		}
		if !ch.dead {
			h.drop(ch)
			if !expired {
				h.evicted.Add(1)
			}
		}
		ch.mu.Unlock()
	}
}

// Read implements hub.History.
func (h *History) Read(ctx context.Context, appID, channel string, rule apps.HistoryRule, after uint64, limit int) (hub.HistoryPage, error) {
	if err := ctx.Err(); err != nil {
		return hub.HistoryPage{}, err
	}
	now := h.now()
	ch := h.locked(appID, channel, false, now)
	defer ch.mu.Unlock()
	if ch.expires.IsZero() {
		// Created by this read: it lives as long as a written one would.
		ch.expires = now.Add(rule.TTL)
	}
	h.trim(ch, rule, now)
	page := hub.HistoryPage{Epoch: ch.epoch, Top: ch.top}
	if len(ch.entries) > 0 {
		page.First = ch.entries[0].offset
	}
	if limit <= 0 || after >= ch.top || len(ch.entries) == 0 {
		return page, nil
	}
	// Offsets are contiguous: the entry after `after` is at a known index.
	i := 0
	if after >= page.First {
		i = int(after - page.First + 1)
	}
	end := min(len(ch.entries), i+limit)
	page.Entries = make([]hub.HistoryEntry, 0, end-i)
	for _, e := range ch.entries[i:end] {
		page.Entries = append(page.Entries, hub.HistoryEntry{Offset: e.offset, Payload: e.payload})
	}
	return page, nil
}

// HistoryStats are the memory history's gauges and counters.
type HistoryStats struct {
	Channels, Events, Bytes, MaxBytes int64
	// Evicted counts the channels dropped to stay within the cap.
	Evicted uint64
}

// Stats returns what the history holds.
func (h *History) Stats() HistoryStats {
	return HistoryStats{Channels: h.nchans.Load(), Events: h.events.Load(), Bytes: h.bytes.Load(),
		MaxBytes: h.maxBytes.Load(), Evicted: h.evicted.Load()}
}
