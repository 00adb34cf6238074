// Several apps on one server are isolated from each other.
import assert from 'node:assert/strict';
import { describe } from 'node:test';

import { app, json, record, subscribed, useHerald } from '../harness.mjs';

const h = useHerald({
  apps: [
    app({ id: 'app-a', key: 'key-a', secret: 'secret-a' }),
    app({ id: 'app-b', key: 'key-b', secret: 'secret-b' }),
  ],
});

describe('several apps', () => {
  h.test("an event on app A never reaches app B's subscribers of the same channel", async () => {
    const a = await h.pusher({ appId: 'app-a' });
    const b = await h.pusher({ appId: 'app-b' });
    const chA = a.subscribe('shared');
    const chB = b.subscribe('shared');
    await Promise.all([subscribed(chA), subscribed(chB)]);
    const atA = record(chA, 'news');
    const atB = record(chB, 'news');
    await h.api('app-a').trigger('shared', 'news', { from: 'a' });
    await atA.waitFor(1);
    await h.api('app-b').trigger('shared', 'news', { from: 'b' });
    await atB.waitFor(1);
    await h.markerAt(chA, { appId: 'app-a' });
    await h.markerAt(chB, { appId: 'app-b' });
    assert.deepEqual(atA.map((e) => e.data.from), ['a']);
    assert.deepEqual(atB.map((e) => e.data.from), ['b']);
  });

  h.test('presence rosters, channel lists and client events are per app', async () => {
    const a = await h.pusher({ appId: 'app-a', user: 1 });
    const b = await h.pusher({ appId: 'app-b', user: 2 });
    const chA = a.subscribe('presence-shared');
    const chB = b.subscribe('presence-shared');
    await Promise.all([subscribed(chA), subscribed(chB)]);
    assert.equal(chA.members.count, 1);
    assert.equal(chB.members.count, 1);

    const usersA = await json(await h.api('app-a').get({ path: '/channels/presence-shared/users' }));
    assert.deepEqual(usersA.users.map((u) => u.id), ['1']);
    const p = await h.pusher({ appId: 'app-a' });
    await subscribed(p.subscribe('only-on-a'));
    const listB = await json(await h.api('app-b').get({ path: '/channels' }));
    assert.equal(listB.channels['only-on-a'], undefined);
    assert.ok(listB.channels['presence-shared']);

    // a whisper on app A's private channel does not cross to app B
    const a2 = await h.pusher({ appId: 'app-a', user: 3 });
    const b2 = await h.pusher({ appId: 'app-b', user: 4 });
    const pa1 = a.subscribe('private-room');
    const pa2 = a2.subscribe('private-room');
    const pb = b2.subscribe('private-room');
    await Promise.all([subscribed(pa1), subscribed(pa2), subscribed(pb)]);
    const atA2 = record(pa2, 'client-hi');
    const atB = record(pb, 'client-hi');
    pa1.trigger('client-hi', { n: 1 });
    await atA2.waitFor(1);
    await h.markerAt(pb, { appId: 'app-b' });
    assert.equal(atB.length, 0);
  });

  h.test('sendToUser and terminate_connections only touch the user on their own app', async () => {
    const onA = await h.raw({ appId: 'app-a' });
    const onB = await h.raw({ appId: 'app-b' });
    await h.signin(onA, '77', { appId: 'app-a' });
    await h.signin(onB, '77', { appId: 'app-b' });
    await onA.subscribe('#server-to-user-77');
    await onB.subscribe('#server-to-user-77');
    await h.api('app-a').sendToUser('77', 'only-a', {});
    await onA.next('only-a');
    await h.api('app-b').sendToUser('77', 'marker-b1', {});
    await onB.expectNoneBefore('only-a', 'marker-b1');
    await h.api('app-a').terminateUserConnections('77');
    assert.equal((await onA.waitClose()).code, 4009);
    // A close of onB would be queued before an event sent to it afterwards.
    await h.api('app-b').sendToUser('77', 'marker-b2', {});
    await onB.next('marker-b2');
    assert.ok(onB.isOpen, 'the same user id on app B is not terminated');
    await onB.roundTrip();
  });

  h.test("app A's credentials cannot sign app B's API requests", async () => {
    const res = await h.request({
      method: 'POST',
      appId: 'app-b',
      key: 'key-a',
      secret: 'secret-a',
      path: '/events',
      body: { name: 'x', channels: ['shared'], data: '{}' },
    });
    assert.equal(res.status, 401, res.text);
  });
});
