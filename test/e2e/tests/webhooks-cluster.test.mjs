// Webhooks from a cluster of three herald processes sharing the Redis at
// 127.0.0.1:6379 (one unique redis_prefix for the file): each event is sent
// once, not once per node, and the batches a killed node left in the Redis
// queue are delivered by the others.
import assert from 'node:assert/strict';
import { after, describe } from 'node:test';

import { WebhookReceiver, app, killHerald, redisWebhookBatches, subscribed, useCluster, waitUntil } from '../harness.mjs';

const rcv = await WebhookReceiver.start();

const APP = app({
  webhooks: [{ url: rcv.url, event_types: ['channel_occupied', 'channel_vacated', 'member_added', 'member_removed'] }],
});
const h = useCluster({
  apps: [APP],
  redis_lease: '2s',
  webhook_timeout: '1s',
  webhook_backoff_min: '200ms',
  webhook_backoff_max: '1s',
});
// After the nodes have stopped (after hooks run in order).
after(() => rcv.close());

const key = (e) => [e.name, e.channel, e.user_id].filter(Boolean).join(' ');
const count = (k) => rcv.uniqueEvents(APP).filter((e) => key(e) === k).length;

// Once a marker channel occupied on every node has been reported and the
// cluster's queue is empty, every event caused before the markers is in.
async function settle(tag) {
  const markers = [];
  for (const node of [0, 1, 2]) {
    const m = await h.pusher({ node });
    await subscribed(m.subscribe(`marker-${tag}-${node}`));
    markers.push(`channel_occupied marker-${tag}-${node}`);
  }
  await waitUntil(() => markers.every((k) => count(k) === 1), { timeout: 10_000, what: `markers ${markers}` });
  await waitUntil(async () => (await redisWebhookBatches(h.prefix)) === 0, { timeout: 10_000, what: 'an empty webhook queue' });
}

describe('webhooks from a 3-node cluster', () => {
  h.test('a channel occupied from two nodes: one channel_occupied, one channel_vacated, one member_added and member_removed', async () => {
    // The same user on two nodes, on a presence channel and a public one.
    const a = await h.pusher({ node: 0, user: 1 });
    const b = await h.pusher({ node: 1, user: 1 });
    for (const c of [a, b]) {
      await subscribed(c.subscribe('presence-shared'));
      await subscribed(c.subscribe('shared'));
    }
    await waitUntil(() => count('member_added presence-shared 1') >= 1 && count('channel_occupied shared') >= 1, {
      timeout: 10_000,
      what: 'channel_occupied and member_added (after the 3 s presence delay)',
    });
    for (const c of [a, b]) {
      c.unsubscribe('presence-shared');
      c.unsubscribe('shared');
    }
    await waitUntil(() => count('member_removed presence-shared 1') >= 1 && count('channel_vacated shared') >= 1, {
      timeout: 10_000,
      what: 'channel_vacated and member_removed',
    });
    await settle('shared');
    const got = {};
    for (const k of [
      'channel_occupied shared',
      'channel_vacated shared',
      'channel_occupied presence-shared',
      'channel_vacated presence-shared',
      'member_added presence-shared 1',
      'member_removed presence-shared 1',
    ]) got[k] = count(k);
    assert.deepEqual(got, {
      'channel_occupied shared': 1,
      'channel_vacated shared': 1,
      'channel_occupied presence-shared': 1,
      'channel_vacated presence-shared': 1,
      'member_added presence-shared 1': 1,
      'member_removed presence-shared 1': 1,
    });
  });

  h.test('a node killed (kill -9) while its webhooks are pending: another node delivers them', async () => {
    const victim = await h.startNode();
    rcv.mode = 'hang'; // every attempt is cut at webhook_timeout and retried
    const c = await h.pusher({ node: victim });
    const channels = [0, 1, 2, 3, 4].map((i) => `doomed-${i}`);
    for (const ch of channels) await subscribed(c.subscribe(ch));
    // Batches are in the Redis queue and being attempted (some leased by the victim).
    await waitUntil(() => channels.every((ch) => rcv.requests.some((r) => r.rawBody.includes(`"${ch}"`))), {
      what: 'attempts for every doomed channel',
    });
    assert.ok((await redisWebhookBatches(h.prefix)) > 0, 'batches pending in Redis');
    await killHerald(victim);
    rcv.mode = 'ok';
    // The occupied events the victim queued, and the vacated ones the
    // survivors decide when its lease ends.
    const want = channels.flatMap((ch) => [`channel_occupied ${ch}`, `channel_vacated ${ch}`]);
    await waitUntil(() => want.every((k) => count(k) >= 1), { timeout: 30_000, what: `${want.length} webhooks after the kill` });
    await settle('killed');
    for (const k of want) assert.equal(count(k), 1, `${k}: once (per batch id)`);
    assert.equal(victim.exited.signal, 'SIGKILL');
  }, { timeout: 60_000 });
});
