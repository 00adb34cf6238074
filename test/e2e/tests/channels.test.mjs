// Channels: public, private, presence, encrypted, cache, subscription_count.
import assert from 'node:assert/strict';
import { describe } from 'node:test';

import { app, forgeAuth, json, once, pusherRoundTrip, record, sleep, subscribed, useHerald, waitUntil } from '../harness.mjs';

const h = useHerald({ apps: [app({ enable_subscription_count: true })] });

/** Parses a subscription_error's data, which may be an object or a JSON string. */
function errData(frame) {
  return typeof frame.data === 'string' ? JSON.parse(frame.data) : frame.data;
}

const isSubResult = (channel) => (f) =>
  f.channel === channel &&
  (f.event === 'pusher_internal:subscription_succeeded' || f.event === 'pusher:subscription_error');

describe('public channels', () => {
  h.test('raw subscribe: subscription_succeeded with data "{}", API event relayed verbatim', async () => {
    const c = await h.raw();
    const ok = await c.subscribe('orders');
    assert.deepEqual({ ...ok }, { event: 'pusher_internal:subscription_succeeded', channel: 'orders', data: '{}' });

    const res = await h.api().trigger('orders', 'order-created', { id: 1, total: '9.99' });
    assert.equal(res.status, 200);
    assert.deepEqual(await json(res), {});
    const ev = await c.next('order-created');
    assert.deepEqual({ ...ev }, { event: 'order-created', channel: 'orders', data: '{"id":1,"total":"9.99"}' });

    // a non-JSON string is relayed as the same string
    await h.api().trigger('orders', 'note', 'just text, not JSON');
    const ev2 = await c.next('note');
    assert.equal(ev2.data, 'just text, not JSON');
  });

  h.test('pusher-js receives API events on a public channel', async () => {
    const client = await h.pusher();
    const ch = client.subscribe('news');
    await subscribed(ch);
    const got = record(ch, 'breaking');
    await h.api().trigger('news', 'breaking', { headline: 'Herald ships' });
    await got.waitFor(1);
    assert.deepEqual(got[0].data, { headline: 'Herald ships' });
  });

  h.test('one trigger to several channels reaches each once', async () => {
    const c = await h.raw();
    await c.subscribe('multi-a');
    await c.subscribe('multi-b');
    await h.api().trigger(['multi-a', 'multi-b', 'multi-c'], 'hello', { n: 1 });
    const a = await c.next((f) => f.event === 'hello' && f.channel === 'multi-a');
    const b = await c.next((f) => f.event === 'hello' && f.channel === 'multi-b');
    assert.equal(a.data, '{"n":1}');
    assert.equal(b.data, '{"n":1}');
    await c.expectNoneBefore('hello', await h.marker('multi-a'));
    await c.expectNoneBefore('hello', await h.marker('multi-b'));
  });

  h.test('after pusher:unsubscribe no more events arrive', async () => {
    const c = await h.raw();
    await c.subscribe('leave-me');
    c.send({ event: 'pusher:unsubscribe', data: { channel: 'leave-me' } });
    await c.roundTrip(); // the unsubscribe has been processed
    await h.api().trigger('leave-me', 'after-leave', {});
    await c.expectNoneBeforePong('after-leave'); // the trigger queued what it sends before answering
  });

  h.test('subscribing twice to the same channel succeeds again and counts once', async () => {
    const c = await h.raw();
    await c.subscribe('twice');
    await c.subscribe('twice');
    const res = await h.api().get({ path: '/channels/twice', params: { info: 'subscription_count' } });
    const info = await json(res);
    assert.equal(info.occupied, true);
    assert.equal(info.subscription_count, 1);
    await h.api().trigger('twice', 'once-please', {});
    await c.next('once-please');
    await c.expectNoneBefore('once-please', await h.marker('twice'));
  });

  h.test('every allowed character and a 200-character name work end to end (SDK-signed paths)', async () => {
    const names = ['private-a=b@c,d;e.f_g-h', 'x'.repeat(200), 'presence-App.Chat.42'];
    const client = await h.pusher({ user: 1 });
    for (const name of names) {
      const ch = client.subscribe(name);
      await subscribed(ch);
      const got = record(ch, 'ev');
      await h.api().trigger(name, 'ev', { name });
      await got.waitFor(1);
      assert.deepEqual(got[0].data, { name });
      const info = await json(await h.api().get({ path: `/channels/${name}`, params: { info: 'subscription_count' } }));
      assert.equal(info.occupied, true, `${name}: ${JSON.stringify(info)}`);
      assert.equal(info.subscription_count, 1);
    }
    const users = await json(await h.api().get({ path: '/channels/presence-App.Chat.42/users' }));
    assert.deepEqual(users.users, [{ id: '1' }]);
  });

  h.test('pusher:subscribe without a channel gets pusher:error; socket stays open', async () => {
    const c = await h.raw();
    c.send({ event: 'pusher:subscribe', data: {} });
    const f = await c.next((x) => x.event === 'pusher:error' || x.event === 'pusher:subscription_error');
    assert.ok(f, f.raw);
    await c.roundTrip();
  });

  h.test('invalid channel name is refused and the socket stays open', async () => {
    const c = await h.raw();
    c.send({ event: 'pusher:subscribe', data: { auth: '', channel: 'bad channel!' } });
    const f = await c.next((x) => x.event === 'pusher:error' || x.event === 'pusher:subscription_error' ||
      x.event === 'pusher_internal:subscription_succeeded');
    assert.notEqual(f.event, 'pusher_internal:subscription_succeeded', f.raw);
    await c.roundTrip();
  });
});

