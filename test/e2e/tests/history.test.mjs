// Channel history and recovery (docs/recovery.md): plain pusher-js and
// Laravel Echo see nothing new on a channel with history; a raw client that
// sends `recover` gets what it missed, in order, once, even while events
// are published during the replay; backends read history with the pusher
// SDK's get; hostile requests are refused cleanly; in a cluster, a client
// recovers on another node, and an epoch change follows the loss of the
// Redis stream.
import assert from 'node:assert/strict';
import { describe } from 'node:test';

import { Echo, HOST, PusherJS, app, redisCall, record, subscribed, useCluster, useHerald, waitUntil } from '../harness.mjs';

const HISTORY = [
  { pattern: 'orders-*', size: 1000, ttl: '5m' },
  { pattern: 'private-orders-*', size: 100, ttl: '5m' },
];

function whenSubscribed(echoChannel) {
  return new Promise((resolve, reject) => {
    echoChannel.subscribed(resolve);
    echoChannel.error((e) => reject(new Error(`subscription error: ${JSON.stringify(e)}`)));
  });
}

/** Subscribes a raw client, with `recover` when given; resolves with the subscription's answer. */
async function rawSubscribe(c, channel, recover, extra = {}) {
  c.send({ event: 'pusher:subscribe', data: { channel, ...extra, ...(recover ? { recover } : {}) } });
  return c.next((f) => f.channel === channel && /subscription_(succeeded|error)/.test(f.event), { timeout: 5000 });
}

const recovery = (f) => JSON.parse(f.data);

/** The offsets of event `name` on `channel` a raw client received so far. */
const offsetsOf = (c, channel, name = 'ev') =>
  c.history.filter((f) => f.event === name && f.channel === channel).map((f) => f.position.offset);

const range = (from, to) => Array.from({ length: Math.max(0, to - from + 1) }, (_, i) => from + i);

