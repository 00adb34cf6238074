// Server-side activity checks: an app with a 2 s activity_timeout. A client
// that never answers is pinged and then closed with 4201; a client that
// answers stays connected. Kept in its own file so that its wait overlaps
// with the other files.
import assert from 'node:assert/strict';
import { describe } from 'node:test';

import { app, sleep, useHerald } from '../harness.mjs';

const h = useHerald({ apps: [app({ activity_timeout: '2s' })] });

// Pusher's recommendation is a 30 s pong wait; the bound below allows for
// that plus the 2 s idle time, so the test stays bounded either way.
const CLOSE_DEADLINE_MS = 40_000;

describe('activity timeout', () => {
  h.test('connection_established advertises the app activity_timeout', async () => {
    const c = await h.raw();
    assert.equal(c.establishedData.activity_timeout, 2);
  });

  h.test(
    'silent client is pinged then closed with 4201; a client that answers pings stays connected',
    async () => {
      // `silent` never answers anything: neither pusher:ping nor WebSocket pings.
      const silent = await h.raw({ autoPong: false, answerPings: false });
      // `polite` answers pusher:ping with pusher:pong and WebSocket pings with pongs.
      const polite = await h.raw({ autoPong: true, answerPings: true });
      // a pusher-js client: it pings after min(its own, the server's) activity timeout
      const js = await h.pusher();
      const jsSocket = js.connection.socket_id;
      // `pinger` ignores pusher:ping but sends WebSocket ping frames: inbound
      // control frames count as activity too (protocol doc §3.2).
      const pinger = await h.raw({ autoPong: false, answerPings: false });
      let pongFrames = 0;
      pinger.ws.on('pong', () => pongFrames++);
      const pingTimer = setInterval(() => pinger.isOpen && pinger.ws.ping(), 500);
      h.addCleanup(() => clearInterval(pingTimer));
      const jsStates = [];
      js.connection.bind('state_change', ({ current }) => jsStates.push(current));
      const started = Date.now();

      const closed = await silent.waitClose(CLOSE_DEADLINE_MS);
      const elapsed = Date.now() - started;
      const pinged = silent.pingsReceived > 0 || silent.history.some((f) => f.event === 'pusher:ping');
      assert.ok(pinged, `the server must ping before closing; frames: ${silent.describeHistory()}`);
      assert.equal(closed.code, 4201, `close code (reason ${closed.reason}) after ${elapsed} ms`);
      assert.ok(elapsed >= 2000, `closed after ${elapsed} ms, before the 2 s activity timeout`);

      // The polite client has been idle just as long, was pinged too, and is still open.
      const politePinged = polite.pingsReceived > 0 || polite.history.some((f) => f.event === 'pusher:ping');
      assert.ok(politePinged, 'the polite client was pinged as well');
      await sleep(1000);
      assert.ok(polite.isOpen, `polite client was closed: ${JSON.stringify(polite.closeInfo)}`);
      await polite.roundTrip();
      assert.ok(pinger.isOpen, `a client sending WebSocket pings was closed: ${JSON.stringify(pinger.closeInfo)}`);
      assert.ok(pongFrames > 0, 'WebSocket ping frames are answered with pong frames');
      // pusher-js stayed connected on the same socket the whole time
      assert.deepEqual(jsStates, [], `pusher-js state changes: ${jsStates.join(' → ')}`);
      assert.equal(js.connection.socket_id, jsSocket);
    },
    { timeout: CLOSE_DEADLINE_MS + 10_000 },
  );
});