describe('private channels', () => {
  h.test('pusher-js subscribes through the auth endpoint and receives events', async () => {
    const client = await h.pusher({ user: 1 });
    const ch = client.subscribe('private-account.1');
    await subscribed(ch);
    const got = record(ch, 'balance');
    await h.api().trigger('private-account.1', 'balance', { eur: 10 });
    await got.waitFor(1);
    assert.deepEqual(got[0].data, { eur: 10 });
    assert.ok(h.auth.requests.some((r) => r.channel === 'private-account.1' && r.socketId === client.connection.socket_id));
  });

  h.test('raw: forged signature ⇒ pusher:subscription_error AuthError 401, socket stays open', async () => {
    const c = await h.raw();
    const good = h.channelAuth(c.socketId, 'private-forged');
    c.send({ event: 'pusher:subscribe', data: { channel: 'private-forged', auth: forgeAuth(good.auth) } });
    const f = await c.next(isSubResult('private-forged'));
    assert.equal(f.event, 'pusher:subscription_error', f.raw);
    const d = errData(f);
    assert.equal(d.type, 'AuthError');
    assert.equal(d.status, 401);
    assert.equal(typeof d.error, 'string');
    assert.ok(c.isOpen);
    await c.roundTrip();
    // not subscribed: events on the channel do not arrive
    await h.api().trigger('private-forged', 'secret', {});
    await c.expectNoneBeforePong('secret');
    // the same socket can still subscribe with a valid signature
    const ok = await c.subscribe('private-forged', { auth: good.auth });
    assert.equal(ok.data, '{}');
  });

  h.test('raw: missing auth, wrong key, other socket id ⇒ subscription_error 401', async () => {
    const c = await h.raw();
    const other = await h.raw();
    const cases = [
      ['private-noauth', ''],
      ['private-wrongkey', 'other-key:' + h.channelAuth(c.socketId, 'private-wrongkey').auth.split(':')[1]],
      ['private-stolen', h.channelAuth(other.socketId, 'private-stolen').auth],
      ['private-otherchan', h.channelAuth(c.socketId, 'private-something-else').auth],
    ];
    for (const [channel, auth] of cases) {
      c.send({ event: 'pusher:subscribe', data: { channel, auth } });
      const f = await c.next(isSubResult(channel), { what: `result for ${channel}` });
      assert.equal(f.event, 'pusher:subscription_error', `${channel}: ${f.raw}`);
      assert.equal(errData(f).status, 401, `${channel}: ${f.raw}`);
    }
    await c.roundTrip();
  });

  h.test('pusher-js with a forged auth response gets pusher:subscription_error and stays connected', async () => {
    const client = await h.pusher({ user: 1, forge: true });
    const ch = client.subscribe('private-forged-js');
    const err = await once(ch, 'pusher:subscription_error');
    assert.equal(err.status, 401, JSON.stringify(err));
    assert.equal(err.type, 'AuthError');
    assert.equal(ch.subscribed, false);
    await pusherRoundTrip(client); // a close after the error would come first
    assert.equal(client.connection.state, 'connected');
  });
});

