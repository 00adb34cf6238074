// Laravel's `redis` broadcaster, for real: a PHP script boots Debian's
// php-laravel-framework (Container, RedisManager with phpredis and the
// database.redis.options.prefix, BroadcastManager with the redis driver)
// and sends a ShouldBroadcastNow event with broadcast(...)->toOthers().
// Two herald nodes share the Redis; one of them ingests the app's Laravel
// channels; pusher-js clients on both nodes get the event exactly once,
// except the socket Laravel excluded.

import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import crypto from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { describe } from 'node:test';
import { promisify } from 'node:util';

import { HOST, app, record, redisCall, subscribed, useCluster, waitUntil } from '../harness.mjs';

const run = promisify(execFile);
const SCRIPT = fileURLToPath(new URL('../laravel/broadcast.php', import.meta.url));
const PREFIX = `laravel_${crypto.randomBytes(5).toString('hex')}_database_`;

/** Broadcasts one event through Laravel's RedisBroadcaster. */
async function laravelBroadcast(channel, event, socketId, data) {
  const { stdout } = await run('php', [SCRIPT, HOST, '6379', PREFIX, channel, event, socketId, JSON.stringify(data)], {
    timeout: 15_000,
  });
  assert.equal(stdout.trim(), 'broadcast');
}

/** The value of one series on a node's /metrics (null when absent). */
async function metric(node, series) {
  const text = await (await fetch(`${node.httpBase}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line ? Number(line.slice(series.length + 1)) : null;
}

describe("Laravel's redis broadcaster (2 nodes)", () => {
  const h = useCluster(
    {
      redis_lease: 2,
      log_level: process.env.HERALD_E2E_LOG_LEVEL || 'info',
      apps: [app({ laravel_redis: { url: `redis://${HOST}:6379/0`, prefix: PREFIX } })],
    },
    { nodes: 2 },
  );

  h.test('an event from Laravel reaches pusher-js on both nodes once, not the toOthers() socket', async () => {
    // Exactly one node ingests the app.
    const active = 'herald_ingest_active{app="app-id"}';
    await waitUntil(async () => (await metric(h.nodes[0], active)) + (await metric(h.nodes[1], active)) === 1, {
      timeout: 10_000,
      what: 'one node ingesting',
    });

    const clients = [await h.pusher({ node: 0 }), await h.pusher({ node: 1 }), await h.pusher({ node: 1 })];
    const shipped = [];
    const markers = [];
    for (const c of clients) {
      // Laravel's PrivateChannel('orders.1'): authorized through the auth
      // endpoint with Pusher signatures, as with the pusher broadcaster.
      const ch = c.subscribe('private-orders.1');
      await subscribed(ch);
      shipped.push(record(ch, 'OrderShipped'));
      markers.push(record(ch, 'Marker'));
    }
    const excluded = clients[2].connection.socket_id;

    await laravelBroadcast('private-orders.1', 'OrderShipped', excluded, { order: { id: 1, url: 'https://shop.test/o/1' }, note: 'a/b é' });
    // Same publisher, same Redis channel: it arrives after the first.
    await laravelBroadcast('private-orders.1', 'Marker', '', {});
    await Promise.all(markers.map((m) => m.waitFor(1, 5000)));

    for (const i of [0, 1]) {
      assert.equal(shipped[i].length, 1, `client ${i} (node ${i}) got ${shipped[i].length} OrderShipped`);
      // What the pusher broadcaster would have sent: the payload without socket.
      assert.deepEqual(shipped[i][0].data, { order: { id: 1, url: 'https://shop.test/o/1' }, note: 'a/b é' });
    }
    assert.equal(shipped[2].length, 0, 'the toOthers() socket got the event');
    // An event without properties is PHP's empty array.
    assert.deepEqual(markers[0][0].data, []);

    // Ingested once in the cluster: two messages, both published.
    const published = 'herald_ingest_messages_total{app="app-id",result="published"}';
    const counts = [await metric(h.nodes[0], published), await metric(h.nodes[1], published)];
    assert.equal((counts[0] ?? 0) + (counts[1] ?? 0), 2, `published per node: ${JSON.stringify(counts)}`);
    assert.ok(counts.includes(null), `both nodes ingested: ${JSON.stringify(counts)}`);
  });

  h.test('a bad payload on the Laravel channels is counted and the next event still arrives', async () => {
    const c = await h.pusher({ node: 0 });
    const ch = c.subscribe('news');
    await subscribed(ch);
    const got = record(ch, 'After');
    // Not JSON, straight onto a Laravel channel (redis-cli would do the same).
    await redisCall(6379, ['PUBLISH', `${PREFIX}news`, 'this is not json']);
    await laravelBroadcast('news', 'After', '', { ok: true });
    await got.waitFor(1, 5000);
    const series = 'herald_ingest_messages_total{app="app-id",result="not_json"}';
    const n = (await metric(h.nodes[0], series)) ?? 0;
    const m = (await metric(h.nodes[1], series)) ?? 0;
    assert.equal(n + m, 1);
  });
});
