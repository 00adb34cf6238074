package ingest

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	const p = "laravel_database_"
	for _, c := range []struct {
		name, channel, payload string
		want                   Message
		err                    error
	}{
		// What Laravel 8's RedisBroadcaster sends: data keeps "socket".
		{"laravel", p + "private-orders.1", `{"event":"App\\Events\\OrderShipped","data":{"order":{"id":1,"url":"https:\/\/x\/1"},"socket":"123.456"},"socket":"123.456"}`,
			Message{Channel: "private-orders.1", Event: `App\Events\OrderShipped`, Data: `{"order":{"id":1,"url":"https:\/\/x\/1"}}`, Socket: "123.456"}, nil},
		{"socket null", p + "news", `{"event":"e","data":{"socket":null,"a":1},"socket":null}`,
			Message{Channel: "news", Event: "e", Data: `{"a":1}`}, nil},
		{"only socket left", p + "news", `{"event":"e","data":{"socket":null},"socket":null}`,
			Message{Channel: "news", Event: "e", Data: `[]`}, nil},
		{"empty array", p + "news", `{"event":"e","data":[],"socket":null}`,
			Message{Channel: "news", Event: "e", Data: `[]`}, nil},
		{"spaces kept", p + "news", `{"event":"e","data":{ "a" : [1, 2] , "socket" : "1.2" , "b":"\u00e9"}}`,
			Message{Channel: "news", Event: "e", Data: `{"a" : [1, 2],"b":"\u00e9"}`}, nil},
		{"no socket at all", p + "news", `{"event":"e","data":{"a":1}}`, Message{Channel: "news", Event: "e", Data: `{"a":1}`}, nil},
		{"not json", p + "x", `hello`, Message{}, ErrNotJSON},
		{"truncated", p + "x", `{"event":"e","data":{"a":`, Message{}, ErrNotJSON},
		{"array payload", p + "x", `[1]`, Message{}, ErrNotJSON},
		{"no event", p + "x", `{"data":{}}`, Message{}, ErrBadPayload},
		{"event not a string", p + "x", `{"event":1,"data":{}}`, Message{}, ErrBadPayload},
		{"no data", p + "x", `{"event":"e"}`, Message{}, ErrBadPayload},
		{"data a string", p + "x", `{"event":"e","data":"{}"}`, Message{}, ErrBadPayload},
		{"data null", p + "x", `{"event":"e","data":null}`, Message{}, ErrBadPayload},
		{"socket a number", p + "x", `{"event":"e","data":{},"socket":1}`, Message{}, ErrBadPayload},
		{"wrong prefix", "other_x", `{"event":"e","data":{}}`, Message{}, ErrBadPayload},
	} {
		t.Run(c.name, func(t *testing.T) {
			m, err := Parse(p, c.channel, []byte(c.payload))
			if c.err != nil {
				if !errors.Is(err, c.err) {
					t.Fatalf("err = %v, want %v", err, c.err)
				}
				return
			}
			if err != nil || m != c.want {
				t.Fatalf("Parse = %+v, %v; want %+v", m, err, c.want)
			}
		})
	}
}

// FuzzParse: any payload gives a Message or an error, never a panic; a
// Message's data is valid JSON without a top-level "socket" member.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		`{"event":"App\\Events\\X","data":{"a":1,"socket":"1.2"},"socket":"1.2"}`,
		`{"event":"e","data":{"socket":null},"socket":null}`,
		`{"event":"e","data":[1,{"socket":1}]}`,
		`{"event":"e","data":{"socket":1,"socket":2}}`,
		`{"event":"","data":{}}`, `{}`, `[]`, `nul`, `{"event":"e","data":{"a":`,
	} {
		f.Add("p_c", s)
	}
	f.Fuzz(func(t *testing.T, channel, payload string) {
		m, err := Parse("p_", channel, []byte(payload))
		if err != nil {
			if !errors.Is(err, ErrNotJSON) && !errors.Is(err, ErrBadPayload) {
				t.Fatalf("unclassified error %v", err)
			}
			return
		}
		if !strings.HasPrefix(channel, "p_") || m.Channel != channel[2:] {
			t.Fatalf("channel %q from %q", m.Channel, channel)
		}
		if !json.Valid([]byte(m.Data)) {
			t.Fatalf("data %q is not JSON (payload %q)", m.Data, payload)
		}
		var obj map[string]json.RawMessage
		if json.Unmarshal([]byte(m.Data), &obj) == nil {
			if _, ok := obj["socket"]; ok {
				t.Fatalf("data %q kept socket", m.Data)
			}
		}
	})
}

func TestPattern(t *testing.T) {
	for in, want := range map[string]string{"": "*", "laravel_database_": "laravel_database_*", `a*b?[c]\`: `a\*b\?\[c\]\\*`} {
		if got := pattern(in); got != want {
			t.Errorf("pattern(%q) = %q, want %q", in, got, want)
		}
	}
}

// BenchmarkParse is one typical Laravel message (an order with a few
// fields, toOthers()).
func BenchmarkParse(b *testing.B) {
	payload := []byte(`{"event":"App\\Events\\OrderShipped","data":{"order":{"id":1234,"status":"shipped","total":"99.90","items":3,"url":"https:\/\/shop.test\/orders\/1234"},"socket":"123456.7890"},"socket":"123456.7890"}`)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Parse("laravel_database_", "laravel_database_private-orders.1234", payload); err != nil {
			b.Fatal(err)
		}
	}
}
