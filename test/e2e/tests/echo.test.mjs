// Laravel Echo (pusher connector) against Herald, with both the 'pusher' and
// the 'reverb' broadcaster settings, fed by the SDK the way Laravel's
// pusher broadcaster publishes.
import assert from 'node:assert/strict';
import { describe } from 'node:test';

import { Echo, HOST, PusherJS, app, connected, pusherRoundTrip, useHerald, waitUntil } from '../harness.mjs';

const h = useHerald({ apps: [app()] });

function whenSubscribed(echoChannel) {
  return new Promise((resolve, reject) => {
    echoChannel.subscribed(resolve);
    echoChannel.error((e) => reject(new Error(`subscription error: ${JSON.stringify(e)}`)));
  });
}

/** What Laravel's PusherBroadcaster::broadcast sends: JSON payload, event class name, optional socket_id. */
function laravelBroadcast(channels, event, payload, socketId) {
  return h.api().trigger(channels, event, payload, socketId ? { socket_id: socketId } : undefined);
}

describe('Echo with a ready-made pusher-js client (options.client)', () => {
  h.test('uses the given client and receives events', async () => {
    const client = new PusherJS('app-key', {
      cluster: 'mt1',
      wsHost: HOST,
      wsPort: h.server.port,
      forceTLS: false,
      enabledTransports: ['ws'],
    });
    const echo = new Echo({ broadcaster: 'pusher', client, withoutInterceptors: true });
    h.addCleanup(() => echo.disconnect());
    await connected(client);
    assert.equal(echo.socketId(), client.connection.socket_id);
    const got = [];
    await whenSubscribed(echo.channel('shipments').listen('ShipmentCreated', (e) => got.push(e)));
    await laravelBroadcast(['shipments'], 'App\\Events\\ShipmentCreated', { id: 9 });
    await waitUntil(() => got.length === 1, { what: 'ShipmentCreated' });
    assert.deepEqual(got[0], { id: 9 });
  });
});

