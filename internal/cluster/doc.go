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
//	P{A}:live         no messages: its subscribers on A's shard are the nodes subscribed to A's channels
//	P{node:N}         a node's own control channel
//
// With one Redis or Sentinel every node's subscriber connection also
// subscribes
//
//	Plive             no messages: its subscriber count is the number of nodes subscribed
//
// A Broker refuses to publish (ErrPubSubDown) while the subscriber
// connection that carries the message's channel is down. After it lost
// its connection (a failover cuts every node's), it publishes again only
// once Redis counts as many subscribers of Plive as live nodes (unexpired,
// unclaimed leases in P{nodes}): each node subscribes Plive in the same
// SUBSCRIBE as all its channels, so a message published then reaches
// every node's subscribers; before, it is refused, not lost.
//
// In a Redis Cluster the barrier is per app, on the app's shard: a node
// subscribes P{A}:live in the same SSUBSCRIBE as its other channels of A,
// and after its connection to A's shard or a publish there failed, or
// when the primary of A's slot changed since its last publish there, a
// publish of A waits until PUBSUB SHARDNUMSUB P{A}:live on that primary
// counts as many nodes as there are live nodes with sockets recorded in A
// (an existing P{A}:node:N).
package cluster