describe('presence channels', () => {
  h.test('raw: subscription_succeeded carries ids, hash and count', async () => {
    const c = await h.raw();
    const channelData = { user_id: '10', user_info: { name: 'Mr. Channels' } };
    const auth = h.channelAuth(c.socketId, 'presence-raw', { channelData });
    const ok = await c.subscribe('presence-raw', auth);
    assert.equal(typeof ok.data, 'string');
    const { presence } = JSON.parse(ok.data);
    assert.deepEqual(presence, { ids: ['10'], hash: { 10: { name: 'Mr. Channels' } }, count: 1 });

    // a second user joins: member_added reaches the first socket only
    const d = await h.raw();
    const dData = { user_id: '11', user_info: { name: 'Ada' } };
    const ok2 = await d.subscribe('presence-raw', h.channelAuth(d.socketId, 'presence-raw', { channelData: dData }));
    const p2 = JSON.parse(ok2.data).presence;
    assert.equal(p2.count, 2);
    assert.deepEqual([...p2.ids].sort(), ['10', '11']);
    assert.deepEqual(p2.hash, { 10: { name: 'Mr. Channels' }, 11: { name: 'Ada' } });
    const added = await c.next('pusher_internal:member_added');
    assert.equal(added.channel, 'presence-raw');
    assert.deepEqual(JSON.parse(added.data), { user_id: '11', user_info: { name: 'Ada' } });
    await d.expectNoneBefore('pusher_internal:member_added', await h.marker('presence-raw'));

    d.send({ event: 'pusher:unsubscribe', data: { channel: 'presence-raw' } });
    const removed = await c.next('pusher_internal:member_removed');
    assert.deepEqual(JSON.parse(removed.data), { user_id: '11' });
  });

  h.test('raw: presence subscribe with channel_data not matching the signature is refused', async () => {
    const c = await h.raw();
    const auth = h.channelAuth(c.socketId, 'presence-tamper', { channelData: { user_id: '1', user_info: {} } });
    c.send({
      event: 'pusher:subscribe',
      data: { channel: 'presence-tamper', auth: auth.auth, channel_data: JSON.stringify({ user_id: '2', user_info: {} }) },
    });
    const f = await c.next(isSubResult('presence-tamper'));
    assert.equal(f.event, 'pusher:subscription_error', f.raw);
    assert.equal(errData(f).status, 401);
    await c.roundTrip();
  });

  h.test('raw: numeric user_id, missing user_info, missing user_id', async () => {
    const chan = 'presence-shapes';
    const a = await h.raw();
    // user_id as a JSON number (older pusher-php, hand-written endpoints); no user_info
    const okA = await a.subscribe(chan, h.channelAuth(a.socketId, chan, { channelData: { user_id: 42 } }));
    const pa = JSON.parse(okA.data).presence;
    assert.deepEqual(pa.ids, ['42'], 'ids are strings');
    assert.equal(pa.count, 1);
    assert.ok(Object.hasOwn(pa.hash, '42'), `every member has a hash key (null info): ${okA.data}`);
    assert.equal(pa.hash['42'], null);

    const b = await h.raw();
    await b.subscribe(chan, h.channelAuth(b.socketId, chan, { channelData: { user_id: 43, user_info: { n: 1 } } }));
    const added = await a.next('pusher_internal:member_added');
    const ad = JSON.parse(added.data);
    assert.equal(String(ad.user_id), '43');
    assert.deepEqual(ad.user_info, { n: 1 });

    // channel_data without user_id is refused
    const c = await h.raw();
    c.send({ event: 'pusher:subscribe', data: { channel: chan, ...h.channelAuth(c.socketId, chan, { channelData: { user_info: {} } }) } });
    const f = await c.next((x) => x.channel === chan || x.event === 'pusher:error');
    assert.notEqual(f.event, 'pusher_internal:subscription_succeeded', f.raw);
    await c.roundTrip();
  });

  h.test('pusher-js: presence auth without channel_data uses the signed-in user', async () => {
    // Laravel apps that sign users in may answer presence auth with only {auth};
    // pusher-js then takes the member id from its sign-in (protocol doc §5.3).
    const client = await h.pusher({
      user: 2,
      channelAuthorization: {
        customHandler: ({ socketId, channelName }, callback) => {
          const { auth } = h.api().authorizeChannel(socketId, channelName);
          callback(null, { auth });
        },
      },
    });
    client.signin();
    await client.user.signinDonePromise;
    const other = await h.pusher({ user: 3 });
    const chO = other.subscribe('presence-signed');
    await subscribed(chO);
    const added = record(chO, 'pusher:member_added');
    const ch = client.subscribe('presence-signed');
    const members = await once(ch, 'pusher:subscription_succeeded', 5000);
    assert.equal(members.me?.id, '2', 'me is the signed-in user');
    assert.deepEqual(members.me.info, { id: 2, name: 'Grace Hopper' }, 'user_info comes from the sign-in user_data');
    await added.waitFor(1);
    assert.equal(added[0].data.id, '2');
  });

  h.test('raw: PHP-style channel_data (escaped unicode and slashes) is verified and relayed as the same JSON', async () => {
    // pusher-php json_encode()s channel_data with \uXXXX and \/ escapes; the
    // signature covers those exact bytes, so the server must not re-encode.
    const chan = 'presence-php';
    const channelData = '{"user_id":"7","user_info":{"name":"\\u540d\\u524d","avatar":"https:\\/\\/example.com\\/a.png"}}';
    const crypto = await import('node:crypto');
    const a = await h.raw();
    const sig = crypto.createHmac('sha256', 'app-secret').update(`${a.socketId}:${chan}:${channelData}`).digest('hex');
    const ok = await a.subscribe(chan, { auth: `app-key:${sig}`, channel_data: channelData });
    const { presence } = JSON.parse(ok.data);
    assert.deepEqual(presence.hash['7'], { name: '名前', avatar: 'https://example.com/a.png' });

    const b = await h.raw();
    await b.subscribe(chan, h.channelAuth(b.socketId, chan, { channelData: { user_id: '8' } }));
    const roster = JSON.parse(b.history.find((f) => f.event === 'pusher_internal:subscription_succeeded' && f.channel === chan).data);
    assert.deepEqual(roster.presence.hash['7'], { name: '名前', avatar: 'https://example.com/a.png' });
  });

  h.test('raw: channel_data sent as an object (not the signed string) is refused', async () => {
    const chan = 'presence-objdata';
    const c = await h.raw();
    const auth = h.channelAuth(c.socketId, chan, { channelData: { user_id: '5' } });
    c.send({ event: 'pusher:subscribe', data: { channel: chan, auth: auth.auth, channel_data: { user_id: '5' } } });
    const f = await c.next((x) => x.channel === chan || x.event === 'pusher:error');
    assert.notEqual(f.event, 'pusher_internal:subscription_succeeded', f.raw);
    await c.roundTrip();
  });

  h.test('pusher-js: members with user_info, member_added, member_removed', async () => {
    const ada = await h.pusher({ user: 1 });
    const chA = ada.subscribe('presence-room.1');
    const membersA = await once(chA, 'pusher:subscription_succeeded', 5000);
    assert.equal(membersA.count, 1);
    assert.equal(membersA.me.id, '1');
    assert.deepEqual(membersA.me.info, { id: 1, name: 'Ada Lovelace' });

    const addedP = once(chA, 'pusher:member_added');
    const grace = await h.pusher({ user: 2 });
    const chG = grace.subscribe('presence-room.1');
    const membersG = await once(chG, 'pusher:subscription_succeeded', 5000);
    assert.equal(membersG.count, 2);
    const list = [];
    membersG.each((m) => list.push(m));
    list.sort((x, y) => x.id.localeCompare(y.id));
    assert.deepEqual(list, [
      { id: '1', info: { id: 1, name: 'Ada Lovelace' } },
      { id: '2', info: { id: 2, name: 'Grace Hopper' } },
    ]);
    const added = await addedP;
    assert.deepEqual(added, { id: '2', info: { id: 2, name: 'Grace Hopper' } });
    assert.equal(chA.members.count, 2);

    const removedP = once(chA, 'pusher:member_removed');
    grace.disconnect();
    const removed = await removedP;
    assert.equal(removed.id, '2');
    assert.equal(chA.members.count, 1);
  });

  h.test('same user on two sockets: one member, added once, removed after the last socket leaves', async () => {
    const observer = await h.pusher({ user: 3 });
    const chO = observer.subscribe('presence-dup');
    await subscribed(chO);
    const added = record(chO, 'pusher:member_added');
    const removed = record(chO, 'pusher:member_removed');

    const tab1 = await h.pusher({ user: 1 });
    const ch1 = tab1.subscribe('presence-dup');
    await subscribed(ch1);
    await added.waitFor(1);
    assert.equal(added[0].data.id, '1');

    const tab2 = await h.pusher({ user: 1 });
    const ch2 = tab2.subscribe('presence-dup');
    await subscribed(ch2);
    assert.equal(ch2.members.count, 2, 'users 1 and 3');
    await h.markerAt(chO);
    assert.equal(added.length, 1, 'no member_added for the second socket of the same user');
    assert.equal(chO.members.count, 2);

    const users = await json(await h.api().get({ path: '/channels/presence-dup/users' }));
    assert.deepEqual(users.users.map((u) => u.id).sort(), ['1', '3']);

    tab1.disconnect();
    const subs = async () =>
      (await json(await h.api().get({ path: '/channels/presence-dup', params: { info: 'subscription_count' } }))).subscription_count;
    await waitUntil(async () => (await subs()) === 2, { what: "the server's handling of tab1's disconnect" });
    await h.markerAt(chO);
    assert.equal(removed.length, 0, 'no member_removed while the user still has a socket');
    tab2.unsubscribe('presence-dup');
    await removed.waitFor(1);
    assert.equal(removed[0].data.id, '1');
    assert.equal(chO.members.count, 1);
  });
});

