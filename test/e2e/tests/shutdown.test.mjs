// Graceful shutdown on SIGTERM (design.md "Lifetimes"): readiness turns
// false, existing connections are closed with 4200 (pusher-js reconnects at
// once), and the process exits 0 within shutdown_timeout.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { HeraldServer, RawClient, app, sleep, withTimeout } from '../harness.mjs';

describe('shutdown', () => {
  it('SIGTERM closes connections with 4200 and exits 0 within shutdown_timeout', { timeout: 20_000 }, async () => {
    const server = await HeraldServer.start({ apps: [app()], shutdown_timeout: '2s' });
    const clients = [];
    try {
      for (let i = 0; i < 5; i++) clients.push(await RawClient.open(server.wsUrl('app-key')));
      await clients[0].subscribe('goodbye');
      const t0 = Date.now();
      server.proc.kill('SIGTERM');
      const closes = await withTimeout(Promise.all(clients.map((c) => c.closed)), 6000, 'all sockets closed');
      for (const c of closes) assert.equal(c.code, 4200, `close ${c.code} ${c.reason}`);
      const exit = await withTimeout(server.exitPromise, 8000, 'herald to exit after SIGTERM');
      const elapsed = Date.now() - t0;
      assert.equal(exit.signal, null, `herald was killed by ${exit.signal}`);
      assert.equal(exit.code, 0, `exit code ${exit.code}`);
      assert.ok(elapsed < 7000, `shutdown took ${elapsed} ms with shutdown_timeout 2s`);
      // the port is released
      await sleep(50);
      const refused = await fetch(`${server.httpBase}/up`).then(
        () => false,
        () => true,
      );
      assert.ok(refused, 'the listener is closed after exit');
    } catch (err) {
      err.message += `\n${server.logs()}`;
      throw err;
    } finally {
      for (const c of clients) c.close();
      await server.stop();
    }
  });
});