for (const broadcaster of ['pusher', 'reverb']) {
  describe(`Echo with broadcaster '${broadcaster}'`, () => {
    h.test('connects; the reverb connector injects cluster ""', async () => {
      const echo = await h.echo({ broadcaster, user: 1 });
      assert.equal(echo.connectionStatus(), 'connected');
      assert.match(echo.socketId(), /^\d+\.\d+$/);
      if (broadcaster === 'reverb') assert.equal(echo.connector.options.cluster, '');
    });

    h.test("channel().listen('OrderShipped') gets App\\Events\\OrderShipped; '.custom-name' skips the namespace", async () => {
      const echo = await h.echo({ broadcaster });
      const got = [];
      const custom = [];
      const ch = echo.channel('orders').listen('OrderShipped', (e) => got.push(e)).listen('.order.custom-name', (e) => custom.push(e));
      await whenSubscribed(ch);
      await laravelBroadcast(['orders'], 'App\\Events\\OrderShipped', { order: { id: 1, status: 'shipped' } });
      await laravelBroadcast(['orders'], 'order.custom-name', { ok: true });
      await waitUntil(() => got.length === 1 && custom.length === 1, { what: 'both events' });
      assert.deepEqual(got[0], { order: { id: 1, status: 'shipped' } });
      assert.deepEqual(custom[0], { ok: true });
    });

    h.test('private() authorizes via /broadcasting/auth and receives events', async () => {
      const echo = await h.echo({ broadcaster, user: 1 });
      const got = [];
      const ch = echo.private('orders.1').listen('OrderPaid', (e) => got.push(e));
      await whenSubscribed(ch);
      assert.ok(h.auth.requests.some((r) => r.channel === 'private-orders.1' && r.socketId === echo.socketId()));
      await laravelBroadcast(['private-orders.1'], 'App\\Events\\OrderPaid', { amount: 100 });
      await waitUntil(() => got.length === 1, { what: 'OrderPaid' });
      assert.deepEqual(got[0], { amount: 100 });
    });

    h.test('join(): here, joining, leaving with user_info', async () => {
      const ada = await h.echo({ broadcaster, user: 1 });
      let here = null;
      const joining = [];
      const leaving = [];
      const room = ada
        .join('chat.1')
        .here((users) => (here = users))
        .joining((u) => joining.push(u))
        .leaving((u) => leaving.push(u));
      await waitUntil(() => here, { what: 'here()' });
      assert.deepEqual(here, [{ id: 1, name: 'Ada Lovelace' }]);

      const grace = await h.echo({ broadcaster, user: 2 });
      let hereG = null;
      grace.join('chat.1').here((users) => (hereG = users));
      await waitUntil(() => hereG && joining.length === 1, { what: 'here() for Grace and joining() for Ada' });
      assert.deepEqual(
        [...hereG].sort((a, b) => a.id - b.id),
        [
          { id: 1, name: 'Ada Lovelace' },
          { id: 2, name: 'Grace Hopper' },
        ],
      );
      assert.deepEqual(joining[0], { id: 2, name: 'Grace Hopper' });

      grace.leave('chat.1');
      await waitUntil(() => leaving.length === 1, { what: 'leaving()' });
      assert.deepEqual(leaving[0], { id: 2, name: 'Grace Hopper' });
      void room;
    });

    h.test('whisper / listenForWhisper between two Echo clients', async () => {
      const a = await h.echo({ broadcaster, user: 1 });
      const b = await h.echo({ broadcaster, user: 2 });
      const chA = a.join('whisper.1');
      const chB = b.join('whisper.1');
      await Promise.all([whenSubscribed(chA), whenSubscribed(chB)]);
      const atA = [];
      const atB = [];
      chA.listenForWhisper('typing', (e) => atA.push(e));
      chB.listenForWhisper('typing', (e) => atB.push(e));
      chA.whisper('typing', { name: 'Ada' });
      await waitUntil(() => atB.length === 1, { what: 'whisper at B' });
      assert.deepEqual(atB[0], { name: 'Ada' });
      await pusherRoundTrip(a); // an echo of A's whisper would come first
      assert.equal(atA.length, 0);
    });

    h.test('notification() on private App.Models.User.1 gets BroadcastNotificationCreated', async () => {
      const echo = await h.echo({ broadcaster, user: 1 });
      const got = [];
      const ch = echo.private('App.Models.User.1').notification((n) => got.push(n));
      await whenSubscribed(ch);
      // Laravel's BroadcastNotificationCreated: channel private-App.Models.User.{id},
      // event name = the class name, payload = toBroadcast() data + id + type.
      const payload = {
        message: 'Your invoice is ready',
        id: '5f0c4bd4-5e8b-4f46-8c1b-3c7c7c1d2f00',
        type: 'App\\Notifications\\InvoicePaid',
      };
      await laravelBroadcast(['private-App.Models.User.1'], 'Illuminate\\Notifications\\Events\\BroadcastNotificationCreated', payload);
      await waitUntil(() => got.length === 1, { what: 'notification' });
      assert.deepEqual(got[0], payload);
    });

    h.test('toOthers(): the socket id from echo.socketId() does not receive its own broadcast', async () => {
      const me = await h.echo({ broadcaster, user: 1 });
      const you = await h.echo({ broadcaster, user: 2 });
      const mine = [];
      const yours = [];
      const chMe = me.channel('feed').listen('PostCreated', (e) => mine.push(e));
      const chYou = you.channel('feed').listen('PostCreated', (e) => yours.push(e));
      await Promise.all([whenSubscribed(chMe), whenSubscribed(chYou)]);
      // The X-Socket-ID header Echo adds to the app's requests ends up as socket_id.
      await laravelBroadcast(['feed'], 'App\\Events\\PostCreated', { id: 1 }, me.socketId());
      await laravelBroadcast(['feed'], 'App\\Events\\PostCreated', { id: 2 });
      await waitUntil(() => yours.length === 2 && mine.length === 1, { what: 'events' });
      assert.deepEqual(mine.map((e) => e.id), [2]);
      assert.deepEqual(yours.map((e) => e.id), [1, 2]);
    });

    h.test('encryptedPrivate() decrypts events the SDK encrypted with the master key', async () => {
      const echo = await h.echo({ broadcaster, user: 1 });
      const got = [];
      const ch = echo.encryptedPrivate('vault.1').listen('.balance-updated', (e) => got.push(e));
      await whenSubscribed(ch);
      await h.api().trigger('private-encrypted-vault.1', 'balance-updated', { cents: 1234 });
      await waitUntil(() => got.length === 1, { what: 'decrypted event' });
      assert.deepEqual(got[0], { cents: 1234 });
    });

    h.test('leaveChannel() stops delivery', async () => {
      const echo = await h.echo({ broadcaster });
      const got = [];
      await whenSubscribed(echo.channel('leaving').listen('.ping', (e) => got.push(e)));
      echo.leaveChannel('leaving');
      await pusherRoundTrip(echo); // the unsubscribe is handled
      await h.api().trigger('leaving', 'ping', {});
      await pusherRoundTrip(echo); // the trigger queued what it sends before answering
      assert.equal(got.length, 0);
    });
  });
}
