package httpapi

import (
	"strings"
	"sync"
	"testing"

	"github.com/herald-ws/herald/internal/apps"
	"github.com/herald-ws/herald/internal/hub"
)

type recRefusals struct {
	mu sync.Mutex
	m  map[string]int
}

func (r *recRefusals) Refused(appID, limit string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.m == nil {
		r.m = map[string]int{}
	}
	r.m[appID+"/"+limit]++
}

func (r *recRefusals) snapshot() map[string]int {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make(map[string]int, len(r.m))
	for k, v := range r.m {
		out[k] = v
	}
	return out
}

// TestRefusalsCounted: every limit's refusal is answered with its status
// and a JSON body, and counted once under the limit's config key; other
// errors are not counted.
func TestRefusalsCounted(t *testing.T) {
	ref := &recRefusals{}
	a := testApp()
	a.MaxBackendEventsPerSecond = 1000
	a.MaxReadRequestsPerSecond = 1
	a.MaxEventBatchSize = 2
	a.MaxEventChannelsAtOnce = 2
	a.MaxEventNameLength = 5
	a.MaxChannelNameLength = 10
	a.MaxEventPayloadKB = 1
	e := newEnv(t, []apps.App{a}, func(o *Options) { o.Refusals = ref; o.MaxBodyBytes = 4096 })
	id := a.ID
	ev := func(name, ch, data string) string {
		return `{"name":"` + name + `","channel":"` + ch + `","data":"` + data + `"}`
	}
	wantError(t, e.post("/apps/"+id+"/events", ev("toolong", "a", "x")), 400, "too long")
	wantError(t, e.post("/apps/"+id+"/events", ev("e", "channel-name-too-long", "x")), 400, "")
	wantError(t, e.post("/apps/"+id+"/events", `{"name":"e","channels":["a","b","c"],"data":"x"}`), 400, "Too many channels")
	wantError(t, e.post("/apps/"+id+"/events", ev("e", "a", strings.Repeat("x", 1025))), 413, "exceeds the allowed maximum")
	wantError(t, e.post("/apps/"+id+"/events", ev("e", "a", strings.Repeat("x", 5000))), 413, "request body")
	wantError(t, e.post("/apps/"+id+"/batch_events", `{"batch":[`+ev("e", "a", "x")+`,`+ev("e", "a", "x")+`,`+ev("e", "a", "x")+`]}`), 400, "more than 2")
	want(t, e.get("/apps/"+id+"/channels", nil), 200, `{"channels":{}}`)
	wantError(t, e.get("/apps/"+id+"/channels", nil), 429, "read requests")
	wantError(t, e.post("/apps/"+id+"/events", `{"name":"e"}`), 400, "Missing") // not a limit

	got := ref.snapshot()
	wantCounts := map[string]int{
		id + "/" + hub.LimitEventNameLength:   1,
		id + "/" + hub.LimitChannelNameLength: 1,
		id + "/" + hub.LimitEventChannels:     1,
		id + "/" + hub.LimitEventPayload:      1,
		id + "/" + hub.LimitRequestBody:       1,
		id + "/" + hub.LimitBatchSize:         1,
		id + "/" + hub.LimitReadRequests:      1,
	}
	if len(got) != len(wantCounts) {
		t.Fatalf("counted %v, want %v", got, wantCounts)
	}
	for k, n := range wantCounts {
		if got[k] != n {
			t.Errorf("%s: %d, want %d (all: %v)", k, got[k], n, got)
		}
	}
}