describe('history on a single node', () => {
  const h = useHerald({
    apps: [
      app({ history: HISTORY }),
      app({ id: 'other-id', key: 'other-key', secret: 'other-secret', history: HISTORY }),
    ],
  });

  h.test('pusher-js and Echo get the same callbacks and data on a channel with history as on one without', async () => {
    const opts = { cluster: 'mt1', wsHost: HOST, wsPort: h.server.port, forceTLS: false, enabledTransports: ['ws'], disableStats: true };
    const client = new PusherJS('app-key', opts);
    h.addCleanup(() => client.disconnect());
    const echo = new Echo({ broadcaster: 'pusher', key: 'app-key', ...opts, Pusher: PusherJS, withoutInterceptors: true });
    h.addCleanup(() => echo.disconnect());
    const got = {};
    for (const name of ['orders-1', 'plain-1']) {
      const ch = client.subscribe(name);
      const succeeded = new Promise((resolve) => ch.bind('pusher:subscription_succeeded', resolve));
      await subscribed(ch);
      const echoGot = [];
      await whenSubscribed(echo.channel(name).listen('.OrderShipped', (e) => echoGot.push(e)));
      const log = record(ch, 'OrderShipped');
      const all = [];
      ch.bind_global((ev, data) => all.push([ev, data]));
      for (let i = 0; i < 3; i++) assert.equal((await h.api().trigger(name, 'OrderShipped', { id: i })).status, 200);
      await log.waitFor(3, 3000);
      await waitUntil(() => echoGot.length === 3, { what: `Echo on ${name}` });
      got[name] = { succeeded: await succeeded, pusher: log.map((e) => e.data), echo: echoGot, global: all };
    }
    assert.deepEqual(got['orders-1'], got['plain-1']);
    assert.deepEqual(got['orders-1'].pusher, [{ id: 0 }, { id: 1 }, { id: 2 }]);
  });

  h.test('events carry positions; a recovery replays the missed events in order, once, while events are published', async () => {
    const a = await h.raw();
    const ok = await rawSubscribe(a, 'orders-live');
    assert.equal(ok.event, 'pusher_internal:subscription_succeeded');
    const { epoch } = ok.position;
    assert.equal(ok.position.offset, 0);
    const api = h.api();
    for (let i = 0; i < 150; i++) await api.trigger('orders-live', 'ev', { i });
    await waitUntil(() => offsetsOf(a, 'orders-live').length === 150, { what: '150 events' });
    assert.deepEqual(offsetsOf(a, 'orders-live'), range(1, 150));
    // Publishing without pause while clients recover.
    let stop = false;
    const pub = (async () => {
      while (!stop) await api.trigger('orders-live', 'ev', { live: true });
    })();
    const recs = [];
    for (const from of [0, 50, 149]) {
      const c = await h.raw();
      recs.push({ c, from });
      const sub = await rawSubscribe(c, 'orders-live', { epoch, offset: from });
      assert.equal(sub.position.epoch, epoch);
    }
    for (const { c } of recs) {
      const r = recovery(await c.next('herald:recovery', { timeout: 5000 }));
      assert.equal(r.recovered, true);
      assert.equal(r.position.epoch, epoch);
    }
    const target = Math.max(...offsetsOf(a, 'orders-live')) + 20;
    await waitUntil(() => offsetsOf(recs[2].c, 'orders-live').at(-1) >= target, { what: 'live events after the recovery', timeout: 10000 });
    stop = true;
    await pub;
    const last = await h.marker('orders-live');
    for (const c of [a, ...recs.map((r) => r.c)]) await c.next(last, { timeout: 5000 });
    const top = a.history.findLast((f) => f.event === last).position.offset;
    for (const { c, from } of recs) {
      assert.deepEqual(offsetsOf(c, 'orders-live'), range(from + 1, top - 1), `recovering from ${from}`);
      assert.equal(c.history.findLast((f) => f.event === last).position.offset, top);
      const evs = c.history.filter((f) => f.channel === 'orders-live').map((f) => f.event);
      assert.equal(evs[0], 'pusher_internal:subscription_succeeded');
    }
  });

  h.test('backends read history with the SDK get', async () => {
    const api = h.api();
    for (let i = 0; i < 5; i++) await api.trigger('orders-http', 'created', { i });
    const res = await api.get({ path: '/channels/orders-http/history', params: { after: 2, limit: 2 } });
    assert.equal(res.status, 200);
    const body = await res.json();
    assert.equal(body.channel, 'orders-http');
    assert.equal(body.first_offset, 1);
    assert.equal(body.last_offset, 5);
    assert.deepEqual(
      body.events.map((e) => [e.offset, e.event, JSON.parse(e.data)]),
      [
        [3, 'created', { i: 2 }],
        [4, 'created', { i: 3 }],
      ],
    );
    const none = await api.get({ path: '/channels/plain-x/history' }).catch((e) => e);
    assert.equal(none.status, 404);
    const bad = await api.get({ path: '/channels/orders-http/history', params: { limit: 5000 } }).catch((e) => e);
    assert.equal(bad.status, 400);
  });

  h.test('hostile recovery requests are refused cleanly', async () => {
    const api = h.api();
    for (let i = 0; i < 3; i++) await api.trigger(['orders-h', 'private-orders-h'], 'ev', { i });
    const c = await h.raw();
    const { epoch } = (await rawSubscribe(c, 'orders-h')).position;
    const cases = [
      [{ epoch, offset: 1e30 }, 'invalid'],
      [{ epoch, offset: '18446744073709551615' }, 'invalid'],
      [{ epoch, offset: -1 }, 'invalid'],
      [{ epoch, offset: 1.5 }, 'invalid'],
      [{ epoch, offset: 'x' }, 'invalid'],
      [{ offset: 1 }, 'invalid'],
      [{ epoch, offset: 1000 }, 'invalid'],
      [{ epoch: 'x'.repeat(10000), offset: 1 }, 'invalid'],
      [{ epoch: 'not-ours', offset: 1 }, 'epoch_changed'],
    ];
    let top = 3; // each marker below is one more event
    for (const [rec, reason] of cases) {
      const d = await h.raw();
      const ok = await rawSubscribe(d, 'orders-h', rec);
      assert.equal(ok.event, 'pusher_internal:subscription_succeeded');
      const r = recovery(await d.next('herald:recovery'));
      assert.deepEqual([r.recovered, r.reason, r.position], [false, reason, { epoch, offset: top }], JSON.stringify(rec).slice(0, 80));
      const m = await h.marker('orders-h');
      top++;
      await d.next(m);
      assert.deepEqual(offsetsOf(d, 'orders-h'), [], `nothing replayed for ${JSON.stringify(rec).slice(0, 80)}`);
    }
    // Another app's channel of the same name has a history of its own.
    const o = await h.raw({ appId: 'other-id' });
    await rawSubscribe(o, 'orders-h', { epoch, offset: 0 });
    assert.equal(recovery(await o.next('herald:recovery')).reason, 'epoch_changed');
    assert.deepEqual(offsetsOf(o, 'orders-h'), []);
    // A private channel the client may not read: a subscription error, nothing else.
    const p = await h.raw();
    const perr = await rawSubscribe(p, 'private-orders-h', { epoch, offset: 0 }, { auth: 'app-key:0000' });
    assert.equal(perr.event, 'pusher:subscription_error');
    p.send({ event: 'pusher:ping', data: {} });
    await p.next('pusher:pong');
    assert.equal(p.history.filter((f) => f.event === 'herald:recovery' || f.event === 'ev').length, 0);
    // Without a rule: no_history.
    const n = await h.raw();
    await rawSubscribe(n, 'plain-h', { epoch, offset: 0 });
    assert.equal(recovery(await n.next('herald:recovery')).reason, 'no_history');
  });
});

