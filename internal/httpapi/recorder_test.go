package httpapi

import (
	"fmt"
	"net/http/httptest"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/herald-ws/herald/internal/apps"
	"github.com/herald-ws/herald/internal/hub"
)

type recRecorder struct {
	mu       sync.Mutex
	requests []string
	refusals []string
}

func (r *recRecorder) Request(appID, endpoint string, status int, elapsed time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.requests = append(r.requests, fmt.Sprintf("%s|%s|%d", appID, endpoint, status))
	if elapsed < 0 {
		r.requests = append(r.requests, "negative elapsed")
	}
}

func (r *recRecorder) Refused(appID, limit string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.refusals = append(r.refusals, appID+"|"+limit)
}

func (r *recRecorder) take() (req, ref []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	req, ref = r.requests, r.refusals
	r.requests, r.refusals = nil, nil
	sort.Strings(req)
	sort.Strings(ref)
	return req, ref
}

func TestRecorderSeesRoutesStatusesAndRefusals(t *testing.T) {
	rec := &recRecorder{}
	a := testApp()
	a.MaxBackendEventsPerSecond = 1
	a.MaxEventPayloadKB = 1
	e := newEnv(t, []apps.App{a}, func(o *Options) { o.Recorder = rec; o.Refusals = rec; o.MaxBodyBytes = 4 << 10 })

	e.post("/apps/"+testID+"/events", `{"name":"e","channel":"a","data":"{}"}`)
	e.post("/apps/"+testID+"/events", `{"name":"e","channel":"a","data":"{}"}`) // over 1 per second
	e.post("/apps/"+testID+"/events", `{"name":"e","channel":"a","data":"`+strings.Repeat("x", 2000)+`"}`)
	e.post("/apps/"+testID+"/events", `{"name":"e","channel":"a","data":"`+strings.Repeat("x", 5000)+`"}`)
	e.post("/apps/unknown/events", `{}`)
	e.do(httptest.NewRequest("GET", "/nowhere", nil))
	e.do(httptest.NewRequest("DELETE", "/apps/"+testID+"/events", nil))
	e.do(httptest.NewRequest("GET", "/up", nil))
	req, ref := rec.take()
	wantReq := []string{
		"" + "|/|404",
		"|/apps/{id}/events|405",
		"|GET /up|200",
		"|POST /apps/{id}/events|404",
		testID + "|POST /apps/{id}/events|200",
		testID + "|POST /apps/{id}/events|413",
		testID + "|POST /apps/{id}/events|413",
		testID + "|POST /apps/{id}/events|429",
	}
	sort.Strings(wantReq)
	if fmt.Sprint(req) != fmt.Sprint(wantReq) {
		t.Errorf("requests\n got %q\nwant %q", req, wantReq)
	}
	wantRef := []string{testID + "|" + hub.LimitBackendEvents, testID + "|" + hub.LimitEventPayload, testID + "|" + hub.LimitRequestBody}
	sort.Strings(wantRef)
	if fmt.Sprint(ref) != fmt.Sprint(wantRef) {
		t.Errorf("refusals\n got %q\nwant %q", ref, wantRef)
	}
}
