package cluster

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/herald-ws/herald/internal/apps"
	"github.com/herald-ws/herald/internal/hub"
	"github.com/redis/go-redis/v9"
)

// History is the hub.History in Redis: per channel, a hash with the epoch
// and the last offset ({app}:h:channel) and a stream of the events
// ({app}:hx:channel, entry id "offset-ms", one field "p", the message
// without its position). One script numbers, stores and publishes each
// event: Redis runs scripts one at a time, so every node's subscriber
// connection receives a channel's events in offset order, the publishing
// node's too (its broker delivers history events from Redis rather than
// first to its own connections). MAXLEN keeps the stream at the rule's
// size, entries older than its ttl are trimmed from the head, and both
// keys expire ttl after the last event, which ends the history (the next
// one has a new epoch); so does a stream deleted while its hash says it
// held events.
type History struct {
	b *Broker

	appended, appendedBytes atomic.Uint64

	// seen holds the apps this node appended to or read the history of
	// (app id → struct{}): the ones SampleUsage measures.
	seen  sync.Map
	usage atomic.Pointer[map[string]HistoryUsage]
}

var _ hub.History = (*History)(nil)

// usageEvery is how often a node measures what the history holds in
// Redis (SampleUsage), and usageSample how many streams per app it
// measures at most each time.
const (
	usageEvery  = 15 * time.Second
	usageSample = 200
)

func newHistory(b *Broker) *History {
	h := &History{b: b}
	b.wg.Add(1)
	go h.usageLoop()
	return h
}

// NewHistory returns the History publishing through b (tests; an Engine
// has one).
func NewHistory(b *Broker) *History { return newHistory(b) }

// histInitLua makes sure the history exists (KEYS meta, stream; ARGV[1] a
// new epoch, ARGV[2] ttl ms): a new one when there is none or its stream
// was lost. It sets epoch and top, and now (ms, Redis clock).
const histInitLua = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local epoch = redis.call('HGET', KEYS[1], 'e')
local top = tonumber(redis.call('HGET', KEYS[1], 'n') or '0')
if (not epoch) or (top > 0 and redis.call('EXISTS', KEYS[2]) == 0) then
  epoch, top = ARGV[1], 0
  redis.call('DEL', KEYS[2])
  redis.call('HSET', KEYS[1], 'e', epoch, 'n', 0)
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
-- Entries older than the ttl leave from the head (each once).
local cutoff = now - tonumber(ARGV[2])
while true do
  local h = redis.call('XRANGE', KEYS[2], '-', '+', 'COUNT', 1)
  if #h == 0 then break end
  local ms = tonumber(string.match(h[1][1], '-(%d+)$'))
  if ms >= cutoff then break end
  redis.call('XDEL', KEYS[2], h[1][1])
