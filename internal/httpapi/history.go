package httpapi

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strconv"

	"github.com/herald-ws/herald/internal/hub"
)

// history serves GET /apps/{id}/channels/{channel_name}/history: the kept
// events of a channel with history after an offset, for backends that
// rebuild state (docs/recovery.md).
func (h *handler) history(w http.ResponseWriter, r *http.Request, c *call) error {
	name, err := channelName(r, c)
	if err != nil {
		return err
	}
	after, limit, err := parseHistoryQuery(c.query.Get("after"), c.query.Get("limit"))
	if err != nil {
		return err
	}
	page, err := h.hub.History(r.Context(), c.app, name, after, limit)
	if err != nil {
		return err
	}
	type event struct {
		Offset uint64 `json:"offset"`
		Event  string `json:"event"`
		Data   string `json:"data"`
		UserID string `json:"user_id,omitempty"`
	}
	out := struct {
		Channel     string  `json:"channel"`
		Epoch       string  `json:"epoch"`
		FirstOffset uint64  `json:"first_offset"`
		LastOffset  uint64  `json:"last_offset"`
		Events      []event `json:"events"`
	}{Channel: name, Epoch: page.Epoch, FirstOffset: page.First, LastOffset: page.Top, Events: make([]event, 0, len(page.Entries))}
	for _, e := range page.Entries {
		var m struct {
			Event  string          `json:"event"`
			Data   json.RawMessage `json:"data"`
			UserID string          `json:"user_id"`
		}
		if json.Unmarshal(e.Payload, &m) != nil {
			continue // not written by Herald
		}
		ev := event{Offset: e.Offset, Event: m.Event, UserID: m.UserID}
		// API events carry a string; client events any JSON, given as its text.
		if d := bytes.TrimSpace(m.Data); len(d) > 0 && d[0] == '"' {
			_ = json.Unmarshal(d, &ev.Data)
		} else {
			ev.Data = string(d)
		}
		out.Events = append(out.Events, ev)
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// parseHistoryQuery reads after (default 0) and limit (default 100, at
// most hub.MaxHistoryPage): plain decimal digits only.
func parseHistoryQuery(afterS, limitS string) (after uint64, limit int, err error) {
	limit = 100
	if afterS != "" {
		if !digits(afterS) {
			return 0, 0, badRequest("after must be an offset (a whole number of 0 or more)")
		}
		if after, err = strconv.ParseUint(afterS, 10, 64); err != nil {
			return 0, 0, badRequest("after must be an offset (a whole number of 0 or more)")
		}
	}
	if limitS != "" {
		n, perr := strconv.Atoi(limitS)
		if !digits(limitS) || perr != nil || n < 1 || n > hub.MaxHistoryPage {
			return 0, 0, badRequest("limit must be a number between 1 and %d", hub.MaxHistoryPage)
		}
		limit = n
	}
	return after, limit, nil
}

func digits(s string) bool {
	if s == "" || len(s) > 20 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}
