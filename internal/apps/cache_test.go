package apps

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/herald-ws/herald/internal/testwait"
)

// fakeStore counts queries and can fail or block on demand.
type fakeStore struct {
	mu      sync.Mutex
	apps    map[string]*App // by id
	down    bool
	queries atomic.Int64
	gate    chan struct{} // when set, queries wait on it
}

func (f *fakeStore) wait() {
	f.mu.Lock()
	g := f.gate
	f.mu.Unlock()
	if g != nil {
		<-g
	}
}

func (f *fakeStore) find(match func(*App) bool) (*App, error) {
	f.queries.Add(1)
	f.wait()
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.down {
		return nil, errors.New("connection refused")
	}
	for _, a := range f.apps {
		if match(a) {
			c := *a
			return &c, nil
		}
	}
	return nil, ErrNotFound
}

func (f *fakeStore) ByID(_ context.Context, id string) (*App, error) {
	return f.find(func(a *App) bool { return a.ID == id })
}
func (f *fakeStore) ByKey(_ context.Context, key string) (*App, error) {
	return f.find(func(a *App) bool { return a.Key == key })
}
func (f *fakeStore) All(context.Context) ([]*App, error) {
	f.queries.Add(1)
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.down {
		return nil, errors.New("connection refused")
	}
	var out []*App
	for _, a := range f.apps {
		out = append(out, a)
	}
	return out, nil
}

func (f *fakeStore) set(a App) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.apps[a.ID] = &a
}

func (f *fakeStore) setDown(d bool) {
	f.mu.Lock()
	f.down = d
	f.mu.Unlock()
}

// clock is a settable test clock.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

func newTestCache(t *testing.T, o CacheOptions) (*Cache, *fakeStore, *clock) {
	t.Helper()
	a := Defaults()
	a.ID, a.Key, a.Secret = "1", "key-1", "s1"
	fs := &fakeStore{apps: map[string]*App{"1": &a}}
	clk := &clock{now: time.Unix(1_700_000_000, 0)}
	o.TTL, o.Now = time.Second, clk.Now
	return NewCache(fs, o), fs, clk
}

func TestCacheServesWithinTTLAndRefreshesAfter(t *testing.T) {
	c, fs, clk := newTestCache(t, CacheOptions{})
	ctx := context.Background()
	for range 10 {
		if a, err := c.ByKey(ctx, "key-1"); err != nil || a.Secret != "s1" {
			t.Fatalf("ByKey: %v %v", a, err)
		}
	}
	if _, err := c.ByID(ctx, "1"); err != nil { // cached under its id too
		t.Fatal(err)
	}
	if n := fs.queries.Load(); n != 1 {
		t.Fatalf("%d queries within the TTL, want 1", n)
	}
	a := Defaults()
	a.ID, a.Key, a.Secret = "1", "key-1", "rotated"
	fs.set(a)
	clk.add(time.Second)
	if got, _ := c.ByKey(ctx, "key-1"); got.Secret != "rotated" {
		t.Fatalf("after the TTL the secret is %q, want the rotated one", got.Secret)
	}
}

func TestCacheRemembersUnknownKeysBounded(t *testing.T) {
	c, fs, clk := newTestCache(t, CacheOptions{MaxNegative: 100})
	ctx := context.Background()
	for range 5 {
		if _, err := c.ByKey(ctx, "nope"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("unknown key: %v", err)
		}
	}
	if n := fs.queries.Load(); n != 1 {
		t.Fatalf("%d queries for one unknown key, want 1", n)
	}
	// Many random keys: the memory stays bounded.
	for i := range 1000 {
		_, _ = c.ByKey(ctx, "random-"+string(rune('a'+i%26))+time.Duration(i).String())
	}
	c.mu.Lock()
	n := len(c.byKey) + len(c.byID)
	neg := c.negative
	c.mu.Unlock()
	if n > 110 || neg > 100 {
		t.Fatalf("%d entries (%d negative) after 1000 random keys, want at most ~100", n, neg)
	}
	// A created app is found once the negative entry expires.
	a := Defaults()
	a.ID, a.Key, a.Secret = "2", "nope", "s2"
	fs.set(a)
	clk.add(time.Second)
	if _, err := c.ByKey(ctx, "nope"); err != nil {
		t.Fatalf("after the TTL a new app is found: %v", err)
	}
}

