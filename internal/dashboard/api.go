package dashboard

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/herald-ws/herald/internal/apps"
	"github.com/herald-ws/herald/internal/hub"
	"github.com/herald-ws/herald/internal/protocol"
)

// writeJSON answers v as JSON.
func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status, b = http.StatusInternalServerError, []byte(`{"error":"Internal server error","code":500}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}

// writeError answers {"error":msg,"code":status}, like the HTTP API.
func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, struct {
		Error string `json:"error"`
		Code  int    `json:"code"`
	}{msg, status})
}

// app finds the app of the path, or answers 404.
func (d *Dashboard) app(w http.ResponseWriter, r *http.Request) *apps.App {
	id := r.PathValue("id")
	a, err := d.opt.Apps.ByID(r.Context(), id)
	if err != nil || a == nil {
		if err != nil && !errors.Is(err, apps.ErrNotFound) {
			writeError(w, http.StatusServiceUnavailable, "The app could not be looked up; try again")
			return nil
		}
		writeError(w, http.StatusNotFound, "No such app")
		return nil
	}
	return a
}

func (d *Dashboard) sessionInfo(w http.ResponseWriter, _ *http.Request, s *session) {
	writeJSON(w, http.StatusOK, map[string]any{"csrf_token": s.csrf, "expires": s.expires.UTC().Format(time.RFC3339)})
}

type appView struct {
	ID      string `json:"id"`
	Key     string `json:"key"`
	Enabled bool   `json:"enabled"`
}

func (d *Dashboard) appsList(w http.ResponseWriter, r *http.Request, _ *session) {
	all, err := d.opt.Apps.All(r.Context())
	if err != nil {
		writeError(w, http.StatusServiceUnavailable, "The apps could not be listed; try again")
		return
	}
	out := make([]appView, 0, len(all))
	for _, a := range all {
		out = append(out, appView{ID: a.ID, Key: a.Key, Enabled: a.Enabled})
	}
	writeJSON(w, http.StatusOK, out)
}

type channelView struct {
	Name              string `json:"name"`
	Kind              string `json:"kind"`
	SubscriptionCount int    `json:"subscription_count"`
	UserCount         int    `json:"user_count,omitempty"`
}

type statsView struct {
	App         string        `json:"app"`
	Connections int64         `json:"connections"`
	Series      []sample      `json:"series"`
	Channels    []channelView `json:"channels"`
	// ChannelsError says why the channels could not be listed (Redis down).
	ChannelsError string `json:"channels_error,omitempty"`
}

func (d *Dashboard) stats(w http.ResponseWriter, r *http.Request, _ *session) {
	a := d.app(w, r)
	if a == nil {
		return
	}
	v := statsView{App: a.ID, Connections: d.opt.Totals(a.ID).Connections, Series: d.samples(a.ID), Channels: []channelView{}}
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	chs, err := d.opt.Hub.Channels(ctx, a, "")
	if err != nil {
		v.ChannelsError = "The channels could not be listed: the cluster engine is unreachable"
	}
	for _, c := range chs {
		v.Channels = append(v.Channels, channelView{Name: c.Name, Kind: c.Kind.String(), SubscriptionCount: c.SubscriptionCount, UserCount: c.UserCount})
	}
	writeJSON(w, http.StatusOK, v)
}

type memberView struct {
	ID   string          `json:"id"`
	Info json.RawMessage `json:"info,omitempty"`
}

func (d *Dashboard) members(w http.ResponseWriter, r *http.Request, _ *session) {
	a := d.app(w, r)
	if a == nil {
		return
	}
	name := r.PathValue("channel")
	if !protocol.Classify(name).IsPresence() {
		writeError(w, http.StatusBadRequest, "The channel must be a presence channel")
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	ms, err := d.opt.Hub.PresenceUsers(ctx, a, name)
	if err != nil {
		writeError(w, http.StatusServiceUnavailable, "The members could not be listed: the cluster engine is unreachable")
		return
	}
	out := make([]memberView, 0, len(ms))
	for _, m := range ms {
		mv := memberView{ID: m.ID}
		if len(m.Info) > 0 && json.Valid(m.Info) {
			mv.Info = json.RawMessage(m.Info)
		}
		out = append(out, mv)
	}
	writeJSON(w, http.StatusOK, map[string]any{"channel": name, "members": out})
}

func (d *Dashboard) eventLog(w http.ResponseWriter, r *http.Request, _ *session) {
	a := d.app(w, r)
	if a == nil {
		return
	}
	var after uint64
	if s := r.URL.Query().Get("after"); s != "" {
		n, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			writeError(w, http.StatusBadRequest, "after must be a sequence number")
			return
		}
		after = n
	}
	entries, last := d.logs.since(a.ID, after)
	writeJSON(w, http.StatusOK, map[string]any{"events": entries, "last": last})
}

// maxSendBody bounds a test event request.
const maxSendBody = 256 << 10

type sendRequest struct {
	Channel string `json:"channel"`
	Event   string `json:"event"`
	Data    string `json:"data"`
}

func (d *Dashboard) sendEvent(w http.ResponseWriter, r *http.Request, _ *session) {
	a := d.app(w, r)
	if a == nil {
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxSendBody)
	var req sendRequest
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			writeError(w, http.StatusRequestEntityTooLarge, "The request is too large")
			return
		}
		writeError(w, http.StatusBadRequest, "The body must be JSON {\"channel\",\"event\",\"data\"}")
		return
	}
	req.Channel = strings.TrimSpace(req.Channel)
	req.Event = strings.TrimSpace(req.Event)
	if err := protocol.ValidateChannelName(req.Channel, a.MaxChannelNameLength); err != nil {
		writeError(w, http.StatusBadRequest, "Channel: "+err.Error())
		return
	}
	if protocol.Classify(req.Channel).IsEncrypted() {
		writeError(w, http.StatusBadRequest, "Encrypted channels need data encrypted with the channel's key; send from your backend")
		return
	}
	if req.Event == "" || !utf8.ValidString(req.Event) {
		writeError(w, http.StatusBadRequest, "Event: a name is required")
		return
	}
	if max := a.MaxEventNameLength; max > 0 && utf8.RuneCountInString(req.Event) > max {
		writeError(w, http.StatusBadRequest, "Event: the name is longer than "+strconv.Itoa(max)+" characters")
		return
	}
	if max := a.MaxEventPayloadBytes(); max > 0 && len(req.Data) > max {
		writeError(w, http.StatusRequestEntityTooLarge, "Data: larger than the app's maximum of "+strconv.Itoa(max)+" bytes")
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
	defer cancel()
	pr := hub.PublishRequest{Name: req.Event, Channels: []string{req.Channel}, Data: req.Data}
	d.record(a.ID, entry{Type: "dashboard_event", Channel: req.Channel, Event: req.Event, Data: clipData(req.Data)})
	if err := d.opt.Hub.Publish(ctx, a, pr); err != nil {
		d.log.Warn("test event not published", "app_id", a.ID, "channel", req.Channel, "err", err)
		writeError(w, http.StatusServiceUnavailable, "The event could not be published to every node: the cluster engine is unreachable")
		return
	}
	writeJSON(w, http.StatusOK, map[string]bool{"ok": true})
}
