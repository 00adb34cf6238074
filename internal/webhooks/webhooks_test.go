package webhooks

import (
	"context"
	"encoding/json"
	"net/http"
	"reflect"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/herald-ws/herald/internal/apps"
	"github.com/herald-ws/herald/internal/protocol"
	"github.com/herald-ws/herald/internal/testwait"
)

// The §8.1 vector: the body we build for it, and its signature.
func TestSignatureVector(t *testing.T) {
	const want = `{"time_ms":1327078148132,"events":[{"name":"channel_occupied","channel":"test-channel"}]}`
	got := encodeBody(1327078148132, []event{{kind: kindChannelOccupied, channel: "test-channel"}})
	if string(got) != want {
		t.Fatalf("body\n got %s\nwant %s", got, want)
	}
	if sig := protocol.SignBytes(testSecret, got); sig != "5dd6562a9f744b72a688bcdfea41c14c2c56d12c44c99e32c08face4cc1e8aeb" {
		t.Fatalf("signature %s", sig)
	}
}

func TestEveryEventType(t *testing.T) {
	rc := newReceiver(t, nil)
	now := time.UnixMilli(1700000000123)
	d := start(t, Options{
		Apps:   store(t, testApp(apps.Webhook{URL: rc.srv.URL + "/hook", EventTypes: allTypes})),
		Now:    func() time.Time { return now },
		Window: 300 * time.Millisecond,
	})
	d.ConnectionOpened("1")
	d.Published("1", "x", "y", 3)
	d.ChannelOccupied("1", "test-channel")
	d.ChannelVacated("1", "test-channel")
	d.MemberAdded("1", "presence-foobar", "11")
	d.MemberRemoved("1", "presence-foobar", "11")
	d.ClientEvent("1", "presence-room.1", "client-typing", []byte(`{"name": "Ada"}`), "1234.1234", "11")
	d.ClientEvent("1", "private-a", "client-s", []byte(`"already a string"`), "1.2", "ignored-not-presence")
	d.ClientEvent("1", "private-a", "client-n", []byte(`42`), "1.2", "")
	d.CacheMiss("1", "cache-btc")
	d.SubscriptionCount("1", "my-channel", 2)
	d.ConnectionClosed("1")

	evs := rc.waitEvents(9, 5*time.Second)
	want := []string{
		`{"name":"channel_occupied","channel":"test-channel"}`,
		`{"name":"channel_vacated","channel":"test-channel"}`,
		`{"name":"member_added","channel":"presence-foobar","user_id":"11"}`,
		`{"name":"member_removed","channel":"presence-foobar","user_id":"11"}`,
		`{"name":"client_event","channel":"presence-room.1","event":"client-typing","data":"{\"name\":\"Ada\"}","socket_id":"1234.1234","user_id":"11"}`,
		`{"name":"client_event","channel":"private-a","event":"client-s","data":"already a string","socket_id":"1.2"}`,
		`{"name":"client_event","channel":"private-a","event":"client-n","data":"42","socket_id":"1.2"}`,
		`{"name":"cache_miss","channel":"cache-btc"}`,
		`{"name":"subscription_count","channel":"my-channel","subscription_count":2}`,
	}
	if len(evs) != len(want) {
		t.Fatalf("got %d events: %v", len(evs), evs)
	}
	for i, w := range want {
		var wm map[string]any
		if err := json.Unmarshal([]byte(w), &wm); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(evs[i], wm) {
			t.Errorf("event %d\n got %v\nwant %v", i, evs[i], wm)
		}
	}
	reqs := rc.requests()
	if len(reqs) != 1 {
		t.Fatalf("%d requests, want one batch", len(reqs))
	}
	verify(t, reqs[0])
	if b := decode(t, reqs[0].body); b.TimeMs != 1700000000123 {
		t.Errorf("time_ms = %d", b.TimeMs)
	}
	// Exact bytes of the client event with object data.
	if !strings.Contains(string(reqs[0].body), `"data":"{\"name\":\"Ada\"}"`) {
		t.Errorf("body %s", reqs[0].body)
	}
	testwait.For(t, 10*time.Second, "the dispatcher's state", func() bool {
		st := d.Stats()
		return st.Sent == 1 && st.SentEvents == 9 && st.Apps["1"].SentEvents == 9
	})
}

