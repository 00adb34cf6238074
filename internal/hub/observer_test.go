package hub

import "testing"

func TestObserversCallsEach(t *testing.T) {
	if Observers() != nil || Observers(nil, nil) != nil {
		t.Fatal("no observer must give nil")
	}
	a, b := newObserver(), newObserver()
	if Observers(nil, a) != Observer(a) {
		t.Fatal("a single observer must be returned as is")
	}
	o := Observers(a, nil, b)
	o.ConnectionOpened("1")
	o.ConnectionClosed("1")
	o.ChannelOccupied("1", "c")
	o.ChannelVacated("1", "c")
	o.MemberAdded("1", "c", "u")
	o.MemberRemoved("1", "c", "u")
	o.ClientEvent("1", "c", "client-x", []byte("{}"), "1.1", "u")
	o.CacheMiss("1", "c")
	o.SubscriptionCount("1", "c", 2)
	o.Published("1", "c", "e", 3)
	for _, r := range []*recObserver{a, b} {
		total := len(r.events) + len(r.pubs) // client events and publishes are kept apart
		for _, n := range r.calls {
			total += n
		}
		if total != 10 {
			t.Fatalf("observer saw %d calls, want 10: %v %v %v", total, r.calls, r.events, r.pubs)
		}
	}
}
