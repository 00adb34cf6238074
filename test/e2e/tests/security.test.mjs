// Security and connection management with the real binary (docs/security.md):
// TLS with a certificate renewed on disk while pusher-js stays connected,
// and the graceful drain of 2,000 connections on SIGTERM.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import { describe, it } from 'node:test';

import { HOST, HeraldServer, PusherJS, PusherServer, WebSocket, app, connected, subscribed, waitUntil, withTimeout } from '../harness.mjs';

// The test's own self-signed certificates: pusher-js cannot be given a CA.
process.env.NODE_TLS_REJECT_UNAUTHORIZED = '0';

/** Writes a fresh self-signed certificate for 127.0.0.1 with serial, through renames. */
function writeCert(dir, serial) {
  const tmpKey = path.join(dir, 'key.tmp');
  const tmpCert = path.join(dir, 'cert.tmp');
  execFileSync('openssl', [
    'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
    '-keyout', tmpKey, '-out', tmpCert, '-days', '1', '-subj', '/CN=herald-e2e',
    '-addext', 'subjectAltName=IP:127.0.0.1', '-set_serial', String(serial),
  ], { stdio: 'pipe' });
  fs.renameSync(tmpKey, path.join(dir, 'key.pem'));
  fs.renameSync(tmpCert, path.join(dir, 'cert.pem'));
}

/** The serial number (as a number) of the certificate served on port. */
function servedSerial(port) {
  return new Promise((resolve, reject) => {
    const s = tls.connect({ host: HOST, port, rejectUnauthorized: false }, () => {
      const serial = parseInt(s.getPeerCertificate().serialNumber, 16);
      s.end();
      resolve(serial);
    });
    s.on('error', reject);
  });
}

describe('security', () => {
  it('serves wss:// and https:// and picks up a renewed certificate without dropping connections', { timeout: 30_000 }, async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'herald-tls-'));
    writeCert(dir, 1001);
    const a = app();
    // /ready is polled over plain HTTP by the harness: serve TLS on the
    // same port and poll it here instead.
    const server = await startTLS({ apps: [a], tls_cert: path.join(dir, 'cert.pem'), tls_key: path.join(dir, 'key.pem'), tls_reload_interval: '1s' });
    let js;
    try {
      assert.equal(await servedSerial(server.port), 1001);
      js = new PusherJS(a.key, { cluster: 'mt1', wsHost: HOST, wssPort: server.port, forceTLS: true, enabledTransports: ['ws'], disableStats: true });
      await connected(js);
      const channel = js.subscribe('news');
      await subscribed(channel);
      const got = [];
      channel.bind('renewed', (d) => got.push(d));
      const states = [];
      js.connection.bind('state_change', ({ current }) => states.push(current));

      writeCert(dir, 2002);
      await waitUntil(async () => (await servedSerial(server.port)) === 2002, { timeout: 10_000, what: 'the renewed certificate to be served' });

      const api = new PusherServer({ appId: a.id, key: a.key, secret: a.secret, host: HOST, port: server.port, useTLS: true, timeout: 5000 });
      const res = await api.trigger('news', 'renewed', { n: 1 });
      assert.equal(res.status, 200);
      await waitUntil(() => got.length === 1, { what: 'the event on the connection made with the old certificate' });
      assert.deepEqual(states, [], `the pusher-js connection changed state during the renewal: ${states.join(' → ')}`);
      // TLS 1.1 is refused.
      await assert.rejects(new Promise((resolve, reject) => {
        const s = tls.connect({ host: HOST, port: server.port, rejectUnauthorized: false, minVersion: 'TLSv1', maxVersion: 'TLSv1.1' }, () => { s.end(); resolve(); });
        s.on('error', reject);
      }));
    } catch (err) {
      err.message += `\n${server.logs()}`;
      throw err;
    } finally {
      js?.disconnect();
      await server.stop();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('SIGTERM closes 2,000 connections with 4200 spread over the drain window and exits 0', { timeout: 60_000 }, async () => {
    const clients = 2000;
    const server = await HeraldServer.start({ apps: [app()], shutdown_timeout: '4s' });
    const closes = [];
    const sockets = [];
    try {
      for (let i = 0; i < clients; i += 100) {
        await Promise.all(Array.from({ length: Math.min(100, clients - i) }, () => new Promise((resolve, reject) => {
          const ws = new WebSocket(server.wsUrl('app-key'), { handshakeTimeout: 10_000 });
          sockets.push(ws);
          ws.once('message', () => resolve()); // connection_established
          ws.once('error', reject);
          ws.once('close', (code) => closes.push({ code, at: Date.now() }));
        })));
      }
      assert.equal(closes.length, 0, 'connections closed before SIGTERM');
      const t0 = Date.now();
      server.proc.kill('SIGTERM');
      await withTimeout(waitUntil(() => closes.length === clients, { timeout: 15_000, what: 'every connection closed' }), 16_000, 'all closes');
      const exit = await withTimeout(server.exitPromise, 10_000, 'herald to exit');
      assert.equal(exit.signal, null, `killed by ${exit.signal}`);
      assert.equal(exit.code, 0, `exit code ${exit.code}`);
      const bad = closes.filter((c) => c.code !== 4200);
      assert.equal(bad.length, 0, `closes not 4200: ${JSON.stringify(bad.slice(0, 5))}`);
      const times = closes.map((c) => c.at - t0).sort((x, y) => x - y);
      const window = 3000; // ¾ of shutdown_timeout
      const bucket = window / 10;
      let most = 0;
      for (let i = 0, j = 0; i < times.length; i++) {
        while (times[j] < times[i] - bucket) j++;
        most = Math.max(most, i - j + 1);
      }
      const spread = times[times.length - 1] - times[0];
      console.log(`drain: ${clients} closes from ${times[0]} ms to ${times[times.length - 1]} ms after SIGTERM, at most ${most} in any ${bucket} ms; exit after ${Date.now() - t0} ms`);
      assert.ok(spread >= window / 3, `closes spread over ${spread} ms only`);
      assert.ok(most <= clients * 0.3, `${most} of ${clients} closes within ${bucket} ms`);
    } catch (err) {
      err.message += `\n${server.logs()}`;
      throw err;
    } finally {
      for (const ws of sockets) ws.terminate();
      await server.stop();
    }
  });
});

/**
 * Starts herald with TLS: HeraldServer.start polls /ready with fetch over
 * http://, so its fetch is pointed at https:// for the duration.
 */
async function startTLS(config) {
  const orig = globalThis.fetch;
  // Let the harness's readiness poll use https for this server.
  globalThis.fetch = (url, opts) => orig(String(url).replace(/^http:/, 'https:'), opts);
  try {
    return await HeraldServer.start(config);
  } finally {
    globalThis.fetch = orig;
  }
}
