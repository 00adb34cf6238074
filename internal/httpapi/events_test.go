package httpapi

import (
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/herald-ws/herald/internal/apps"
	"github.com/herald-ws/herald/internal/hub"
)

func TestTriggerValid(t *testing.T) {
	long := strings.Repeat("n", 200)
	cases := []struct {
		name string
		body string
		want hub.PublishRequest
	}{
		{"channels array", `{"name":"foo","channels":["a","b"],"data":"x"}`,
			hub.PublishRequest{Name: "foo", Channels: []string{"a", "b"}, Data: "x"}},
		{"single channel", `{"name":"foo","channel":"a","data":"x"}`,
			hub.PublishRequest{Name: "foo", Channels: []string{"a"}, Data: "x"}},
		{"empty data", `{"name":"foo","channels":["a"],"data":""}`,
			hub.PublishRequest{Name: "foo", Channels: []string{"a"}}},
		{"socket_id passed through", `{"name":"foo","channels":["a"],"data":"{}","socket_id":"1234.5678"}`,
			hub.PublishRequest{Name: "foo", Channels: []string{"a"}, Data: "{}", ExceptSocketID: "1234.5678"}},
		{"null socket_id", `{"name":"foo","channels":["a"],"data":"x","socket_id":null}`,
			hub.PublishRequest{Name: "foo", Channels: []string{"a"}, Data: "x"}},
		{"empty socket_id", `{"name":"foo","channels":["a"],"data":"x","socket_id":""}`,
			hub.PublishRequest{Name: "foo", Channels: []string{"a"}, Data: "x"}},
		{"laravel event name", `{"name":"App\\Events\\OrderShipped","channels":["private-orders.1"],"data":"{\"id\":1}"}`,
			hub.PublishRequest{Name: `App\Events\OrderShipped`, Channels: []string{"private-orders.1"}, Data: `{"id":1}`}},
		{"server to user", `{"name":"hello","channels":["#server-to-user-12345"],"data":"hi"}`,
			hub.PublishRequest{Name: "hello", Channels: []string{"#server-to-user-12345"}, Data: "hi"}},
		{"encrypted alone", `{"name":"e","channels":["private-encrypted-x"],"data":"{\"nonce\":\"n\",\"ciphertext\":\"c\"}"}`,
			hub.PublishRequest{Name: "e", Channels: []string{"private-encrypted-x"}, Data: `{"nonce":"n","ciphertext":"c"}`}},
		{"duplicates removed", `{"name":"foo","channels":["a","b","a","b","c"],"data":"x"}`,
			hub.PublishRequest{Name: "foo", Channels: []string{"a", "b", "c"}, Data: "x"}},
		{"name at max length", `{"name":"` + long + `","channels":["a"],"data":"x"}`,
			hub.PublishRequest{Name: long, Channels: []string{"a"}, Data: "x"}},
		{"multibyte name of 200 characters", `{"name":"` + strings.Repeat("é", 200) + `","channels":["a"],"data":"x"}`,
			hub.PublishRequest{Name: strings.Repeat("é", 200), Channels: []string{"a"}, Data: "x"}},
		{"unknown fields ignored", `{"name":"foo","channels":["a"],"data":"x","extra":[1,2]}`,
			hub.PublishRequest{Name: "foo", Channels: []string{"a"}, Data: "x"}},
		{"empty info", `{"name":"foo","channels":["a"],"data":"x","info":""}`,
			hub.PublishRequest{Name: "foo", Channels: []string{"a"}, Data: "x"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := newEnv(t, nil, nil)
			want(t, e.post("/apps/3/events", c.body), 200, `{}`)
			got := e.hub.events()
			if len(got) != 1 || !reflect.DeepEqual(got[0], c.want) {
				t.Fatalf("hub got %+v, want %+v", got, c.want)
			}
		})
	}
}

