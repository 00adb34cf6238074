package cluster

import "github.com/redis/go-redis/v9"

// rosterLua returns the presence roster as user id, member pairs in join
// order (KEYS[4] order zset, KEYS[2] members hash). HMGET goes in chunks to
// stay clear of Lua's unpack limit.
const rosterLua = `
local function roster(order, members)
  local out = {}
  local ids = redis.call('ZRANGE', order, 0, -1)
  local i = 1
  while i <= #ids do
    local j = math.min(i + 999, #ids)
    local blobs = redis.call('HMGET', members, unpack(ids, i, j))
    for k = i, j do
      out[#out + 1] = ids[k]
      out[#out + 1] = blobs[k - i + 1] or ''
    end
    i = j + 1
  end
  return out
end
`

// subscribeScript records a socket on a channel.
// KEYS: sockets, members, refcounts, order, app index, node set.
// ARGV: socket, node, presence ("1" or ""), user, member, max members, channel.
// Reply: {added, count, first, fresh, [user, member]...}; {-1} when the
// presence channel is full. fresh is 1 when the entry created the node
// set: the node's first socket in the app, which the barrier of a Redis
// Cluster relies on (State.Subscribe has a replica acknowledge it). A socket already present is re-owned by node (a node
// that registers its sockets again after losing its lease) and put back in
// the node's set.
var subscribeScript = redis.NewScript(rosterLua + `
local sock, node, pres, user, chan = ARGV[1], ARGV[2], ARGV[3] == '1', ARGV[4], ARGV[7]
local function record()
  if redis.call('SADD', KEYS[6], chan .. '\n' .. sock) == 1 and redis.call('SCARD', KEYS[6]) == 1 then
    return 1
  end
  return 0
end
local res
local cur = redis.call('HGET', KEYS[1], sock)
if cur then
  local nl = string.find(cur, '\n', 1, true) or (#cur + 1)
  if string.sub(cur, 1, nl - 1) ~= node then
    redis.call('HSET', KEYS[1], sock, node .. string.sub(cur, nl))
  end
  -- Also when the owner is unchanged: a node set that lost the entry
  -- (Hub.Reconcile records it again) gets it back.
  local fresh = record()
  res = {0, redis.call('HLEN', KEYS[1]), 0, fresh}
else
  local first = 0
  local val = node .. '\n'
  if pres then
    if redis.call('HEXISTS', KEYS[2], user) == 0 then
      local max = tonumber(ARGV[6]) or 0
      if max > 0 and redis.call('HLEN', KEYS[2]) >= max then
        return {-1}
      end
      local top = redis.call('ZREVRANGE', KEYS[4], 0, 0, 'WITHSCORES')
      local seq = 1
      if #top > 0 then seq = tonumber(top[2]) + 1 end
      redis.call('ZADD', KEYS[4], seq, user)
      redis.call('HSET', KEYS[2], user, ARGV[5])
      first = 1
    end
    redis.call('HINCRBY', KEYS[3], user, 1)
    val = val .. 'p' .. user
  end
  redis.call('HSET', KEYS[1], sock, val)
  local fresh = record()
  redis.call('ZADD', KEYS[5], 0, chan)
  res = {1, redis.call('HLEN', KEYS[1]), first, fresh}
end
if pres then
  for _, v in ipairs(roster(KEYS[4], KEYS[2])) do res[#res + 1] = v end
end
return res
`)

