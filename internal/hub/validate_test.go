package hub

import (
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/herald-ws/herald/internal/apps"
	"github.com/herald-ws/herald/internal/protocol"
)

func TestDedupe(t *testing.T) {
	var many, wantMany []string
	for i := range 40 {
		many = append(many, string(rune('a'+i%20)))
	}
	for i := range 20 {
		wantMany = append(wantMany, string(rune('a'+i)))
	}
	for _, c := range []struct{ in, want []string }{
		{nil, nil},
		{[]string{"a"}, []string{"a"}},
		{[]string{"a", "b", "a", "c", "b"}, []string{"a", "b", "c"}},
		{many, wantMany},
	} {
		if got := dedupe(append([]string(nil), c.in...)); !reflect.DeepEqual(got, c.want) {
			t.Errorf("dedupe(%v) = %v, want %v", c.in, got, c.want)
		}
	}
}

func TestValidatePublish(t *testing.T) {
	app := apps.Defaults()
	app.MaxEventNameLength = 10
	app.MaxEventPayloadKB = 1
	app.MaxEventChannelsAtOnce = 3
	app.MaxChannelNameLength = 20
	ok := func() PublishRequest { return PublishRequest{Name: "e", Channels: []string{"a"}, Data: "{}"} }
	for _, c := range []struct {
		name    string
		edit    func(r *PublishRequest)
		problem PublishProblem
		limit   string
		index   int
	}{
		{"valid", func(*PublishRequest) {}, 0, "", 0},
		{"no name", func(r *PublishRequest) { r.Name = "" }, NoEventName, "", 0},
		{"name too long", func(r *PublishRequest) { r.Name = "12345678901" }, EventNameTooLong, LimitEventNameLength, 0},
		{"multibyte name within limit", func(r *PublishRequest) { r.Name = "éééééééééé" }, 0, "", 0},
		{"data too large", func(r *PublishRequest) { r.Data = strings.Repeat("x", 1025) }, DataTooLarge, LimitEventPayload, 0},
		{"data at the limit", func(r *PublishRequest) { r.Data = strings.Repeat("x", 1024) }, 0, "", 0},
		{"no channels", func(r *PublishRequest) { r.Channels = nil }, NoChannels, "", 0},
		{"too many channels", func(r *PublishRequest) { r.Channels = []string{"a", "b", "c", "d"} }, TooManyChannels, LimitEventChannels, 0},
		{"bad channel", func(r *PublishRequest) { r.Channels = []string{"a", "b c"} }, BadChannelName, "", 1},
		{"empty channel", func(r *PublishRequest) { r.Channels = []string{""} }, BadChannelName, "", 0},
		{"long channel", func(r *PublishRequest) { r.Channels = []string{strings.Repeat("a", 21)} }, BadChannelName, LimitChannelNameLength, 0},
		{"encrypted with others", func(r *PublishRequest) { r.Channels = []string{"a", "private-encrypted-x"} }, EncryptedNotAlone, "", 1},
		{"encrypted twice is alone", func(r *PublishRequest) { r.Channels = []string{"private-encrypted-x", "private-encrypted-x"} }, 0, "", 0},
		{"bad socket", func(r *PublishRequest) { r.ExceptSocketID = "abc" }, BadSocketID, "", 0},
		{"good socket", func(r *PublishRequest) { r.ExceptSocketID = "123.456" }, 0, "", 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := ok()
			c.edit(&r)
			pe := ValidatePublish(&app, &r)
			if c.problem == 0 {
				if pe != nil {
					t.Fatalf("refused: %v", pe)
				}
				return
			}
			if pe == nil || pe.Problem != c.problem || pe.Limit != c.limit || pe.Index != c.index {
				t.Fatalf("got %+v, want problem %d limit %q index %d", pe, c.problem, c.limit, c.index)
			}
			if pe.Error() == "" {
				t.Fatal("empty message")
			}
			if c.problem == BadChannelName && !errors.Is(pe, protocol.ErrChannelName) {
				t.Fatalf("%v does not wrap protocol.ErrChannelName", pe)
			}
		})
	}
	r := PublishRequest{Name: "e", Channels: []string{"a", "b", "a"}, Data: ""}
	if pe := ValidatePublish(&app, &r); pe != nil || !reflect.DeepEqual(r.Channels, []string{"a", "b"}) {
		t.Fatalf("dedupe: %v, %v", pe, r.Channels)
	}
}
