// User authentication: sign-in, #server-to-user channels, sendToUser,
// terminate_connections, and apps that require sign-in.
import assert from 'node:assert/strict';
import { describe } from 'node:test';

import { app, forgeAuth, json, once, record, sleep, useHerald, waitUntil, withTimeout } from '../harness.mjs';

const h = useHerald({
  apps: [
    app(),
    app({
      id: 'strict-app',
      key: 'strict-key',
      secret: 'strict-secret',
      enable_user_authentication: true,
      user_authentication_timeout: '2s',
    }),
  ],
});

/** Waits until pusher-js has signed in and its #server-to-user channel is subscribed. */
async function signedIn(client) {
  client.signin();
  await withTimeout(client.user.signinDonePromise, 5000, 'pusher-js sign-in');
  assert.ok(client.user.user_data, 'pusher-js has user_data after sign-in');
  await waitUntil(() => client.user.serverToUserChannel?.subscribed, {
    what: '#server-to-user channel subscribed',
    timeout: 5000,
  });
}

describe('user authentication', () => {
  h.test('raw: pusher:signin ⇒ signin_success echoing user_data as a string', async () => {
    const c = await h.raw();
    const { auth, user_data } = h.api().authenticateUser(c.socketId, { id: '12345', user_info: { name: 'Ada' } });
    c.send({ event: 'pusher:signin', data: { auth, user_data } });
    const ok = await c.next((f) => f.event === 'pusher:signin_success' || f.event === 'pusher:error');
    assert.equal(ok.event, 'pusher:signin_success', ok.raw);
    assert.equal(typeof ok.data, 'string');
    const data = JSON.parse(ok.data);
    assert.equal(data.user_data, user_data, 'user_data is echoed as the exact string');
    // now it may subscribe to its own server-to-user channel
    const sub = await c.subscribe('#server-to-user-12345');
    assert.equal(sub.data, '{}');
  });

  h.test('raw: PHP-style user_data (escaped unicode/slashes) signs in and is echoed byte for byte', async () => {
    const c = await h.raw();
    const crypto = await import('node:crypto');
    const userData = '{"id":"php-1","user_info":{"name":"\\u00c9mile","url":"https:\\/\\/x.test\\/"}}';
    const sig = crypto.createHmac('sha256', 'app-secret').update(`${c.socketId}::user::${userData}`).digest('hex');
    c.send({ event: 'pusher:signin', data: { auth: `app-key:${sig}`, user_data: userData } });
    const ok = await c.next((f) => f.event === 'pusher:signin_success' || f.event === 'pusher:error');
    assert.equal(ok.event, 'pusher:signin_success', ok.raw);
    assert.equal(JSON.parse(ok.data).user_data, userData);
    await c.subscribe('#server-to-user-php-1');
  });

  h.test('raw: pusher:signin with a bad signature is refused', async () => {
    const c = await h.raw();
    const { auth, user_data } = h.api().authenticateUser(c.socketId, { id: '7' });
    c.send({ event: 'pusher:signin', data: { auth: forgeAuth(auth), user_data } });
    const f = await c.next((x) => x.event === 'pusher:signin_success' || x.event === 'pusher:error');
    assert.equal(f.event, 'pusher:error', f.raw);
    // The socket is not signed in: its own #server-to-user channel is refused
    // (if the server chose to close it, as soketi does, it must use 4009).
    // A close would come before the pong of a ping sent after the signin.
    await c.roundTrip().catch(() => assert.ok(c.closeInfo, 'no pong, yet the socket is open'));
    if (c.closeInfo) {
      assert.equal(c.closeInfo.code, 4009);
    } else {
      c.send({ event: 'pusher:subscribe', data: { auth: '', channel: '#server-to-user-7' } });
      const r = await c.next((x) => x.channel === '#server-to-user-7');
      assert.equal(r.event, 'pusher:subscription_error', r.raw);
    }
  });

  h.test('raw: pusher:signin whose user_data has no id is refused', async () => {
    const c = await h.raw();
    const crypto = await import('node:crypto');
    const userData = JSON.stringify({ user_info: { name: 'nobody' } });
    const sig = crypto.createHmac('sha256', 'app-secret').update(`${c.socketId}::user::${userData}`).digest('hex');
    c.send({ event: 'pusher:signin', data: { auth: `app-key:${sig}`, user_data: userData } });
    const f = await c.next((x) => x.event === 'pusher:signin_success' || x.event === 'pusher:error');
    assert.equal(f.event, 'pusher:error', f.raw);
  });

  h.test('pusher-js signin() and sendToUser reach pusher.user bindings', async () => {
    const client = await h.pusher({ user: 1 });
    await signedIn(client);
    assert.equal(client.user.user_data.id, '1');
    assert.deepEqual(client.user.user_data.user_info, { id: 1, name: 'Ada Lovelace' });
    const got = record(client.user, 'invoice-paid');
    const res = await h.api().sendToUser('1', 'invoice-paid', { invoice: 42 });
    assert.equal(res.status, 200);
    await got.waitFor(1);
    assert.deepEqual(got[0].data, { invoice: 42 });
  });

  h.test('sendToUser reaches every socket of that user and nobody else', async () => {
    const tab1 = await h.pusher({ user: 2 });
    const tab2 = await h.pusher({ user: 2 });
    const other = await h.pusher({ user: 3 });
    await Promise.all([signedIn(tab1), signedIn(tab2), signedIn(other)]);
    const g1 = record(tab1.user, 'ping-user');
    const g2 = record(tab2.user, 'ping-user');
    const g3 = record(other.user, 'ping-user');
    await h.api().sendToUser('2', 'ping-user', { n: 1 });
    await g1.waitFor(1);
    await g2.waitFor(1);
    const marker = once(other.user, 'marker-3');
    await h.api().sendToUser('3', 'marker-3', {});
    await marker;
    assert.equal(g3.length, 0);
  });

  h.test("raw: subscribing to another user's #server-to-user channel is refused", async () => {
    const victim = await h.raw();
    await h.signin(victim, '100');
    const attacker = await h.raw();
    await h.signin(attacker, '200');
    const anonymous = await h.raw();

    for (const c of [attacker, anonymous]) {
      c.send({ event: 'pusher:subscribe', data: { auth: '', channel: '#server-to-user-100' } });
      const f = await c.next(
        (x) => x.channel === '#server-to-user-100' || x.event === 'pusher:error',
        { what: 'result of subscribing to #server-to-user-100' },
      );
      assert.notEqual(f.event, 'pusher_internal:subscription_succeeded', f.raw);
      assert.equal(f.event, 'pusher:subscription_error', f.raw);
      assert.ok(c.isOpen);
    }
    await victim.subscribe('#server-to-user-100');
    await h.api().sendToUser('100', 'private-note', { text: 'for 100 only' });
    const got = await victim.next('private-note');
    assert.equal(got.data, '{"text":"for 100 only"}');
    // sendToUser queued what it sends before answering: a ping sent after comes after.
    await attacker.expectNoneBeforePong('private-note');
    await anonymous.expectNoneBeforePong('private-note');
  });

  h.test('terminateUserConnections closes every socket of the user with 4009, not others', async () => {
    const a = await h.raw();
    const b = await h.raw();
    const bystander = await h.raw();
    await h.signin(a, '55');
    await h.signin(b, '55');
    await h.signin(bystander, '56');
    const js = await h.pusher({ user: 55 });
    await signedIn(js);

    const res = await h.api().terminateUserConnections('55');
    assert.equal(res.status, 200);
    assert.deepEqual(await json(res), {});
    const [ca, cb] = await Promise.all([a.waitClose(), b.waitClose()]);
    assert.equal(ca.code, 4009);
    assert.equal(cb.code, 4009);
    await waitUntil(() => js.connection.state === 'disconnected', {
      what: `pusher-js disconnected (state ${js.connection.state})`,
      timeout: 3000,
    });
    await sleep(1200); // 4009 is "refused": pusher-js must not reconnect
    assert.equal(js.connection.state, 'disconnected');
    assert.ok(bystander.isOpen);
    await bystander.roundTrip();
  });

  h.test('signing in again on the same socket replaces the identity', async () => {
    const c = await h.raw();
    await h.signin(c, 'first');
    await c.subscribe('#server-to-user-first');
    await h.signin(c, 'second');
    await c.subscribe('#server-to-user-second');
    await h.api().sendToUser('second', 'to-second', {});
    await c.next('to-second');
    await h.api().sendToUser('first', 'to-first', {});
    await c.expectNoneBeforePong('to-first');
    await h.api().terminateUserConnections('first');
    await c.roundTrip(); // a close would come first
    assert.ok(c.isOpen, 'terminating the old identity does not close the socket');
    await h.api().terminateUserConnections('second');
    const closed = await c.waitClose();
    assert.equal(closed.code, 4009);
  });

  h.test('terminateUserConnections for a user with no connections succeeds', async () => {
    const res = await h.api().terminateUserConnections('nobody-here');
    assert.equal(res.status, 200);
  });
});