func TestTriggerManyChannels(t *testing.T) {
	e := newEnv(t, nil, nil)
	var names []string
	for i := range 100 {
		names = append(names, fmt.Sprintf(`"c%d"`, i%50)) // 50 distinct, twice each
	}
	want(t, e.post("/apps/3/events", `{"name":"foo","channels":[`+strings.Join(names, ",")+`],"data":"x"}`), 200, `{}`)
	if got := e.hub.events()[0].Channels; len(got) != 50 || got[0] != "c0" || got[49] != "c49" {
		t.Fatalf("channels %v", got)
	}
}

func TestTriggerInvalid(t *testing.T) {
	a := testApp()
	a.MaxEventChannelsAtOnce = 3
	a.MaxEventNameLength = 10
	a.MaxChannelNameLength = 20
	cases := []struct {
		name, body, frag string
	}{
		{"empty body", ``, "must be a JSON object"},
		{"array body", `[1]`, "must be a JSON object"},
		{"null body", `null`, "must be a JSON object"},
		{"malformed", `{"name":"foo",`, "Malformed JSON"},
		{"trailing garbage", `{"name":"foo","channels":["a"],"data":"x"} x`, "Malformed JSON"},
		{"missing name", `{"channels":["a"],"data":"x"}`, `"name"`},
		{"empty name", `{"name":"","channels":["a"],"data":"x"}`, `"name"`},
		{"name not a string", `{"name":1,"channels":["a"],"data":"x"}`, `Field "name" must be a string, got number`},
		{"name too long", `{"name":"12345678901","channels":["a"],"data":"x"}`, `"name" is too long: 11 characters, the maximum is 10`},
		{"missing data", `{"name":"foo","channels":["a"]}`, `Missing required field "data"`},
		{"null data", `{"name":"foo","channels":["a"],"data":null}`, `Missing required field "data"`},
		{"data number", `{"name":"foo","channels":["a"],"data":1}`, `Field "data" must be a string`},
		{"data object", `{"name":"foo","channels":["a"],"data":{"a":1}}`, `Field "data" must be a string`},
		{"data bool", `{"name":"foo","channels":["a"],"data":true}`, `Field "data" must be a string`},
		{"missing channels", `{"name":"foo","data":"x"}`, `Missing required field "channels"`},
		{"null channels", `{"name":"foo","data":"x","channels":null}`, `Missing required field "channels"`},
		{"empty channels", `{"name":"foo","channels":[],"data":"x"}`, "at least one channel"},
		{"both channel and channels", `{"name":"foo","channels":["a"],"channel":"b","data":"x"}`, "not both"},
		{"channels not an array", `{"name":"foo","channels":"a","data":"x"}`, `Field "channels" must be an array of channel names, got string`},
		{"channels of numbers", `{"name":"foo","channels":[1],"data":"x"}`, `Field "channels" must be an array`},
		{"channel not a string", `{"name":"foo","channel":["a"],"data":"x"}`, `Field "channel" must be a string`},
		{"too many channels", `{"name":"foo","channels":["a","b","c","d"],"data":"x"}`, "Too many channels"},
		{"invalid channel name", `{"name":"foo","channels":["a","b c"],"data":"x"}`, `Field "channels[1]": invalid channel name`},
		{"invalid single channel", `{"name":"foo","channel":"a!","data":"x"}`, `Field "channel": invalid channel name`},
		{"empty channel name", `{"name":"foo","channels":[""],"data":"x"}`, `invalid channel name`},
		{"channel name too long", `{"name":"foo","channels":["` + strings.Repeat("a", 21) + `"],"data":"x"}`, "longer than 20"},
		{"bad hash channel", `{"name":"foo","channels":["#private-x"],"data":"x"}`, "only #server-to-user-{id}"},
		{"encrypted with another", `{"name":"foo","channels":["a","private-encrypted-x"],"data":"x"}`, "must be triggered alone"},
		{"bad socket_id", `{"name":"foo","channels":["a"],"data":"x","socket_id":"abc"}`, `Field "socket_id" must be a socket id`},
		{"socket_id without dot", `{"name":"foo","channels":["a"],"data":"x","socket_id":"1234"}`, `socket id`},
		{"socket_id number", `{"name":"foo","channels":["a"],"data":"x","socket_id":1.5}`, `Field "socket_id" must be a string`},
		{"unknown info", `{"name":"foo","channels":["a"],"data":"x","info":"user_count,cache"}`, `Unknown info attribute "cache"`},
		{"info not a string", `{"name":"foo","channels":["a"],"data":"x","info":["user_count"]}`, `Field "info" must be`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := newEnv(t, []apps.App{a}, nil)
			wantError(t, e.post("/apps/3/events", c.body), 400, c.frag)
			if n := len(e.hub.events()); n != 0 {
				t.Fatalf("hub got %d events", n)
			}
		})
	}
}