describe('presence under concurrency', () => {
  h.test('20 sockets of 10 users join and leave at once: exactly one added/removed per user', async () => {
    const chan = 'presence-stampede';
    const observer = await h.raw();
    await observer.subscribe(chan, h.channelAuth(observer.socketId, chan, { channelData: { user_id: 'observer' } }));
    const sockets = await Promise.all(Array.from({ length: 20 }, () => h.raw()));
    sockets.forEach((c, i) => {
      const auth = h.channelAuth(c.socketId, chan, { channelData: { user_id: `u${i % 10}`, user_info: { i: i % 10 } } });
      c.send({ event: 'pusher:subscribe', data: { channel: chan, ...auth } });
    });
    await Promise.all(sockets.map((c) => c.next((f) => f.channel === chan && f.event === 'pusher_internal:subscription_succeeded')));
    await observer.next(await h.marker(chan));
    const added = observer.drain((f) => f.event === 'pusher_internal:member_added').map((f) => JSON.parse(f.data).user_id);
    assert.deepEqual([...added].sort(), Array.from({ length: 10 }, (_, i) => `u${i}`).sort(), `member_added: ${added}`);
    const users = await json(await h.api().get({ path: `/channels/${chan}/users` }));
    assert.equal(users.users.length, 11);
    const info = await json(await h.api().get({ path: `/channels/${chan}`, params: { info: 'user_count,subscription_count' } }));
    assert.deepEqual(info, { occupied: true, user_count: 11, subscription_count: 21 });

    for (const c of sockets) c.close();
    await waitUntil(() => observer.queue.filter((f) => f.event === 'pusher_internal:member_removed').length >= 10, {
      timeout: 3000,
      what: '10 member_removed',
    });
    const userCount = async () => (await json(await h.api().get({ path: `/channels/${chan}/users` }))).users.length;
    await waitUntil(async () => (await userCount()) === 1, { what: 'the 20 closes handled' });
    await observer.next(await h.marker(chan));
    const removed = observer.drain((f) => f.event === 'pusher_internal:member_removed').map((f) => JSON.parse(f.data).user_id);
    assert.deepEqual([...removed].sort(), Array.from({ length: 10 }, (_, i) => `u${i}`).sort(), `member_removed: ${removed}`);
    const after = await json(await h.api().get({ path: `/channels/${chan}/users` }));
    assert.deepEqual(after.users, [{ id: 'observer' }]);
  });

  h.test('unsubscribe then resubscribe on the same socket: removed, then added again', async () => {
    const chan = 'presence-cycle';
    const observer = await h.raw();
    await observer.subscribe(chan, h.channelAuth(observer.socketId, chan, { channelData: { user_id: 'o' } }));
    const c = await h.raw();
    const auth = h.channelAuth(c.socketId, chan, { channelData: { user_id: 'cyc' } });
    for (let round = 0; round < 3; round++) {
      await c.subscribe(chan, auth);
      const a = await observer.next('pusher_internal:member_added');
      assert.equal(JSON.parse(a.data).user_id, 'cyc');
      c.send({ event: 'pusher:unsubscribe', data: { channel: chan } });
      const r = await observer.next('pusher_internal:member_removed');
      assert.equal(JSON.parse(r.data).user_id, 'cyc');
    }
    await observer.expectNoneBefore((f) => f.event.startsWith('pusher_internal:member_'), await h.marker(chan));
  });
});

