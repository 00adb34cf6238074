// clients/pusher-js-recovery with the real pusher-js and Laravel Echo against
// a scripted server that speaks Herald's history wire format
// (docs/recovery.md): the frames the plugin sends are checked exactly, and
// the server's answers (replays, herald:recovery, a cut during a replay)
// are chosen by the test. tests/recovery.test.mjs runs it against herald.

import assert from 'node:assert/strict';
import { after, afterEach, before, describe, it } from 'node:test';

import { WebSocketServer } from 'ws';

import { enableRecovery } from '../../../clients/pusher-js-recovery/index.js';
import { Echo, HOST, PusherJS, connected, freePort, subscribed, waitUntil, withTimeout } from '../harness.mjs';

/**
 * A Pusher-protocol server with history on channels named orders-*: each has
 * an epoch and a list of events; publish() appends one (offset = length) and
 * sends it, with its position, to the channel's subscribers.
 */
class FakeHerald {
  static async start() {
    const f = new FakeHerald();
    f.port = await freePort();
    f.wss = new WebSocketServer({ host: HOST, port: f.port });
    await new Promise((resolve) => f.wss.once('listening', resolve));
    f.wss.on('connection', (ws) => f.accept(ws));
    return f;
  }

  constructor() {
    this.channels = new Map(); // name → {epoch, events: [{event, data}]}
    this.sockets = new Set();
    this.subscribes = []; // every pusher:subscribe data received, in order
    this.nextId = 1;
    // replayLimits: for the next recoveries, replay only this many events
    // each, then cut the connection (a network loss in the middle of a
    // replay); later ones replay everything.
    this.replayLimits = [];
  }

  history(name) {
    if (!name.startsWith('orders-')) return null;
    let h = this.channels.get(name);
    if (!h) {
      h = { epoch: `e${this.nextId++}`, events: [] };
      this.channels.set(name, h);
    }
    return h;
  }

  accept(ws) {
    ws.subs = new Set();
    this.sockets.add(ws);
    ws.on('close', () => this.sockets.delete(ws));
    const id = `${this.nextId++}.1`;
    ws.send(JSON.stringify({ event: 'pusher:connection_established', data: JSON.stringify({ socket_id: id, activity_timeout: 120 }) }));
    ws.on('message', (raw) => {
      const m = JSON.parse(raw.toString());
      if (m.event === 'pusher:ping') ws.send(JSON.stringify({ event: 'pusher:pong', data: '{}' }));
      if (m.event === 'pusher:unsubscribe') ws.subs.delete(m.data.channel);
      if (m.event === 'pusher:subscribe') this.subscribe(ws, m.data);
    });
  }

  subscribe(ws, data) {
    this.subscribes.push(data);
    const name = data.channel;
    const h = this.history(name);
    const ok = { event: 'pusher_internal:subscription_succeeded', channel: name, data: '{}' };
    if (h) ok.position = { epoch: h.epoch, offset: h.events.length };
    ws.send(JSON.stringify(ok));
    ws.subs.add(name);
    if (!data.recover) return;
    const top = h ? { epoch: h.epoch, offset: h.events.length } : null;
    const fail = (reason) =>
      ws.send(JSON.stringify({ event: 'herald:recovery', channel: name, data: JSON.stringify({ recovered: false, reason, position: top }) }));
    if (!h) return fail('no_history');
    if (data.recover.epoch !== h.epoch) return fail('epoch_changed');
    const limit = this.replayLimits.length ? this.replayLimits.shift() : Infinity;
    let sent = 0;
    for (let off = data.recover.offset + 1; off <= h.events.length; off++) {
      if (sent === limit) {
        ws.terminate();
        return;
      }
      ws.send(this.frame(name, h, off));
      sent++;
    }
    ws.send(JSON.stringify({ event: 'herald:recovery', channel: name, data: JSON.stringify({ recovered: true, replayed: sent, position: top }) }));
  }

  frame(name, h, offset) {
    const e = h.events[offset - 1];
    return JSON.stringify({ event: e.event, channel: name, data: JSON.stringify(e.data), position: { epoch: h.epoch, offset } });
  }

  /** Appends an event to the channel's history and sends it to its connected subscribers. */
  publish(name, event, data) {
    const h = this.history(name);
    if (h) h.events.push({ event, data });
    const frame = h ? this.frame(name, h, h.events.length) : JSON.stringify({ event, channel: name, data: JSON.stringify(data) });
    for (const ws of this.sockets) if (ws.subs.has(name)) ws.send(frame);
  }

  /**
   * Closes every connection with code (4200: pusher-js reconnects at once).
   * Nothing more is sent on them: what is published before the test yields
   * (client and server share this process) is missed by the client.
   */
  cut(code = 4200) {
    for (const ws of this.sockets) {
      ws.subs = new Set();
      ws.close(code, 'cut');
    }
  }

  /** History is lost: a new epoch, no events. */
  loseHistory(name) {
    this.channels.set(name, { epoch: `e${this.nextId++}`, events: [] });
  }

