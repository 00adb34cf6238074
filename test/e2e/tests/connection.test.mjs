// Connection lifecycle: handshake, ping/pong, admission errors, bad input.
import assert from 'node:assert/strict';
import { describe } from 'node:test';

import { PusherJS, HOST, app, sleep, useHerald, withTimeout } from '../harness.mjs';

const h = useHerald({ apps: [app()] });

describe('connection', () => {
  h.test('connection_established: data is a JSON string with socket_id and activity_timeout', async () => {
    const c = await h.raw();
    const f = c.established;
    assert.equal(f.event, 'pusher:connection_established');
    assert.equal(typeof f.data, 'string', `data must be a JSON string, frame: ${f.raw}`);
    const data = JSON.parse(f.data);
    assert.match(data.socket_id, /^\d+\.\d+$/);
    assert.ok(Number.isInteger(data.activity_timeout) && data.activity_timeout > 0, `activity_timeout: ${f.data}`);
    assert.equal(data.activity_timeout, 120, 'default activity_timeout is 120');
    // connection_established is the first frame
    assert.equal(c.history[0], f);
  });

  h.test('socket ids are unique across connections', async () => {
    const clients = await Promise.all(Array.from({ length: 5 }, () => h.raw()));
    const ids = new Set(clients.map((c) => c.socketId));
    assert.equal(ids.size, 5);
  });

  h.test('connects without the protocol query parameter (treated as 7)', async () => {
    const c = await h.raw({ query: '' });
    assert.match(c.socketId, /^\d+\.\d+$/);
  });

  h.test('unsupported protocol version ⇒ 4007; non-integer ⇒ 4006 (error frame, then close)', async () => {
    for (const [query, code] of [
      ['?protocol=3&client=js&version=8.6.0', 4007],
      ['?protocol=8&client=js&version=8.6.0', 4007],
      ['?protocol=abc&client=js&version=8.6.0', 4006],
    ]) {
      const c = await h.raw({ query, waitEstablished: false });
      const closed = await c.waitClose();
      assert.equal(closed.code, code, `${query}: close ${closed.code} ${closed.reason}; frames ${c.describeHistory()}`);
      assert.ok(!c.history.some((f) => f.event === 'pusher:connection_established'), query);
      const err = c.history.find((f) => f.event === 'pusher:error');
      if (err) assert.equal(err.data.code, code, err.raw);
    }
  });

  h.test('pusher:* frames from the client may carry data as a JSON string', async () => {
    const c = await h.raw();
    c.send({ event: 'pusher:subscribe', data: JSON.stringify({ auth: '', channel: 'string-data' }) });
    const ok = await c.next((f) => f.channel === 'string-data');
    assert.equal(ok.event, 'pusher_internal:subscription_succeeded', ok.raw);
  });

  h.test('pusher:ping is answered with pusher:pong', async () => {
    const c = await h.raw();
    c.send({ event: 'pusher:ping', data: {} });
    const pong = await c.next('pusher:pong');
    assert.equal(pong.event, 'pusher:pong');
    assert.equal(pong.channel, undefined);
  });

  h.test('tolerated without an error: ping without data, unsolicited pong, unsubscribe from an unknown channel, auth on a public channel', async () => {
    const c = await h.raw();
    c.send({ event: 'pusher:ping' });
    await c.next('pusher:pong');
    c.send({ event: 'pusher:pong', data: {} });
    c.send({ event: 'pusher:unsubscribe', data: { channel: 'never-subscribed' } });
    const ok = await c.subscribe('public-with-auth', { auth: 'app-key:ignored' });
    assert.equal(ok.data, '{}');
    await c.expectNoneBeforePong('pusher:error'); // answered in order: an error would come first
  });

  h.test('pusher-js connects, gets a socket id and stays connected', async () => {
    const client = await h.pusher();
    assert.equal(client.connection.state, 'connected');
    assert.match(client.connection.socket_id, /^\d+\.\d+$/);
  });

  h.test('unknown app key: pusher:error 4001 then close 4001', async () => {
    const c = await h.raw({ key: 'no-such-key', waitEstablished: false });
    const err = await c.next('pusher:error');
    assert.equal(typeof err.data, 'object', `pusher:error data is an object: ${err.raw}`);
    assert.equal(err.data.code, 4001);
    assert.equal(typeof err.data.message, 'string');
    const closed = await c.waitClose();
    assert.equal(closed.code, 4001);
    assert.ok(Buffer.byteLength(closed.reason) <= 123);
    assert.ok(!c.history.some((f) => f.event === 'pusher:connection_established'));
  });

  h.test('unknown app key: pusher-js ends disconnected and does not retry', async () => {
    const bad = new PusherJS('no-such-key', {
      cluster: 'mt1',
      wsHost: HOST,
      wsPort: h.server.port,
      forceTLS: false,
      enabledTransports: ['ws'],
    });
    h.addCleanup(() => bad.disconnect());
    const states = [];
    const errors = [];
    bad.connection.bind('state_change', ({ current }) => states.push(current));
    bad.connection.bind('error', (e) => errors.push(e));
    await withTimeout(
      new Promise((resolve) => {
        const check = ({ current }) => current === 'disconnected' && resolve();
        bad.connection.bind('state_change', check);
      }),
      5000,
      'pusher-js state disconnected',
    );
    await sleep(1500); // a backoff/retry would reconnect within ~1 s
    assert.equal(bad.connection.state, 'disconnected', `states: ${states.join(' → ')}`);
    assert.ok(!states.includes('connected'), `states: ${states.join(' → ')}`);
    assert.ok(
      errors.some((e) => e?.data?.code === 4001 || e?.error?.data?.code === 4001),
      `pusher-js reported the 4001 error: ${JSON.stringify(errors)}`,
    );
  });

  h.test('malformed JSON: pusher:error with code null, socket keeps working', async () => {
    const c = await h.raw();
    c.send('this is {not json');
    const err = await c.next('pusher:error');
    assert.equal(err.data.code, null, `code must be null: ${err.raw}`);
    assert.equal(typeof err.data.message, 'string');
    assert.ok(err.data.message.length > 0);
    await c.roundTrip();
    assert.ok(c.isOpen);
  });

  h.test('JSON that is not an object: pusher:error, socket keeps working', async () => {
    const c = await h.raw();
    c.send('[1,2,3]');
    const err = await c.next('pusher:error');
    assert.equal(err.data.code, null, err.raw);
    await c.roundTrip();
  });

  h.test('unknown pusher:foo event: pusher:error naming it, socket keeps working', async () => {
    const c = await h.raw();
    c.send({ event: 'pusher:foo', data: {} });
    const err = await c.next('pusher:error');
    assert.equal(err.data.code, null, err.raw);
    assert.match(err.data.message, /pusher:foo/);
    await c.roundTrip();
    // and it can still subscribe
    await c.subscribe('still-alive');
  });

  h.test('an event that is neither pusher: nor client-: pusher:error, socket keeps working', async () => {
    const c = await h.raw();
    c.send({ event: 'some-event', channel: 'x', data: {} });
    const err = await c.next('pusher:error');
    assert.equal(err.data.code, null, err.raw);
    c.send({ data: {} }); // missing event
    const err2 = await c.next('pusher:error');
    assert.equal(err2.data.code, null, err2.raw);
    await c.roundTrip();
  });

  h.test('a pusher-js client that sends pusher:ping gets pong and stays connected', async () => {
    const client = await h.pusher();
    // ask pusher-js to send its activity check ping now
    const pong = new Promise((resolve) => client.connection.bind('message', (m) => m.event === 'pusher:pong' && resolve(m)));
    client.connection.send_event('pusher:ping', {});
    await withTimeout(pong, 3000, 'pusher:pong in pusher-js');
    assert.equal(client.connection.state, 'connected');
  });

  h.test('client disconnect is clean: server keeps serving others', async () => {
    const a = await h.raw();
    const b = await h.raw();
    a.ws.close(1000);
    const closed = await a.waitClose();
    assert.equal(closed.code, 1000);
    await b.roundTrip();
  });
});