// unsubscribeScript removes a socket from a channel.
// KEYS: as subscribeScript (the node set is the one the entry is removed
// from), then optionally the outcome key of the leave (State.Leave).
// ARGV: socket, channel, expected owner ("" for any: the reaper passes the
// dead node so that a socket its node registered again under a new id is
// left alone), how long to keep the outcome (ms, with KEYS[7]).
// Reply: {removed, count, last, user, member}.
//
// With KEYS[7], a removal that ends the user's presence or empties the
// channel keeps its outcome there, and a call that finds the socket gone
// returns the kept outcome (removed = 1; last only while the user is still
// absent; the count as it is now): a retry so learns what an attempt whose
// reply was lost did.
var unsubscribeScript = redis.NewScript(`
local sock, chan, want = ARGV[1], ARGV[2], ARGV[3]
local keep = KEYS[7]
redis.call('SREM', KEYS[6], chan .. '\n' .. sock)
local cur = redis.call('HGET', KEYS[1], sock)
if not cur then
  local count = redis.call('HLEN', KEYS[1])
  if keep then
    local t = redis.call('HMGET', keep, 'l', 'u', 'b')
    if t[1] then
      if t[1] == '1' and redis.call('HEXISTS', KEYS[2], t[2]) == 0 then
        return {1, count, 1, t[2], t[3]}
      end
      return {1, count}
    end
  end
  return {0, count}
end
local nl = string.find(cur, '\n', 1, true) or (#cur + 1)
if want ~= '' and string.sub(cur, 1, nl - 1) ~= want then
  return {0, redis.call('HLEN', KEYS[1])}
end
redis.call('HDEL', KEYS[1], sock)
local count = redis.call('HLEN', KEYS[1])
local res = {1, count, 0}
if string.sub(cur, nl + 1, nl + 1) == 'p' then
  local user = string.sub(cur, nl + 2)
  if redis.call('HINCRBY', KEYS[3], user, -1) <= 0 then
    redis.call('HDEL', KEYS[3], user)
    local blob = redis.call('HGET', KEYS[2], user) or ''
    redis.call('HDEL', KEYS[2], user)
    redis.call('ZREM', KEYS[4], user)
    res = {1, count, 1, user, blob}
  end
end
if count == 0 then redis.call('ZREM', KEYS[5], chan) end
if keep and (res[3] == 1 or count == 0) then
  if res[3] == 1 then
    redis.call('HSET', keep, 'l', '1', 'u', res[4], 'b', res[5])
  else
    redis.call('HSET', keep, 'l', '0')
  end
  redis.call('PEXPIRE', keep, ARGV[4])
end
return res
`)

// channelScript reads the counts of a channel. KEYS: sockets, members.
var channelScript = redis.NewScript(`
return {redis.call('HLEN', KEYS[1]), redis.call('HLEN', KEYS[2])}
`)

// membersScript reads a roster. KEYS: members, order (as in rosterLua's
// argument order below).
var membersScript = redis.NewScript(rosterLua + `
return roster(KEYS[2], KEYS[1])
`)

// cacheScript reads a cache entry and its remaining life. KEYS: cache.
var cacheScript = redis.NewScript(`
local v = redis.call('GET', KEYS[1])
if not v then return false end
return {v, redis.call('PTTL', KEYS[1])}
`)

// leaseScript registers or renews a node's lease, on the Redis clock.
// KEYS: nodes, claims, brokers. ARGV: node, lease ms, "renew" or
// "register", the node's broker id ("": none). Reply: 1, or 0 when a
// renewal finds the lease expired or claimed (the node has been, or is
// being, reaped and must come back under a new id). The broker id is
// written with every renewal, in the same script as the lease, so that a
// live lease always names its broker, even after a failover lost writes.
var leaseScript = redis.NewScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if ARGV[3] == 'renew' then
  local s = redis.call('ZSCORE', KEYS[1], ARGV[1])
  if (not s) or tonumber(s) < now or redis.call('HEXISTS', KEYS[2], ARGV[1]) == 1 then
    return 0
  end
end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
if ARGV[4] ~= '' then redis.call('HSET', KEYS[3], ARGV[1], ARGV[4]) end
return 1
`)

// claimScript claims one node whose lease expired, for ARGV[2] ms.
// KEYS: nodes, claims. ARGV: reaper node, claim ms. Reply: the node id, or
// nil. A claim that runs out (its reaper died) is claimed again.
var claimScript = redis.NewScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, 1)
if #ids == 0 then return false end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ids[1])
redis.call('HSET', KEYS[2], ids[1], ARGV[1])
return ids[1]
`)

// releaseScript forgets a reaped node. KEYS: nodes, claims, brokers.
// ARGV: node, reaper. It only acts for the reaper holding the claim.
var releaseScript = redis.NewScript(`
if redis.call('HGET', KEYS[2], ARGV[1]) ~= ARGV[2] then return 0 end
redis.call('HDEL', KEYS[2], ARGV[1])
redis.call('HDEL', KEYS[3], ARGV[1])
redis.call('ZREM', KEYS[1], ARGV[1])
return 1
`)

// sweepBrokersScript drops the broker ids of nodes that have no lease
// any more: a node of an earlier build reaped them without knowing the
// brokers hash. KEYS: nodes, brokers. Reply: the number dropped.
var sweepBrokersScript = redis.NewScript(`
local n = 0
for _, id in ipairs(redis.call('HKEYS', KEYS[2])) do
  if not redis.call('ZSCORE', KEYS[1], id) then
    redis.call('HDEL', KEYS[2], id)
    n = n + 1
  end
end
return n
`)

// expireScript ends a node's lease now (graceful stop): the survivors reap
// whatever it left behind at their next pass. KEYS: nodes. ARGV: node.
var expireScript = redis.NewScript(`
if redis.call('ZSCORE', KEYS[1], ARGV[1]) then
  redis.call('ZADD', KEYS[1], 0, ARGV[1])
end
return 1
`)
