// Webhooks as Pusher sends them, checked with the pusher SDK's own
// verification (what a Node backend does with them).
import assert from 'node:assert/strict';
import http from 'node:http';
import { after, describe } from 'node:test';

import { HOST, PusherServer, app, subscribed, useHerald, waitUntil } from '../harness.mjs';

// The receiver must exist before the server's config names it.
const received = []; // { headers, rawBody }
let failNext = 0; // answer 503 to this many requests first
const receiver = http.createServer((req, res) => {
  const chunks = [];
  req.on('data', (c) => chunks.push(c));
  req.on('end', () => {
    if (failNext > 0) {
      failNext--;
      res.writeHead(503).end();
      return;
    }
    received.push({ headers: req.headers, rawBody: Buffer.concat(chunks).toString('utf8') });
    res.writeHead(200).end('{}');
  });
});
await new Promise((resolve) => receiver.listen(0, HOST, resolve));
const url = `http://${HOST}:${receiver.address().port}/webhook`;

const h = useHerald({
  apps: [
    app({
      enable_client_messages: true,
      enable_subscription_count: true,
      webhooks: [{
        url,
        event_types: ['channel_occupied', 'channel_vacated', 'member_added', 'member_removed', 'client_event', 'cache_miss', 'subscription_count'],
      }],
    }),
  ],
});

// Closed after herald has stopped (after hooks run in order), so that what
// herald flushes at shutdown still finds it.
after(() => new Promise((resolve) => receiver.close(resolve)));

// verified returns the events of every received webhook that the pusher SDK
// accepts, and fails on any it does not.
function verified() {
  const sdk = new PusherServer({ appId: 'app-id', key: 'app-key', secret: 'app-secret' });
  const events = [];
  for (const r of received) {
    const wh = sdk.webhook({ headers: r.headers, rawBody: r.rawBody });
    assert.ok(wh.isValid(), `webhook not valid for the pusher SDK: ${JSON.stringify(r.headers)} ${r.rawBody}`);
    assert.equal(typeof wh.getTime().getTime(), 'number');
    events.push(...wh.getEvents());
  }
  return events;
}

function find(events, name, channel) {
  return events.filter((e) => e.name === name && e.channel === channel);
}

describe('webhooks', () => {
  h.test('occupied, vacated, member and cache events verify with the pusher SDK', async () => {
    const alice = await h.pusher({ user: 1 });
    const bob = await h.pusher({ user: 2 });
    const room = alice.subscribe('presence-room');
    await subscribed(room);
    const bobRoom = bob.subscribe('presence-room');
    await subscribed(bobRoom);
    await subscribed(alice.subscribe('cache-prices'));
    await waitUntil(() => {
      const ev = verified();
      return find(ev, 'member_added', 'presence-room').length === 2 && find(ev, 'cache_miss', 'cache-prices').length === 1;
    }, { timeout: 10_000, what: 'member_added and cache_miss webhooks (member events wait out the 3 s presence delay)' });

    bob.disconnect();
    alice.unsubscribe('presence-room');
    await waitUntil(() => {
      const ev = verified();
      return find(ev, 'member_removed', 'presence-room').length === 2 && find(ev, 'channel_vacated', 'presence-room').length === 1;
    }, { timeout: 10_000, what: 'member_removed and channel_vacated webhooks' });

    const ev = verified();
    assert.equal(find(ev, 'channel_occupied', 'presence-room').length, 1, 'one channel_occupied for two members');
    assert.deepEqual(find(ev, 'member_added', 'presence-room').map((e) => e.user_id).sort(), ['1', '2']);
    for (const r of received) assert.equal(r.headers['content-type'], 'application/json');
  });

  h.test('a user who reconnects within the presence delay (3 s by default) causes no member webhook', async () => {
    const first = await h.pusher({ user: 3 });
    await subscribed(first.subscribe('presence-flap'));
    await waitUntil(() => find(verified(), 'member_added', 'presence-flap').length === 1, {
      timeout: 10_000,
      what: 'member_added for the first visit',
    });
    // A page reload: the old socket goes, a new one joins within the delay.
    first.disconnect();
    const again = await h.pusher({ user: 3 });
    await subscribed(again.subscribe('presence-flap'));
    // A marker held after the reload: when it is in, the reload's pair would be too.
    const marker = await h.pusher({ user: 4 });
    await subscribed(marker.subscribe('presence-flap'));
    await waitUntil(() => find(verified(), 'member_added', 'presence-flap').some((e) => e.user_id === '4'), {
      timeout: 10_000,
      what: 'the marker member_added',
    });
    const users = (name) => find(verified(), name, 'presence-flap').map((e) => e.user_id);
    assert.deepEqual(users('member_added').sort(), ['3', '4']);
    assert.deepEqual(users('member_removed'), []);
  });

  h.test('client events are reported with the sender and, on presence channels, its user', async () => {
    const a = await h.pusher({ user: 7 });
    const b = await h.pusher({ user: 8 });
    const ca = a.subscribe('presence-chat');
    await subscribed(ca);
    await subscribed(b.subscribe('presence-chat'));
    ca.trigger('client-typing', { typing: true });
    await waitUntil(() => find(verified(), 'client_event', 'presence-chat').length === 1, { what: 'client_event webhook' });
    const [e] = find(verified(), 'client_event', 'presence-chat');
    assert.equal(e.event, 'client-typing');
    assert.equal(e.user_id, '7');
    assert.equal(e.socket_id, a.connection.socket_id);
    assert.deepEqual(JSON.parse(e.data), { typing: true });
  });

  h.test('subscription counts are reported (coalesced) with the pusher SDK verifying them', async () => {
    const a = await h.pusher();
    const b = await h.pusher();
    await subscribed(a.subscribe('counted'));
    await subscribed(b.subscribe('counted'));
    await waitUntil(() => find(verified(), 'subscription_count', 'counted').some((e) => e.subscription_count === 2), {
      what: 'subscription_count 2 webhook',
    });
    b.unsubscribe('counted');
    await waitUntil(() => {
      const counts = find(verified(), 'subscription_count', 'counted').map((e) => e.subscription_count);
      return counts.at(-1) === 1 && counts.every((n) => Number.isInteger(n) && n >= 1 && n <= 2);
    }, { what: 'subscription_count 1 webhook after an unsubscribe' });
  });

  h.test('a receiver that fails is retried until it accepts', async () => {
    failNext = 2;
    const before = received.length;
    const c = await h.pusher();
    await subscribed(c.subscribe('retried-channel'));
    await waitUntil(() => find(verified(), 'channel_occupied', 'retried-channel').length === 1, {
      timeout: 15000,
      what: 'channel_occupied after two 503 answers',
    });
    assert.equal(failNext, 0, 'the receiver was asked again after failing');
    assert.ok(received.length > before);
  });
});