describe('encrypted channels', () => {
  h.test('pusher-js decrypts an event triggered by the SDK with the master key', async () => {
    const client = await h.pusher({ user: 1 });
    const ch = client.subscribe('private-encrypted-vault');
    await subscribed(ch);
    const got = record(ch, 'secret-message');

    // a raw subscriber sees only ciphertext: the server relays it untouched
    const raw = await h.raw();
    await raw.subscribe('private-encrypted-vault', h.channelAuth(raw.socketId, 'private-encrypted-vault'));

    await h.api().trigger('private-encrypted-vault', 'secret-message', { text: 'the eagle has landed' });
    await got.waitFor(1);
    assert.deepEqual(got[0].data, { text: 'the eagle has landed' });

    const f = await raw.next('secret-message');
    const payload = JSON.parse(f.data);
    assert.deepEqual(Object.keys(payload).sort(), ['ciphertext', 'nonce']);
    assert.ok(!f.data.includes('eagle'));
  });
});

// Frames on `channel` other than subscription_count updates (which the app
// has enabled and which may interleave).
const afterSuccess = (channel) => (f) => f.channel === channel && f.event !== 'pusher_internal:subscription_count';

/** Asserts `frame` is the first frame after `ok` on its channel, ignoring subscription_count updates. */
function assertRightAfter(client, ok, frame) {
  const between = client.history
    .slice(client.history.indexOf(ok) + 1, client.history.indexOf(frame))
    .filter((f) => f.event !== 'pusher_internal:subscription_count');
  assert.deepEqual(between.map((f) => f.raw), [], `${frame.event} must come right after subscription_succeeded`);
}

