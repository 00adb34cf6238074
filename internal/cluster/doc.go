// Package cluster shares a Herald node's state and messages with the other
// nodes of a cluster through Redis: a hub.State (Node.State), a hub.Broker
// (Broker) and the node leases that let the survivors clean up after a node
// that died; Engine joins a Node and its Broker as the one hub.Broker the
// hub registers with. The engine kept in memory (one node, or several hubs
// of one process) is internal/cluster/memory; the conformance suite both
// pass is internal/cluster/enginetest.
//
// # Key layout
//
// Every key starts with the configured prefix P (default "herald:"). Keys of
// one app share the Redis Cluster hash tag {A}, so that each Lua script,
// which touches several keys of one app, runs on one slot:
//
//	P{A}:s:C          hash   socket id → owner node "\n" ["p" user id]
//	P{A}:m:C          hash   user id → member (raw user_id "\n" user_info)   presence only
//	P{A}:r:C          hash   user id → number of the user's sockets          presence only
//	P{A}:o:C          zset   user id scored by join sequence (join order)    presence only
//	P{A}:c:C          string last cache-channel event, with its TTL (PX)
//	P{A}:h:C          hash   history of C: epoch "e", last offset "n"
//	P{A}:hx:C         stream history of C: entry id "offset-ms", field "p" the message
//	P{A}:hidx         zset   channels with history, scored by their keys' expiry (ms, Redis clock)
//	P{A}:chans        zset   occupied channel names, all scored 0 (ZRANGEBYLEX by prefix)
//	P{A}:node:N       set    C "\n" socket id: what node N recorded in app A
//	Pnode:N:apps      set    apps in which node N recorded something
//	P{nodes}          zset   node id scored by lease expiry (ms, Redis clock)
//	P{nodes}:claims   hash   node id → the node reaping it
//	P{nodes}:brokers  hash   node id → the id of its broker (written with the lease)
//
// Pub/sub channels (messages are encoded by EncodeMessage), with one Redis
// or Sentinel (PUBLISH/SUBSCRIBE, on one subscriber connection):
//
//	Pch:A:C           events of channel C of app A
//	Puser:A:U         messages and terminations for user U of app A
//	Pnode:N           a node's own control channel (kept subscribed)
//
// In a Redis Cluster (Options.Redis in cluster mode) pub/sub is sharded
// (SPUBLISH/SSUBSCRIBE): a message goes to the shard of its channel's slot
// only. The channels carry the app's hash tag, so an app's messages go
// through the shard that holds its keys, and the broker keeps one
// subscriber connection per tag (go-redis subscribes a connection's
// channels again in one SSUBSCRIBE, which Redis refuses across slots):
//
//	P{A}:ch:C         events of channel C of app A
//	P{A}:user:U       messages and terminations for user U of app A
//	P{A}:live:B       no messages: subscribed on A's shard by broker B while it has channels of A
//	P{A}:live         the same, shared by every broker (nodes of earlier builds subscribe only it)
//	P{node:N}         a node's own control channel
//
// With one Redis or Sentinel every node's subscriber connection also
// subscribes
//
//	Plive:B           no messages: subscribed by broker B
//	Plive             the same, shared by every broker (nodes of earlier builds subscribe only it)
//
// A Broker refuses to publish (ErrPubSubDown) while the subscriber
// connection that carries the message's channel is down. After it lost
// its connection (a failover cuts every node's), it publishes again only
// once every live node (unexpired, unclaimed lease in P{nodes}) is
// subscribed again: PUBSUB NUMSUB finds a subscriber of Plive:B for the
// broker B its lease names in P{nodes}:brokers. Each node subscribes its
// live channels in the same SUBSCRIBE as all its channels, so a message
// published then reaches every node's subscribers; before, it is refused,
// not lost. Checking each node by name, rather than counting subscribers,
// keeps any other subscriber (a node whose lease is not registered yet, a
// tool) from standing in for a node that is missing. A node of an earlier
// build names no broker: those are counted on Plive, beyond the nodes of
// this build seen, as their build counts (a rolling upgrade mixes
// them).
//
// In a Redis Cluster the barrier is per app, on the app's shard: a node
// subscribes P{A}:live:B and P{A}:live in the same SSUBSCRIBE as its other
// channels of A, and after its connection to A's shard or a publish there
// failed, when the primary of A's slot changed since its last publish
// there, and for its first publish of A, a publish of A waits until
// PUBSUB SHARDNUMSUB on that primary finds every live node with sockets
// recorded in A (an existing P{A}:node:N) subscribed there, by name as
// above. A node with a subscribe in flight (subscribed, its sockets not
// recorded yet) thus cannot stand in for one with sockets.
package cluster