end
`

// histAppendScript stores and publishes one event. KEYS: meta, stream,
// the app's index of streams. ARGV: new epoch, ttl ms, size, payload,
// pub/sub channel, encoded message head (EncodeMessage without its version
// byte nor its payload, which is ARGV[4], the rest of the message), the
// publish command (SPUBLISH in a Redis Cluster, where nodes listen on
// sharded channels tagged like the keys, so in the same slot; PUBLISH
// elsewhere), and the channel name. Reply: {epoch, offset}.
//
// The index (channel scored by when its keys expire) is what SampleUsage
// measures: it names the app's streams without a SCAN of the keyspace,
// and costs the hot path one ZADD (the PTTL check keeps the index alive
// as long as its longest-lived stream).
var histAppendScript = redis.NewScript(histInitLua + `
top = redis.call('HINCRBY', KEYS[1], 'n', 1)
redis.call('XADD', KEYS[2], 'MAXLEN', ARGV[3], top .. '-' .. now, 'p', ARGV[4])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
redis.call('PEXPIRE', KEYS[2], ARGV[2])
local ttl = tonumber(ARGV[2])
redis.call('ZADD', KEYS[3], now + ttl, ARGV[8])
if redis.call('PTTL', KEYS[3]) < ttl then redis.call('PEXPIRE', KEYS[3], ttl) end
redis.call(ARGV[7], ARGV[5], '\2' .. epoch .. ' ' .. top .. '\n' .. ARGV[6] .. ARGV[4])
return {epoch, top}
`)

// histReadScript reads a history. KEYS: meta, stream. ARGV: new epoch, ttl
// ms, first offset wanted (after+1), limit. Reply: {epoch, top, first, id, payload, ...}.
var histReadScript = redis.NewScript(histInitLua + `
local out = {epoch, top, 0}
local h = redis.call('XRANGE', KEYS[2], '-', '+', 'COUNT', 1)
if #h > 0 then out[3] = tonumber(string.match(h[1][1], '^(%d+)')) end
local limit = tonumber(ARGV[4])
if limit > 0 and tonumber(ARGV[3]) <= top then
  local es = redis.call('XRANGE', KEYS[2], ARGV[3] .. '-0', '+', 'COUNT', limit)
  for _, e in ipairs(es) do
    out[#out + 1] = e[1]
    out[#out + 1] = e[2][2]
  end
end
return out
`)

func newRedisEpoch() string {
	s := strconv.FormatUint(rand.Uint64(), 36) + strconv.FormatUint(rand.Uint64(), 36)
	return s[:16]
}

func ttlMillis(d time.Duration) string { return strconv.FormatInt(max(d.Milliseconds(), 1), 10) }

// Append implements hub.History.
func (h *History) Append(ctx context.Context, rule apps.HistoryRule, m hub.BrokerMessage) (hub.Position, error) {
	if m.AppID == "" || m.Channel == "" {
		return hub.Position{}, errors.New("cluster: history event without app or channel")
	}
	ctx, cancel := h.b.bound(ctx)
	defer cancel()
	k := h.b.k
	body := EncodeMessage(nil, h.b.o.NodeID, hub.BrokerMessage{AppID: m.AppID, Channel: m.Channel, ExceptSocketID: m.ExceptSocketID})[1:]
	h.see(m.AppID)
	ch := k.pubChannel(m.AppID, m.Channel)
	// The script publishes the event: the same barrier as Publish after a
	// failover, or it could be stored and answered 200 yet miss a node that
	// has not subscribed again.
	if err := h.b.barrier(ctx, ch, m.AppID); err != nil {
		return hub.Position{}, fmt.Errorf("history append: %w", err)
	}
	res, err := histAppendScript.Run(ctx, h.b.rdb,
		[]string{k.histMeta(m.AppID, m.Channel), k.histStream(m.AppID, m.Channel), k.histIndex(m.AppID)},
		newRedisEpoch(), ttlMillis(rule.TTL), rule.Size, m.Payload, ch, body, k.publishCommand(), m.Channel,
	).Slice()
	if err != nil {
		h.b.distrust(k.pubTag(ch))
		return hub.Position{}, fmt.Errorf("history append: %w", err)
	}
	if len(res) != 2 {
		return hub.Position{}, fmt.Errorf("history append: reply of %d values", len(res))
	}
	epoch, _ := res[0].(string)
	off, _ := res[1].(int64)
	h.appended.Add(1)
	h.appendedBytes.Add(uint64(len(m.Payload)))
	return hub.Position{Epoch: epoch, Offset: uint64(off)}, nil
}

// Read implements hub.History.
func (h *History) Read(ctx context.Context, appID, channel string, rule apps.HistoryRule, after uint64, limit int) (hub.HistoryPage, error) {
	if after == math.MaxUint64 {
		limit = 0 // nothing comes after; keeps after+1 in range
	}
	h.see(appID)
	ctx, cancel := h.b.bound(ctx)
	defer cancel()
	k := h.b.k
	res, err := histReadScript.Run(ctx, h.b.rdb,
		[]string{k.histMeta(appID, channel), k.histStream(appID, channel)},
		newRedisEpoch(), ttlMillis(rule.TTL), strconv.FormatUint(after+1, 10), max(limit, 0),
	).Slice()
	if err != nil {
		return hub.HistoryPage{}, fmt.Errorf("history read: %w", err)
	}
	if len(res) < 3 || len(res)%2 != 1 {
		return hub.HistoryPage{}, fmt.Errorf("history read: reply of %d values", len(res))
	}
	var page hub.HistoryPage
	page.Epoch, _ = res[0].(string)
	top, _ := res[1].(int64)
	first, _ := res[2].(int64)
	page.Top, page.First = uint64(top), uint64(first)
	for i := 3; i+1 < len(res); i += 2 {
		id, _ := res[i].(string)
		p, _ := res[i+1].(string)
		off, _, _ := strings.Cut(id, "-")
		n, err := strconv.ParseUint(off, 10, 64)
		if err != nil {
			return hub.HistoryPage{}, fmt.Errorf("history read: entry id %q", id)
		}
		page.Entries = append(page.Entries, hub.HistoryEntry{Offset: n, Payload: []byte(p)})
	}
	return page, nil
}

// HistoryStats are what this node appended to the history.
type HistoryStats struct {
	Appended, AppendedBytes uint64
}

// Stats returns this node's history counters.
func (h *History) Stats() HistoryStats {
	return HistoryStats{Appended: h.appended.Load(), AppendedBytes: h.appendedBytes.Load()}
}

func (h *History) see(appID string) {
	if _, ok := h.seen.Load(appID); !ok {
		h.seen.Store(appID, struct{}{})
	}
}

// HistoryUsage is what the history of one app holds in Redis.
type HistoryUsage struct {
	// Streams is the number of channels whose history is in Redis.
	Streams int64
	// Entries is the number of events their streams hold.
	Entries int64
	// Bytes is the memory Redis reports for their keys (MEMORY USAGE of
	// each stream and its hash).
	Bytes int64
}

// Usage returns the last measure of SampleUsage, by app (nil before the
// first).
func (h *History) Usage() map[string]HistoryUsage {
	if u := h.usage.Load(); u != nil {
		return *u
	}
	return nil
}

func (h *History) usageLoop() {
	defer h.b.wg.Done()
	t := time.NewTicker(usageEvery)
	defer t.Stop()
	for {
		select {
		case <-h.b.done:
			return
		case <-t.C:
		}
		ctx, cancel := context.WithTimeout(context.Background(), usageEvery/2)
		if err := h.SampleUsage(ctx); err != nil {
			h.b.o.Logger.Debug("history usage not measured", "err", err)
		}
		cancel()
	}
}

// histIndexScript drops the expired channels from an app's index (KEYS[1])
// and returns {channels left, up to ARGV[1] of them at random}.
var histIndexScript = redis.NewScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local n = redis.call('ZCARD', KEYS[1])
if n == 0 then return {0, {}} end
return {n, redis.call('ZRANDMEMBER', KEYS[1], ARGV[1])}
`)

// SampleUsage measures what the history of each app this node has seen
// holds in Redis, for Usage. It is off the hot path (a timer every
// usageEvery) and its work is bounded whatever the number of channels:
// per app one script on the app's index, then MEMORY USAGE and XLEN of at
// most usageSample streams picked at random, scaled up to the whole index
// (exact up to usageSample streams per app). A running total kept by the
// append script would cost every event more and drift whenever Redis
// drops a key on its own (expiry, eviction, a lost stream) without a
// script seeing it; measuring what is there cannot drift. Each node
// measures the same keys, so every node reports the cluster's figure.
func (h *History) SampleUsage(ctx context.Context) error {
	var ids []string
	h.seen.Range(func(k, _ any) bool { ids = append(ids, k.(string)); return true })
	out := make(map[string]HistoryUsage, len(ids))
	k := h.b.k
	for _, app := range ids {
		res, err := histIndexScript.Run(ctx, h.b.rdb, []string{k.histIndex(app)}, usageSample).Slice()
		if err != nil {
			return fmt.Errorf("history usage of app %s: %w", app, err)
		}
		if len(res) != 2 {
			return fmt.Errorf("history usage of app %s: reply of %d values", app, len(res))
		}
		n, _ := res[0].(int64)
		names, _ := res[1].([]any)
		u := HistoryUsage{Streams: n}
		if len(names) > 0 {
			pipe := h.b.rdb.Pipeline()
			type probe struct{ stream, meta, entries *redis.IntCmd }
			probes := make([]probe, 0, len(names))
			for _, c := range names {
				ch, _ := c.(string)
				probes = append(probes, probe{
					// SAMPLES 0: every node of the stream, at most size/100.
					stream:  pipe.MemoryUsage(ctx, k.histStream(app, ch), 0),
					meta:    pipe.MemoryUsage(ctx, k.histMeta(app, ch)),
					entries: pipe.XLen(ctx, k.histStream(app, ch)),
				})
			}
			_, _ = pipe.Exec(ctx) // each command's error is checked below
			var bytes, entries int64
			for _, p := range probes {
				for _, c := range []*redis.IntCmd{p.stream, p.meta, p.entries} {
					// A key gone meanwhile (redis.Nil) counts 0.
					if err := c.Err(); err != nil && !errors.Is(err, redis.Nil) {
						return fmt.Errorf("history usage of app %s: %w", app, err)
					}
				}
				bytes += p.stream.Val() + p.meta.Val()
				entries += p.entries.Val()
			}
			// Scale the sample to the index.
			u.Bytes = bytes * n / int64(len(names))
			u.Entries = entries * n / int64(len(names))
		}
		out[app] = u
	}
	h.usage.Store(&out)
	return nil
}