func TestEventTypesAndChannelFilters(t *testing.T) {
	occ := newReceiver(t, nil)
	filtered := newReceiver(t, nil)
	d := start(t, Options{Apps: store(t, testApp(
		apps.Webhook{URL: occ.srv.URL, EventTypes: []string{"channel_occupied"}},
		apps.Webhook{URL: filtered.srv.URL, EventTypes: allTypes,
			Filter: apps.WebhookFilter{ChannelNameStartsWith: "private-", ChannelNameEndsWith: "-log"}},
	))})
	d.ChannelOccupied("1", "public-x")
	d.ChannelVacated("1", "public-x")
	d.ChannelOccupied("1", "private-a-log")
	d.ChannelOccupied("1", "private-a")
	d.CacheMiss("1", "private-cache-log")
	d.ChannelOccupied("2", "private-unknown-app-log")

	occ.waitEvents(3, 5*time.Second)
	filtered.waitEvents(2, 5*time.Second)
	// A marker both targets want, queued after everything else: once it is
	// in and the queue is empty, nothing else can come.
	d.ChannelOccupied("1", "private-marker-log")
	occEvs := occ.waitEvents(4, 5*time.Second)
	fEvs := filtered.waitEvents(3, 5*time.Second)
	waitSettled(t, d)
	names := func(evs []map[string]any) []string {
		var out []string
		for _, e := range evs {
			out = append(out, e["name"].(string)+":"+e["channel"].(string))
		}
		return out
	}
	const marker = "channel_occupied:private-marker-log"
	if got, want := names(occ.waitEvents(0, 0)), []string{"channel_occupied:public-x", "channel_occupied:private-a-log", "channel_occupied:private-a", marker}; !reflect.DeepEqual(got, want) || len(occEvs) != 4 {
		t.Errorf("occupied target got %v, want %v", got, want)
	}
	if got, want := names(filtered.waitEvents(0, 0)), []string{"channel_occupied:private-a-log", "cache_miss:private-cache-log", marker}; !reflect.DeepEqual(got, want) || len(fEvs) != 3 {
		t.Errorf("filtered target got %v, want %v", got, want)
	}
}

// Events no target wants are not even queued.
func TestUnwantedEventsSkipTheQueue(t *testing.T) {
	rc := newReceiver(t, nil)
	d := start(t, Options{Apps: store(t, testApp(apps.Webhook{URL: rc.srv.URL, EventTypes: []string{"channel_occupied"}}))})
	d.ChannelOccupied("1", "a")
	rc.waitEvents(1, 5*time.Second)
	for range 100 {
		d.ClientEvent("1", "private-a", "client-x", []byte(`{}`), "1.1", "")
	}
	if n := len(d.intake); n != 0 {
		t.Fatalf("intake holds %d unwanted events", n)
	}
}

func TestExtraHeadersCannotOverride(t *testing.T) {
	rc := newReceiver(t, nil)
	d := start(t, Options{Apps: store(t, testApp(apps.Webhook{URL: rc.srv.URL, EventTypes: allTypes,
		Headers: map[string]string{
			"content-type": "text/plain", "X-Pusher-Key": "evil", "x-pusher-signature": "00",
			"X-Herald-Batch-Id": "same", "Authorization": "Bearer t0k", "X-Custom": "v",
		}}))})
	d.ChannelOccupied("1", "c")
	rc.waitEvents(1, 5*time.Second)
	r := rc.requests()[0]
	verify(t, r)
	if r.header.Get("Authorization") != "Bearer t0k" || r.header.Get("X-Custom") != "v" {
		t.Errorf("extra headers missing: %v", r.header)
	}
}

