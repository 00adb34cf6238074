// A subscriber that stops reading must not slow the others down; once its
// write queue passes write_queue_kb it is disconnected (design.md, step 4).
import assert from 'node:assert/strict';
import { describe } from 'node:test';

import { app, json, useHerald, waitUntil } from '../harness.mjs';

const h = useHerald({ write_queue_kb: 256, apps: [app({ max_event_payload_kb: 10 })] });

describe('slow consumers', () => {
  h.test('a subscriber that stops reading is cut off; a reading subscriber gets everything', async () => {
    const slow = await h.raw();
    const fast = await h.raw();
    await slow.subscribe('firehose');
    await fast.subscribe('firehose');
    slow.ws._socket.pause(); // stop reading: the kernel buffers fill, then the server's queue

    const payload = 'p'.repeat(9000);
    const BATCHES = 200; // 200 × 10 × 9 KB ≈ 18 MB, far beyond socket buffers + 256 KB; one batch (90 KB) fits the queue
    let fastCount = 0;
    fast.ws.on('message', () => fastCount++);
    const t0 = Date.now();
    for (let b = 0; b < BATCHES; b++) {
      const batch = Array.from({ length: 10 }, (_, i) => ({ channel: 'firehose', name: 'blob', data: `${b * 10 + i}:${payload}` }));
      const res = await h.api().triggerBatch(batch);
      assert.equal(res.status, 200);
      // A subscriber that keeps up: at most two batches (180 KB, under
      // write_queue_kb) ahead of it. The API answers once the events are
      // queued, so an unpaced loop in this process could outrun its own
      // reader and have the server cut it too (as it should).
      if (b > 0) await waitUntil(() => fastCount >= (b - 1) * 10, { timeout: 10_000, what: `fast subscriber at batch ${b - 1}` });
    }
    await waitUntil(() => fastCount >= BATCHES * 10, { timeout: 10_000, what: `fast subscriber to get ${BATCHES * 10} events (has ${fastCount})` });
    const elapsed = Date.now() - t0;

    // The server has dropped the slow subscriber.
    await waitUntil(
      async () => {
        const info = await json(await h.api().get({ path: '/channels/firehose', params: { info: 'subscription_count' } }));
        return info.subscription_count === 1;
      },
      { timeout: 5000, what: 'subscription_count 1 (slow consumer removed)' },
    );
    slow.ws._socket.resume();
    const closed = await slow.waitClose(10_000);
    assert.ok(closed.code >= 4100 && closed.code <= 4199 || closed.code === 1006,
      `slow consumer closed with ${closed.code} ${closed.reason}`);
    // the fast one got every event, in order
    const seqs = fast.drain((f) => f.event === 'blob').map((f) => Number(f.data.split(':')[0]));
    assert.equal(seqs.length, BATCHES * 10);
    assert.ok(seqs.every((v, i) => v === i), 'in order');
    await fast.roundTrip();
    console.log(`# slow consumer: fast subscriber got ${seqs.length} events in ${elapsed} ms`);
  }, { timeout: 60_000 });
});
