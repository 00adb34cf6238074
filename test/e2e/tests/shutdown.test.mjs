// Graceful shutdown on SIGTERM (design.md "Lifetimes"): readiness turns
// false, existing connections are closed with 4200 (pusher-js reconnects at
// once), and the process exits 0 within shutdown_timeout.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { HOST, HeraldServer, PusherJS, RawClient, app, connected, withTimeout } from '../harness.mjs';

describe('shutdown', () => {
  it('SIGTERM closes connections with 4200 and exits 0 within shutdown_timeout', { timeout: 20_000 }, async () => {
    const server = await HeraldServer.start({ apps: [app()], shutdown_timeout: '2s' });
    const clients = [];
    let jsClient = null;
    try {
      for (let i = 0; i < 5; i++) clients.push(await RawClient.open(server.wsUrl('app-key')));
      await clients[0].subscribe('goodbye');
      // pusher-js must treat the shutdown close as "reconnect", not "refused"
      const js = new PusherJS('app-key', { cluster: 'mt1', wsHost: HOST, wsPort: server.port, forceTLS: false, enabledTransports: ['ws'] });
      jsClient = js;
      await connected(js);
      const jsStates = [];
      js.connection.bind('state_change', ({ current }) => jsStates.push(current));
      const t0 = Date.now();
      server.proc.kill('SIGTERM');
      const closes = await withTimeout(Promise.all(clients.map((c) => c.closed)), 6000, 'all sockets closed');
      for (const c of closes) assert.equal(c.code, 4200, `close ${c.code} ${c.reason}`);
      const exit = await withTimeout(server.exitPromise, 8000, 'herald to exit after SIGTERM');
      const elapsed = Date.now() - t0;
      assert.equal(exit.signal, null, `herald was killed by ${exit.signal}`);
      assert.equal(exit.code, 0, `exit code ${exit.code}`);
      assert.ok(elapsed < 7000, `shutdown took ${elapsed} ms with shutdown_timeout 2s`);
      // the port is released (the process has exited)
      const refused = await fetch(`${server.httpBase}/up`).then(
        () => false,
        () => true,
      );
      assert.ok(refused, 'the listener is closed after exit');
      assert.ok(jsStates.length > 0 && !jsStates.includes('disconnected'),
        `pusher-js keeps trying to reconnect after a drain close: ${jsStates.join(' → ')}`);
    } catch (err) {
      err.message += `\n${server.logs()}`;
      throw err;
    } finally {
      for (const c of clients) c.close();
      jsClient?.disconnect();
      await server.stop();
    }
  });
});
