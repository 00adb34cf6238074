// A restart in place (docs/restarts.md): SIGHUP starts a new herald on the
// same listening sockets, the old one stops accepting and drains with 4200.
// 200 pusher-js clients and one Laravel Echo page in headless Chromium must
// see it as a quick reconnection: never `unavailable`, back on the new
// process (new socket id, resubscribed) within 2 s of their 4200, and every
// event published after their resubscription delivered, while a publisher
// sends an event every 50 ms through the pusher SDK without one failure and
// a dial loop sees no refused connection. The figures are printed (quoted
// in docs/benchmarks.md).
import assert from 'node:assert/strict';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';

import { chromium } from 'playwright-core';

import { HOST, HeraldServer, PusherJS, apiClient, app, connected, sleep, subscribed, waitUntil, withTimeout } from '../harness.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const MODULES = path.join(HERE, '..', 'node_modules');
const CHROMIUM = process.env.CHROMIUM_BIN || '/usr/bin/chromium';
const CLIENTS = 200;
const CHANNEL = 'restart';
const BACK_WITHIN_MS = 2000;

/** Reads the pid file (0 when absent). */
function readPid(file) {
  try {
    return Number(fs.readFileSync(file, 'utf8').trim()) || 0;
  } catch {
    return 0;
  }
}

/** Whether pid runs (a zombie, reparented to an init that has not reaped it yet, counts as gone). */
function running(pid) {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z';
  } catch {
    return false;
  }
}

/** A page that runs Laravel Echo (the npm browser builds) against herald. */
function startPageServer(herald) {
  const page = `<!doctype html><meta charset="utf-8"><title>restart</title>
<script src="/pusher.min.js"></script><script src="/echo.iife.js"></script>
<script>
  window.log = { states: [], subs: [], ticks: [], errors: [] };
  const echo = new Echo.default({ broadcaster: 'pusher', key: 'app-key', cluster: 'mt1', wsHost: '${HOST}', wsPort: ${herald.port},
    forceTLS: false, enabledTransports: ['ws'], disableStats: true });
  const conn = echo.connector.pusher.connection;
  conn.bind('state_change', ({ current }) => log.states.push({ state: current, at: Date.now(), socketId: conn.socket_id }));
  conn.bind('error', (e) => log.errors.push(JSON.stringify(e)));
  echo.channel('${CHANNEL}').listen('.tick', (e) => log.ticks.push(e.seq));
  echo.connector.pusher.channel('${CHANNEL}').bind('pusher:subscription_succeeded', () => log.subs.push({ at: Date.now(), socketId: conn.socket_id }));
</script>`;
  const files = {
    '/pusher.min.js': path.join(MODULES, 'pusher-js', 'dist', 'web', 'pusher.min.js'),
    '/echo.iife.js': path.join(MODULES, 'laravel-echo', 'dist', 'echo.iife.js'),
  };
  const srv = http.createServer((req, res) => {
    if (req.url === '/') {
      res.writeHead(200, { 'content-type': 'text/html' }).end(page);
    } else if (files[req.url]) {
      res.writeHead(200, { 'content-type': 'text/javascript' }).end(fs.readFileSync(files[req.url]));
    } else {
      res.writeHead(404).end();
    }
  });
  return new Promise((resolve) => srv.listen(0, HOST, () => resolve(srv)));
}

/** Follows one pusher-js client: its states, socket ids, subscriptions and ticks. */
function follow(client) {
  const f = { states: [], subs: [], ticks: new Set(), errors: [] };
  const conn = client.connection;
  conn.bind('state_change', ({ current }) => f.states.push({ state: current, at: Date.now(), socketId: conn.socket_id }));
  conn.bind('error', (e) => f.errors.push(JSON.stringify(e?.error ?? e)));
  const ch = client.subscribe(CHANNEL);
  ch.bind('pusher:subscription_succeeded', () => f.subs.push({ at: Date.now(), socketId: conn.socket_id }));
  ch.bind('tick', (d) => f.ticks.add(d.seq));
  f.channel = ch;
  return f;
}

/**
 * What a restart looked like to one client: when it left `connected` (its
 * 4200), when it was connected again, with which socket id, and when it was
 * resubscribed.
 */
