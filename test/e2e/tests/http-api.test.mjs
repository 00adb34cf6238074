// The HTTP API as the official `pusher` Node SDK (and Laravel) use it.
import assert from 'node:assert/strict';
import { describe } from 'node:test';

import { app, expectRequestError, json, record, subscribed, useHerald } from '../harness.mjs';

const h = useHerald({ apps: [app(), app({ id: 'other-app', key: 'other-key', secret: 'other-secret' })] });

/** Asserts an HTTP error response has status `status` and a JSON body {error: string, ...}. */
function assertJsonError(status, body, expectedStatus, what) {
  assert.equal(status, expectedStatus, `${what}: status ${status}, body ${body}`);
  let parsed;
  try {
    parsed = JSON.parse(body);
  } catch {
    assert.fail(`${what}: error body is not JSON: ${JSON.stringify(body)}`);
  }
  assert.equal(typeof parsed.error, 'string', `${what}: body has no "error" string: ${body}`);
  assert.ok(parsed.error.length > 0);
  assert.equal(parsed.code, expectedStatus, `${what}: body "code" must equal the status: ${body}`);
}

async function presenceMember(user, channel) {
  const c = await h.pusher({ user });
  const ch = c.subscribe(channel);
  await subscribed(ch);
  return c;
}

describe('trigger', () => {
  h.test('socket_id excludes exactly that socket (toOthers)', async () => {
    const sender = await h.pusher();
    const other = await h.pusher();
    const chS = sender.subscribe('timeline');
    const chO = other.subscribe('timeline');
    await Promise.all([subscribed(chS), subscribed(chO)]);
    const atS = record(chS, 'post-created');
    const atO = record(chO, 'post-created');
    const res = await h.api().trigger('timeline', 'post-created', { id: 5 }, { socket_id: sender.connection.socket_id });
    assert.deepEqual(await json(res), {});
    await atO.waitFor(1);
    // a second, unfiltered event proves the sender's socket is live and ordered
    await h.api().trigger('timeline', 'post-created', { id: 6 });
    await atS.waitFor(1);
    assert.deepEqual(atS.map((e) => e.data.id), [6]);
    await atO.waitFor(2);
  });

  h.test('info=user_count,subscription_count on trigger', async () => {
    await presenceMember(1, 'presence-lobby');
    await presenceMember(1, 'presence-lobby'); // same user, second socket
    await presenceMember(2, 'presence-lobby');
    const p = await h.pusher();
    await subscribed(p.subscribe('plain-info'));
    const res = await h.api().trigger(['presence-lobby', 'plain-info', 'empty-info'], 'x', {}, { info: 'user_count,subscription_count' });
    const body = await json(res);
    assert.deepEqual(body.channels['presence-lobby'], { user_count: 2, subscription_count: 3 });
    assert.deepEqual(body.channels['plain-info'], { subscription_count: 1 });
    if (body.channels['empty-info'] !== undefined) {
      assert.equal(body.channels['empty-info'].subscription_count ?? 0, 0);
    }
  });

  h.test('single "channel" field, empty-string data, backslashes in event names', async () => {
    const c = await h.raw();
    await c.subscribe('single');
    const res = await h.request({ method: 'POST', path: '/events', body: { name: 'App\\Events\\Thing', channel: 'single', data: '' } });
    assert.equal(res.status, 200, res.text);
    const f = await c.next((x) => x.channel === 'single' && !x.event.startsWith('pusher'));
    assert.equal(f.event, 'App\\Events\\Thing');
    assert.equal(f.data, '');
  });

  h.test('invalid socket_id ⇒ 400', async () => {
    const res = await h.request({ method: 'POST', path: '/events', body: { name: 'x', channels: ['x'], data: '{}', socket_id: 'abc.def' } });
    assert.equal(res.status, 400, res.text);
  });

  h.test('batch events are delivered; with info the response is {"batch":[...]} in order', async () => {
    const c = await h.raw();
    await c.subscribe('batch-a');
    await c.subscribe('batch-b');
    const res = await h.api().triggerBatch([
      { channel: 'batch-a', name: 'first', data: { n: 1 } },
      { channel: 'batch-b', name: 'second', data: 'two' },
    ]);
    assert.deepEqual(await json(res), {});
    const e1 = await c.next('first');
    const e2 = await c.next('second');
    assert.deepEqual([e1.channel, e1.data, e2.channel, e2.data], ['batch-a', '{"n":1}', 'batch-b', 'two']);

    await presenceMember(3, 'presence-batch');
    const res2 = await h.api().triggerBatch([
      { channel: 'batch-a', name: 'third', data: {} },
      { channel: 'presence-batch', name: 'fourth', data: {}, info: 'user_count,subscription_count' },
      { channel: 'batch-b', name: 'fifth', data: {}, info: 'subscription_count' },
    ]);
    const body = await json(res2);
    assert.ok(Array.isArray(body.batch), JSON.stringify(body));
    assert.equal(body.batch.length, 3);
    assert.deepEqual(body.batch[0], {});
    assert.deepEqual(body.batch[1], { user_count: 1, subscription_count: 1 });
    assert.deepEqual(body.batch[2], { subscription_count: 1 });
  });

  h.test('batch with socket_id skips that socket', async () => {
    const a = await h.raw();
    const b = await h.raw();
    await a.subscribe('batch-skip');
    await b.subscribe('batch-skip');
    await h.api().triggerBatch([{ channel: 'batch-skip', name: 'skip', data: {}, socket_id: a.socketId }]);
    await b.next('skip');
    await a.expectNoneBefore('skip', await h.marker('batch-skip'));
  });
});

