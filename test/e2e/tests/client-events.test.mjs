// Client events (whispers): who receives them, metadata, restrictions, rate limit.
import assert from 'node:assert/strict';
import { describe } from 'node:test';

import { app, once, pusherRoundTrip, record, sleep, useHerald, waitUntil } from '../harness.mjs';

const h = useHerald({
  apps: [
    app(),
    app({ id: 'quiet-app', key: 'quiet-key', secret: 'quiet-secret', enable_client_messages: false }),
  ],
});

async function whenSubscribed(echoChannel) {
  await new Promise((resolve, reject) => {
    echoChannel.subscribed(resolve);
    echoChannel.error((e) => reject(new Error(`subscription error: ${JSON.stringify(e)}`)));
  });
}

describe('client events', () => {
  h.test('Echo whisper on a private channel reaches the other client, not the sender', async () => {
    const alice = await h.echo({ user: 1 });
    const bob = await h.echo({ user: 2 });
    const chA = alice.private('chat.1');
    const chB = bob.private('chat.1');
    await Promise.all([whenSubscribed(chA), whenSubscribed(chB)]);

    const atBob = [];
    const atAlice = [];
    chB.listenForWhisper('typing', (data, metadata) => atBob.push({ data, metadata }));
    chA.listenForWhisper('typing', (data) => atAlice.push(data));
    chA.whisper('typing', { name: 'Alice', typing: true });
    await waitUntil(() => atBob.length === 1, { what: 'whisper at Bob' });
    assert.deepEqual(atBob[0].data, { name: 'Alice', typing: true });
    await pusherRoundTrip(alice);
    assert.equal(atAlice.length, 0, 'the sender does not get its own client event');
    assert.equal(atBob.length, 1);
  });

  h.test('Echo whisper on a presence channel carries user_id metadata', async () => {
    const alice = await h.echo({ user: 1 });
    const bob = await h.echo({ user: 2 });
    const chA = alice.join('room.7');
    const chB = bob.join('room.7');
    await Promise.all([whenSubscribed(chA), whenSubscribed(chB)]);
    const atBob = [];
    const atAlice = [];
    chB.listenForWhisper('typing', (data, metadata) => atBob.push({ data, metadata }));
    chA.listenForWhisper('typing', (data) => atAlice.push(data));
    chA.whisper('typing', { typing: true });
    await waitUntil(() => atBob.length === 1, { what: 'whisper at Bob' });
    assert.deepEqual(atBob[0].data, { typing: true });
    assert.equal(atBob[0].metadata?.user_id, '1');
    await pusherRoundTrip(alice);
    assert.equal(atAlice.length, 0);
  });

  h.test('raw: relayed client event is verbatim with user_id on presence', async () => {
    const a = await h.raw();
    const b = await h.raw();
    const chan = 'presence-raw-whisper';
    await a.subscribe(chan, h.channelAuth(a.socketId, chan, { channelData: { user_id: '11', user_info: { name: 'Ada' } } }));
    await b.subscribe(chan, h.channelAuth(b.socketId, chan, { channelData: { user_id: '12' } }));
    a.send({ event: 'client-typing', channel: chan, data: { name: 'Ada' } });
    const f = await b.next('client-typing');
    assert.deepEqual({ ...f }, { event: 'client-typing', channel: chan, data: { name: 'Ada' }, user_id: '11' });
    await a.expectNoneBeforePong('client-typing');
  });

  h.test('raw: client event data is relayed verbatim (string data stays a string, no user_id on private)', async () => {
    const a = await h.raw();
    const b = await h.raw();
    const chan = 'private-verbatim';
    await a.subscribe(chan, h.channelAuth(a.socketId, chan));
    await b.subscribe(chan, h.channelAuth(b.socketId, chan));
    a.send({ event: 'client-s', channel: chan, data: 'plain "text"' });
    a.send({ event: 'client-o', channel: chan, data: { nested: { list: [1, 2, 3], ok: true } } });
    const s1 = await b.next('client-s');
    const s2 = await b.next('client-o');
    assert.deepEqual({ ...s1 }, { event: 'client-s', channel: chan, data: 'plain "text"' });
    assert.deepEqual({ ...s2 }, { event: 'client-o', channel: chan, data: { nested: { list: [1, 2, 3], ok: true } } });
  });

  h.test('raw: client event on a public channel is rejected with pusher:error and not relayed', async () => {
    const a = await h.raw();
    const b = await h.raw();
    await a.subscribe('public-chat');
    await b.subscribe('public-chat');
    a.send({ event: 'client-hello', channel: 'public-chat', data: {} });
    const err = await a.next('pusher:error');
    assert.equal(typeof err.data.message, 'string', err.raw);
    assert.equal(err.data.code, 4301, `client-event rejections use 4301: ${err.raw}`);
    await a.roundTrip();
    await b.expectNoneBefore('client-hello', await h.marker('public-chat'));
  });

  h.test('raw: client event on an encrypted channel is rejected', async () => {
    const a = await h.raw();
    const b = await h.raw();
    const chan = 'private-encrypted-whisper';
    await a.subscribe(chan, h.channelAuth(a.socketId, chan));
    await b.subscribe(chan, h.channelAuth(b.socketId, chan));
    a.send({ event: 'client-hello', channel: chan, data: {} });
    const err = await a.next('pusher:error');
    assert.equal(typeof err.data.message, 'string', err.raw);
    assert.equal(err.data.code, 4301, `client-event rejections use 4301: ${err.raw}`);
    await a.roundTrip();
    await b.expectNoneBefore('client-hello', await h.marker(chan));
  });

  h.test('raw: client event over max_event_payload_kb is rejected', async () => {
    const a = await h.raw();
    const b = await h.raw();
    const chan = 'private-big-whisper';
    await a.subscribe(chan, h.channelAuth(a.socketId, chan));
    await b.subscribe(chan, h.channelAuth(b.socketId, chan));
    a.send({ event: 'client-big', channel: chan, data: 'x'.repeat(11 * 1024) });
    const err = await a.next('pusher:error');
    assert.equal(err.data.code, 4301, err.raw);
    await a.roundTrip();
    await b.expectNoneBefore('client-big', await h.marker(chan));
    a.send({ event: 'client-small', channel: chan, data: 'x'.repeat(1024) });
    await b.next('client-small');
  });

  h.test('raw: client event on a channel the sender is not subscribed to is rejected', async () => {
    const a = await h.raw();
    const b = await h.raw();
    await b.subscribe('private-members-only', h.channelAuth(b.socketId, 'private-members-only'));
    a.send({ event: 'client-sneak', channel: 'private-members-only', data: {} });
    const err = await a.next('pusher:error');
    assert.ok(err.data && typeof err.data.message === 'string', err.raw);
    assert.equal(err.data.code, 4009, `protocol doc §6 decision: 4009 "not a member": ${err.raw}`);
    await a.roundTrip();
    await b.expectNoneBefore('client-sneak', await h.marker('private-members-only'));
  });

  h.test('rate limit: the 11th client event within a second gets pusher:error 4301, socket stays open', async () => {
    const a = await h.raw();
    const b = await h.raw();
    const chan = 'private-flood';
    await a.subscribe(chan, h.channelAuth(a.socketId, chan));
    await b.subscribe(chan, h.channelAuth(b.socketId, chan));
    for (let i = 1; i <= 11; i++) a.send({ event: 'client-n', channel: chan, data: { i } });
    const err = await a.next('pusher:error');
    assert.equal(err.data.code, 4301, err.raw);
    await a.roundTrip();
    assert.ok(a.isOpen);
    await b.next(await h.marker(chan)); // after all that a's 11 events relayed
    const got = b.drain((f) => f.event === 'client-n');
    assert.deepEqual(
      got.map((f) => f.data.i),
      [1, 2, 3, 4, 5, 6, 7, 8, 9, 10],
      'the first 10 are relayed in order, the 11th is not',
    );
    assert.equal(a.drain((f) => f.event === 'pusher:error').length, 0, 'exactly one 4301 error');
    // after the window the sender may send again
    await sleep(1100);
    a.send({ event: 'client-n', channel: chan, data: { i: 12 } });
    const again = await b.next('client-n');
    assert.equal(again.data.i, 12);
  });

  h.test('app with client events disabled: pusher:error and nothing relayed', async () => {
    const a = await h.raw({ appId: 'quiet-app' });
    const b = await h.raw({ appId: 'quiet-app' });
    const chan = 'private-quiet';
    await a.subscribe(chan, h.channelAuth(a.socketId, chan, { appId: 'quiet-app' }));
    await b.subscribe(chan, h.channelAuth(b.socketId, chan, { appId: 'quiet-app' }));
    a.send({ event: 'client-hello', channel: chan, data: {} });
    const err = await a.next('pusher:error');
    assert.equal(typeof err.data.message, 'string', err.raw);
    assert.equal(err.data.code, 4301, err.raw);
    await a.roundTrip();
    await b.expectNoneBefore('client-hello', await h.marker(chan, { appId: 'quiet-app' }));
  });

  h.test('Echo whisper on an app with client events disabled is not delivered', async () => {
    const alice = await h.echo({ appId: 'quiet-app', user: 1 });
    const bob = await h.echo({ appId: 'quiet-app', user: 2 });
    const chA = alice.private('quiet.1');
    const chB = bob.private('quiet.1');
    await Promise.all([whenSubscribed(chA), whenSubscribed(chB)]);
    const errors = record(alice.connector.pusher.connection, 'error');
    const atBob = [];
    chB.listenForWhisper('typing', (d) => atBob.push(d));
    chA.whisper('typing', {});
    await errors.waitFor(1);
    await pusherRoundTrip(alice); // the whisper is handled
    const marker = once(bob.connector.pusher.channel('private-quiet.1'), 'marker-quiet');
    await h.api('quiet-app').trigger('private-quiet.1', 'marker-quiet', {});
    await marker;
    assert.equal(atBob.length, 0);
  });
});
