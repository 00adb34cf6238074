package cluster

import "strings"

// keys builds the Redis key names of one deployment (see the package
// documentation for the layout). In a Redis Cluster (sharded) the pub/sub
// channels carry the app's hash tag too, so that an app's messages go
// through the shard that holds its keys (sharded pub/sub); elsewhere they
// keep the names older nodes use, so that a rolling upgrade mixes them.
type keys struct {
	p       string
	sharded bool
}

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
func (k keys) histIndex(appID string) string           { return k.app(appID) + "hidx" }
func (k keys) chans(appID string) string               { return k.app(appID) + "chans" }
func (k keys) nodeSet(appID, node string) string       { return k.app(appID) + "node:" + node }
func (k keys) nodeApps(node string) string             { return k.p + "node:" + node + ":apps" }
func (k keys) nodes() string                           { return k.p + "{nodes}" }
func (k keys) claims() string                          { return k.p + "{nodes}:claims" }

// brokers is the hash of live node id → the id of the node's broker,
// whose own live channels (pubLiveNode, pubLiveAppNode) stand for the
// node in the barrier. Nodes of earlier builds have no entry.
func (k keys) brokers() string { return k.p + "{nodes}:brokers" }

// publishCommand is the command that publishes on pubChannel and
// userChannel: SPUBLISH in a Redis Cluster (sharded pub/sub), PUBLISH
// elsewhere.
func (k keys) publishCommand() string {
	if k.sharded {
		return "SPUBLISH"
	}
	return "PUBLISH"
}

func (k keys) pubChannel(appID, channel string) string {
	if k.sharded {
		return k.app(appID) + "ch:" + channel
	}
	return k.p + "ch:" + appID + ":" + channel
}

func (k keys) pubUser(appID, user string) string {
	if k.sharded {
		return k.app(appID) + "user:" + user
	}
	return k.p + "user:" + appID + ":" + user
}

// pubNode is a node's own channel; in a Redis Cluster it is tagged with
// the node, which spreads the nodes' channels over the shards.
func (k keys) pubNode(node string) string {
	if k.sharded {
		return k.p + "{node:" + node + "}"
	}
	return k.p + "node:" + node
}

// pubLive is the channel every node's anchor subscribes with one Redis or
// Sentinel: its subscriber count is the number of nodes subscribed
// (Broker.liveCheck).
func (k keys) pubLive() string { return k.p + "live" }

// pubLiveApp is the live channel of an app in a Redis Cluster, on the
// app's shard: its subscribers are the nodes subscribed to the app's
// channels there (Broker.shardCheck).
func (k keys) pubLiveApp(appID string) string { return k.app(appID) + "live" }

// pubLiveNode is a broker's own live channel with one Redis or Sentinel,
// subscribed by its anchor with pubLive: the barrier checks each live
// node by name on it, so that no other subscriber can stand in for a node
// that has not subscribed again (Broker.liveCheck).
func (k keys) pubLiveNode(broker string) string { return k.p + "live:" + broker }

// pubLiveAppNode is a broker's own live channel of an app in a Redis
// Cluster, subscribed on the app's connection with pubLiveApp
// (Broker.shardCheck).
func (k keys) pubLiveAppNode(appID, broker string) string { return k.app(appID) + "live:" + broker }

// pubTag returns what a pub/sub channel is routed by in a Redis Cluster:
// its hash tag by Redis's rule (the text between the first "{" and the
// next "}", when not empty; else the whole name), "" when not sharded. One
// subscriber connection serves one tag, since go-redis subscribes a
// connection's channels again in one SSUBSCRIBE, which Redis refuses
// across slots.
func (k keys) pubTag(ch string) string {
	if !k.sharded {
		return ""
	}
	if i := strings.IndexByte(ch, '{'); i >= 0 {
		if j := strings.IndexByte(ch[i+1:], '}'); j > 0 {
			return ch[i+1 : i+1+j]
		}
	}
	return ch
}