describe('queries', () => {
  h.test('GET /channels lists occupied channels, filter_by_prefix and info=user_count', async () => {
    await presenceMember(1, 'presence-q1');
    await presenceMember(2, 'presence-q1');
    await presenceMember(1, 'presence-q2');
    const p = await h.pusher();
    await subscribed(p.subscribe('q-public'));

    const all = await json(await h.api().get({ path: '/channels' }));
    assert.ok(all.channels['q-public'], JSON.stringify(all));
    assert.ok(all.channels['presence-q1']);
    assert.deepEqual(all.channels['q-public'], {});
    assert.equal(all.channels['never-used'], undefined);

    const pres = await json(await h.api().get({ path: '/channels', params: { filter_by_prefix: 'presence-', info: 'user_count' } }));
    // (channels of earlier tests may linger for a moment; only ours are pinned)
    assert.deepEqual(pres.channels['presence-q1'], { user_count: 2 });
    assert.deepEqual(pres.channels['presence-q2'], { user_count: 1 });
    for (const name of Object.keys(pres.channels)) assert.ok(name.startsWith('presence-'), name);

    const pref = await json(await h.api().get({ path: '/channels', params: { filter_by_prefix: 'q-' } }));
    assert.deepEqual(pref, { channels: { 'q-public': {} } });
  });

  h.test('GET /channels?info=user_count without filter_by_prefix=presence- ⇒ 400', async () => {
    const err = await expectRequestError(h.api().get({ path: '/channels', params: { info: 'user_count' } }));
    assertJsonError(err.status, err.body, 400, 'user_count without presence- prefix');
  });

  h.test('GET /channels/{name}: occupied, subscription_count, user_count', async () => {
    await presenceMember(1, 'presence-info');
    await presenceMember(1, 'presence-info');
    const info = await json(await h.api().get({ path: '/channels/presence-info', params: { info: 'user_count,subscription_count' } }));
    assert.deepEqual(info, { occupied: true, user_count: 1, subscription_count: 2 });

    const p = await h.pusher();
    await subscribed(p.subscribe('public-info'));
    const plain = await json(await h.api().get({ path: '/channels/public-info' }));
    assert.equal(plain.occupied, true);
    const counted = await json(await h.api().get({ path: '/channels/public-info', params: { info: 'subscription_count' } }));
    assert.deepEqual(counted, { occupied: true, subscription_count: 1 });

    const empty = await json(await h.api().get({ path: '/channels/nobody-here' }));
    assert.deepEqual(empty, { occupied: false });
  });

  h.test('GET /channels/{name}?info=cache returns the cached event', async () => {
    await h.api().trigger('cache-info', 'tick', { v: 7 });
    const info = await json(await h.api().get({ path: '/channels/cache-info', params: { info: 'cache' } }));
    assert.equal(info.occupied, false);
    assert.ok(info.cache, JSON.stringify(info));
    assert.equal(info.cache.data, '{"v":7}');
    assert.ok(Number.isInteger(info.cache.ttl) && info.cache.ttl > 0, JSON.stringify(info));
  });

  h.test('GET /channels/{name}/users on presence lists distinct users; 400 on a public channel', async () => {
    await presenceMember(1, 'presence-users');
    await presenceMember(1, 'presence-users');
    await presenceMember(2, 'presence-users');
    const body = await json(await h.api().get({ path: '/channels/presence-users/users' }));
    assert.deepEqual(body.users.map((u) => u.id).sort(), ['1', '2']);
    for (const u of body.users) assert.equal(typeof u.id, 'string');

    const err = await expectRequestError(h.api().get({ path: '/channels/not-presence/users' }));
    assertJsonError(err.status, err.body, 400, 'users on public channel');
  });
});