describe('history in a cluster (2 nodes, Redis)', () => {
  const h = useCluster({ apps: [app({ history: HISTORY })] }, { nodes: 2 });

  h.test('a client recovers on the other node; deleting the stream in Redis changes the epoch', async () => {
    const a = await h.raw({ node: 0 });
    const { epoch } = (await rawSubscribe(a, 'orders-c')).position;
    for (let i = 0; i < 30; i++) await h.api(i % 2).trigger('orders-c', 'ev', { i });
    await waitUntil(() => offsetsOf(a, 'orders-c').length === 30, { what: '30 events on node 0' });
    assert.deepEqual(offsetsOf(a, 'orders-c'), range(1, 30));
    const b = await h.raw({ node: 1 });
    await rawSubscribe(b, 'orders-c', { epoch, offset: 10 });
    const r = recovery(await b.next('herald:recovery'));
    assert.deepEqual([r.recovered, r.replayed, r.position.offset], [true, 20, 30]);
    assert.deepEqual(offsetsOf(b, 'orders-c'), range(11, 30));

    const key = `${h.prefix}{app-id}:hx:orders-c`;
    assert.equal(await redisCall(6379, ['DEL', key]), 1);
    const c = await h.raw({ node: 1 });
    const ok = await rawSubscribe(c, 'orders-c', { epoch, offset: 30 });
    assert.notEqual(ok.position.epoch, epoch);
    const lost = recovery(await c.next('herald:recovery'));
    assert.deepEqual([lost.recovered, lost.reason, lost.position.offset], [false, 'epoch_changed', 0]);
    await h.api(0).trigger('orders-c', 'ev', { after: true });
    await waitUntil(() => a.history.some((f) => f.event === 'ev' && f.position.epoch === ok.position.epoch), {
      what: 'the new epoch on node 0',
    });
    assert.deepEqual(a.history.findLast((f) => f.event === 'ev').position, { epoch: ok.position.epoch, offset: 1 });
  });
});
