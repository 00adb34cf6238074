// Server-level settings: path_prefix, cache_ttl, subscription_count_interval.
import assert from 'node:assert/strict';
import { describe } from 'node:test';

import { app, record, sleep, subscribed, useHerald, waitUntil } from '../harness.mjs';

const h = useHerald({
  path_prefix: '/realtime',
  cache_ttl: '2s',
  subscription_count_interval: '300ms',
  apps: [app({ enable_subscription_count: true })],
});

describe('path_prefix', () => {
  h.test('pusher-js (wsPath) connects under the prefix and receives events triggered under the prefix', async () => {
    const client = await h.pusher(); // harness sets wsPath from path_prefix
    const ch = client.subscribe('prefixed');
    await subscribed(ch);
    const got = record(ch, 'hello');
    // The SDKs sign /apps/{id}/... without the prefix and request {prefix}/apps/{id}/...
    const res = await h.request({
      method: 'POST',
      prefix: '/realtime',
      path: '/events',
      body: { name: 'hello', channels: ['prefixed'], data: '{"ok":true}' },
    });
    assert.equal(res.status, 200, res.text);
    assert.deepEqual(res.json, {});
    await got.waitFor(1);
    assert.deepEqual(got[0].data, { ok: true });

    const get = await h.request({ prefix: '/realtime', path: '/channels/prefixed', params: { info: 'subscription_count' } });
    assert.equal(get.status, 200, get.text);
    assert.deepEqual(get.json, { occupied: true, subscription_count: 1 });
  });

  h.test('without the prefix the WebSocket and API paths are not served', async () => {
    const res = await fetch(`${h.server.httpBase}/app/app-key`);
    await res.arrayBuffer();
    assert.equal(res.status, 404);
    const api = await h.request({ path: '/channels' });
    assert.equal(api.status, 404, api.text);
  });
});

describe('cache_ttl', () => {
  h.test('a cached event expires after cache_ttl: later subscribers get cache_miss', async () => {
    const res = await h.request({
      method: 'POST',
      prefix: '/realtime',
      path: '/events',
      body: { name: 'price', channels: ['cache-ttl'], data: '{"v":1}' },
    });
    assert.equal(res.status, 200, res.text);
    const fresh = await h.raw();
    await fresh.subscribe('cache-ttl');
    const cached = await fresh.next((f) => f.channel === 'cache-ttl' && !f.event.startsWith('pusher_internal:'));
    assert.equal(cached.event, 'price', cached.raw);

    await sleep(2600);
    const late = await h.raw();
    await late.subscribe('cache-ttl');
    const miss = await late.next((f) => f.channel === 'cache-ttl' && !f.event.startsWith('pusher_internal:'));
    assert.equal(miss.event, 'pusher:cache_miss', miss.raw);
  });
});

describe('subscription_count_interval', () => {
  h.test('updates are coalesced to the configured interval and end at the latest value', async () => {
    const watcher = await h.raw();
    await watcher.subscribe('fast-count');
    const isCount = (f) => f.event === 'pusher_internal:subscription_count' && f.channel === 'fast-count';
    await watcher.next(isCount);
    await sleep(400);
    watcher.drain();
    const joiners = [];
    for (let i = 0; i < 4; i++) {
      joiners.push(await h.raw());
      await joiners.at(-1).subscribe('fast-count');
      await sleep(350); // longer than the interval: every change is reported
    }
    await waitUntil(() => watcher.queue.filter(isCount).some((f) => JSON.parse(f.data).subscription_count === 5), {
      timeout: 2000,
      what: 'count 5',
    });
    const values = watcher.queue.filter(isCount).map((f) => JSON.parse(f.data).subscription_count);
    // Joins ~350 ms apart: a 300 ms interval reports (nearly) each of them,
    // where the default 1 s interval would coalesce them into about two.
    assert.equal(values.at(-1), 5, `values ${values}`);
    assert.ok(values.every((v, i) => i === 0 || v > values[i - 1]), `increasing: ${values}`);
    assert.ok(values.length >= 3, `with joins spaced wider than the interval most counts are sent: ${values}`);
  });
});
