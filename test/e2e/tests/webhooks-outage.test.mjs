// Webhook delivery through a receiver outage: 503 for 30 s, then a
// receiver that hangs. Short timeout and backoff settings keep the file
// quick; the guarantees are the same with the defaults.
import assert from 'node:assert/strict';
import { after, before, describe } from 'node:test';

import { WebhookReceiver, app, sleep, subscribed, useHerald, waitUntil } from '../harness.mjs';

const rcv = await WebhookReceiver.start();

const APP = app({ webhooks: [{ url: rcv.url, event_types: ['channel_occupied', 'channel_vacated'] }] });
const h = useHerald({
  apps: [APP],
  webhook_timeout: '500ms',
  webhook_backoff_min: '200ms',
  webhook_backoff_max: '2s',
  webhook_retry_for: '5m',
});

// Closed after herald has stopped (after hooks run in order), so that what
// herald flushes at shutdown still finds it.
after(() => rcv.close());

const key = (e) => `${e.name} ${e.channel}`;

describe('webhooks through an outage', () => {
  before(() => {
    rcv.requests.length = 0;
  });

  h.test(
    'the receiver answers 503 for 30 s, then recovers: every webhook arrives, each batch accepted once, retries byte-identical',
    async () => {
      rcv.mode = 503;
      const began = Date.now();
      const c = await h.pusher();
      const expected = [];
      // A channel occupied and the one before vacated every half second.
      let prev = null;
      for (let i = 0; Date.now() - began < 30_000; i++) {
        const name = `outage-${i}`;
        await subscribed(c.subscribe(name));
        expected.push(`channel_occupied ${name}`);
        if (prev) {
          c.unsubscribe(prev);
          expected.push(`channel_vacated ${prev}`);
        }
        prev = name;
        await sleep(500); // pacing the events over the outage
      }
      c.unsubscribe(prev);
      expected.push(`channel_vacated ${prev}`);
      assert.equal(rcv.accepted().length, 0, 'nothing accepted during the outage');
      assert.ok(rcv.requests.length > 10, `Herald kept trying during the outage (${rcv.requests.length} requests)`);
      rcv.mode = 'ok';

      await waitUntil(() => expected.every((k) => rcv.uniqueEvents(APP).some((e) => key(e) === k)), {
        timeout: 20_000,
        what: `${expected.length} webhook events after the recovery`,
      });
      // Each batch: one body for all of its attempts, accepted once.
      const bodies = new Map();
      const acceptedTimes = new Map();
      for (const r of rcv.requests) {
        if (bodies.has(r.batchId)) assert.equal(r.rawBody, bodies.get(r.batchId), `batch ${r.batchId} retried with another body`);
        bodies.set(r.batchId, r.rawBody);
        if (r.status === 200) acceptedTimes.set(r.batchId, (acceptedTimes.get(r.batchId) ?? 0) + 1);
      }
      for (const [id, n] of acceptedTimes) assert.equal(n, 1, `batch ${id} accepted ${n} times`);
      // Every event exactly once (over all batches, not just per batch id).
      const got = rcv.uniqueEvents(APP).map(key).sort();
      assert.deepEqual(got, [...expected].sort());
      const retried = [...bodies.keys()].filter((id) => rcv.requests.filter((r) => r.batchId === id).length > 1);
      assert.ok(retried.length > 0, 'some batches were retried');
    },
    { timeout: 90_000 },
  );

  h.test('a receiver that hangs is cut off at the timeout and the batch is retried', async () => {
    rcv.requests.length = 0;
    // Hang on the first attempt of every batch, accept the second.
    const attempts = new Map();
    rcv.mode = (r) => {
      const n = (attempts.get(r.batchId) ?? 0) + 1;
      attempts.set(r.batchId, n);
      return n === 1 ? 'hang' : 'ok';
    };
    const c = await h.pusher();
    await subscribed(c.subscribe('hung-channel'));
    await waitUntil(() => rcv.uniqueEvents(APP).some((e) => key(e) === 'channel_occupied hung-channel'), {
      timeout: 10_000,
      what: 'channel_occupied after a hung attempt',
    });
    const [first, second] = rcv.requests.filter((r) => r.rawBody.includes('hung-channel'));
    assert.ok(first && second, 'two attempts');
    assert.equal(first.batchId, second.batchId, 'the same batch again');
    assert.equal(first.rawBody, second.rawBody);
    assert.equal(first.status, null, 'the first attempt was never answered');
    await waitUntil(() => first.aborted, { what: 'Herald to close the hung request' });
    // Cut at webhook_timeout (500 ms), not before: the retry comes after it.
    assert.ok(second.at - first.at >= 500, `retried ${second.at - first.at} ms after the first attempt`);
    assert.equal(second.status, 200);
  });
});
