package enginetest

import (
	"encoding/json"

	"github.com/herald-ws/herald/internal/apps"
	"github.com/herald-ws/herald/internal/hub"
	"github.com/herald-ws/herald/internal/protocol"
)

// Subscribe sends c's hub the pusher:subscribe a client sends for channel
// (for a presence channel, as user, signed with app's secret), without
// waiting for the answer.
func Subscribe(c *hub.Client, app *apps.App, channel, user string) {
	data := map[string]string{"channel": channel}
	if user != "" {
		cd := `{"user_id":"` + user + `"}`
		data["channel_data"] = cd
		data["auth"] = app.Key + ":" + protocol.Sign(app.Secret, protocol.ChannelAuthString(c.SocketID(), channel, cd))
	}
	msg, _ := json.Marshal(map[string]any{"event": "pusher:subscribe", "data": data})
	c.HandleMessage(msg)
}
