package apps

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/singleflight"
	"golang.org/x/time/rate"
)

// CacheOptions configure NewCache.
type CacheOptions struct {
	// TTL is how long a looked-up app (or an unknown id or key) is served
	// without asking the store again (default 5 s): the longest a change
	// takes to reach new connections and API calls on this node.
	TTL time.Duration
	// Timeout bounds one store query (default 2 s).
	Timeout time.Duration
	// StaleAfter: when refreshing a known app takes longer than this, the
	// cached copy is served and the refresh goes on in the background
	// (default 250 ms), so that a slow database does not slow handshakes.
	StaleAfter time.Duration
	// MaxNegative bounds the unknown ids and keys remembered (default
	// 10000); past it the oldest-looking are dropped.
	MaxNegative int
	// OnResult is told the outcome of every store query (nil: ok), for the
	// store's metrics.
	OnResult func(err error)
	Logger   *slog.Logger
	// Now is the clock (tests).
	Now func() time.Time
}

// Cache is a Store in front of another (a database): lookups are served
// from memory for the TTL; concurrent misses for one id or key make one
// query (single-flight); unknown ids and keys are remembered too, so
// random keys cannot hammer the database; and when the store fails, the
// apps already known keep being served (stale-while-error) while the
// error is logged (at most every 10 s), counted and reported by Err.
type Cache struct {
	src Store
	opt CacheOptions
	log *slog.Logger
	sf  singleflight.Group

	mu       sync.Mutex
	byID     map[string]*entry
	byKey    map[string]*entry
	negative int // entries without an app, both maps
	all      *allEntry

	lastErr  atomic.Pointer[storeErr]
	errLog   *rate.Limiter
	rowLogMu sync.Mutex
	rowLog   map[string]time.Time // app id → last "row refused" log
}

type storeErr struct {
	err error
	at  time.Time
}

// entry is one cached answer: an app, or why there is none.
type entry struct {
	app     *App
	err     error // ErrNotFound (possibly with the row's problems) or a store error
	fetched time.Time
}

func (e *entry) result() (*App, error) {
	if e.app != nil {
		return e.app, nil
	}
	return nil, e.err
}

type allEntry struct {
	list    []*App
	fetched time.Time
}

