package httpapi

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strings"

	"github.com/herald-ws/herald/internal/protocol"
)

// infoParam joins every ?info= value (info=a,b and info=a&info=b alike).
func infoParam(c *call) string { return strings.Join(c.query["info"], ",") }

// channels serves GET /apps/{id}/channels: the occupied channels, filtered
// by prefix, with the counts asked for.
func (h *handler) channels(w http.ResponseWriter, r *http.Request, c *call) error {
	prefix := c.query.Get("filter_by_prefix")
	set, err := parseInfo(infoParam(c), infoUserCount|infoSubscriptionCount, "info")
	if err != nil {
		return err
	}
	if set&infoUserCount != 0 && !strings.HasPrefix(prefix, protocol.PrefixPresence) {
		return badRequest("info=user_count requires filter_by_prefix to start with %q", protocol.PrefixPresence)
	}
	list, err := h.hub.Channels(r.Context(), c.app, prefix)
	if err != nil {
		return err
	}
	out := make(map[string]counts, len(list))
	for _, ci := range list {
		if !ci.Occupied || !strings.HasPrefix(ci.Name, prefix) {
			continue
		}
		out[ci.Name] = countsOf(ci, set, protocol.Classify(ci.Name))
	}
	writeJSON(w, http.StatusOK, struct {
		Channels map[string]counts `json:"channels"`
	}{out})
	return nil
}

// channelName returns the validated {channel_name} of the path.
func channelName(r *http.Request, c *call) (string, error) {
	name := r.PathValue("channel_name")
	if err := protocol.ValidateChannelName(name, c.app.MaxChannelNameLength); err != nil {
		return "", badRequest("Invalid channel name: %s", err.Error())
	}
	return name, nil
}

// channel serves GET /apps/{id}/channels/{channel_name}.
func (h *handler) channel(w http.ResponseWriter, r *http.Request, c *call) error {
	name, err := channelName(r, c)
	if err != nil {
		return err
	}
	kind := protocol.Classify(name)
	set, err := parseInfo(infoParam(c), infoUserCount|infoSubscriptionCount|infoCache, "info")
	if err != nil {
		return err
	}
	if set&infoUserCount != 0 && !kind.IsPresence() {
		return badRequest("info=user_count is only available for presence channels")
	}
	if set&infoCache != 0 && !kind.IsCache() {
		return badRequest("info=cache is only available for cache channels")
	}
	ci, err := h.hub.Channel(r.Context(), c.app, name)
	if err != nil {
		return err
	}
	type cacheJSON struct {
		Data string `json:"data"`
		TTL  int    `json:"ttl"`
	}
	out := struct {
		Occupied bool `json:"occupied"`
		counts
		Cache *cacheJSON `json:"cache,omitempty"`
	}{Occupied: ci.Occupied, counts: countsOf(ci, set, kind)}
	if set&infoCache != 0 && ci.Cache != nil {
		out.Cache = &cacheJSON{Data: ci.Cache.Data, TTL: ci.Cache.TTL}
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// users serves GET /apps/{id}/channels/{channel_name}/users.
func (h *handler) users(w http.ResponseWriter, r *http.Request, c *call) error {
	name, err := channelName(r, c)
	if err != nil {
		return err
	}
	if !protocol.Classify(name).IsPresence() {
		return badRequest("The channel must be a presence channel")
	}
	members, err := h.hub.PresenceUsers(r.Context(), c.app, name)
	if err != nil {
		return err
	}
	type user struct {
		ID string `json:"id"`
	}
	out := struct {
		Users []user `json:"users"`
	}{make([]user, len(members))}
	for i, m := range members {
		out.Users[i].ID = m.ID
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// terminate serves POST /apps/{id}/users/{user_id}/terminate_connections.
// The body is {} (pusher-http-php) or empty; any JSON object is accepted.
func (h *handler) terminate(w http.ResponseWriter, r *http.Request, c *call) error {
	userID := r.PathValue("user_id")
	if userID == "" {
		return badRequest("Missing user id in the path")
	}
	if b := bytes.TrimSpace(c.body); len(b) > 0 && (b[0] != '{' || !json.Valid(b)) {
		return badRequest("The request body must be empty or a JSON object")
	}
	if err := h.hub.TerminateUser(r.Context(), c.app, userID); err != nil {
		return err
	}
	writeBytes(w, http.StatusOK, bodyEmpty)
	return nil
}