describe('cache channels', () => {
  h.test('raw: cache_miss right after subscription_succeeded when nothing is cached', async () => {
    const c = await h.raw();
    c.send({ event: 'pusher:subscribe', data: { auth: '', channel: 'cache-empty' } });
    const ok = await c.next(isSubResult('cache-empty'));
    assert.equal(ok.event, 'pusher_internal:subscription_succeeded');
    const miss = await c.next(afterSuccess('cache-empty'));
    assert.equal(miss.event, 'pusher:cache_miss', miss.raw);
    assertRightAfter(c, ok, miss);
  });

  h.test('raw: a new subscriber gets the last cached event right after subscription_succeeded', async () => {
    await h.api().trigger('cache-btc', 'price-updated', { usd: 63000 });
    await h.api().trigger('cache-btc', 'price-updated', { usd: 64000 });
    const c = await h.raw();
    c.send({ event: 'pusher:subscribe', data: { auth: '', channel: 'cache-btc' } });
    const ok = await c.next(isSubResult('cache-btc'));
    assert.equal(ok.event, 'pusher_internal:subscription_succeeded');
    const cached = await c.next(afterSuccess('cache-btc'));
    assert.deepEqual({ ...cached }, { event: 'price-updated', channel: 'cache-btc', data: '{"usd":64000}' });
    assertRightAfter(c, ok, cached);
    await c.expectNoneBeforePong(afterSuccess('cache-btc')); // what the subscribe sends comes before the pong
  });

  h.test('client events do not populate the cache', async () => {
    const chan = 'private-cache-whispers';
    const a = await h.raw();
    const b = await h.raw();
    await a.subscribe(chan, h.channelAuth(a.socketId, chan));
    await b.subscribe(chan, h.channelAuth(b.socketId, chan));
    a.send({ event: 'client-note', channel: chan, data: { x: 1 } });
    await b.next('client-note');
    const c = await h.raw();
    await c.subscribe(chan, h.channelAuth(c.socketId, chan));
    const f = await c.next(afterSuccess(chan));
    assert.equal(f.event, 'pusher:cache_miss', f.raw);
  });

  h.test('presence-cache and private-encrypted-cache channels replay too', async () => {
    await h.api().trigger('presence-cache-room', 'state', { open: true });
    const p = await h.raw();
    await p.subscribe('presence-cache-room', h.channelAuth(p.socketId, 'presence-cache-room', { channelData: { user_id: '1' } }));
    const f = await p.next(afterSuccess('presence-cache-room'));
    assert.equal(f.event, 'state', f.raw);
    assert.equal(f.data, '{"open":true}');

    const client = await h.pusher({ user: 1 });
    await h.api().trigger('private-encrypted-cache-safe', 'sealed', { gold: 3 });
    const ch = client.subscribe('private-encrypted-cache-safe');
    const got = record(ch, 'sealed');
    await got.waitFor(1, 5000);
    assert.deepEqual(got[0].data, { gold: 3 });
  });

  h.test('pusher-js: pusher:cache_miss, then the cached event for a later subscriber', async () => {
    const first = await h.pusher({ user: 1 });
    const ch1 = first.subscribe('private-cache-config');
    const miss = await once(ch1, 'pusher:cache_miss', 5000);
    assert.ok(miss === undefined || typeof miss === 'object');
    const live = record(ch1, 'config-changed');
    await h.api().trigger('private-cache-config', 'config-changed', { theme: 'dark' });
    await live.waitFor(1);

    const second = await h.pusher({ user: 2 });
    const ch2 = second.subscribe('private-cache-config');
    const got = record(ch2, 'config-changed');
    const misses = record(ch2, 'pusher:cache_miss');
    await subscribed(ch2);
    await got.waitFor(1);
    assert.deepEqual(got[0].data, { theme: 'dark' });
    assert.equal(misses.length, 0);
  });
});

