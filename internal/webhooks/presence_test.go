package webhooks

import (
	"reflect"
	"testing"
	"time"

	"github.com/herald-ws/herald/internal/apps"
	"github.com/herald-ws/herald/internal/testwait"
)

// A leave and a rejoin (or a join and a leave) within the delay cause no
// webhook; other member events arrive after the delay, in order.
func TestPresenceDebounce(t *testing.T) {
	rc := newReceiver(t, nil)
	const delay = 300 * time.Millisecond
	d := start(t, Options{Apps: store(t, testApp(apps.Webhook{URL: rc.srv.URL, EventTypes: allTypes})),
		PresenceDelay: delay, Workers: 1})
	began := time.Now()
	d.MemberRemoved("1", "presence-a", "reloads") // a page reload
	d.MemberAdded("1", "presence-a", "reloads")
	d.MemberAdded("1", "presence-a", "visits") // a visit shorter than the delay
	d.MemberRemoved("1", "presence-a", "visits")
	d.MemberAdded("1", "presence-a", "stays")
	d.ChannelOccupied("1", "not-delayed")
	d.MemberAdded("1", "presence-b", "reloads") // another channel: its own key
	d.MemberRemoved("1", "presence-a", "leaves")
	d.MemberAdded("1", "presence-a", "marker") // held last: released last

	evs := rc.waitEvents(5, 5*time.Second)
	waitSettled(t, d)
	var got []string
	for _, e := range rc.waitEvents(0, 0) {
		s := e["name"].(string) + " " + e["channel"].(string)
		if u, ok := e["user_id"]; ok {
			s += " " + u.(string)
		}
		got = append(got, s)
	}
	want := []string{
		"channel_occupied not-delayed",
		"member_added presence-a stays",
		"member_added presence-b reloads",
		"member_removed presence-a leaves",
		"member_added presence-a marker",
	}
	if !reflect.DeepEqual(got, want) || len(evs) != 5 {
		t.Fatalf("got %v\nwant %v", got, want)
	}
	// Only the member events waited (the occupied one went in its own batch).
	reqs := rc.requests()
	if len(reqs) != 2 {
		t.Fatalf("%d requests, want 2", len(reqs))
	}
	if b := decode(t, reqs[1].body); b.TimeMs < began.UnixMilli() || len(b.Events) != 4 {
		t.Errorf("member batch %+v", b)
	}
}

// Close sends what is held at once.
func TestPresenceHeldFlushedAtClose(t *testing.T) {
	rc := newReceiver(t, nil)
	d := start(t, Options{Apps: store(t, testApp(apps.Webhook{URL: rc.srv.URL, EventTypes: allTypes})),
		PresenceDelay: time.Hour})
	d.MemberAdded("1", "presence-a", "u")
	testwait.For(t, 10*time.Second, "the dispatcher's state", func() bool { return len(d.intake) == 0 }) // in the batcher's hands
	if err := d.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	if evs := rc.waitEvents(1, 0); len(evs) != 1 || evs[0]["user_id"] != "u" {
		t.Fatalf("got %v", evs)
	}
}

// Past QueueSize held events, the debounce is skipped rather than grow.
func TestPresenceHoldBound(t *testing.T) {
	rc := newReceiver(t, nil)
	d := start(t, Options{Apps: store(t, testApp(apps.Webhook{URL: rc.srv.URL, EventTypes: allTypes})),
		PresenceDelay: time.Hour, QueueSize: 3})
	for _, u := range []string{"a", "b", "c", "d", "e"} {
		d.MemberAdded("1", "presence-a", u)
		testwait.For(t, 10*time.Second, "the dispatcher's state", func() bool { return len(d.intake) == 0 })
	}
	evs := rc.waitEvents(2, 5*time.Second)
	if len(evs) != 2 || evs[0]["user_id"] != "d" || evs[1]["user_id"] != "e" {
		t.Fatalf("got %v, want d and e at once", evs)
	}
	if st := d.Stats(); st.Dropped != 0 {
		t.Errorf("dropped %d", st.Dropped)
	}
}