func TestCacheSingleFlight(t *testing.T) {
	c, fs, _ := newTestCache(t, CacheOptions{})
	fs.gate = make(chan struct{})
	ctx := context.Background()
	var wg sync.WaitGroup
	for range 50 {
		wg.Go(func() {
			if _, err := c.ByKey(ctx, "key-1"); err != nil {
				t.Error(err)
			}
		})
	}
	// Every caller is waiting on the one query.
	testwait.For(t, 5*time.Second, "the store queried", func() bool { return fs.queries.Load() > 0 })
	close(fs.gate)
	wg.Wait()
	if n := fs.queries.Load(); n != 1 {
		t.Fatalf("%d queries for 50 concurrent lookups, want 1", n)
	}
}

func TestCacheStaleWhileError(t *testing.T) {
	var results []error
	var mu sync.Mutex
	c, fs, clk := newTestCache(t, CacheOptions{OnResult: func(err error) {
		mu.Lock()
		results = append(results, err)
		mu.Unlock()
	}})
	ctx := context.Background()
	if _, err := c.ByKey(ctx, "key-1"); err != nil {
		t.Fatal(err)
	}
	fs.setDown(true)
	clk.add(5 * time.Second)
	a, err := c.ByKey(ctx, "key-1")
	if err != nil || a.ID != "1" {
		t.Fatalf("a known app while the store is down: %v %v", a, err)
	}
	if c.Err() == nil {
		t.Fatal("Err is nil while the store is down")
	}
	if _, err := c.ByKey(ctx, "unknown"); err == nil || errors.Is(err, ErrNotFound) {
		t.Fatalf("an unknown key while the store is down: %v, want the store error", err)
	}
	// The failure is remembered for the TTL: no query storm.
	before := fs.queries.Load()
	for range 20 {
		_, _ = c.ByKey(ctx, "unknown")
		_, _ = c.ByKey(ctx, "key-1")
	}
	if n := fs.queries.Load() - before; n != 0 {
		t.Fatalf("%d queries within the TTL during an outage, want 0", n)
	}
	fs.setDown(false)
	clk.add(time.Second)
	if _, err := c.ByKey(ctx, "key-1"); err != nil || c.Err() != nil {
		t.Fatalf("after recovery: %v, Err %v", err, c.Err())
	}
	mu.Lock()
	defer mu.Unlock()
	if len(results) < 3 || results[0] != nil || results[1] == nil || results[len(results)-1] != nil {
		t.Fatalf("OnResult saw %v", results)
	}
}

func TestCacheSlowStoreServesStale(t *testing.T) {
	c, fs, clk := newTestCache(t, CacheOptions{StaleAfter: 10 * time.Millisecond})
	ctx := context.Background()
	if _, err := c.ByKey(ctx, "key-1"); err != nil {
		t.Fatal(err)
	}
	fs.mu.Lock()
	fs.gate = make(chan struct{})
	fs.mu.Unlock()
	defer close(fs.gate)
	clk.add(2 * time.Second)
	a, err := c.ByKey(ctx, "key-1") // the refresh hangs: the known app is served
	if err != nil || a.ID != "1" {
		t.Fatalf("slow store: %v %v", a, err)
	}
}

func TestCacheDeletedAppGoneUnderBothNames(t *testing.T) {
	c, fs, _ := newTestCache(t, CacheOptions{})
	ctx := context.Background()
	if _, err := c.ByKey(ctx, "key-1"); err != nil {
		t.Fatal(err)
	}
	fs.mu.Lock()
	delete(fs.apps, "1")
	fs.mu.Unlock()
	if _, err := c.RefreshID(ctx, "1"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("RefreshID of a deleted app: %v", err)
	}
	if _, err := c.ByKey(ctx, "key-1"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("the deleted app is still served by key: %v", err)
	}
}

func TestCacheInvalidRowKeepsLastGoodVersion(t *testing.T) {
	c, fs, clk := newTestCache(t, CacheOptions{})
	ctx := context.Background()
	if _, err := c.ByKey(ctx, "key-1"); err != nil {
		t.Fatal(err)
	}
	bad := &invalidStore{fakeStore: fs}
	c.src = bad
	clk.add(2 * time.Second)
	if a, err := c.ByKey(ctx, "key-1"); err != nil || a.ID != "1" {
		t.Fatalf("a known app whose row went bad: %v %v", a, err)
	}
	if _, err := c.ByKey(ctx, "other"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("an app never seen valid: %v, want ErrNotFound", err)
	}
}

type invalidStore struct{ *fakeStore }

func (s *invalidStore) ByKey(_ context.Context, key string) (*App, error) {
	return nil, &InvalidError{App: key, Fields: []FieldError{{Path: "max_connections", Msg: "bad"}}}
}