describe('subscription_count', () => {
  h.test('pusher:subscription_count follows joins and leaves (coalesced, ending at the latest value)', async () => {
    const a = await h.pusher();
    const chA = a.subscribe('count-me');
    const countsA = record(chA, 'pusher:subscription_count');
    await subscribed(chA);
    await waitUntil(() => countsA.at(-1)?.data.subscription_count === 1, { what: 'count 1 at A', timeout: 3000 });

    const b = await h.pusher();
    const chB = b.subscribe('count-me');
    const countsB = record(chB, 'pusher:subscription_count');
    await subscribed(chB);
    await waitUntil(() => countsA.at(-1)?.data.subscription_count === 2, { what: 'count 2 at A', timeout: 3000 });
    await waitUntil(() => countsB.at(-1)?.data.subscription_count === 2, { what: 'count 2 at B', timeout: 3000 });
    assert.equal(chA.subscriptionCount, 2);

    b.unsubscribe('count-me');
    await waitUntil(() => countsA.at(-1)?.data.subscription_count === 1, { what: 'count 1 at A after leave', timeout: 3000 });
  });

  h.test('a burst of joins is coalesced to at most about one event per second per channel', async () => {
    const watcher = await h.raw();
    await watcher.subscribe('count-burst');
    await watcher.next((f) => f.event === 'pusher_internal:subscription_count' && f.channel === 'count-burst', {
      timeout: 3000,
    });
    await sleep(1100); // let the coalescing window pass
    watcher.drain();
    const joiners = [];
    for (let i = 0; i < 8; i++) {
      const j = await h.raw();
      await j.subscribe('count-burst');
      joiners.push(j);
    }
    const isCount = (f) => f.event === 'pusher_internal:subscription_count' && f.channel === 'count-burst';
    await waitUntil(() => watcher.queue.filter(isCount).some((f) => JSON.parse(f.data).subscription_count === 9), {
      timeout: 3500,
      what: `subscription_count 9 (got ${watcher.queue.filter(isCount).map((f) => f.data).join(', ')})`,
    });
    await sleep(1200);
    const events = watcher.queue.filter(isCount);
    assert.equal(JSON.parse(events.at(-1).data).subscription_count, 9, 'ends at the latest value');
    assert.ok(events.length <= 3, `8 joins produced ${events.length} events: ${events.map((f) => f.data).join(', ')}`);
    for (let i = 1; i < events.length; i++) {
      const gap = events[i].at - events[i - 1].at;
      assert.ok(gap >= 800, `two subscription_count events ${gap} ms apart`);
    }
  });

  h.test('presence channels get no subscription_count events', async () => {
    const a = await h.raw();
    await a.subscribe('presence-nocount', h.channelAuth(a.socketId, 'presence-nocount', { channelData: { user_id: '1' } }));
    const b = await h.raw();
    await b.subscribe('presence-nocount', h.channelAuth(b.socketId, 'presence-nocount', { channelData: { user_id: '2' } }));
    // Counts are sent by a timer: a public channel joined after it is the
    // control. Once its count 2 has come, one for the presence channel
    // would have too.
    await a.subscribe('nocount-control');
    await b.subscribe('nocount-control');
    const isCount = (ch) => (f) => f.event === 'pusher_internal:subscription_count' && f.channel === ch;
    await a.next((f) => isCount('nocount-control')(f) && JSON.parse(f.data).subscription_count === 2, {
      what: 'subscription_count 2 on the control channel',
    });
    await a.expectNoneBefore(isCount('presence-nocount'), await h.marker('presence-nocount'));
  });
});
