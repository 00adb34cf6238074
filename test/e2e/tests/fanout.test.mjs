// Fanout: 200 pusher-js clients on one channel, 20 API events, all delivered in order.
import assert from 'node:assert/strict';
import { describe } from 'node:test';

import { app, connected, subscribed, useHerald, waitUntil } from '../harness.mjs';

const h = useHerald({ apps: [app()] });

const CLIENTS = 200;
const EVENTS = 20;

describe('fanout', () => {
  h.test(
    `${CLIENTS} pusher-js clients each receive all ${EVENTS} events in order`,
    async () => {
      const clients = [];
      const received = [];
      // Connect in batches so the test does not depend on accept-queue sizes.
      for (let start = 0; start < CLIENTS; start += 50) {
        const batch = [];
        for (let i = start; i < Math.min(CLIENTS, start + 50); i++) {
          batch.push(
            h.pusher({ connect: false }).then(async (client) => {
              await connected(client, 10_000);
              const ch = client.subscribe('fanout');
              const got = [];
              ch.bind('tick', (d) => got.push(d.seq));
              await subscribed(ch, 10_000);
              clients[i] = client;
              received[i] = got;
            }),
          );
        }
        await Promise.all(batch);
      }
      const info = await (await h.api().get({ path: '/channels/fanout', params: { info: 'subscription_count' } })).json();
      assert.equal(info.subscription_count, CLIENTS);

      const t0 = Date.now();
      for (let seq = 1; seq <= EVENTS; seq++) {
        const res = await h.api().trigger('fanout', 'tick', { seq, pad: 'x'.repeat(100) });
        assert.equal(res.status, 200);
      }
      await waitUntil(() => received.every((r) => r.length >= EVENTS), {
        timeout: 15_000,
        what: `all clients to get ${EVENTS} events (min so far ${Math.min(...received.map((r) => r.length))})`,
      });
      const elapsed = Date.now() - t0;
      const expected = Array.from({ length: EVENTS }, (_, i) => i + 1);
      for (let i = 0; i < CLIENTS; i++) {
        assert.deepEqual(received[i], expected, `client ${i} got ${received[i].join(',')}`);
      }
      assert.ok(clients.every((c) => c.connection.state === 'connected'));
      console.log(`# fanout: ${CLIENTS * EVENTS} deliveries in ${elapsed} ms`);
    },
    { timeout: 60_000 },
  );
});
