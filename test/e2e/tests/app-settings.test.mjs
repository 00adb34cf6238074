// Per-app settings: connection quota, disabled apps, TLS-only, origins,
// HTTP rate limits, size/length limits, presence limits, watchlist events.
import assert from 'node:assert/strict';
import { describe } from 'node:test';

import { app, expectRequestError, record, sleep, useHerald, waitUntil, withTimeout } from '../harness.mjs';

const h = useHerald({
  apps: [
    app(),
    app({ id: 'limited', key: 'limited-key', secret: 'limited-secret', max_connections: 2 }),
    app({ id: 'disabled', key: 'disabled-key', secret: 'disabled-secret', enabled: false }),
    app({ id: 'tls-only', key: 'tls-key', secret: 'tls-secret', require_tls: true }),
    app({
      id: 'origins',
      key: 'origins-key',
      secret: 'origins-secret',
      allowed_origins: ['https://app.example.com', '*.example.org'],
    }),
    app({
      id: 'throttled',
      key: 'throttled-key',
      secret: 'throttled-secret',
      max_backend_events_per_second: 2,
      max_read_requests_per_second: 2,
    }),
    app({
      id: 'small',
      key: 'small-key',
      secret: 'small-secret',
      max_channel_name_length: 20,
      max_event_name_length: 10,
      max_event_channels_at_once: 3,
      max_event_batch_size: 2,
      max_presence_members: 2,
      max_presence_member_size_kb: 1,
    }),
    app({ id: 'watch', key: 'watch-key', secret: 'watch-secret', enable_watchlist_events: true }),
  ],
});

function assertJsonError(status, body, expectedStatus, what) {
  assert.equal(status, expectedStatus, `${what}: status ${status}, body ${body}`);
  let parsed;
  try {
    parsed = JSON.parse(body);
  } catch {
    assert.fail(`${what}: error body is not JSON: ${JSON.stringify(body)}`);
  }
  assert.equal(typeof parsed.error, 'string', `${what}: ${body}`);
  assert.equal(parsed.code, expectedStatus, `${what}: body "code" must equal the status: ${body}`);
}

/** Opens a raw socket that must be refused: pusher:error `code` (if sent) and close `code`. */
async function expectRefused(opts, code) {
  const c = await h.raw({ ...opts, waitEstablished: false });
  const closed = await c.waitClose(3000);
  assert.equal(closed.code, code, `close ${closed.code} ${closed.reason}; frames: ${c.describeHistory()}`);
  assert.ok(!c.history.some((f) => f.event === 'pusher:connection_established'), c.describeHistory());
  const err = c.history.find((f) => f.event === 'pusher:error');
  assert.ok(err, `a pusher:error frame precedes the close: ${c.describeHistory()}`);
  assert.equal(err.data.code, code, err.raw);
  return c;
}

describe('connection admission', () => {
  h.test('max_connections: the third connection is refused with 4004; a slot frees on close', async () => {
    const a = await h.raw({ appId: 'limited' });
    const b = await h.raw({ appId: 'limited' });
    await expectRefused({ appId: 'limited' }, 4004);
    a.close();
    await a.closed;
    await waitUntil(
      async () => {
        try {
          const c = await h.raw({ appId: 'limited' });
          return c;
        } catch {
          return null;
        }
      },
      { timeout: 3000, what: 'a connection after one slot was freed' },
    );
    void b;
    // other apps are not affected by this app's quota
    await h.raw();
  });

  h.test('enabled: false ⇒ 4003 on connect and 403 on the HTTP API', async () => {
    await expectRefused({ appId: 'disabled' }, 4003);
    const err = await expectRequestError(h.api('disabled').trigger('x', 'y', {}));
    assertJsonError(err.status, err.body, 403, 'disabled app trigger');
  });

  h.test('require_tls ⇒ plain ws:// refused with 4000', async () => {
    await expectRefused({ appId: 'tls-only' }, 4000);
  });

  h.test('allowed_origins: listed origins and wildcard hosts connect, others get 4009', async () => {
    const ok1 = await h.raw({ appId: 'origins', origin: 'https://app.example.com' });
    assert.match(ok1.socketId, /^\d+\.\d+$/);
    const ok2 = await h.raw({ appId: 'origins', origin: 'https://shop.example.org' });
    assert.match(ok2.socketId, /^\d+\.\d+$/);
    await expectRefused({ appId: 'origins', origin: 'https://evil.example.com' }, 4009);
    await expectRefused({ appId: 'origins', origin: 'https://example.org.evil.com' }, 4009);
    // the default app allows any origin
    await h.raw({ origin: 'https://anything.test' });
  });
});