function restartOf(f, firstSocketId, since) {
  const left = f.states.find((s) => s.state !== 'connected' && s.at >= since);
  if (!left) return null;
  const back = f.states.find((s) => s.state === 'connected' && s.at >= left.at && s.socketId !== firstSocketId);
  if (!back) return null;
  const resub = f.subs.find((s) => s.at >= back.at && s.socketId === back.socketId);
  if (!resub) return null;
  return { leftAt: left.at, backAt: back.at, resubAt: resub.at, socketId: back.socketId, leftTo: left.state };
}

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? s[Math.floor(s.length / 2)] : NaN;
};

describe('restart in place', () => {
  it('SIGHUP: 200 pusher-js clients and an Echo page in Chromium reconnect to the new process without a refusal or a lost event', { timeout: 180_000 }, async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'herald-restart-'));
    const pidFile = path.join(dir, 'herald.pid');
    const server = await HeraldServer.start({
      apps: [app()],
      // The 4200s spread over 4.5 s (the default, 10 s, spreads them over
      // 7.5 s): 200 reconnections in 1.5 s would mostly measure how fast
      // this one test process handles them on a loaded machine.
      shutdown_timeout: '6s',
      pid_file: pidFile,
      log_level: 'info',
      ip_connections_per_second: -1,
    });
    const firstPid = server.proc.pid;
    const clients = [];
    const followed = [];
    let context;
    let profile;
    let pageServer;
    let stopDialing = false;
    let dialer;
    let newPid = 0;
    try {
      await waitUntil(() => readPid(pidFile) === firstPid, { what: 'the pid file to name the first process' });

      // 200 pusher-js clients on one public channel.
      for (let i = 0; i < CLIENTS; i += 20) {
        const batch = [];
        for (let j = i; j < Math.min(i + 20, CLIENTS); j++) {
          const c = new PusherJS('app-key', { cluster: 'mt1', wsHost: HOST, wsPort: server.port, forceTLS: false, enabledTransports: ['ws'], disableStats: true });
          clients.push(c);
          const f = follow(c);
          followed.push(f);
          batch.push(connected(c, 15_000).then(() => subscribed(f.channel, 15_000)));
        }
        await Promise.all(batch);
      }
      const firstIds = clients.map((c) => c.connection.socket_id);

      // One Laravel Echo page in Chromium.
      pageServer = await startPageServer(server);
      profile = fs.mkdtempSync(path.join(os.tmpdir(), 'herald-chromium-'));
      context = await chromium.launchPersistentContext(profile, {
        executablePath: CHROMIUM,
        headless: true,
        args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
          '--disable-background-networking', '--disable-component-update', '--disable-sync'],
      });
      context.setDefaultTimeout(60_000);
      const page = await context.newPage();
      await page.goto(`http://${HOST}:${pageServer.address().port}/`);
      await page.waitForFunction(() => window.log.subs.length === 1, null, { timeout: 60_000 });
      const pageFirstId = await page.evaluate(() => window.log.subs[0].socketId);

      // A dial loop: every refused connection is counted.
      let dials = 0;
      let refused = 0;
      const refusals = [];
      dialer = (async () => {
        while (!stopDialing) {
          await new Promise((resolve) => {
            const s = net.connect(server.port, HOST);
            s.once('connect', () => { dials++; s.destroy(); resolve(); });
            s.once('error', (err) => { refused++; refusals.push(err.code || err.message); resolve(); });
          });
          await sleep(10);
        }
      })();

      // The publisher: one event every 50 ms, each with its send time.
      const api = apiClient(server);
      const published = []; // {seq, sentAt, ok, error}
      let publishing = true;
      const inflight = new Set();
      const publisher = (async () => {
        for (let seq = 1; publishing; seq++) {
          const rec = { seq, sentAt: Date.now(), ok: null };
          published.push(rec);
          const p = api.trigger(CHANNEL, 'tick', { seq }).then(
            (res) => { rec.ok = res.status === 200; if (!rec.ok) rec.error = `status ${res.status}`; },
            (err) => { rec.ok = false; rec.error = err.message || String(err); },
          );
          inflight.add(p);
          p.finally(() => inflight.delete(p));
          await sleep(50);
        }
      })();
      await waitUntil(() => published.filter((p) => p.ok).length >= 5, { what: 'events before the restart' });

      // How late this process handles what happens (a loaded machine):
      // the longest stall of its event loop during the restart is added to
      // the 2 s a client has to come back, since no client here can be
      // seen back while the loop stands still.
      const lag = monitorEventLoopDelay({ resolution: 10 });
      lag.enable();
      const hupAt = Date.now();
      process.kill(firstPid, 'SIGHUP');
      newPid = await waitUntil(() => {
        const p = readPid(pidFile);
        return p && p !== firstPid ? p : 0;
      }, { timeout: 30_000, what: 'the pid file to name the new process' });
      const readyAt = Date.now();
      const exit = await withTimeout(server.exitPromise, 20_000, 'the old process to exit after its drain');
      const oldExitAt = Date.now();
      assert.equal(exit.code, 0, `the old process exited with ${exit.code} (signal ${exit.signal})`);

      // Every client is back: connected with a new socket id and resubscribed.
      await waitUntil(() => followed.every((f, i) => restartOf(f, firstIds[i], hupAt)), {
        timeout: 20_000,
        what: 'every pusher-js client to be back and resubscribed',
      });
      await page.waitForFunction((first) => window.log.subs.some((s) => s.socketId !== first), pageFirstId, { timeout: 20_000 });
      lag.disable();
      const stallMs = Math.round(lag.max / 1e6);
      const backWithin = BACK_WITHIN_MS + stallMs;
      const restarts = followed.map((f, i) => restartOf(f, firstIds[i], hupAt));
      const pageLog = await page.evaluate(() => window.log);
      const pageRestart = restartOf({ states: pageLog.states, subs: pageLog.subs }, pageFirstId, hupAt);
      assert.ok(pageRestart, `the Echo page did not come back: ${JSON.stringify(pageLog.states)}`);
      const lastResub = Math.max(pageRestart.resubAt, ...restarts.map((r) => r.resubAt));

      // Keep publishing a little past the last resubscription, then stop.
      await waitUntil(() => published.some((p) => p.sentAt > lastResub + 300 && p.ok), { timeout: 10_000, what: 'events after the last resubscription' });
      publishing = false;
      await publisher;
      await Promise.all([...inflight]);
      stopDialing = true;
      await dialer;

      // Every event sent after a client's resubscription reaches it.
      const missingOf = (ticks, resubAt) => published.filter((p) => p.ok && p.sentAt > resubAt && !ticks.has(p.seq)).map((p) => p.seq);
      await waitUntil(() => followed.every((f, i) => missingOf(f.ticks, restarts[i].resubAt).length === 0), {
        timeout: 10_000,
        what: 'every event published after a client resubscribed to reach it',
      }).catch(() => {});
      const pageTicks = new Set(await page.evaluate(() => window.log.ticks));

      const failedPublishes = published.filter((p) => p.ok === false);
      const backMs = restarts.map((r) => r.backAt - r.leftAt);
      const resubMs = restarts.map((r) => r.resubAt - r.leftAt);
      const duringRestart = published.filter((p) => p.sentAt >= hupAt && p.sentAt <= oldExitAt).length;
      const missedAfterResub = followed.reduce((n, f, i) => n + missingOf(f.ticks, restarts[i].resubAt).length, missingOf(pageTicks, pageRestart.resubAt).length);
      // Not a failure, but worth seeing: events a client did not get
      // between the SIGHUP and its resubscription. While it still waits on
      // the old process, the relay brings it what the new one publishes;
      // while it reconnects (between its 4200 and its resubscription) no
      // process has it. On a loaded machine this test process handles a
      // 4200 late, which widens the second window.
      const all = [...followed.map((f, i) => [f.ticks, restarts[i]]), [pageTicks, pageRestart]];
      const missedBeforeResub = all.reduce((n, [ticks, r]) =>
        n + published.filter((p) => p.ok && p.sentAt >= hupAt && p.sentAt < r.resubAt && !ticks.has(p.seq)).length, 0);
      const sentBeforeResub = all.reduce((n, [, r]) => n + published.filter((p) => p.ok && p.sentAt >= hupAt && p.sentAt < r.resubAt).length, 0);
      const figures = {
        clients: `${CLIENTS} pusher-js + 1 Laravel Echo in Chromium`,
        'SIGHUP to new process ready (ms)': readyAt - hupAt,
        'SIGHUP to old process exit (ms)': oldExitAt - hupAt,
        '4200 to connected, max / median (ms)': `${Math.max(...backMs)} / ${median(backMs)}`,
        '4200 to re-subscribed, max / median (ms)': `${Math.max(...resubMs)} / ${median(resubMs)}`,
        'Echo page: 4200 to re-subscribed (ms)': pageRestart.resubAt - pageRestart.leftAt,
        'longest stall of this test process\'s event loop during the restart (ms)': stallMs,
        'refused connections': `${refused} of ${dials + refused} dials`,
        'failed publishes': `${failedPublishes.length} of ${published.length} (${duringRestart} sent between SIGHUP and the old process's exit)` +
          failedPublishes.slice(0, 3).map((p) => `; #${p.seq}: ${p.error}`).join(''),
        'events sent after a client resubscribed that it did not get (client-events)': missedAfterResub,
        'events sent between SIGHUP and a client\'s resubscription that it did not get (client-events)': `${missedBeforeResub} of ${sentBeforeResub}`,
      };
      console.log('zero-downtime restart figures:\n' + Object.entries(figures).map(([k, v]) => `  ${k}: ${v}`).join('\n'));

      assert.equal(refused, 0, `refused connections during the restart: ${refusals.slice(0, 5).join(', ')}`);
      assert.ok(dials > 0, 'the dial loop never connected');
      assert.deepEqual(failedPublishes.map((p) => `${p.seq}: ${p.error}`), [], 'failed publishes');
      for (const [i, f] of followed.entries()) {
        const states = f.states.map((s) => s.state);
        assert.ok(!states.includes('unavailable') && !states.includes('failed') && !states.includes('disconnected'),
          `client ${i} went through ${states.join(' → ')}`);
        assert.deepEqual(f.errors.filter((e) => !e.includes('"code":4200')), [], `client ${i} saw errors other than the 4200`);
        assert.ok(restarts[i].resubAt - restarts[i].leftAt <= backWithin,
          `client ${i} was back ${restarts[i].resubAt - restarts[i].leftAt} ms after its 4200 (allowed: 2 s + ${stallMs} ms of this process's own stall)`);
        assert.notEqual(restarts[i].socketId, firstIds[i]);
        assert.deepEqual(missingOf(f.ticks, restarts[i].resubAt), [], `client ${i} missed events sent after it resubscribed`);
        assert.ok(published.some((p) => p.ok && p.sentAt > restarts[i].resubAt && f.ticks.has(p.seq)), `client ${i} got no event after the restart`);
      }
      const pageStates = pageLog.states.map((s) => s.state);
      assert.ok(!pageStates.includes('unavailable') && !pageStates.includes('failed') && !pageStates.includes('disconnected'),
        `the Echo page went through ${pageStates.join(' → ')}`);
      assert.deepEqual(pageLog.errors.filter((e) => !e.includes('"code":4200')), [], 'the Echo page saw errors other than the 4200');
      assert.ok(pageRestart.resubAt - pageRestart.leftAt <= BACK_WITHIN_MS, `the Echo page was back ${pageRestart.resubAt - pageRestart.leftAt} ms after its 4200`);
      assert.deepEqual(missingOf(pageTicks, pageRestart.resubAt), [], 'the Echo page missed events sent after it resubscribed');
      assert.ok(published.some((p) => p.ok && p.sentAt > pageRestart.resubAt && pageTicks.has(p.seq)), 'the Echo page got no event after the restart');

      // The new process serves and, on SIGTERM, exits and removes the pid file.
      assert.ok(running(newPid), 'the new process runs');
      const up = await fetch(`${server.httpBase}/ready`);
      assert.equal(up.status, 200);
      for (const c of clients) c.disconnect();
      process.kill(newPid, 'SIGTERM');
      await waitUntil(() => !running(newPid) && readPid(pidFile) === 0, { timeout: 15_000, what: 'the new process to exit and remove the pid file' });
      newPid = 0;
    } catch (err) {
      err.message += `\n${server.logs()}`;
      throw err;
    } finally {
      stopDialing = true;
      await dialer;
      for (const c of clients) c.disconnect();
      if (context) await context.close();
      if (profile) fs.rmSync(profile, { recursive: true, force: true });
      if (pageServer) pageServer.close();
      if (newPid && running(newPid)) process.kill(newPid, 'SIGKILL');
      await server.stop();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
