// Automatic certificates (ACME, docs/security.md) with the real binary:
// a certificate already in acme_cache_dir is served to pusher-js and the
// Pusher server SDK by host name, plain HTTP on acme_http_addr redirects to
// https, and nothing ever reaches a CA (a fake one on 127.0.0.1 refuses and
// counts every request). Obtaining a certificate needs the internet and is
// not tested here.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import dns from 'node:dns';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import { after, before, describe, it } from 'node:test';

import { HOST, HeraldServer, PusherJS, PusherServer, app, connected, freePort, subscribed, waitUntil } from '../harness.mjs';

const DOMAIN = 'ws.herald.test';

// The test's own self-signed certificate: pusher-js cannot be given a CA.
process.env.NODE_TLS_REJECT_UNAUTHORIZED = '0';

// DOMAIN resolves to the loopback in this process only (clients connect by
// name, so that they send it as SNI, as they would in production).
const origLookup = dns.lookup;
dns.lookup = (host, opts, cb) => {
  if (typeof opts === 'function') {
    cb = opts;
    opts = {};
  }
  if (host !== DOMAIN) return origLookup(host, opts, cb);
  if (opts && opts.all) return cb(null, [{ address: HOST, family: 4 }]);
  return cb(null, HOST, 4);
};

/** Writes a self-signed certificate for DOMAIN in autocert's cache format: the key PEM, then the certificate PEM. */
function cacheCert(dir, serial) {
  const key = path.join(dir, 'key.tmp');
  const cert = path.join(dir, 'cert.tmp');
  execFileSync('openssl', [
    'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
    '-keyout', key, '-out', cert, '-days', '90', '-subj', `/CN=${DOMAIN}`,
    '-addext', `subjectAltName=DNS:${DOMAIN}`, '-set_serial', String(serial),
  ], { stdio: 'pipe' });
  fs.mkdirSync(path.join(dir, 'cache'), { mode: 0o700 });
  fs.writeFileSync(path.join(dir, 'cache', DOMAIN), Buffer.concat([fs.readFileSync(key), fs.readFileSync(cert)]), { mode: 0o600 });
}

/** The serial (a number) served to a handshake with servername, or the handshake's error. */
function servedSerial(port, servername) {
  return new Promise((resolve) => {
    const s = tls.connect({ host: HOST, port, servername, rejectUnauthorized: false }, () => {
      const serial = parseInt(s.getPeerCertificate().serialNumber, 16);
      s.end();
      resolve(serial);
    });
    s.on('error', (err) => resolve(err));
  });
}

describe('acme', () => {
  let ca;
  let caHits = 0;
  let server;
  let httpPort;
  const a = app();

  before(async () => {
    ca = http.createServer((req, res) => {
      caHits++;
      res.writeHead(403, { 'Content-Type': 'application/problem+json' });
      res.end('{"type":"urn:ietf:params:acme:error:unauthorized","detail":"test CA refuses"}');
    });
    await new Promise((resolve) => ca.listen(0, HOST, resolve));
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'herald-acme-'));
    cacheCert(dir, 4242);
    httpPort = await freePort();
    // The harness polls /ready over http://127.0.0.1; with ACME the port
    // serves TLS for DOMAIN only, so the poll goes there by name.
    const orig = globalThis.fetch;
    globalThis.fetch = (url, opts) => orig(String(url).replace(/^http:\/\/[^/]+:/, `https://${DOMAIN}:`), opts);
    try {
      server = await HeraldServer.start({
        apps: [a],
        acme_domains: [DOMAIN],
        acme_cache_dir: path.join(dir, 'cache'),
        acme_directory_url: `http://${HOST}:${ca.address().port}/directory`,
        acme_http_addr: `${HOST}:${httpPort}`,
      });
    } finally {
      globalThis.fetch = orig;
    }
  });

  after(async () => {
    if (server) await server.stop();
    await new Promise((resolve) => ca.close(resolve));
  });

  it('serves the cached certificate to pusher-js and the server SDK by host name', { timeout: 20_000 }, async () => {
    assert.equal(await servedSerial(server.port, DOMAIN), 4242);
    const js = new PusherJS(a.key, { cluster: 'mt1', wsHost: DOMAIN, wssPort: server.port, forceTLS: true, enabledTransports: ['ws'], disableStats: true });
    try {
      await connected(js);
      const channel = js.subscribe('orders');
      await subscribed(channel);
      const got = [];
      channel.bind('shipped', (d) => got.push(d));
      const api = new PusherServer({ appId: a.id, key: a.key, secret: a.secret, host: DOMAIN, port: server.port, useTLS: true, timeout: 5000 });
      await api.trigger('orders', 'shipped', { id: 7 });
      await waitUntil(() => got.length === 1, { what: 'the event over wss://' });
      assert.deepEqual(got[0], { id: 7 });
    } finally {
      js.disconnect();
    }
  });

  it('refuses other names and clients without SNI without asking the CA', async () => {
    for (const name of ['evil.example.com', undefined]) {
      const res = await servedSerial(server.port, name);
      assert.ok(res instanceof Error, `handshake with servername ${name} got serial ${res}`);
    }
  });

  it('redirects plain HTTP to https and answers ACME challenges on acme_http_addr', async () => {
    const get = (p) => new Promise((resolve, reject) => {
      const req = http.get({ host: HOST, port: httpPort, path: p, headers: { Host: DOMAIN } }, (res) => {
        res.resume();
        res.on('end', () => resolve(res));
      });
      req.on('error', reject);
    });
    const r = await get(`/app/${a.key}?protocol=7`);
    assert.equal(r.statusCode, 301);
    assert.equal(r.headers.location, `https://${DOMAIN}:${server.port}/app/${a.key}?protocol=7`);
    assert.equal((await get('/.well-known/acme-challenge/unknown-token')).statusCode, 404);
  });

  it('never reached the CA', () => {
    assert.equal(caHits, 0);
  });
});
