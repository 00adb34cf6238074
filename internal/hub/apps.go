package hub

import (
	"github.com/herald-ws/herald/internal/apps"
)

// Apps changed at run time (a database apps store): the server re-reads
// the apps that have connections here and tells the hub what changed.

// ConnectedApps lists the ids of the apps with open connections on this
// node.
func (h *Hub) ConnectedApps() []string {
	h.connMu.Lock()
	defer h.connMu.Unlock()
	out := make([]string, 0, len(h.conns))
	for id := range h.conns {
		out = append(out, id)
	}
	return out
}

// UpdateApp gives the open connections of app.ID its new settings (a
// rotated secret signs their next subscriptions, new limits apply to
// their next messages). It returns how many connections it updated.
func (h *Hub) UpdateApp(app *apps.App) int {
	n := 0
	h.forEachClient(func(c *Client) {
		if old := c.app.Load(); old.ID == app.ID && old != app {
			c.app.Store(app)
			n++
		}
	})
	return n
}

// CloseApp closes every open connection of the app with code (4003 for a
// disabled app, 4001 for a deleted one) and msg. It returns how many it
// closed.
func (h *Hub) CloseApp(appID string, code int, msg string) int {
	n := 0
	h.forEachClient(func(c *Client) {
		if c.app.Load().ID == appID {
			c.closeWith(code, msg)
			n++
		}
	})
	return n
}
