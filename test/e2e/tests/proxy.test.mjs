// The reverse-proxy configs in deploy/ run for real: nginx
// (deploy/nginx/herald.conf) and Caddy (deploy/caddy/Caddyfile), each
// rewritten only to listen on free 127.0.0.1 ports with a certificate made
// here, proxy wss:// to a Herald that trusts 127.0.0.1. pusher-js connects
// over wss through the proxy from 127.0.0.2 (a small TCP relay binds that
// source address), receives an event, and Herald must have seen the
// client's own address and TLS from the forwarded headers: its debug log
// says so, and an app with require_tls accepts the connection.
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import https from 'node:https';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';

import { HOST, HeraldServer, PusherJS, WebSocket, apiClient, app, connected, freePort, record, subscribed, waitUntil, withTimeout } from '../harness.mjs';

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
const CLIENT_IP = '127.0.0.2';

// The proxies' certificate is made here; pusher-js's Node transport takes
// no CA option, so this test process accepts it without verification.
process.env.NODE_TLS_REJECT_UNAUTHORIZED = '0';

function requireBinary(name) {
  for (const dir of (process.env.PATH || '').split(':').concat(['/usr/sbin', '/sbin'])) {
    const p = path.join(dir, name);
    try {
      fs.accessSync(p, fs.constants.X_OK);
      return p;
    } catch {
      /* next */
    }
  }
  throw new Error(`${name} is not installed: \`make deploy-deps\` installs it with apt-get`);
}

function selfSigned(dir) {
  const cert = path.join(dir, 'cert.pem');
  const key = path.join(dir, 'key.pem');
  execFileSync(requireBinary('openssl'), ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
    '-keyout', key, '-out', cert, '-days', '1', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1'], { stdio: 'pipe' });
  return { cert, key };
}

/** Replaces `from` (string or regexp) in `text`, failing when it is not there: the shipped file changed. */
function must(text, from, to, file) {
  const next = text.replace(from, to);
  assert.notEqual(next, text, `${file} no longer has ${from}: update this test with it`);
  return next;
}

/** A child process with its output kept for error messages. */
function startProcess(bin, args, env = {}) {
  const p = { out: '', exited: null };
  p.proc = spawn(bin, args, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } });
  p.proc.stdout.on('data', (c) => (p.out = (p.out + c).slice(-16000)));
  p.proc.stderr.on('data', (c) => (p.out = (p.out + c).slice(-16000)));
  p.exit = new Promise((resolve) => p.proc.on('exit', (code, signal) => resolve((p.exited = { code, signal }))));
  p.stop = async () => {
    if (!p.exited) {
      p.proc.kill('SIGTERM');
      const t = setTimeout(() => p.exited || p.proc.kill('SIGKILL'), 5000);
      await p.exit;
      clearTimeout(t);
    }
  };
  return p;
}

/** GETs https://127.0.0.1:port/path; resolves {status, body}. */
function httpsGet(port, pathname) {
  return new Promise((resolve, reject) => {
    const req = https.get({ host: HOST, port, path: pathname, rejectUnauthorized: false, timeout: 2000 }, (res) => {
      let body = '';
      res.on('data', (c) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode, body, headers: res.headers }));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
  });
}

/** A TCP relay on 127.0.0.1 whose outgoing connections come from CLIENT_IP. */
async function startRelay(targetPort) {
  const socks = new Set();
  const srv = net.createServer((down) => {
    const up = net.connect({ host: HOST, port: targetPort, localAddress: CLIENT_IP });
    socks.add(down).add(up);
    down.pipe(up);
    up.pipe(down);
    const end = () => {
      down.destroy();
      up.destroy();
      socks.delete(down);
      socks.delete(up);
    };
    down.on('error', end).on('close', end);
    up.on('error', end).on('close', end);
  });
  await new Promise((resolve) => srv.listen(0, HOST, resolve));
  return {
    port: srv.address().port,
    close: () => {
      for (const s of socks) s.destroy();
      return new Promise((resolve) => srv.close(resolve));
    },
  };
}

