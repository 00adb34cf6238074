package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"strings"

	"github.com/herald-ws/herald/internal/apps"
	"github.com/herald-ws/herald/internal/hub"
	"github.com/herald-ws/herald/internal/protocol"
)

// infoSet is the set of attributes asked for with ?info= or "info".
type infoSet uint8

const (
	infoUserCount infoSet = 1 << iota
	infoSubscriptionCount
	infoCache
)

var infoNames = [...]struct {
	name string
	bit  infoSet
}{
	{"user_count", infoUserCount},
	{"subscription_count", infoSubscriptionCount},
	{"cache", infoCache},
}

// parseInfo reads a comma list of info attributes, refusing any outside
// allowed. field names the source in messages.
func parseInfo(s string, allowed infoSet, field string) (infoSet, error) {
	var set infoSet
	for part := range strings.SplitSeq(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		var bit infoSet
		for _, n := range infoNames {
			if n.name == part {
				bit = n.bit
			}
		}
		if bit == 0 || allowed&bit == 0 {
			var names []string
			for _, n := range infoNames {
				if allowed&n.bit != 0 {
					names = append(names, n.name)
				}
			}
			return 0, badRequest("Unknown %s attribute %q (allowed: %s)", field, clip(part), strings.Join(names, ", "))
		}
		set |= bit
	}
	return set, nil
}

// wireEvent is a trigger body, or one item of a batch, as received.
type wireEvent struct {
	Name     *string   `json:"name"`
	Data     *string   `json:"data"`
	Channels *[]string `json:"channels"`
	Channel  *string   `json:"channel"`
	SocketID *string   `json:"socket_id"`
	Info     *string   `json:"info"`
}

// fieldTypes describes each field's expected type for error messages.
var fieldTypes = map[string]string{
	"name":      "a string",
	"data":      "a string (JSON-encode structured data before sending it)",
	"channels":  "an array of channel names",
	"channel":   "a string",
	"socket_id": "a string",
	"info":      "a comma-separated string",
	"batch":     "an array of events",
}

// decodeObject decodes a JSON object into v, turning decoding errors into
// 400s that name the field. where prefixes field names ("batch[2].").
func decodeObject(b []byte, v any, where string) error {
	t := bytes.TrimLeft(b, " \t\r\n")
	if len(t) == 0 || t[0] != '{' {
		if where == "" {
			return badRequest("The request body must be a JSON object")
		}
		return badRequest("%s must be a JSON object", strings.TrimSuffix(where, "."))
	}
	err := json.Unmarshal(t, v)
	if err == nil {
		return nil
	}
	if te, ok := errors.AsType[*json.UnmarshalTypeError](err); ok {
		want := fieldTypes[te.Field]
		if want == "" {
			want = "of another type"
		}
		return badRequest("Field %q must be %s, got %s", where+te.Field, want, te.Value)
	}
	if se, ok := errors.AsType[*json.SyntaxError](err); ok {
		if where == "" {
			return badRequest("Malformed JSON in the request body at byte %d: %s", se.Offset, se.Error())
		}
		return badRequest("Malformed JSON in %s at byte %d: %s", strings.TrimSuffix(where, "."), se.Offset, se.Error())
	}
	return badRequest("Malformed JSON in the request body: %s", err.Error())
}

// event is a validated trigger.
type event struct {
	req  hub.PublishRequest
	info infoSet
}

// validateEvent reads a trigger or batch item: the wire format here, the
// rules and limits in hub.ValidatePublish (shared with every other way
// events come in). where prefixes field names in messages ("batch[2].").
func validateEvent(we *wireEvent, app *apps.App, where string) (event, error) {
	var ev event
	if we.Name == nil || *we.Name == "" {
		return ev, badRequest("Missing required field %q", where+"name")
	}
	if we.Data == nil {
		return ev, badRequest("Missing required field %q (a string; it may be empty)", where+"data")
	}
	var channels []string
	switch {
	case we.Channels != nil && we.Channel != nil:
		return ev, badRequest("Give either %q or %q, not both", where+"channels", where+"channel")
	case we.Channels != nil:
		channels = *we.Channels
	case we.Channel != nil:
		channels = []string{*we.Channel}
	default:
		return ev, badRequest("Missing required field %q (or %q)", where+"channels", where+"channel")
	}
	req := hub.PublishRequest{Name: *we.Name, Channels: channels, Data: *we.Data}
	if we.SocketID != nil {
		req.ExceptSocketID = *we.SocketID
	}
	if pe := hub.ValidatePublish(app, &req); pe != nil {
		return ev, publishError(pe, &req, where, we.Channels != nil)
	}
	if we.Info != nil {
		set, err := parseInfo(*we.Info, infoUserCount|infoSubscriptionCount, where+"info")
		if err != nil {
			return ev, err
		}
		ev.info = set
	}
	ev.req = req
	return ev, nil
}