func TestTriggerDataTooLarge(t *testing.T) {
	a := testApp()
	a.MaxEventPayloadKB = 10
	e := newEnv(t, []apps.App{a}, nil)
	body := func(n int) string {
		return `{"name":"foo","channels":["a"],"data":"` + strings.Repeat("x", n) + `"}`
	}
	want(t, e.post("/apps/3/events", body(10240)), 200, `{}`)
	want(t, e.post("/apps/3/events", body(10241)), 413,
		`{"error":"The data content of this event exceeds the allowed maximum (10240 bytes)","code":413}`)
	if n := len(e.hub.events()); n != 1 {
		t.Fatalf("hub got %d events, want 1", n)
	}
}

func TestBodyTooLarge(t *testing.T) {
	e := newEnv(t, nil, func(o *Options) { o.MaxBodyBytes = 100 })
	body := `{"name":"foo","channels":["a"],"data":"` + strings.Repeat("x", 100) + `"}`
	wantError(t, e.post("/apps/3/events", body), 413, "request body exceeds the allowed maximum (100 bytes)")
	// Without a Content-Length, the limit holds while reading.
	r := e.signed("POST", "/apps/3/events", nil, []byte(body))
	r.ContentLength = -1
	wantError(t, e.do(r), 413, "100 bytes")
	if n := len(e.hub.events()); n != 0 {
		t.Fatalf("hub got %d events", n)
	}
}

func TestTriggerInfo(t *testing.T) {
	e := newEnv(t, nil, nil)
	e.hub.set(hubChannel("presence-foobar", true, 51, 42))
	e.hub.set(hubChannel("project-3", true, 7, 0))
	want(t, e.post("/apps/3/events",
		`{"name":"foo","channels":["presence-foobar","project-3","empty"],"data":"x","info":"user_count,subscription_count"}`),
		200, `{"channels":{"empty":{"subscription_count":0},"presence-foobar":{"user_count":42,"subscription_count":51},"project-3":{"subscription_count":7}}}`)
	want(t, e.post("/apps/3/events", `{"name":"foo","channels":["presence-foobar","project-3"],"data":"x","info":"user_count"}`),
		200, `{"channels":{"presence-foobar":{"user_count":42},"project-3":{}}}`)
	want(t, e.post("/apps/3/events", `{"name":"foo","channels":["presence-foobar"],"data":"x","info":" subscription_count "}`),
		200, `{"channels":{"presence-foobar":{"subscription_count":51}}}`)
	if n := len(e.hub.events()); n != 3 {
		t.Fatalf("hub got %d events, want 3", n)
	}
}