const proxies = {
  async nginx(dir, heraldPort, { cert, key }) {
    const file = 'deploy/nginx/herald.conf';
    let conf = fs.readFileSync(path.join(REPO, file), 'utf8');
    const port = await freePort();
    const httpPort = await freePort();
    conf = must(conf, 'server 127.0.0.1:6001;', `server 127.0.0.1:${heraldPort};`, file);
    conf = must(conf, /^\s*listen \[::\]:80;\n/m, '', file);
    conf = must(conf, /^\s*listen \[::\]:443 ssl;\n/m, '', file);
    conf = must(conf, 'listen 80;', `listen 127.0.0.1:${httpPort};`, file);
    conf = must(conf, 'listen 443 ssl;', `listen 127.0.0.1:${port} ssl;`, file);
    conf = must(conf, /ssl_certificate\s+\S+;/, `ssl_certificate ${cert};`, file);
    conf = must(conf, /ssl_certificate_key\s+\S+;/, `ssl_certificate_key ${key};`, file);
    fs.writeFileSync(path.join(dir, 'herald.conf'), conf);
    const temp = ['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi'].map((k) => `  ${k}_temp_path ${dir}/${k};\n`).join('');
    fs.writeFileSync(path.join(dir, 'nginx.conf'),
      `daemon off;\nworker_processes 1;\npid ${dir}/nginx.pid;\nerror_log stderr notice;\n` +
      (process.getuid?.() === 0 ? 'user root;\n' : '') +
      `events { worker_connections 1024; }\nhttp {\n  access_log off;\n${temp}  include ${dir}/herald.conf;\n}\n`);
    const proc = startProcess(requireBinary('nginx'), ['-e', 'stderr', '-p', dir, '-c', path.join(dir, 'nginx.conf')]);
    return { port, proc };
  },

  async caddy(dir, heraldPort, { cert, key }) {
    const file = 'deploy/caddy/Caddyfile';
    let conf = fs.readFileSync(path.join(REPO, file), 'utf8');
    const port = await freePort();
    conf = must(conf, /^ws\.example\.com \{$/m,
      `{\n\tadmin off\n\tauto_https disable_redirects\n\tstorage file_system ${dir}/caddy-data\n}\n\nhttps://127.0.0.1:${port} {\n\ttls ${cert} ${key}`, file);
    conf = must(conf, 'reverse_proxy 127.0.0.1:6001', `reverse_proxy 127.0.0.1:${heraldPort}`, file);
    const confPath = path.join(dir, 'Caddyfile');
    fs.writeFileSync(confPath, conf);
    const proc = startProcess(requireBinary('caddy'), ['run', '--adapter', 'caddyfile', '--config', confPath],
      { HOME: dir, XDG_DATA_HOME: dir, XDG_CONFIG_HOME: dir });
    return { port, proc };
  },
};

for (const name of Object.keys(proxies)) {
  describe(`${name} in front of Herald (deploy/)`, () => {
    let herald, proxy, relay, dir;
    const clients = [];

    before(async () => {
      dir = fs.mkdtempSync(path.join(os.tmpdir(), `herald-${name}-`));
      herald = await HeraldServer.start({
        apps: [app({ require_tls: true })],
        trusted_proxies: ['127.0.0.1'],
        log_level: 'debug',
        log_format: 'json',
      });
      proxy = await proxies[name](dir, herald.port, selfSigned(dir));
      await waitUntil(async () => {
        if (proxy.proc.exited) throw new Error(`${name} exited (${JSON.stringify(proxy.proc.exited)}):\n${proxy.proc.out}`);
        try {
          return (await httpsGet(proxy.port, '/up')).status === 200;
        } catch {
          return false;
        }
      }, { timeout: 15000, what: `${name} to proxy /up` }).catch((err) => {
        throw new Error(`${err.message}\n${name} output:\n${proxy.proc.out}`);
      });
      relay = await startRelay(proxy.port);
    });

    after(async () => {
      for (const c of clients) c.disconnect();
      await relay?.close();
      await proxy?.proc.stop();
      await herald?.stop();
      if (dir) fs.rmSync(dir, { recursive: true, force: true });
    });

    it('pusher-js over wss through the proxy receives events; Herald sees the client IP and TLS', { timeout: 30000 }, async () => {
      const client = new PusherJS('app-key', {
        cluster: 'mt1', wsHost: HOST, wssPort: relay.port, forceTLS: true, enabledTransports: ['ws'], disableStats: true,
      });
      clients.push(client);
      await connected(client, 10000).catch((err) => {
        throw new Error(`${err.message}\n${name} output:\n${proxy.proc.out}\n${herald.logs()}`);
      });
      const channel = client.subscribe('orders');
      await subscribed(channel);
      const got = record(channel, 'order.shipped');
      await apiClient(herald).trigger('orders', 'order.shipped', { id: 42 });
      const [ev] = await got.waitFor(1, 5000);
      assert.deepEqual(ev.data, { id: 42 });

      // Herald logged the connection with the address the client came from
      // (127.0.0.2, forwarded by the proxy on 127.0.0.1) and TLS from
      // X-Forwarded-Proto.
      const opened = await waitUntil(() => herald.stderr.text.split('\n').map((l) => {
        try {
          return JSON.parse(l);
        } catch {
          return null;
        }
      }).filter((e) => e?.msg === 'connection opened').at(-1), { what: 'a "connection opened" log line' });
      assert.equal(opened.ip, CLIENT_IP, `Herald saw client ${opened.ip} (remote ${opened.remote}); the proxy's X-Forwarded-For was not used`);
      assert.equal(opened.tls, true, 'Herald did not take TLS from X-Forwarded-Proto');
      assert.match(opened.remote, /^127\.0\.0\.1:/, 'the socket peer is the proxy');
    });

    it('the same app refuses a plain connection that bypasses the proxy (require_tls)', async () => {
      const ws = new WebSocket(herald.wsUrl('app-key'));
      const [code] = await withTimeout(new Promise((resolve) => ws.on('close', (c, r) => resolve([c, String(r)]))), 5000, 'close');
      assert.equal(code, 4000, `close ${code}: the app must refuse plain ws with 4000 (SSL only)`);
    });
  });
}