func TestBatchingWindowAndMaxBatch(t *testing.T) {
	rc := newReceiver(t, nil)
	d := start(t, Options{Apps: store(t, testApp(apps.Webhook{URL: rc.srv.URL, EventTypes: allTypes})),
		Window: 300 * time.Millisecond, MaxBatch: 20})
	for i := range 45 {
		d.SubscriptionCount("1", "c", i)
	}
	rc.waitEvents(45, 5*time.Second)
	// Batches go out in parallel (receivers order by time_ms); inside one
	// batch, events keep their order.
	var sizes []int
	seen := map[float64]bool{}
	for _, b := range rc.accepted() {
		sizes = append(sizes, len(b.Events))
		for i, e := range b.Events {
			v := e["subscription_count"].(float64)
			if i > 0 && v != b.Events[i-1]["subscription_count"].(float64)+1 {
				t.Errorf("batch out of order: %v", b.Events)
			}
			seen[v] = true
		}
	}
	slices.Sort(sizes)
	if !reflect.DeepEqual(sizes, []int{5, 20, 20}) || len(seen) != 45 {
		t.Errorf("batch sizes %v (want 5, 20, 20), %d distinct events", sizes, len(seen))
	}
	// A second burst after the window goes out as a new batch.
	d.ChannelOccupied("1", "a")
	d.ChannelOccupied("1", "b")
	rc.waitEvents(47, 5*time.Second)
	if n := len(rc.requests()); n != 4 {
		t.Errorf("%d requests, want 4", n)
	}
}

// The receiver answers 503 for a second, then recovers: every event
// arrives exactly once, and retries of a batch are byte-for-byte the same.
func TestOutageRetriedUntilRecovery(t *testing.T) {
	var down atomic.Bool
	down.Store(true)
	time.AfterFunc(time.Second, func() { down.Store(false) })
	rc := newReceiver(t, func(int, *http.Request) int {
		if down.Load() {
			return http.StatusServiceUnavailable
		}
		return http.StatusOK
	})
	d := start(t, Options{Apps: store(t, testApp(apps.Webhook{URL: rc.srv.URL, EventTypes: allTypes})),
		RetryBase: 50 * time.Millisecond, RetryMax: 200 * time.Millisecond})
	// Six groups of ten events, each sent once the previous group's batch
	// has been tried, so that several batches meet the outage.
	batches := func() int {
		ids := map[string]bool{}
		for _, r := range rc.requests() {
			ids[r.header.Get("X-Herald-Batch-Id")] = true
		}
		return len(ids)
	}
	const n = 60
	for i := range n {
		d.SubscriptionCount("1", "c", i)
		if g := i/10 + 1; i%10 == 9 && g < n/10 {
			testwait.For(t, 10*time.Second, "the batch of group "+strconv.Itoa(g), func() bool { return batches() >= g })
		}
	}
	rc.waitEvents(n, 10*time.Second)

	bodies := map[string]string{} // batch id -> body
	accepted := map[string]int{}
	for _, r := range rc.requests() {
		verify(t, r)
		id := r.header.Get("X-Herald-Batch-Id")
		if prev, ok := bodies[id]; ok && prev != string(r.body) {
			t.Errorf("batch %s retried with another body", id)
		}
		bodies[id] = string(r.body)
		if r.status == http.StatusOK {
			accepted[id]++
		}
	}
	seen := map[float64]bool{}
	for id, c := range accepted {
		if c != 1 {
			t.Errorf("batch %s accepted %d times", id, c)
		}
		for _, e := range decode(t, []byte(bodies[id])).Events {
			v := e["subscription_count"].(float64)
			if seen[v] {
				t.Errorf("event %v delivered twice", v)
			}
			seen[v] = true
		}
	}
	if len(seen) != n {
		t.Errorf("%d distinct events, want %d", len(seen), n)
	}
	testwait.For(t, 10*time.Second, "the dispatcher's state", func() bool { return d.Stats().SentEvents == n })
	if st := d.Stats(); st.Retried == 0 || st.Failed != 0 || st.Dropped != 0 {
		t.Errorf("stats %+v", st)
	}
}