func TestBatch(t *testing.T) {
	e := newEnv(t, nil, nil)
	want(t, e.post("/apps/3/batch_events", `{"batch":[
		{"name":"order-created","channel":"orders","data":"{\"id\":1}"},
		{"name":"stock","channel":"presence-shop","data":"{}","socket_id":"1234.1234"},
		{"name":"multi","channels":["a","b"],"data":""}]}`), 200, `{}`)
	wantEvents := []hub.PublishRequest{
		{Name: "order-created", Channels: []string{"orders"}, Data: `{"id":1}`},
		{Name: "stock", Channels: []string{"presence-shop"}, Data: `{}`, ExceptSocketID: "1234.1234"},
		{Name: "multi", Channels: []string{"a", "b"}},
	}
	if got := e.hub.events(); !reflect.DeepEqual(got, wantEvents) {
		t.Fatalf("hub got %+v", got)
	}
	// An empty batch does nothing.
	want(t, e.post("/apps/3/batch_events", `{"batch":[]}`), 200, `{}`)
}

func TestBatchInfo(t *testing.T) {
	e := newEnv(t, nil, nil)
	e.hub.set(hubChannel("presence-shop", true, 1, 1))
	e.hub.set(hubChannel("a", true, 3, 0))
	want(t, e.post("/apps/3/batch_events", `{"batch":[
		{"name":"order-created","channel":"orders","data":"{\"id\":1}"},
		{"name":"stock","channel":"presence-shop","data":"{}","info":"user_count,subscription_count"},
		{"name":"multi","channels":["a","b"],"data":"","info":"subscription_count"}]}`), 200,
		`{"batch":[{},{"user_count":1,"subscription_count":1},{"channels":{"a":{"subscription_count":3},"b":{"subscription_count":0}}}]}`)
	if n := len(e.hub.events()); n != 3 {
		t.Fatalf("hub got %d events", n)
	}
}

func TestBatchInvalid(t *testing.T) {
	item := `{"name":"e","channel":"c","data":"d"}`
	items := func(n int) string {
		return `{"batch":[` + strings.TrimSuffix(strings.Repeat(item+",", n), ",") + `]}`
	}
	cases := []struct {
		name, body, frag string
		status           int
	}{
		{"too many", items(11), "Cannot batch-send more than 10 messages at once", 400},
		{"missing batch", `{}`, `Missing required field "batch"`, 400},
		{"batch not an array", `{"batch":{}}`, `Field "batch" must be an array of events, got object`, 400},
		{"item not an object", `{"batch":[` + item + `,` + item + `,"x"]}`, `batch[2] must be a JSON object`, 400},
		{"item null", `{"batch":[` + item + `,null]}`, `batch[1] must be a JSON object`, 400},
		{"third item invalid", `{"batch":[` + item + `,` + item + `,{"name":"e","channel":"c"}]}`, `Missing required field "batch[2].data"`, 400},
		{"third item wrong type", `{"batch":[` + item + `,` + item + `,{"name":"e","channel":"c","data":5}]}`, `Field "batch[2].data" must be a string`, 400},
		{"third item bad channel", `{"batch":[` + item + `,` + item + `,{"name":"e","channels":["ok","no way"],"data":"d"}]}`, `Field "batch[2].channels[1]"`, 400},
		{"third item bad socket", `{"batch":[` + item + `,` + item + `,{"name":"e","channel":"c","data":"d","socket_id":"x"}]}`, `"batch[2].socket_id"`, 400},
		{"third item too large", `{"batch":[` + item + `,` + item + `,{"name":"e","channel":"c","data":"` + strings.Repeat("x", 102401) + `"}]}`,
			"batch[2]: The data content of this event exceeds the allowed maximum (102400 bytes)", 413},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := newEnv(t, nil, nil)
			wantError(t, e.post("/apps/3/batch_events", c.body), c.status, c.frag)
			if n := len(e.hub.events()); n != 0 {
				t.Fatalf("hub got %d events: the batch is not atomic", n)
			}
		})
	}
	t.Run("exactly the maximum", func(t *testing.T) {
		e := newEnv(t, nil, nil)
		want(t, e.post("/apps/3/batch_events", items(10)), 200, `{}`)
		if n := len(e.hub.events()); n != 10 {
			t.Fatalf("hub got %d events", n)
		}
	})
}
