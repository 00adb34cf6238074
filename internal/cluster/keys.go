package cluster

// keys builds the Redis key names of one deployment (see the package
// documentation for the layout).
type keys struct{ p string }

func (k keys) app(appID string) string { return k.p + "{" + appID + "}:" }

// channel returns the KEYS of the subscribe and unsubscribe scripts, in
// their order: sockets, members, refcounts, order, app index, node set.
func (k keys) channel(appID, channel, node string) []string {
	a := k.app(appID)
	return []string{a + "s:" + channel, a + "m:" + channel, a + "r:" + channel, a + "o:" + channel, a + "chans", a + "node:" + node}
}

func (k keys) sockets(appID, channel string) string    { return k.app(appID) + "s:" + channel }
func (k keys) members(appID, channel string) string    { return k.app(appID) + "m:" + channel }
func (k keys) order(appID, channel string) string      { return k.app(appID) + "o:" + channel }
func (k keys) told(appID, channel string) string       { return k.app(appID) + "wh:" + channel }
func (k keys) left(appID, op string) string            { return k.app(appID) + "left:" + op }
func (k keys) cache(appID, channel string) string      { return k.app(appID) + "c:" + channel }
func (k keys) histMeta(appID, channel string) string   { return k.app(appID) + "h:" + channel }
func (k keys) histStream(appID, channel string) string { return k.app(appID) + "hx:" + channel }
func (k keys) chans(appID string) string               { return k.app(appID) + "chans" }
func (k keys) nodeSet(appID, node string) string       { return k.app(appID) + "node:" + node }
func (k keys) nodeApps(node string) string             { return k.p + "node:" + node + ":apps" }
func (k keys) nodes() string                           { return k.p + "{nodes}" }
func (k keys) claims() string                          { return k.p + "{nodes}:claims" }

func (k keys) pubChannel(appID, channel string) string { return k.p + "ch:" + appID + ":" + channel }
func (k keys) pubUser(appID, user string) string       { return k.p + "user:" + appID + ":" + user }
func (k keys) pubNode(node string) string              { return k.p + "node:" + node }