describe('errors', () => {
  h.test('bad signature ⇒ 401 JSON', async () => {
    const wrong = h.api(undefined, { secret: 'not-the-secret' });
    const err = await expectRequestError(wrong.trigger('x', 'y', {}));
    assertJsonError(err.status, err.body, 401, 'bad signature');

    const tampered = await h.request({
      method: 'POST',
      path: '/events',
      body: { name: 'y', channels: ['x'], data: '{}' },
      tamper: (qs) => qs.replace(/auth_signature=([0-9a-f])/, (m, d) => `auth_signature=${d === '0' ? '1' : '0'}`),
    });
    assertJsonError(tampered.status, tampered.text, 401, 'tampered signature');
  });

  h.test('body not matching body_md5 ⇒ 401', async () => {
    // Sign one body and send another of the same shape.
    const signed = await h.request({ method: 'POST', path: '/events', body: { name: 'a', channels: ['x'], data: '{}' } });
    assert.equal(signed.status, 200, signed.text);
    const crypto = await import('node:crypto');
    const bodyA = JSON.stringify({ name: 'a', channels: ['x'], data: '{}' });
    const bodyB = JSON.stringify({ name: 'b', channels: ['x'], data: '{}' });
    const ts = Math.floor(Date.now() / 1000);
    const md5 = crypto.createHash('md5').update(bodyA).digest('hex');
    const q = `auth_key=app-key&auth_timestamp=${ts}&auth_version=1.0&body_md5=${md5}`;
    const sig = crypto.createHmac('sha256', 'app-secret').update(`POST\n/apps/app-id/events\n${q}`).digest('hex');
    const res = await fetch(`${h.server.httpBase}/apps/app-id/events?${q}&auth_signature=${sig}`, {
      method: 'POST',
      body: bodyB,
      headers: { 'content-type': 'application/json' },
    });
    assertJsonError(res.status, await res.text(), 401, 'tampered body');
  });

  h.test('timestamp older than 600 s ⇒ 401; a fresh one is accepted', async () => {
    const body = { name: 'ts', channels: ['ts-chan'], data: '{}' };
    const now = Math.floor(Date.now() / 1000);
    const fresh = await h.request({ method: 'POST', path: '/events', body, timestamp: now - 60 });
    assert.equal(fresh.status, 200, fresh.text);
    assert.deepEqual(fresh.json, {});
    const old = await h.request({ method: 'POST', path: '/events', body, timestamp: now - 700 });
    assertJsonError(old.status, old.text, 401, 'old timestamp');
    const future = await h.request({ method: 'POST', path: '/events', body, timestamp: now + 700 });
    assertJsonError(future.status, future.text, 401, 'future timestamp');
    const get = await h.request({ path: '/channels', timestamp: 1353088179 });
    assertJsonError(get.status, get.text, 401, 'GET with 2012 timestamp');
  });

  h.test("another app's credentials ⇒ 401", async () => {
    const res = await h.request({
      method: 'POST',
      appId: 'app-id',
      key: 'other-key',
      secret: 'other-secret',
      path: '/events',
      body: { name: 'x', channels: ['x'], data: '{}' },
    });
    assertJsonError(res.status, res.text, 401, 'other app key');
  });

  h.test('missing or wrong auth parameters ⇒ 401', async () => {
    const base = `${h.server.httpBase}/apps/app-id/channels`;
    const none = await fetch(base);
    assertJsonError(none.status, await none.text(), 401, 'no auth params');
    const v2 = await h.request({ path: '/channels', params: {}, tamper: (qs) => qs.replace('auth_version=1.0', 'auth_version=2.0') });
    assertJsonError(v2.status, v2.text, 401, 'auth_version changed after signing');
    const signedV2 = await h.request({ path: '/channels', params: { auth_version: '2.0' } });
    assertJsonError(signedV2.status, signedV2.text, 401, 'auth_version 2.0');
    const noSig = await h.request({ path: '/channels', tamper: (qs) => qs.replace(/&auth_signature=[0-9a-f]+/, '') });
    assertJsonError(noSig.status, noSig.text, 401, 'no signature');
  });

  h.test('unknown app id ⇒ 404 JSON', async () => {
    const res = await h.request({ method: 'POST', appId: 'no-such-app', key: 'app-key', secret: 'app-secret', path: '/events', body: { name: 'x', channels: ['x'], data: '{}' } });
    assertJsonError(res.status, res.text, 404, 'unknown app');
    const get = await h.request({ appId: 'no-such-app', key: 'app-key', secret: 'app-secret', path: '/channels' });
    assertJsonError(get.status, get.text, 404, 'unknown app GET');
  });

  h.test('data over max_event_payload_kb ⇒ 413; below it is accepted', async () => {
    const c = await h.raw();
    await c.subscribe('big');
    const ok = await h.api().trigger('big', 'fits', 'a'.repeat(10 * 1024)); // exactly the limit
    assert.equal(ok.status, 200);
    const f = await c.next('fits');
    assert.equal(f.data.length, 10 * 1024);
    // the limit counts bytes, not characters: 5121 × "é" is 10242 bytes
    const utf8 = await expectRequestError(h.api().trigger('big', 'too-big', 'é'.repeat(5121)));
    assertJsonError(utf8.status, utf8.body, 413, '10242 bytes of 2-byte characters');
    const okUtf8 = await h.api().trigger('big', 'fits-utf8', 'é'.repeat(5120));
    assert.equal(okUtf8.status, 200);
    assert.equal((await c.next('fits-utf8')).data, 'é'.repeat(5120));
    const err = await expectRequestError(h.api().trigger('big', 'too-big', 'a'.repeat(10 * 1024 + 1)));
    assertJsonError(err.status, err.body, 413, 'payload 10241 bytes');
    await c.expectNoneBefore('too-big', await h.marker('big'));
    const errBatch = await expectRequestError(h.api().triggerBatch([{ channel: 'big', name: 'too-big', data: 'a'.repeat(11_000) }]));
    assertJsonError(errBatch.status, errBatch.body, 413, 'batch item payload');
  });

  h.test('more than 10 batch items ⇒ 400 and nothing is delivered', async () => {
    const c = await h.raw();
    await c.subscribe('batch-limit');
    const items = Array.from({ length: 11 }, (_, i) => ({ channel: 'batch-limit', name: 'item', data: { i } }));
    const err = await expectRequestError(h.api().triggerBatch(items));
    assertJsonError(err.status, err.body, 400, '11 batch items');
    await c.expectNoneBefore('item', await h.marker('batch-limit'));
    const ok = await h.api().triggerBatch(items.slice(0, 10));
    assert.equal(ok.status, 200);
  });

  h.test('invalid channel name ⇒ 400', async () => {
    for (const channel of ['has space', 'semi:colon', 'a'.repeat(201), '#server-to-nobody']) {
      const res = await h.request({ method: 'POST', path: '/events', body: { name: 'x', channels: [channel], data: '{}' } });
      assertJsonError(res.status, res.text, 400, `channel ${JSON.stringify(channel.slice(0, 30))}`);
    }
    const batch = await h.request({ method: 'POST', path: '/batch_events', body: { batch: [{ name: 'x', channel: 'bad name', data: '{}' }] } });
    assertJsonError(batch.status, batch.text, 400, 'batch channel');
    const get = await h.request({ path: '/channels/bad%20name' });
    assertJsonError(get.status, get.text, 400, 'GET bad channel name');
  });

  h.test('missing name or data, malformed JSON body ⇒ 400', async () => {
    const cases = [
      ['no name', { channels: ['x'], data: '{}' }],
      ['no channels', { name: 'x', data: '{}' }],
      ['malformed', '{"name": "x", '],
    ];
    for (const [what, body] of cases) {
      const res = await h.request({ method: 'POST', path: '/events', body });
      assertJsonError(res.status, res.text, 400, what);
    }
  });

  h.test('more than 100 channels in one trigger ⇒ 400', async () => {
    const channels = Array.from({ length: 101 }, (_, i) => `many-${i}`);
    const res = await h.request({ method: 'POST', path: '/events', body: { name: 'x', channels, data: '{}' } });
    assertJsonError(res.status, res.text, 400, '101 channels');
  });
});

describe('routing', () => {
  h.test('wrong method ⇒ 405 JSON, unknown path ⇒ 404 JSON', async () => {
    for (const [method, path, status] of [
      ['GET', '/events', 405],
      ['GET', '/batch_events', 405],
      ['POST', '/channels', 405],
      ['GET', '/users/1/terminate_connections', 405],
      ['GET', '/no-such-endpoint', 404],
    ]) {
      const res = await h.request({ method, path, body: method === 'POST' ? {} : undefined });
      assertJsonError(res.status, res.text, status, `${method} ${path}`);
    }
    const res = await fetch(`${h.server.httpBase}/definitely/not/here`);
    assertJsonError(res.status, await res.text(), 404, 'unknown top-level path');
  });
});

describe('health', () => {
  h.test('/up and /ready answer 200 without signing', async () => {
    for (const p of ['/up', '/ready']) {
      const res = await fetch(`${h.server.httpBase}${p}`);
      await res.arrayBuffer();
      assert.equal(res.status, 200, p);
    }
  });
});