describe('apps that require sign-in (enable_user_authentication)', () => {
  h.test('a socket that does not sign in within user_authentication_timeout is closed with 4009; one that does stays', async () => {
    const lazy = await h.raw({ appId: 'strict-app' });
    const diligent = await h.raw({ appId: 'strict-app' });
    await h.signin(diligent, '9', { appId: 'strict-app' });
    const started = Date.now();
    const closed = await lazy.waitClose(6000);
    const elapsed = Date.now() - started;
    assert.equal(closed.code, 4009, `close ${closed.code} ${closed.reason}`);
    assert.ok(elapsed >= 1000, `closed after only ${elapsed} ms of a 2 s timeout`);
    await sleep(1000);
    assert.ok(diligent.isOpen, `signed-in socket was closed: ${JSON.stringify(diligent.closeInfo)}`);
    await diligent.roundTrip();
  });

  h.test('pusher-js that calls signin() on a strict app stays connected', async () => {
    const client = await h.pusher({ appId: 'strict-app', user: 4 });
    await signedIn(client);
    await sleep(2500);
    assert.equal(client.connection.state, 'connected');
    const got = once(client.user, 'welcome');
    await h.api('strict-app').sendToUser('4', 'welcome', { ok: true });
    assert.deepEqual(await got, { ok: true });
  });
});