describe('HTTP API rate limits', () => {
  h.test('max_backend_events_per_second ⇒ 429 JSON once exceeded', async () => {
    const api = h.api('throttled');
    const results = [];
    for (let i = 0; i < 4; i++) {
      try {
        const res = await api.trigger('rl', 'e', { i });
        results.push(res.status);
      } catch (err) {
        results.push(err.status);
        if (err.status === 429) assertJsonError(err.status, err.body, 429, 'backend rate limit');
      }
    }
    assert.deepEqual(results.slice(0, 2), [200, 200], `statuses ${results}`);
    assert.ok(results.slice(2).includes(429), `statuses ${results}`);
    // the read budget is separate
    const read = await api.get({ path: '/channels' });
    assert.equal(read.status, 200);
    await sleep(1100);
    const later = await api.trigger('rl', 'e', {});
    assert.equal(later.status, 200, 'allowed again after a second');
  });

  h.test('max_read_requests_per_second ⇒ 429 JSON once exceeded', async () => {
    await sleep(1100);
    const api = h.api('throttled');
    const results = [];
    for (let i = 0; i < 4; i++) {
      try {
        results.push((await api.get({ path: '/channels' })).status);
      } catch (err) {
        results.push(err.status);
        if (err.status === 429) assertJsonError(err.status, err.body, 429, 'read rate limit');
      }
    }
    assert.deepEqual(results.slice(0, 2), [200, 200], `statuses ${results}`);
    assert.ok(results.slice(2).includes(429), `statuses ${results}`);
  });
});

describe('limits', () => {
  h.test('max_channel_name_length: longer names are refused on subscribe and on trigger', async () => {
    const c = await h.raw({ appId: 'small' });
    const long = 'c'.repeat(21);
    c.send({ event: 'pusher:subscribe', data: { auth: '', channel: long } });
    const f = await c.next((x) => x.event === 'pusher:error' || x.event.startsWith('pusher:subscription_') ||
      x.event === 'pusher_internal:subscription_succeeded');
    assert.notEqual(f.event, 'pusher_internal:subscription_succeeded', f.raw);
    if (f.event === 'pusher:subscription_error') {
      // pusher-js dispatches by exact channel name: anything else never reaches the channel's handlers
      assert.equal(f.channel, long, `subscription_error must name the channel exactly: ${f.raw}`);
    }
    await c.subscribe('c'.repeat(20));
    const res = await h.request({ method: 'POST', appId: 'small', path: '/events', body: { name: 'e', channels: [long], data: '{}' } });
    assertJsonError(res.status, res.text, 400, '21-char channel');
  });

  h.test('max_event_name_length, max_event_channels_at_once, max_event_batch_size ⇒ 400', async () => {
    const longName = await h.request({ method: 'POST', appId: 'small', path: '/events', body: { name: 'e'.repeat(11), channels: ['x'], data: '{}' } });
    assertJsonError(longName.status, longName.text, 400, '11-char event name');
    const okName = await h.request({ method: 'POST', appId: 'small', path: '/events', body: { name: 'e'.repeat(10), channels: ['x'], data: '{}' } });
    assert.equal(okName.status, 200, okName.text);

    const four = await h.request({ method: 'POST', appId: 'small', path: '/events', body: { name: 'e', channels: ['a', 'b', 'c', 'd'], data: '{}' } });
    assertJsonError(four.status, four.text, 400, '4 channels');
    const three = await h.request({ method: 'POST', appId: 'small', path: '/events', body: { name: 'e', channels: ['a', 'b', 'c'], data: '{}' } });
    assert.equal(three.status, 200, three.text);

    const batch = (n) => ({ batch: Array.from({ length: n }, () => ({ name: 'e', channel: 'a', data: '{}' })) });
    const b3 = await h.request({ method: 'POST', appId: 'small', path: '/batch_events', body: batch(3) });
    assertJsonError(b3.status, b3.text, 400, 'batch of 3');
    const b2 = await h.request({ method: 'POST', appId: 'small', path: '/batch_events', body: batch(2) });
    assert.equal(b2.status, 200, b2.text);
  });

  h.test('client event name over max_event_name_length is rejected', async () => {
    const a = await h.raw({ appId: 'small' });
    const b = await h.raw({ appId: 'small' });
    const chan = 'private-x';
    await a.subscribe(chan, h.channelAuth(a.socketId, chan, { appId: 'small' }));
    await b.subscribe(chan, h.channelAuth(b.socketId, chan, { appId: 'small' }));
    a.send({ event: 'client-toolong', channel: chan, data: {} }); // 14 > 10
    await a.next('pusher:error');
    await a.roundTrip();
    await b.expectNoneBefore('client-toolong', await h.marker(chan, { appId: 'small' }));
  });

  h.test('max_presence_members: a third distinct user is refused; another socket of a member is not', async () => {
    const chan = 'presence-full';
    const join = async (userId, userInfo = { n: userId }) => {
      const c = await h.raw({ appId: 'small' });
      const auth = h.channelAuth(c.socketId, chan, { appId: 'small', channelData: { user_id: userId, user_info: userInfo } });
      c.send({ event: 'pusher:subscribe', data: { channel: chan, ...auth } });
      const f = await c.next((x) => (x.channel === chan && x.event !== 'pusher_internal:member_added') || x.event === 'pusher:error');
      return { c, f };
    };
    const u1 = await join('u1');
    assert.equal(u1.f.event, 'pusher_internal:subscription_succeeded', u1.f.raw);
    const u2 = await join('u2');
    assert.equal(u2.f.event, 'pusher_internal:subscription_succeeded', u2.f.raw);
    await u1.c.next('pusher_internal:member_added'); // u2
    const u3 = await join('u3');
    assert.notEqual(u3.f.event, 'pusher_internal:subscription_succeeded', u3.f.raw);
    assert.ok(u3.c.isOpen);
    await u1.c.expectNoneBefore('pusher_internal:member_added', await h.marker(chan, { appId: 'small' }));
    const u1b = await join('u1');
    assert.equal(u1b.f.event, 'pusher_internal:subscription_succeeded', `same user, second socket: ${u1b.f.raw}`);
  });

  h.test('max_presence_member_size_kb: user_info over 1 KB is refused', async () => {
    const chan = 'presence-big';
    const c = await h.raw({ appId: 'small' });
    const auth = h.channelAuth(c.socketId, chan, { appId: 'small', channelData: { user_id: 'big', user_info: { bio: 'x'.repeat(1100) } } });
    c.send({ event: 'pusher:subscribe', data: { channel: chan, ...auth } });
    const f = await c.next((x) => x.channel === chan || x.event === 'pusher:error');
    assert.notEqual(f.event, 'pusher_internal:subscription_succeeded', f.raw);
    await c.roundTrip();
  });
});