func TestClientErrorNotRetried(t *testing.T) {
	rc := newReceiver(t, func(int, *http.Request) int { return http.StatusBadRequest })
	var observed atomic.Int32
	d := start(t, Options{Apps: store(t, testApp(apps.Webhook{URL: rc.srv.URL, EventTypes: allTypes})),
		ObserveDelivery: func(appID string, status int, _ time.Duration, err error) {
			if appID == "1" && status == 400 && err != nil {
				observed.Add(1)
			}
		}})
	d.ChannelOccupied("1", "c")
	testwait.For(t, 10*time.Second, "the dispatcher's state", func() bool { return d.Stats().Failed == 1 })
	waitSettled(t, d) // the batch left the queue: it cannot be retried
	if n := len(rc.requests()); n != 1 {
		t.Errorf("%d requests, want 1", n)
	}
	st := d.Stats()
	if st.Retried != 0 || st.FailedEvents != 1 || observed.Load() != 1 {
		t.Errorf("stats %+v, observed %d", st, observed.Load())
	}
}

func TestTooManyRequestsRetried(t *testing.T) {
	rc := newReceiver(t, func(n int, _ *http.Request) int {
		if n == 0 {
			return http.StatusTooManyRequests
		}
		return http.StatusNoContent
	})
	d := start(t, Options{Apps: store(t, testApp(apps.Webhook{URL: rc.srv.URL, EventTypes: allTypes}))})
	d.ChannelOccupied("1", "c")
	rc.waitEvents(1, 5*time.Second)
	testwait.For(t, 10*time.Second, "the dispatcher's state", func() bool { return d.Stats().Sent == 1 })
	if st := d.Stats(); st.Retried != 1 {
		t.Errorf("stats %+v", st)
	}
}

func TestGivesUpAfterRetryFor(t *testing.T) {
	rc := newReceiver(t, func(int, *http.Request) int { return http.StatusBadGateway })
	d := start(t, Options{Apps: store(t, testApp(apps.Webhook{URL: rc.srv.URL, EventTypes: allTypes})),
		RetryFor: 400 * time.Millisecond})
	d.ChannelOccupied("1", "c")
	testwait.For(t, 10*time.Second, "the dispatcher's state", func() bool { return d.Stats().Failed == 1 })
	if n := len(rc.requests()); n < 2 {
		t.Errorf("%d attempts, want retries first", n)
	}
}

// A receiver that hangs is cut off at the timeout, and the batch is retried.
func TestHangingReceiverTimesOut(t *testing.T) {
	rc := newReceiver(t, func(n int, r *http.Request) int {
		if n == 0 {
			<-r.Context().Done() // the client gave up: nobody reads this answer
			return http.StatusGatewayTimeout
		}
		return http.StatusOK
	})
	d := start(t, Options{Apps: store(t, testApp(apps.Webhook{URL: rc.srv.URL, EventTypes: allTypes})),
		Timeout: 200 * time.Millisecond})
	began := time.Now()
	d.ChannelOccupied("1", "c")
	rc.waitEvents(1, 5*time.Second)
	if took := time.Since(began); took < 200*time.Millisecond || took > 3*time.Second {
		t.Errorf("delivered after %v", took)
	}
	reqs := rc.requests()
	if len(reqs) != 2 || reqs[0].header.Get("X-Herald-Batch-Id") != reqs[1].header.Get("X-Herald-Batch-Id") {
		t.Errorf("want the same batch twice, got %d requests", len(reqs))
	}
}