// publishError words a refusal of hub.ValidatePublish as the HTTP API
// answers it (§7.3): the field at fault by its JSON name, 413 for data
// over the limit, 400 otherwise. list is whether the channels came as
// "channels" (a list) rather than "channel".
func publishError(pe *hub.PublishError, req *hub.PublishRequest, where string, list bool) *apiError {
	var e *apiError
	switch pe.Problem {
	case hub.NoEventName:
		e = badRequest("Missing required field %q", where+"name")
	case hub.EventNameTooLong:
		e = badRequest("Field %q is too long: %d characters, the maximum is %d", where+"name", pe.Got, pe.Max)
	case hub.DataTooLarge:
		msg := "The data content of this event exceeds the allowed maximum (" + strconv.Itoa(pe.Max) + " bytes)"
		if where != "" {
			msg = strings.TrimSuffix(where, ".") + ": " + msg
		}
		e = &apiError{status: http.StatusRequestEntityTooLarge, msg: msg}
	case hub.NoChannels:
		e = badRequest("Field %q must list at least one channel", where+"channels")
	case hub.TooManyChannels:
		e = badRequest("Too many channels in %q: %d, the maximum is %d", where+"channels", pe.Got, pe.Max)
	case hub.BadChannelName:
		field := where + "channel"
		if list {
			field = where + "channels[" + strconv.Itoa(pe.Index) + "]"
		}
		e = badRequest("Field %q: %s", field, pe.Err.Error())
	case hub.EncryptedNotAlone:
		e = badRequest("Encrypted channel %q must be triggered alone, not with %d other channels", req.Channels[pe.Index], pe.Got-1)
	case hub.BadSocketID:
		e = badRequest("Field %q must be a socket id such as \"1234.5678\", got %q", where+"socket_id", clip(req.ExceptSocketID))
	default:
		e = badRequest("%s", pe.Error())
	}
	e.limit = pe.Limit
	return e
}

// counts is the per-channel info object of trigger, batch and list
// responses; only the attributes asked for are present.
type counts struct {
	UserCount         *int `json:"user_count,omitempty"`
	SubscriptionCount *int `json:"subscription_count,omitempty"`
}

func countsOf(ci hub.ChannelInfo, set infoSet, kind protocol.Kind) counts {
	var c counts
	if set&infoUserCount != 0 && kind.IsPresence() {
		n := ci.UserCount
		c.UserCount = &n
	}
	if set&infoSubscriptionCount != 0 {
		n := ci.SubscriptionCount
		c.SubscriptionCount = &n
	}
	return c
}

// channelCounts reads the info of every channel of an event that has just
// been published. A channel whose info cannot be read is left out and
// logged: the event is out, and failing the request would make the caller
// publish it again.
func (h *handler) channelCounts(r *http.Request, app *apps.App, ev *event) map[string]counts {
	out := make(map[string]counts, len(ev.req.Channels))
	for _, ch := range ev.req.Channels {
		ci, err := h.hub.Channel(r.Context(), app, ch)
		if err != nil {
			h.log.Warn("channel info after publish failed", "app_id", app.ID, "channel", ch, "err", err)
			continue
		}
		out[ch] = countsOf(ci, ev.info, protocol.Classify(ch))
	}
	return out
}

// trigger serves POST /apps/{id}/events.
func (h *handler) trigger(w http.ResponseWriter, r *http.Request, c *call) error {
	var we wireEvent
	if err := decodeObject(c.body, &we, ""); err != nil {
		return err
	}
	ev, err := validateEvent(&we, c.app, "")
	if err != nil {
		return err
	}
	if err := h.backpressure(w); err != nil {
		return err
	}
	if err := h.allow(w, c, rateBackend, len(ev.req.Channels)); err != nil {
		return err
	}
	if err := h.hub.Publish(r.Context(), c.app, ev.req); err != nil {
		return err
	}
	h.pace(r)
	if ev.info == 0 {
		writeBytes(w, http.StatusOK, bodyEmpty)
		return nil
	}
	writeJSON(w, http.StatusOK, struct {
		Channels map[string]counts `json:"channels"`
	}{h.channelCounts(r, c.app, &ev)})
	return nil
}

// batch serves POST /apps/{id}/batch_events. Every item is validated
// before any is published, and the whole batch is charged to the rate
// limit at once.
func (h *handler) batch(w http.ResponseWriter, r *http.Request, c *call) error {
	var wb struct {
		Batch *[]json.RawMessage `json:"batch"`
	}
	if err := decodeObject(c.body, &wb, ""); err != nil {
		return err
	}
	if wb.Batch == nil {
		return badRequest("Missing required field %q", "batch")
	}
	items := *wb.Batch
	if max := c.app.MaxEventBatchSize; max > 0 && len(items) > max {
		return overLimit(hub.LimitBatchSize, badRequest("Cannot batch-send more than %d messages at once", max))
	}
	events := make([]event, len(items))
	points, anyInfo := 0, false
	for i, raw := range items {
		where := "batch[" + strconv.Itoa(i) + "]."
		var we wireEvent
		if err := decodeObject(raw, &we, where); err != nil {
			return err
		}
		ev, err := validateEvent(&we, c.app, where)
		if err != nil {
			return err
		}
		events[i] = ev
		points += len(ev.req.Channels)
		anyInfo = anyInfo || ev.info != 0
	}
	if err := h.backpressure(w); err != nil {
		return err
	}
	if err := h.allow(w, c, rateBackend, points); err != nil {
		return err
	}
	for i := range events {
		if err := h.hub.Publish(r.Context(), c.app, events[i].req); err != nil {
			if i > 0 {
				h.log.Error("batch failed part-way", "app_id", c.app.ID, "published", i, "of", len(events), "err", err)
			}
			return err
		}
	}
	h.pace(r)
	if !anyInfo {
		writeBytes(w, http.StatusOK, bodyEmpty)
		return nil
	}
	out := make([]any, len(events))
	for i := range events {
		ev := &events[i]
		switch {
		case ev.info == 0:
			out[i] = struct{}{}
		case len(ev.req.Channels) == 1:
			// The usual one-channel item: its counts, flat (§7.4).
			ch := ev.req.Channels[0]
			out[i] = struct{}{}
			if cc, ok := h.channelCounts(r, c.app, ev)[ch]; ok {
				out[i] = cc
			}
		default:
			// An item with several channels (soketi's extension) answers
			// like a trigger.
			out[i] = struct {
				Channels map[string]counts `json:"channels"`
			}{h.channelCounts(r, c.app, ev)}
		}
	}
	writeJSON(w, http.StatusOK, struct {
		Batch []any `json:"batch"`
	}{out})
	return nil
}