// NewCache puts a cache in front of src.
func NewCache(src Store, o CacheOptions) *Cache {
	if o.TTL <= 0 {
		o.TTL = 5 * time.Second
	}
	if o.Timeout <= 0 {
		o.Timeout = 2 * time.Second
	}
	if o.StaleAfter <= 0 {
		o.StaleAfter = 250 * time.Millisecond
	}
	if o.MaxNegative <= 0 {
		o.MaxNegative = 10000
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return &Cache{src: src, opt: o, log: o.Logger,
		byID: make(map[string]*entry), byKey: make(map[string]*entry),
		errLog: rate.NewLimiter(rate.Every(10*time.Second), 1),
		rowLog: make(map[string]time.Time)}
}

// Source is the store behind the cache.
func (c *Cache) Source() Store { return c.src }

// TTL is the cache's TTL.
func (c *Cache) TTL() time.Duration { return c.opt.TTL }

// Err is the last store error while the store is failing, nil once a
// query succeeds again.
func (c *Cache) Err() error {
	if e := c.lastErr.Load(); e != nil {
		return e.err
	}
	return nil
}

// ByID implements Store.
func (c *Cache) ByID(ctx context.Context, id string) (*App, error) { return c.lookup(ctx, true, id) }

// ByKey implements Store.
func (c *Cache) ByKey(ctx context.Context, key string) (*App, error) {
	return c.lookup(ctx, false, key)
}

// RefreshID asks the store for the app now, whatever the cache holds, and
// caches the answer: the periodic check of apps with open connections
// uses it, so a change reaches them within one check interval.
func (c *Cache) RefreshID(ctx context.Context, id string) (*App, error) {
	c.mu.Lock()
	old := c.byID[id]
	c.mu.Unlock()
	ch := c.sf.DoChan("i"+id, func() (any, error) { return c.fetch(true, id, old), nil })
	select {
	case r := <-ch:
		return r.Val.(*entry).result()
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// fresh returns the cached entry for k when it is within its TTL.
func (c *Cache) fresh(byID bool, k string) *entry {
	c.mu.Lock()
	defer c.mu.Unlock()
	e := c.byKey[k]
	if byID {
		e = c.byID[k]
	}
	if e != nil && c.opt.Now().Sub(e.fetched) < c.opt.TTL {
		return e
	}
	return nil
}

func (c *Cache) lookup(ctx context.Context, byID bool, k string) (*App, error) {
	now := c.opt.Now()
	c.mu.Lock()
	e := c.byKey[k]
	if byID {
		e = c.byID[k]
	}
	c.mu.Unlock()
	if e != nil && now.Sub(e.fetched) < c.opt.TTL {
		return e.result()
	}
	flight := "k" + k
	if byID {
		flight = "i" + k
	}
	ch := c.sf.DoChan(flight, func() (any, error) {
		// A flight that ended between this caller's miss and now has
		// stored a fresh answer: use it instead of querying again.
		if f := c.fresh(byID, k); f != nil {
			return f, nil
		}
		return c.fetch(byID, k, e), nil
	})
	var stale <-chan time.Time
	if e != nil && e.app != nil {
		t := time.NewTimer(c.opt.StaleAfter)
		defer t.Stop()
		stale = t.C
	}
	select {
	case r := <-ch:
		return r.Val.(*entry).result()
	case <-stale:
		return e.app, nil
	case <-ctx.Done():
		if e != nil && e.app != nil {
			return e.app, nil
		}
		return nil, ctx.Err()
	}
}

// fetch queries the store (in a flight of its own: it outlives the
// caller that started it) and caches the answer. old is what the cache
// held, served again when the store fails.
func (c *Cache) fetch(byID bool, k string, old *entry) *entry {
	ctx, cancel := context.WithTimeout(context.Background(), c.opt.Timeout)
	defer cancel()
	var a *App
	var err error
	if byID {
		a, err = c.src.ByID(ctx, k)
	} else {
		a, err = c.src.ByKey(ctx, k)
	}
	now := c.opt.Now()
	ie, invalid := errors.AsType[*InvalidError](err)
	switch {
	case err == nil && a != nil:
		c.storeOK()
		e := &entry{app: a, fetched: now}
		c.put(byID, k, e)
		return e
	case invalid:
		// The store answered: a row that does not validate. Keep serving
		// the last good version of a known app; an app never seen valid
		// is refused as unknown.
		c.storeOK()
		c.logRow(ie)
		if old != nil && old.app != nil {
			e := &entry{app: old.app, fetched: now}
			c.put(byID, k, e)
			return e
		}
		e := &entry{err: fmt.Errorf("%w: %w", ErrNotFound, ie), fetched: now}
		c.put(byID, k, e)
		return e
	case err == nil || errors.Is(err, ErrNotFound):
		c.storeOK()
		e := &entry{err: ErrNotFound, fetched: now}
		c.put(byID, k, e)
		if old != nil && old.app != nil {
			// Deleted: its other name must not keep it alive either.
			c.put(false, old.app.Key, e)
			c.put(true, old.app.ID, e)
		}
		return e
	}
	c.storeFailed(err)
	if old != nil && (old.app != nil || errors.Is(old.err, ErrNotFound)) {
		// Stale-while-error: the last answer holds for another TTL.
		e := &entry{app: old.app, err: old.err, fetched: now}
		c.put(byID, k, e)
		return e
	}
	// Remember the failure for the TTL too, so that a burst of lookups
	// of one unknown key during an outage costs one query, not many.
	e := &entry{err: err, fetched: now}
	c.put(byID, k, e)
	return e
}

// put caches e under k (and a found app under its id and key).
func (c *Cache) put(byID bool, k string, e *entry) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e.app == nil {
		c.setLocked(byID, k, e)
		return
	}
	c.setLocked(true, e.app.ID, e)
	c.setLocked(false, e.app.Key, e)
	if byID && k != e.app.ID || !byID && k != e.app.Key {
		c.setLocked(byID, k, e)
	}
}

func (c *Cache) setLocked(byID bool, k string, e *entry) {
	m := c.byKey
	if byID {
		m = c.byID
	}
	if old, ok := m[k]; ok && old.app == nil {
		c.negative--
	}
	if e.app == nil {
		if c.negative >= c.opt.MaxNegative {
			c.evictNegativeLocked()
		}
		c.negative++
	}
	m[k] = e
}

// evictNegativeLocked drops expired entries without an app, and if that
// is not enough, about a tenth of them (map order is random enough to
// keep an attacker from pinning any).
func (c *Cache) evictNegativeLocked() {
	now := c.opt.Now()
	budget := max(c.opt.MaxNegative/10, 1)
	for _, m := range []map[string]*entry{c.byKey, c.byID} {
		for k, e := range m {
			if e.app != nil {
				continue
			}
			if now.Sub(e.fetched) >= c.opt.TTL || budget > 0 {
				if now.Sub(e.fetched) < c.opt.TTL {
					budget--
				}
				delete(m, k)
				c.negative--
			}
		}
	}
}

// All implements Store: the list is cached for the TTL, and the last one
// is served while the store fails.
func (c *Cache) All(ctx context.Context) ([]*App, error) {
	now := c.opt.Now()
	c.mu.Lock()
	cur := c.all
	c.mu.Unlock()
	if cur != nil && now.Sub(cur.fetched) < c.opt.TTL {
		return cur.list, nil
	}
	v, err, _ := c.sf.Do("all", func() (any, error) {
		qctx, cancel := context.WithTimeout(context.Background(), c.opt.Timeout)
		defer cancel()
		list, err := c.src.All(qctx)
		if err != nil {
			c.storeFailed(err)
			c.mu.Lock()
			if c.all != nil {
				// Served stale for another TTL before the next try.
				c.all = &allEntry{list: c.all.list, fetched: c.opt.Now()}
			}
			c.mu.Unlock()
			return nil, err
		}
		c.storeOK()
		c.mu.Lock()
		c.all = &allEntry{list: list, fetched: c.opt.Now()}
		c.mu.Unlock()
		return list, nil
	})
	if err != nil {
		if cur != nil {
			return cur.list, nil
		}
		return nil, err
	}
	return v.([]*App), nil
}

// Forget drops what the cache holds about an app, so that a change made
// through this node is seen by it at once (other nodes within the TTL).
func (c *Cache) Forget(a *App) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, kv := range []struct {
		m map[string]*entry
		k string
	}{{c.byID, a.ID}, {c.byKey, a.Key}} {
		if e, ok := kv.m[kv.k]; ok {
			if e.app == nil {
				c.negative--
			}
			delete(kv.m, kv.k)
		}
	}
	c.all = nil
}

func (c *Cache) storeOK() {
	if c.lastErr.Swap(nil) != nil {
		c.log.Info("apps store reachable again")
	}
	if c.opt.OnResult != nil {
		c.opt.OnResult(nil)
	}
}

func (c *Cache) storeFailed(err error) {
	c.lastErr.Store(&storeErr{err: err, at: c.opt.Now()})
	if c.errLog.Allow() {
		c.log.Error("apps store unreachable; serving the apps already known", "err", err)
	}
	if c.opt.OnResult != nil {
		c.opt.OnResult(err)
	}
}

// logRow logs a refused row, once a minute per app at most.
func (c *Cache) logRow(ie *InvalidError) {
	now := c.opt.Now()
	c.rowLogMu.Lock()
	last, seen := c.rowLog[ie.App]
	if seen && now.Sub(last) < time.Minute {
		c.rowLogMu.Unlock()
		return
	}
	if len(c.rowLog) > 1000 {
		clear(c.rowLog)
	}
	c.rowLog[ie.App] = now
	c.rowLogMu.Unlock()
	for _, f := range ie.Fields {
		c.log.Warn("apps store: row refused", "app_id", ie.App, "field", f.Path, "problem", f.Msg)
	}
}

// Ping checks that the store answers (when it can be pinged) and records
// the outcome like a lookup's, so that an outage or a recovery shows in
// Err and the metrics even while no lookup misses the cache.
func (c *Cache) Ping(ctx context.Context) error {
	p, ok := c.src.(interface{ Ping(context.Context) error })
	if !ok {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, c.opt.Timeout)
	defer cancel()
	if err := p.Ping(ctx); err != nil {
		c.storeFailed(err)
		return err
	}
	c.storeOK()
	return nil
}