describe('watchlist events', () => {
  h.test('raw: initial online/offline status after sign-in, then online and offline changes', async () => {
    const w2 = await h.raw({ appId: 'watch' });
    await h.signin(w2, 'w2', { appId: 'watch' });

    const watcher = await h.raw({ appId: 'watch' });
    await h.signin(watcher, 'w1', { appId: 'watch', watchlist: ['w2', 'w3'] });
    const first = await watcher.next('pusher_internal:watchlist_events');
    assert.equal(first.channel, undefined);
    assert.equal(typeof first.data, 'string');
    const events = JSON.parse(first.data).events;
    const byName = Object.fromEntries(events.map((e) => [e.name, e.user_ids]));
    assert.deepEqual(byName.online, ['w2'], first.data);
    assert.deepEqual(byName.offline ?? [], ['w3'], first.data);

    const w3 = await h.raw({ appId: 'watch' });
    await h.signin(w3, 'w3', { appId: 'watch' });
    const online = JSON.parse((await watcher.next('pusher_internal:watchlist_events')).data).events;
    assert.deepEqual(online, [{ name: 'online', user_ids: ['w3'] }]);

    w2.close();
    const offline = JSON.parse((await watcher.next('pusher_internal:watchlist_events')).data).events;
    assert.deepEqual(offline, [{ name: 'offline', user_ids: ['w2'] }]);
  });

  h.test('pusher-js: pusher.user.watchlist emits online for a watched user', async () => {
    const watcher = await h.pusher({ appId: 'watch', user: 1, watch: '2' });
    const online = record(watcher.user.watchlist, 'online');
    watcher.signin();
    await withTimeout(watcher.user.signinDonePromise, 5000, 'sign-in');
    const friend = await h.pusher({ appId: 'watch', user: 2 });
    friend.signin();
    await waitUntil(() => online.some((e) => e.data.user_ids.includes('2')), { what: 'online event for user 2' });
  });

  h.test('apps without enable_watchlist_events send no watchlist events', async () => {
    const c = await h.raw();
    await h.signin(c, 'x1', { watchlist: ['x2'] });
    await c.expectNoneBeforePong('pusher_internal:watchlist_events'); // sent with the signin's answer, if at all
  });
});