  close() {
    for (const ws of this.sockets) ws.terminate();
    return new Promise((resolve) => this.wss.close(resolve));
  }
}

function pusherFor(f) {
  return new PusherJS('key', {
    cluster: 'mt1',
    wsHost: HOST,
    wsPort: f.port,
    forceTLS: false,
    enabledTransports: ['ws'],
    disableStats: true,
  });
}

/** Collects the data of `event` on a pusher-js channel. */
function collect(channel, event) {
  const got = [];
  channel.bind(event, (d) => got.push(d));
  return got;
}

/** Cuts every connection and resolves once pusher-js is connected again with the channels subscribed. */
async function cutAndReconnect(f, pusher, channels) {
  const before = pusher.connection.socket_id;
  f.cut();
  await waitUntil(() => pusher.connection.state === 'connected' && pusher.connection.socket_id !== before, {
    what: 'reconnection',
  });
  for (const ch of channels) await subscribed(ch);
}

describe('pusher-js-recovery against a scripted server', () => {
  let f;
  let clients = [];
  before(async () => {
    f = await FakeHerald.start();
  });
  after(() => f.close());
  // Each test's clients are gone before the next starts: a cut reaches
  // every connection, and only the test's own may answer it.
  afterEach(async () => {
    for (const c of clients) c.disconnect();
    clients = [];
    await waitUntil(() => f.sockets.size === 0, { what: 'the clients to leave' });
  });
  const track = (c) => {
    clients.push(c);
    return c;
  };

  it('recovers the events missed while disconnected, and leaves channels without history alone', async () => {
    const pusher = track(pusherFor(f));
    const results = [];
    const recovery = enableRecovery(pusher, { onRecovery: (r) => results.push(r) });
    const orders = pusher.subscribe('orders-1');
    const plain = pusher.subscribe('plain');
    const got = collect(orders, 'order');
    const gotPlain = collect(plain, 'order');
    const fromChannel = collect(orders, 'herald:recovery');
    await connected(pusher);
    await subscribed(orders);
    await subscribed(plain);
    for (let i = 1; i <= 3; i++) f.publish('orders-1', 'order', { n: i });
    f.publish('plain', 'order', { n: 1 });
    await waitUntil(() => got.length === 3 && gotPlain.length === 1, { what: '3 events' });
    assert.deepEqual(recovery.position('orders-1'), { epoch: f.channels.get('orders-1').epoch, offset: 3 });
    assert.equal(recovery.position('plain'), null);

    const mark = f.subscribes.length;
    f.cut();
    // Published while the client is away.
    for (let i = 4; i <= 6; i++) f.publish('orders-1', 'order', { n: i });
    await waitUntil(() => results.length === 1, { what: 'herald:recovery' });

    const again = f.subscribes.slice(mark);
    const ordersSub = again.find((d) => d.channel === 'orders-1');
    const plainSub = again.find((d) => d.channel === 'plain');
    assert.deepEqual(ordersSub.recover, { epoch: f.channels.get('orders-1').epoch, offset: 3 });
    assert.deepEqual(Object.keys(plainSub).sort(), ['auth', 'channel'], 'a channel without history is subscribed exactly as pusher-js does');
    assert.deepEqual(got.map((d) => d.n), [1, 2, 3, 4, 5, 6]);
    assert.deepEqual(results, [{ channel: 'orders-1', recovered: true, replayed: 3, position: { epoch: f.channels.get('orders-1').epoch, offset: 6 } }]);
    assert.equal(fromChannel.length, 1, 'herald:recovery is also a channel event pusher-js delivers');
    assert.equal(recovery.position('orders-1').offset, 6);

    f.publish('orders-1', 'order', { n: 7 });
    await waitUntil(() => got.length === 7, { what: 'the live event after the recovery' });
    assert.deepEqual(got.map((d) => d.n), [1, 2, 3, 4, 5, 6, 7]);
  });

  it('reports a lost window (epoch change) and goes on from the new position', async () => {
    const pusher = track(pusherFor(f));
    const results = [];
    const recovery = enableRecovery(pusher);
    recovery.onRecovery((r) => results.push(r));
    const orders = pusher.subscribe('orders-2');
    const got = collect(orders, 'order');
    await subscribed(orders);
    f.publish('orders-2', 'order', { n: 1 });
    await waitUntil(() => got.length === 1, { what: 'first event' });

    f.loseHistory('orders-2');
    const epoch = f.channels.get('orders-2').epoch;
    await cutAndReconnect(f, pusher, [orders]);
    await waitUntil(() => results.length === 1, { what: 'herald:recovery' });
    assert.deepEqual(results[0], { channel: 'orders-2', recovered: false, replayed: 0, reason: 'epoch_changed', position: { epoch, offset: 0 } });
    assert.deepEqual(recovery.position('orders-2'), { epoch, offset: 0 });

    // The next reconnection recovers in the new epoch.
    f.publish('orders-2', 'order', { n: 2 });
    await waitUntil(() => got.length === 2, { what: 'live event' });
    const mark = f.subscribes.length;
    await cutAndReconnect(f, pusher, [orders]);
    await waitUntil(() => results.length === 2, { what: 'second herald:recovery' });
    assert.deepEqual(f.subscribes.slice(mark).find((d) => d.channel === 'orders-2').recover, { epoch, offset: 1 });
    assert.equal(results[1].recovered, true);
  });

  it('a cut during the replay resumes from the last replayed event, not from the top the subscription announced', async () => {
    const pusher = track(pusherFor(f));
    const results = [];
    enableRecovery(pusher, { onRecovery: (r) => results.push(r) });
    const orders = pusher.subscribe('orders-3');
    const got = collect(orders, 'order');
    await subscribed(orders);
    f.publish('orders-3', 'order', { n: 1 });
    await waitUntil(() => got.length === 1, { what: 'first event' });
    const mark = f.subscribes.length;
    // The network goes right after the subscription succeeded (which
    // announced top 6), then after offsets 2 and 3 were replayed.
    f.replayLimits = [0, 2];
    f.cut();
    for (let i = 2; i <= 6; i++) f.publish('orders-3', 'order', { n: i });
    await waitUntil(() => results.length === 1, { what: 'herald:recovery after the third attempt', timeout: 10_000 });
    const attempts = f.subscribes.slice(mark).filter((d) => d.channel === 'orders-3');
    assert.deepEqual(attempts.map((d) => d.recover.offset), [1, 1, 3]);
    assert.deepEqual(got.map((d) => d.n), [1, 2, 3, 4, 5, 6], 'in order, none twice');
    assert.equal(results[0].replayed, 3);
  });

  it('an unsubscribe forgets the position; setPosition seeds the first subscription', async () => {
    const pusher = track(pusherFor(f));
    const recovery = enableRecovery(pusher);
    assert.equal(enableRecovery(pusher), recovery, 'one handle per client');
    let orders = pusher.subscribe('orders-4');
    await subscribed(orders);
    f.publish('orders-4', 'order', { n: 1 });
    await waitUntil(() => recovery.position('orders-4')?.offset === 1, { what: 'position 1' });
    pusher.unsubscribe('orders-4');
    assert.equal(recovery.position('orders-4'), null);
    let mark = f.subscribes.length;
    orders = pusher.subscribe('orders-4');
    await subscribed(orders);
    assert.equal(f.subscribes[mark].recover, undefined, 'a new subscription by the app is not a recovery');

    // A page rendered from the history endpoint at offset 0 continues from there.
    pusher.unsubscribe('orders-4');
    await waitUntil(() => [...f.sockets].every((ws) => !ws.subs.has('orders-4')), { what: 'the unsubscribe' });
    f.publish('orders-4', 'order', { n: 2 });
    const h = f.channels.get('orders-4');
    recovery.setPosition('orders-4', { epoch: h.epoch, offset: 1 });
    mark = f.subscribes.length;
    const results = [];
    recovery.onRecovery((r) => results.push(r));
    orders = pusher.subscribe('orders-4');
    const got = collect(orders, 'order');
    await waitUntil(() => results.length === 1, { what: 'herald:recovery' });
    assert.deepEqual(f.subscribes[mark].recover, { epoch: h.epoch, offset: 1 });
    assert.deepEqual(got.map((d) => d.n), [2]);
    assert.throws(() => recovery.setPosition('orders-4', { epoch: '', offset: 1 }), TypeError);
    recovery.disable();
    mark = f.subscribes.length;
    await cutAndReconnect(f, pusher, [orders]);
    assert.deepEqual(f.subscribes.slice(mark), [{ auth: '', channel: 'orders-4' }], 'disabled: pusher-js as it was');
  });

  it('Laravel Echo: one line on the Echo instance, herald:recovery as an Echo event', async () => {
    const echo = new Echo({
      broadcaster: 'pusher',
      key: 'key',
      cluster: 'mt1',
      wsHost: HOST,
      wsPort: f.port,
      forceTLS: false,
      enabledTransports: ['ws'],
      disableStats: true,
      Pusher: PusherJS,
      withoutInterceptors: true,
    });
    clients.push(echo);
    const results = [];
    enableRecovery(echo, { onRecovery: (r) => results.push(r) });
    const got = [];
    const fromEcho = [];
    echo.channel('orders-5').listen('.order', (d) => got.push(d.n)).listen('.herald:recovery', (d) => fromEcho.push(d));
    const pusher = echo.connector.pusher;
    await connected(pusher);
    await subscribed(pusher.channel('orders-5'));
    f.publish('orders-5', 'order', { n: 1 });
    await waitUntil(() => got.length === 1, { what: 'first event' });
    f.cut();
    f.publish('orders-5', 'order', { n: 2 });
    f.publish('orders-5', 'order', { n: 3 });
    await withTimeout(waitUntil(() => results.length === 1, { what: 'recovery' }), 10_000, 'recovery');
    assert.deepEqual(got, [1, 2, 3]);
    assert.equal(fromEcho.length, 1);
    assert.equal(fromEcho[0].recovered, true);
    assert.equal(fromEcho[0].replayed, 2);
  });
});