// The intake bound drops and counts; so does the delivery queue's.
func TestBoundsDropAndCount(t *testing.T) {
	d, err := New(Options{Apps: store(t, testApp(apps.Webhook{URL: "http://127.0.0.1:1", EventTypes: allTypes})),
		QueueSize: 10, Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	for range 25 { // not started: nothing drains the intake
		d.ChannelOccupied("1", "c")
	}
	st := d.Stats()
	if st.Dropped != 15 || st.Apps["1"].Dropped != 15 || st.Intake != 10 {
		t.Errorf("stats %+v", st)
	}
	_ = d.Close(context.Background())
	if st := d.Stats(); st.Dropped != 25 {
		t.Errorf("after Close: dropped %d, want 25", st.Dropped)
	}

	q := NewMemoryQueue(2)
	ctx := context.Background()
	for i := range 3 {
		err := q.Push(ctx, &Delivery{ID: "x"})
		if (i < 2) != (err == nil) {
			t.Errorf("push %d: %v", i, err)
		}
	}
}

func TestDeliveryQueueBoundDrops(t *testing.T) {
	release := make(chan struct{})
	rc := newReceiver(t, func(_ int, r *http.Request) int {
		select {
		case <-release:
		case <-r.Context().Done():
		}
		return http.StatusOK
	})
	d := start(t, Options{Apps: store(t, testApp(apps.Webhook{URL: rc.srv.URL, EventTypes: allTypes})),
		MaxPending: 2, MaxBatch: 1, Workers: 1})
	for i := range 10 {
		d.SubscriptionCount("1", "c", i)
	}
	testwait.For(t, 10*time.Second, "the dispatcher's state", func() bool { return d.Stats().Dropped == 8 })
	close(release)
	rc.waitEvents(2, 5*time.Second)
}

func TestCloseFlushesPendingBatches(t *testing.T) {
	rc := newReceiver(t, nil)
	d, err := New(Options{Apps: store(t, testApp(apps.Webhook{URL: rc.srv.URL, EventTypes: allTypes})),
		Window: time.Hour, Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	d.Start(context.Background())
	for i := range 5 {
		d.SubscriptionCount("1", "c", i)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := d.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if b := rc.accepted(); len(b) != 1 || len(b[0].Events) != 5 {
		t.Fatalf("accepted %v", b)
	}
	d.ChannelOccupied("1", "late") // after Close: ignored, no panic
}

// Close with a dead endpoint returns when its context ends and counts what
// it could not deliver.
func TestCloseGivesUpAtDeadline(t *testing.T) {
	rc := newReceiver(t, func(int, *http.Request) int { return http.StatusServiceUnavailable })
	d, err := New(Options{Apps: store(t, testApp(apps.Webhook{URL: rc.srv.URL, EventTypes: allTypes})),
		Window: time.Hour, RetryBase: 20 * time.Millisecond, Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	d.Start(context.Background())
	d.ChannelOccupied("1", "c")
	d.ChannelVacated("1", "c")
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	began := time.Now()
	if err := d.Close(ctx); err == nil {
		t.Error("Close: want the context's error")
	}
	if took := time.Since(began); took > 2*time.Second {
		t.Errorf("Close took %v", took)
	}
	if st := d.Stats(); st.Dropped != 2 {
		t.Errorf("stats %+v", st)
	}
}

func TestNoGoroutineLeak(t *testing.T) {
	before := runtime.NumGoroutine()
	func() {
		rc := newReceiver(t, func(n int, r *http.Request) int {
			if n == 1 {
				<-r.Context().Done()
				return http.StatusGatewayTimeout
			}
			return http.StatusOK
		})
		defer rc.srv.Close()
		d, err := New(Options{Apps: store(t, testApp(apps.Webhook{URL: rc.srv.URL, EventTypes: allTypes})),
			Window: 10 * time.Millisecond, Timeout: 100 * time.Millisecond, RetryBase: 10 * time.Millisecond, Logger: quietLogger()})
		if err != nil {
			t.Fatal(err)
		}
		d.Start(context.Background())
		for i := range 50 {
			d.SubscriptionCount("1", "c", i)
			time.Sleep(time.Millisecond)
		}
		rc.waitEvents(50, 5*time.Second)
		if err := d.Close(context.Background()); err != nil {
			t.Fatal(err)
		}
	}()
	testwait.Goroutines(t, 10*time.Second, before)
}

// Observer calls stay fast while the receiver hangs and the queues fill.
func TestObserverNeverBlocks(t *testing.T) {
	rc := newReceiver(t, func(_ int, r *http.Request) int {
		<-r.Context().Done()
		return http.StatusGatewayTimeout
	})
	d := start(t, Options{Apps: store(t, testApp(apps.Webhook{URL: rc.srv.URL, EventTypes: allTypes})),
		QueueSize: 1000, MaxPending: 10, Workers: 2, Timeout: 10 * time.Second})
	var wg sync.WaitGroup
	var worst atomic.Int64
	began := time.Now()
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 2500 {
				t0 := time.Now()
				switch i % 3 {
				case 0:
					d.ClientEvent("1", "presence-a", "client-x", []byte(`{"a":1}`), "1.1", "u")
				case 1:
					d.MemberAdded("1", "presence-a", "u")
				default:
					d.SubscriptionCount("1", "c", g)
				}
				if took := int64(time.Since(t0)); took > worst.Load() {
					worst.Store(took)
				}
			}
		}()
	}
	wg.Wait()
	total := time.Since(began)
	t.Logf("10,000 calls in %v, slowest %v; stats %+v", total, time.Duration(worst.Load()), d.Stats().Counters)
	if total > time.Second {
		t.Errorf("10,000 observer calls took %v", total)
	}
	if d.Stats().Dropped == 0 {
		t.Error("expected drops with a hung receiver and small bounds")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	_ = d.Close(ctx) // the receiver still hangs: Close gives up at ctx

}

func TestBackoff(t *testing.T) {
	d := &Dispatcher{opt: Options{RetryBase: 100 * time.Millisecond, RetryMax: time.Second}}
	for attempt, hi := range map[int]time.Duration{1: 100, 2: 200, 3: 400, 4: 800, 5: 1000, 60: 1000} {
		hi *= time.Millisecond
		for range 50 {
			if b := d.backoff(attempt); b < hi/2 || b > hi {
				t.Fatalf("attempt %d: %v not in [%v, %v]", attempt, b, hi/2, hi)
			}
		}
	}
}

func TestMatches(t *testing.T) {
	cases := []struct {
		f    apps.WebhookFilter
		ch   string
		want bool
	}{
		{apps.WebhookFilter{}, "x", true},
		{apps.WebhookFilter{ChannelNameStartsWith: "private-"}, "private-a", true},
		{apps.WebhookFilter{ChannelNameStartsWith: "private-"}, "presence-a", false},
		{apps.WebhookFilter{ChannelNameEndsWith: "-log"}, "a-log", true},
		{apps.WebhookFilter{ChannelNameEndsWith: "-log"}, "log", false},
		{apps.WebhookFilter{ChannelNameStartsWith: "a", ChannelNameEndsWith: "z"}, "az", true},
		{apps.WebhookFilter{ChannelNameStartsWith: "a", ChannelNameEndsWith: "z"}, "ay", false},
	}
	for _, c := range cases {
		if got := matches(c.f, c.ch); got != c.want {
			t.Errorf("matches(%+v, %q) = %v", c.f, c.ch, got)
		}
	}
}

func TestRedact(t *testing.T) {
	if got := redact("https://u:p@h.example/x?token=1#f"); got != "https://h.example/x" {
		t.Errorf("redact = %q", got)
	}
}

// waitSettled waits until d holds nothing: no event in the intake, no
// batch queued or in flight. Open batches are not seen: call it once a
// marker sent after everything else has arrived.
func waitSettled(t *testing.T, d *Dispatcher) {
	t.Helper()
	testwait.For(t, 10*time.Second, "the dispatcher's state", func() bool {
		n, err := d.queue.Len(context.Background())
		return err == nil && n == 0 && len(d.intake) == 0
	})
}

func BenchmarkObserver(b *testing.B) {
	s, _ := apps.NewStatic([]apps.App{testApp(apps.Webhook{URL: "http://127.0.0.1:1/", EventTypes: []string{"channel_occupied"}})})
	d, err := New(Options{Apps: s, Logger: quietLogger(), QueueSize: 1 << 20})
	if err != nil {
		b.Fatal(err)
	}
	b.Run("ChannelOccupied", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			d.ChannelOccupied("1", "presence-room")
			if len(d.intake) == cap(d.intake) {
				b.StopTimer()
				d.discardIntake()
				b.StartTimer()
			}
		}
	})
	b.Run("ClientEvent", func(b *testing.B) {
		data := []byte(`{"message":"hello"}`)
		b.ReportAllocs()
		for b.Loop() {
			d.ClientEvent("1", "private-room", "client-x", data, "1.1", "")
			if len(d.intake) == cap(d.intake) {
				b.StopTimer()
				d.discardIntake()
				b.StartTimer()
			}
		}
	})
	b.Run("ClientEventUnwanted", func(b *testing.B) {
		d.setInterest("1", kindChannelOccupied.bit(), time.Now().Add(time.Hour))
		data := []byte(`{"message":"hello"}`)
		b.ReportAllocs()
		for b.Loop() {
			d.ClientEvent("1", "private-room", "client-x", data, "1.1", "")
		}
	})
}
