// Test harness for the Herald end-to-end suite.
//
// It starts the real `herald` binary (path in $HERALD_BIN) with a generated
// YAML config on a free port, plays the Laravel application (channel
// authorization and user authentication endpoints backed by the official
// `pusher` Node SDK), and builds clients: pusher-js, Laravel Echo and a raw
// `ws` client for protocol-level assertions.
//
// Typical use in a test file:
//
//   const h = useHerald({ apps: [app()] });
//   h.test('public channel receives API events', async () => {
//     const client = await h.pusher();
//     ...
//   });
//
// useHerald registers before/after hooks that start and stop one server (and
// one auth server) for the file. h.test wraps node:test's `it`: clients
// created through `h` during a test are closed when it ends, and a failing
// test gets the tail of the server's stdout/stderr appended to its error.

import { spawn } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { after, before, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';

import Echo from 'laravel-echo';
import PusherServer from 'pusher';
import PusherJS from 'pusher-js';
import WebSocket from 'ws';

export { Echo, PusherJS, PusherServer, WebSocket, sleep };

export const HOST = '127.0.0.1';

// A fixed 32-byte master key (bytes 0x00..0x1f) for end-to-end encrypted channels.
export const ENCRYPTION_MASTER_KEY_BASE64 = 'AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=';

// The users our fake Laravel app knows. user_info is what Laravel's
// `Broadcast::channel('presence-…', fn ($user) => ['id' => …, 'name' => …])` returns.
export const USERS = {
  1: { id: 1, name: 'Ada Lovelace' },
  2: { id: 2, name: 'Grace Hopper' },
  3: { id: 3, name: 'Alan Turing' },
  4: { id: 4, name: 'Edsger Dijkstra' },
};

/** Returns an app definition with Herald settings suited to tests; `over` overrides. */
export function app(over = {}) {
  return {
    id: 'app-id',
    key: 'app-key',
    secret: 'app-secret',
    enable_client_messages: true,
    enable_subscription_count: false,
    client_events_per_second: 10,
    max_event_payload_kb: 10,
    activity_timeout: '120s',
    enable_user_authentication: false,
    user_authentication_timeout: '30s',
    max_presence_members: 100,
    ...over,
  };
}

// ---------------------------------------------------------------------------
// Small utilities

/** Resolves with a TCP port that was free on 127.0.0.1 a moment ago. */
export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, HOST, () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

/**
 * Polls `cond` every 10 ms until it returns a truthy value; resolves with that
 * value, or rejects after `timeout` ms with `what` in the message.
 */
export async function waitUntil(cond, { timeout = 5000, what = 'condition' } = {}) {
  const deadline = Date.now() + timeout;
  for (;;) {
    const v = await cond();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeout} ms waiting for ${what}`);
    await sleep(10);
  }
}

/** Rejects if `promise` has not settled within `ms`; `what` (string or function) names it. */
export function withTimeout(promise, ms, what = 'operation') {
  let timer;
  return Promise.race([
    promise,
    new Promise((_, reject) => {
      timer = setTimeout(() => {
        const desc = typeof what === 'function' ? what() : what;
        reject(new Error(`timed out after ${ms} ms waiting for ${desc}`));
      }, ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

/** Serialises a plain config object (maps, lists, scalars) as YAML. */
export function toYaml(value, indent = '') {
  const scalar = (v) => {
    if (v === null || v === undefined) return 'null';
    if (typeof v === 'number' || typeof v === 'boolean') return String(v);
    return JSON.stringify(String(v)); // a JSON string is a valid YAML double-quoted scalar
  };
  const isObj = (v) => v !== null && typeof v === 'object';
  let out = '';
  if (Array.isArray(value)) {
    if (value.length === 0) return ' []\n';
    out += '\n';
    for (const item of value) {
      if (isObj(item) && !Array.isArray(item)) {
        const body = toYaml(item, indent + '  ');
        // first line of the map goes after the dash
        out += `${indent}- ${body.slice(indent.length + 2)}`;
      } else {
        out += `${indent}- ${scalar(item)}\n`;
      }
    }
    return out;
  }
  for (const [k, v] of Object.entries(value)) {
    if (v === undefined) continue;
    if (isObj(v)) {
      if (Array.isArray(v)) out += `${indent}${k}:${toYaml(v, indent + '  ')}`;
      else out += `${indent}${k}:\n${toYaml(v, indent + '  ')}`;
    } else {
      out += `${indent}${k}: ${scalar(v)}\n`;
    }
  }
  return out;
}

// ---------------------------------------------------------------------------
// The herald process

/** Keeps the last `limit` characters written to it. */
class LogTail {
  constructor(limit = 24 * 1024) {
    this.limit = limit;
    this.text = '';
  }
  push(chunk) {
    this.text += chunk.toString('utf8');
    if (this.text.length > this.limit) this.text = '…' + this.text.slice(this.text.length - this.limit);
  }
}

function heraldBin() {
  const bin = process.env.HERALD_BIN;
  if (!bin) {
    throw new Error(
      'HERALD_BIN is not set: point it at a built herald binary, e.g. ' +
        '`go build -o /tmp/herald ./cmd/herald && HERALD_BIN=/tmp/herald npm test` (or run `make test` from the repo root)',
    );
  }
  const abs = path.resolve(bin);
  try {
    fs.accessSync(abs, fs.constants.X_OK);
  } catch (err) {
    throw new Error(`HERALD_BIN=${bin} is not an executable file (${err.code || err.message})`);
  }
  return abs;
}

export class HeraldServer {
  /**
   * Starts herald with `{ apps, ...serverKeys }` and waits for /ready.
   * @param {{apps: object[], [k: string]: any}} config
   */
  static async start(config) {
    const bin = heraldBin();
    const port = await freePort();
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'herald-e2e-'));
    const full = {
      host: HOST,
      port,
      log_level: process.env.HERALD_E2E_LOG_LEVEL || 'debug',
      shutdown_timeout: '2s',
      ...config,
    };
    const configPath = path.join(dir, 'herald.yaml');
    fs.writeFileSync(configPath, toYaml(full));

    const srv = new HeraldServer();
    srv.bin = bin;
    srv.port = port;
    srv.dir = dir;
    srv.configPath = configPath;
    srv.config = full;
    srv.apps = full.apps;
    srv.stdout = new LogTail();
    srv.stderr = new LogTail();
    srv.exited = null; // {code, signal} once the process is gone
    srv.proc = spawn(bin, ['serve', '--config', configPath], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env },
    });
    srv.proc.stdout.on('data', (c) => srv.stdout.push(c));
    srv.proc.stderr.on('data', (c) => srv.stderr.push(c));
    srv.exitPromise = new Promise((resolve) => {
      srv.proc.on('exit', (code, signal) => {
        srv.exited = { code, signal };
        resolve(srv.exited);
      });
      srv.proc.on('error', (err) => {
        srv.stderr.push(`\n[harness] spawn error: ${err.message}\n`);
        srv.exited = { code: null, signal: null, error: err };
        resolve(srv.exited);
      });
    });

    const deadline = Date.now() + 10_000;
    let lastErr = 'no answer';
    for (;;) {
      if (srv.exited) {
        throw new Error(
          `herald exited before /ready (code ${srv.exited.code}, signal ${srv.exited.signal})\n` +
            `config:\n${toYaml(full)}\n${srv.logs()}`,
        );
      }
      try {
        const res = await fetch(`http://${HOST}:${port}/ready`, { signal: AbortSignal.timeout(1000) });
        await res.arrayBuffer();
        if (res.status === 200) break;
        lastErr = `status ${res.status}`;
      } catch (err) {
        lastErr = err.cause?.code || err.message;
      }
      if (Date.now() > deadline) {
        await srv.stop();
        throw new Error(`herald did not answer 200 on /ready within 10 s (last: ${lastErr})\n${srv.logs()}`);
      }
      await sleep(50);
    }
    return srv;
  }

  get httpBase() {
    return `http://${HOST}:${this.port}`;
  }

  wsUrl(key, query = '?protocol=7&client=js&version=8.6.0&flash=false') {
    return `ws://${HOST}:${this.port}${this.config.path_prefix ?? ''}/app/${key}${query}`;
  }

  appById(id) {
    const a = this.apps.find((x) => x.id === id);
    if (!a) throw new Error(`no app ${id} in this server's config`);
    return a;
  }

  /** The tail of the server's output, for error messages. */
  logs() {
    return (
      `--- herald stdout (tail) ---\n${this.stdout.text || '(empty)'}\n` +
      `--- herald stderr (tail) ---\n${this.stderr.text || '(empty)'}\n--- end herald output ---`
    );
  }

  /** SIGTERM, then SIGKILL after 5 s. Resolves when the process is gone. */
  async stop() {
    if (!this.exited) {
      this.proc.kill('SIGTERM');
      const timer = setTimeout(() => {
        if (!this.exited) this.proc.kill('SIGKILL');
      }, 5000);
      await this.exitPromise;
      clearTimeout(timer);
    }
    fs.rmSync(this.dir, { recursive: true, force: true });
    return this.exited;
  }
}

// ---------------------------------------------------------------------------
// The fake Laravel application: /broadcasting/auth and /broadcasting/user-auth

/**
 * Starts an HTTP server on 127.0.0.1 that plays the Laravel app's
 * broadcasting endpoints, signing with the `pusher` SDK like Laravel's
 * pusher broadcaster does. The identity and app are chosen with query
 * parameters on the endpoint URL: `?app=<app id>&user=<user id>`; `forge=1`
 * makes it return a signature with one hex digit changed.
 */
export async function startAuthServer(herald) {
  const sdks = new Map(); // app id -> pusher SDK
  const sdkFor = (appId) => {
    if (!sdks.has(appId)) sdks.set(appId, apiClient(herald, appId));
    return sdks.get(appId);
  };
  const requests = [];
  const server = http.createServer((req, res) => {
    let body = '';
    req.on('data', (c) => (body += c));
    req.on('end', () => {
      const url = new URL(req.url, 'http://x');
      const form = new URLSearchParams(body);
      const appId = url.searchParams.get('app') || herald.apps[0].id;
      const userId = url.searchParams.get('user');
      const forge = url.searchParams.get('forge') === '1';
      const watch = url.searchParams.get('watch'); // comma-separated watchlist for user-auth
      const socketId = form.get('socket_id');
      const channel = form.get('channel_name');
      requests.push({ path: url.pathname, appId, userId, socketId, channel, headers: req.headers });
      const reply = (status, obj) => {
        res.writeHead(status, { 'content-type': 'application/json' });
        res.end(JSON.stringify(obj));
      };
      try {
        const sdk = sdkFor(appId);
        if (url.pathname === '/broadcasting/auth') {
          if (!channel) return reply(400, { message: 'channel_name missing' });
          let result;
          if (channel.startsWith('presence-')) {
            if (!userId) return reply(403, { message: 'not logged in' });
            const user = USERS[userId] || { id: userId, name: `User ${userId}` };
            // Laravel sends user_id as a string (pusher-php casts it).
            result = sdk.authorizeChannel(socketId, channel, { user_id: String(userId), user_info: user });
          } else {
            result = sdk.authorizeChannel(socketId, channel);
          }
          if (forge) result.auth = forgeAuth(result.auth);
          return reply(200, result);
        }
        if (url.pathname === '/broadcasting/user-auth') {
          if (!userId) return reply(403, { message: 'not logged in' });
          const user = USERS[userId] || { id: userId, name: `User ${userId}` };
          const userData = { id: String(userId), user_info: user };
          if (watch) userData.watchlist = watch.split(',');
          const result = sdk.authenticateUser(socketId, userData);
          if (forge) result.auth = forgeAuth(result.auth);
          return reply(200, result);
        }
        reply(404, { message: 'not found' });
      } catch (err) {
        reply(500, { message: err.message });
      }
    });
  });
  await new Promise((resolve) => server.listen(0, HOST, resolve));
  const { port } = server.address();
  return {
    port,
    requests,
    url(pathname, params = {}) {
      const q = new URLSearchParams(Object.fromEntries(Object.entries(params).filter(([, v]) => v != null)));
      const qs = q.toString();
      return `http://${HOST}:${port}${pathname}${qs ? '?' + qs : ''}`;
    },
    close() {
      server.closeAllConnections?.();
      return new Promise((resolve) => server.close(() => resolve()));
    },
  };
}

/** Changes the last hex digit of a "key:hex" auth token. */
export function forgeAuth(auth) {
  const last = auth.slice(-1);
  return auth.slice(0, -1) + (last === '0' ? '1' : '0');
}

// ---------------------------------------------------------------------------
// Server-side SDK (signed HTTP API client)

/** A `pusher` SDK instance for app `appId` of `herald`. */
export function apiClient(herald, appId = herald.apps[0].id, extra = {}) {
  const a = herald.appById(appId);
  return new PusherServer({
    appId: a.id,
    key: a.key,
    secret: a.secret,
    host: HOST,
    port: herald.port,
    useTLS: false,
    encryptionMasterKeyBase64: ENCRYPTION_MASTER_KEY_BASE64,
    timeout: 5000,
    ...extra,
  });
}

/** Reads a node-fetch Response returned by the SDK as JSON. */
export async function json(res) {
  const text = await res.text();
  try {
    return JSON.parse(text);
  } catch {
    throw new Error(`response is not JSON: ${JSON.stringify(text)}`);
  }
}

/**
 * Runs an SDK call that must fail; resolves with the RequestError
 * ({status, body}). Rejects if the call succeeds.
 */
export async function expectRequestError(promiseOrFn) {
  try {
    const p = typeof promiseOrFn === 'function' ? promiseOrFn() : promiseOrFn;
    const res = await p;
    const body = res && typeof res.text === 'function' ? await res.text() : res;
    throw Object.assign(new Error(`expected an HTTP error, got status ${res?.status} body ${body}`), { unexpected: true });
  } catch (err) {
    if (err.unexpected) throw err;
    if (err.status === undefined) throw err;
    return err;
  }
}

/**
 * Builds and sends a request signed like the Pusher SDKs (auth_version 1.0),
 * with full control over every part: `timestamp` (seconds), `secret`, `key`,
 * extra query `params`, `body` (string or object), and `appId` in the path.
 * Resolves with {status, headers, text, json}.
 */
export async function signedRequest(herald, {
  method = 'GET',
  appId = herald.apps[0].id,
  path: subPath,
  params = {},
  body,
  key,
  secret,
  timestamp = Math.floor(Date.now() / 1000),
  tamper, // function(queryString) -> queryString, applied after signing
  prefix = '', // server path_prefix: requested, but not signed (as the SDKs do)
} = {}) {
  const a = herald.apps.find((x) => x.id === appId) || herald.apps[0];
  key ??= a.key;
  secret ??= a.secret;
  const fullPath = `/apps/${appId}${subPath}`;
  const bodyText = body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body);
  const q = { auth_key: key, auth_timestamp: String(timestamp), auth_version: '1.0', ...params };
  if (bodyText) q.body_md5 = crypto.createHash('md5').update(bodyText, 'utf8').digest('hex');
  const canonical = Object.keys(q)
    .map((k) => [k.toLowerCase(), q[k]])
    .sort(([a1], [b1]) => (a1 < b1 ? -1 : a1 > b1 ? 1 : 0))
    .map(([k, v]) => `${k}=${v}`)
    .join('&');
  const toSign = [method.toUpperCase(), fullPath, canonical].join('\n');
  const signature = crypto.createHmac('sha256', secret).update(toSign, 'utf8').digest('hex');
  let qs = Object.entries({ ...q, auth_signature: signature })
    .map(([k, v]) => `${encodeURIComponent(k)}=${encodeURIComponent(v)}`)
    .join('&');
  if (tamper) qs = tamper(qs);
  const res = await fetch(`${herald.httpBase}${prefix}${fullPath}?${qs}`, {
    method,
    body: bodyText,
    headers: bodyText ? { 'content-type': 'application/json' } : {},
    signal: AbortSignal.timeout(5000),
  });
  const text = await res.text();
  let parsed;
  try {
    parsed = JSON.parse(text);
  } catch {
    parsed = undefined;
  }
  return { status: res.status, headers: res.headers, text, json: parsed };
}

// ---------------------------------------------------------------------------
// Raw WebSocket client

/**
 * A WebSocket client that records every frame, for exact protocol assertions.
 * Frames are parsed JSON objects with `.raw` (the text) attached as a
 * non-enumerable property. `next(pred)` consumes the first queued frame that
 * matches, waiting for it if needed.
 */
export class RawClient {
  /**
   * Opens a socket; by default waits for pusher:connection_established.
   * @param {string} url
   * @param {{waitEstablished?: boolean, autoPong?: boolean, answerPings?: boolean}} opts
   */
  static async open(url, { waitEstablished = true, autoPong = true, answerPings = false, origin } = {}) {
    const c = new RawClient(url, { autoPong, answerPings, origin });
    await c.opened;
    if (waitEstablished) {
      const frame = await c.next((f) => f.event === 'pusher:connection_established' || f.event === 'pusher:error', {
        what: 'pusher:connection_established',
      });
      if (frame.event !== 'pusher:connection_established') {
        throw new Error(`expected pusher:connection_established, got ${frame.raw}`);
      }
      c.established = frame;
      c.establishedData = JSON.parse(frame.data);
      c.socketId = c.establishedData.socket_id;
    }
    return c;
  }

  constructor(url, { autoPong = true, answerPings = false, origin } = {}) {
    this.url = url;
    this.queue = [];
    this.history = [];
    this.waiters = new Set();
    this.pingsReceived = 0; // WebSocket control-frame pings
    this.answerPings = answerPings;
    this.ws = new WebSocket(url, { autoPong, handshakeTimeout: 5000, ...(origin ? { origin } : {}) });
    this.closeInfo = null;
    this.opened = new Promise((resolve, reject) => {
      this.ws.once('open', resolve);
      this.ws.once('error', reject);
      this.ws.once('unexpected-response', (_req, res) =>
        reject(new Error(`WebSocket upgrade refused with HTTP ${res.statusCode}`)),
      );
    });
    this.opened.catch(() => {});
    this.closed = new Promise((resolve) => {
      this.ws.on('close', (code, reason) => {
        this.closeInfo = { code, reason: reason.toString('utf8') };
        resolve(this.closeInfo);
        for (const w of this.waiters) w.check();
      });
    });
    this.ws.on('error', () => {}); // surfaced through closed / opened
    this.ws.on('ping', () => this.pingsReceived++);
    this.ws.on('message', (data, isBinary) => {
      const raw = data.toString('utf8');
      let frame;
      try {
        frame = JSON.parse(raw);
      } catch {
        frame = { event: '(invalid JSON)' };
      }
      if (frame === null || typeof frame !== 'object') frame = { event: '(non-object JSON)', value: frame };
      Object.defineProperty(frame, 'raw', { value: raw, enumerable: false });
      Object.defineProperty(frame, 'binary', { value: isBinary, enumerable: false });
      Object.defineProperty(frame, 'at', { value: Date.now(), enumerable: false });
      this.history.push(frame);
      if (this.answerPings && frame.event === 'pusher:ping') {
        this.send({ event: 'pusher:pong', data: {} });
      }
      this.queue.push(frame);
      for (const w of this.waiters) w.check();
    });
  }

  get isOpen() {
    return this.ws.readyState === WebSocket.OPEN;
  }

  /** Sends an object as JSON, or a string as is. */
  send(msg) {
    this.ws.send(typeof msg === 'string' ? msg : JSON.stringify(msg));
  }

  /**
   * Resolves with (and removes from the queue) the first frame matching
   * `pred`; pred may be an event name. Rejects on timeout or socket close.
   */
  next(pred = () => true, { timeout = 3000, what } = {}) {
    const match = typeof pred === 'string' ? (f) => f.event === pred : pred;
    what ??= typeof pred === 'string' ? pred : 'a matching frame';
    return new Promise((resolve, reject) => {
      const waiter = {
        check: () => {
          const i = this.queue.findIndex(match);
          if (i >= 0) {
            const [f] = this.queue.splice(i, 1);
            done();
            resolve(f);
          } else if (this.closeInfo) {
            done();
            reject(
              new Error(
                `socket closed (${this.closeInfo.code} ${this.closeInfo.reason}) while waiting for ${what}; ` +
                  `frames received: ${this.describeHistory()}`,
              ),
            );
          }
        },
      };
      const timer = setTimeout(() => {
        done();
        reject(new Error(`timed out after ${timeout} ms waiting for ${what}; frames received: ${this.describeHistory()}`));
      }, timeout);
      const done = () => {
        clearTimeout(timer);
        this.waiters.delete(waiter);
      };
      this.waiters.add(waiter);
      waiter.check();
    });
  }

  /**
   * Asserts that no frame matching `pred` came before the frame matching
   * `marker`, which it waits for (`timeout` bounds that wait; it is not a
   * grace period). The caller has the server send the marker after the
   * action that must not deliver, on a path that keeps order with it: this
   * connection's own pusher:ping (answered after its earlier messages), or
   * an HTTP API event on a channel this client is subscribed to, published
   * once the action's message was handled (see `ctx.marker`).
   */
  async expectNoneBefore(pred, marker, { timeout = 3000, what = 'frame' } = {}) {
    const match = typeof pred === 'string' ? (f) => f.event === pred : pred;
    await this.next(marker, { timeout, what: 'the marker' });
    const found = this.queue.filter(match);
    if (found.length) {
      throw new Error(`expected no ${what} but got: ${found.map((f) => f.raw).join(' | ')}`);
    }
  }

  /**
   * Asserts that no frame matching `pred` was sent to this client in answer
   * to its earlier messages: sends pusher:ping and checks at its pong.
   */
  expectNoneBeforePong(pred, opts) {
    this.send({ event: 'pusher:ping', data: {} });
    return this.expectNoneBefore(pred, 'pusher:pong', opts);
  }

  /** Removes every queued frame matching `pred` (default: all) and returns them. */
  drain(pred = () => true) {
    const out = [];
    this.queue = this.queue.filter((f) => (pred(f) ? (out.push(f), false) : true));
    return out;
  }

  describeHistory(max = 20) {
    const h = this.history.slice(-max).map((f) => f.raw);
    return h.length ? h.join(' | ') : '(none)';
  }

  /** Sends pusher:ping and waits for pusher:pong: proves the socket is alive and served. */
  async roundTrip(timeout = 3000) {
    this.send({ event: 'pusher:ping', data: {} });
    return this.next('pusher:pong', { timeout, what: 'pusher:pong' });
  }

  /** Subscribes and waits for subscription_succeeded (or throws with the error frame). */
  async subscribe(channel, { auth = '', channel_data } = {}) {
    const data = { auth, channel };
    if (channel_data !== undefined) data.channel_data = channel_data;
    this.send({ event: 'pusher:subscribe', data });
    const f = await this.next(
      (x) =>
        (x.event === 'pusher_internal:subscription_succeeded' && x.channel === channel) ||
        (x.event === 'pusher:subscription_error' && x.channel === channel) ||
        x.event === 'pusher:error',
      { what: `subscription result for ${channel}` },
    );
    if (f.event !== 'pusher_internal:subscription_succeeded') {
      throw new Error(`subscribe to ${channel} failed: ${f.raw}`);
    }
    return f;
  }

  /** Waits for the close frame; rejects if it does not come within `timeout`. */
  waitClose(timeout = 3000) {
    return withTimeout(this.closed, timeout, `socket close (frames: ${this.describeHistory()})`);
  }

  close() {
    if (this.ws.readyState === WebSocket.OPEN || this.ws.readyState === WebSocket.CONNECTING) {
      try {
        this.ws.terminate();
      } catch {
        /* ignore */
      }
    }
  }
}

// ---------------------------------------------------------------------------
// pusher-js helpers

/** Resolves when `client` (pusher-js) is connected; rejects on failure/timeout. */
export function connected(client, timeout = 5000) {
  if (client.connection.state === 'connected') return Promise.resolve(client);
  return withTimeout(
    new Promise((resolve, reject) => {
      const onChange = ({ current }) => {
        if (current === 'connected') {
          client.connection.unbind('state_change', onChange);
          resolve(client);
        } else if (current === 'failed' || current === 'disconnected') {
          client.connection.unbind('state_change', onChange);
          reject(new Error(`pusher-js connection went ${current}`));
        }
      };
      client.connection.bind('state_change', onChange);
    }),
    timeout,
    'pusher-js connected',
  );
}

/** Resolves with the data of the next `event` on `target` (a channel, connection, or pusher.user). */
export function once(target, event, timeout = 3000) {
  return withTimeout(
    new Promise((resolve) => {
      const cb = (data) => {
        target.unbind(event, cb);
        resolve(data);
      };
      target.bind(event, cb);
    }),
    timeout,
    `event ${event}`,
  );
}

/**
 * Sends pusher:ping on a pusher-js client (or an Echo instance) and resolves
 * at the pusher:pong. The server handles a connection's messages in order,
 * so what an earlier message of this client made it send to this client has
 * arrived by then: the marker for "the sender gets nothing back" checks.
 */
export function pusherRoundTrip(client, timeout = 3000) {
  const conn = (client.connector?.pusher ?? client).connection;
  let cb;
  return withTimeout(
    new Promise((resolve) => {
      cb = (m) => m?.event === 'pusher:pong' && resolve();
      conn.bind('message', cb);
      conn.send_event('pusher:ping', {});
    }),
    timeout,
    'pusher:pong',
  ).finally(() => conn.unbind('message', cb));
}

/** Resolves when a pusher-js channel is subscribed; rejects on pusher:subscription_error. */
export function subscribed(channel, timeout = 5000) {
  if (channel.subscribed) return Promise.resolve(channel);
  return withTimeout(
    new Promise((resolve, reject) => {
      const ok = () => {
        cleanup();
        resolve(channel);
      };
      const bad = (err) => {
        cleanup();
        reject(new Error(`subscription to ${channel.name} failed: ${JSON.stringify(err)}`));
      };
      const cleanup = () => {
        channel.unbind('pusher:subscription_succeeded', ok);
        channel.unbind('pusher:subscription_error', bad);
      };
      channel.bind('pusher:subscription_succeeded', ok);
      channel.bind('pusher:subscription_error', bad);
    }),
    timeout,
    `subscription to ${channel.name}`,
  );
}

/**
 * Records every occurrence of `event` on a pusher-js/Echo target.
 * Returns an array (of {data, metadata}) with `.waitFor(n)`.
 */
export function record(target, event) {
  const list = [];
  const waiters = [];
  target.bind(event, (data, metadata) => {
    list.push({ data, metadata });
    for (const w of [...waiters]) w();
  });
  list.waitFor = (n, timeout = 3000) => {
    let check;
    return withTimeout(
      new Promise((resolve) => {
        check = () => {
          if (list.length >= n) resolve(list);
        };
        waiters.push(check);
        check();
      }),
      timeout,
      () => `${n} × ${event} (got ${list.length}: ${JSON.stringify(list.map((e) => e.data)).slice(0, 500)})`,
    ).finally(() => {
      const i = waiters.indexOf(check);
      if (i >= 0) waiters.splice(i, 1);
    });
  };
  return list;
}

// ---------------------------------------------------------------------------
// Per-file fixture

/**
 * Registers before/after hooks that start one herald (and one fake Laravel
 * auth server) for the current test file, and returns a context with client
 * factories and a `test` function.
 *
 * @param {{apps: object[], [k: string]: any}} config herald config (server keys + apps)
 */
export function useHerald(config) {
  const ctx = {
    server: null,
    auth: null,
    _cleanups: [],
  };

  before(async () => {
    // A start failure is reported by every test of the file (with the
    // reason), rather than as a failed hook that leaves the tests cancelled.
    try {
      ctx.server = await HeraldServer.start(config);
      ctx.auth = await startAuthServer(ctx.server);
    } catch (err) {
      ctx.startError = err;
    }
  });

  after(async () => {
    await runCleanups(ctx);
    if (ctx.auth) await ctx.auth.close();
    if (ctx.server) {
      const exit = await ctx.server.stop();
      if (exit && exit.signal === 'SIGKILL') {
        // Not a test failure in itself, but worth seeing.
        console.error('[harness] herald did not exit within 5 s of SIGTERM and was killed');
      }
    }
  });

  ctx.app = (id) => ctx.server.appById(id ?? config.apps[0].id);
  ctx.api = (appId, extra) => apiClient(ctx.server, appId, extra);
  ctx.request = (opts) => signedRequest(ctx.server, opts);
  ctx.addCleanup = (fn) => ctx._cleanups.push(fn);
  let markers = 0;
  /**
   * Publishes a marker event (a fresh name, returned) on `channel` through
   * the HTTP API. A subscriber gets it after anything already queued for it,
   * so waiting for the marker replaces a sleep before asserting that
   * something did not arrive: publish it once the action that must not
   * deliver was handled (the sender's error, or its `roundTrip`).
   */
  ctx.marker = async (channel, { appId } = {}) => {
    const name = `marker-${++markers}`;
    await ctx.api(appId).trigger(channel, name, {});
    return name;
  };
  /** Like `marker`, for a pusher-js channel: resolves once `channel` got the marker. */
  ctx.markerAt = async (channel, { appId } = {}) => {
    const name = `marker-${++markers}`;
    const got = once(channel, name);
    await ctx.api(appId).trigger(channel.name, name, {});
    await got;
  };

  /**
   * A pusher-js client for `appId` (default: the first app), connected.
   * `user` selects the identity the fake Laravel app authenticates.
   */
  ctx.pusher = async ({ appId, user, forge, watch, connect = true, ...opts } = {}) => {
    const a = ctx.app(appId);
    const client = new PusherJS(a.key, {
      cluster: 'mt1',
      wsHost: HOST,
      wsPort: ctx.server.port,
      wsPath: ctx.server.config.path_prefix ?? '',
      forceTLS: false,
      enabledTransports: ['ws'],
      disableStats: true,
      channelAuthorization: {
        endpoint: ctx.auth.url('/broadcasting/auth', { app: a.id, user, forge: forge ? 1 : null }),
        transport: 'ajax',
      },
      userAuthentication: {
        endpoint: ctx.auth.url('/broadcasting/user-auth', { app: a.id, user, forge: forge ? 1 : null, watch }),
        transport: 'ajax',
      },
      ...opts,
    });
    ctx.addCleanup(() => client.disconnect());
    if (connect) await connected(client);
    return client;
  };

  /**
   * A Laravel Echo instance (pusher connector) for `appId`; resolves once
   * connected. `broadcaster` is 'pusher' or 'reverb'.
   */
  ctx.echo = async ({ appId, user, broadcaster = 'pusher', ...opts } = {}) => {
    const a = ctx.app(appId);
    const options = {
      broadcaster,
      key: a.key,
      wsHost: HOST,
      wsPort: ctx.server.port,
      wssPort: ctx.server.port,
      wsPath: ctx.server.config.path_prefix ?? '',
      forceTLS: false,
      enabledTransports: ['ws'],
      disableStats: true,
      authEndpoint: ctx.auth.url('/broadcasting/auth', { app: a.id, user }),
      userAuthentication: {
        endpoint: ctx.auth.url('/broadcasting/user-auth', { app: a.id, user }),
        headers: {},
      },
      Pusher: PusherJS,
      withoutInterceptors: true,
      ...opts,
    };
    if (broadcaster === 'pusher' && options.cluster === undefined) options.cluster = 'mt1';
    const echo = new Echo(options);
    ctx.addCleanup(() => echo.disconnect());
    await connected(echo.connector.pusher);
    return echo;
  };

  /** A raw ws client on /app/<key of appId> (or `key`), connected. */
  ctx.raw = async ({ appId, key, query, ...opts } = {}) => {
    const k = key ?? ctx.app(appId).key;
    const c = await RawClient.open(ctx.server.wsUrl(k, query), opts);
    ctx.addCleanup(() => c.close());
    return c;
  };

  /** Auth token for a raw client subscribing to a private/encrypted channel. */
  ctx.channelAuth = (socketId, channel, { appId, channelData } = {}) =>
    ctx.api(appId).authorizeChannel(socketId, channel, channelData);

  /** Signs `raw` in as `userId` (pusher:signin) and waits for pusher:signin_success. */
  ctx.signin = async (raw, userId, { appId, watchlist } = {}) => {
    const user = USERS[userId] || { id: userId, name: `User ${userId}` };
    const userData = { id: String(userId), user_info: user };
    if (watchlist) userData.watchlist = watchlist;
    const { auth, user_data } = ctx.api(appId).authenticateUser(raw.socketId, userData);
    raw.send({ event: 'pusher:signin', data: { auth, user_data } });
    const f = await raw.next((x) => x.event === 'pusher:signin_success' || x.event === 'pusher:error', {
      what: 'pusher:signin_success',
    });
    if (f.event !== 'pusher:signin_success') throw new Error(`signin failed: ${f.raw}`);
    return f;
  };

  /**
   * Declares a test. Clients made through ctx are closed at the end of it;
   * on failure the server's output is appended to the error.
   */
  ctx.test = (name, fn, opts = {}) =>
    it(name, { timeout: 30_000, ...opts }, async (t) => {
      try {
        if (ctx.startError) throw ctx.startError;
        if (!ctx.server) throw new Error('herald was not started');
        if (ctx.server.exited) throw new Error(`herald is not running (exited: ${JSON.stringify(ctx.server.exited)})`);
        await fn(t);
        if (ctx.server.exited) throw new Error(`herald exited during the test: ${JSON.stringify(ctx.server.exited)}`);
      } catch (err) {
        if (ctx.server && err && typeof err === 'object' && err !== ctx.startError) {
          try {
            err.message = `${err.message}\n${ctx.server.logs()}`;
          } catch {
            /* some errors have read-only messages */
          }
        }
        throw err;
      } finally {
        await runCleanups(ctx);
      }
    });

  return ctx;
}

async function runCleanups(ctx) {
  const fns = ctx._cleanups.splice(0);
  for (const fn of fns.reverse()) {
    try {
      await fn();
    } catch {
      /* best effort */
    }
  }
  // Give the server a moment to process the disconnects before the next test.
  if (fns.length) await sleep(20);
}

// ---------------------------------------------------------------------------
// Cluster helpers: several herald nodes sharing one Redis (tests/cluster.test.mjs)

/**
 * Sends one command to the Redis at 127.0.0.1:`port` over raw RESP and
 * resolves with the parsed reply (strings, integers, arrays, null; an
 * error reply rejects).
 */
export function redisCall(port, args, { timeout = 2000 } = {}) {
  return new Promise((resolve, reject) => {
    const sock = net.createConnection({ host: HOST, port });
    let buf = Buffer.alloc(0);
    const fail = (err) => {
      sock.destroy();
      reject(err);
    };
    sock.setTimeout(timeout, () => fail(new Error(`redis ${args[0]} on port ${port}: timeout`)));
    sock.on('error', fail);
    sock.on('connect', () => {
      let out = `*${args.length}\r\n`;
      for (const a of args) out += `$${Buffer.byteLength(String(a))}\r\n${a}\r\n`;
      sock.write(out);
    });
    // parse(i) returns [value, next index] or null when more bytes are needed.
    const parse = (i) => {
      const eol = buf.indexOf('\r\n', i);
      if (eol < 0) return null;
      const type = String.fromCharCode(buf[i]);
      const line = buf.toString('utf8', i + 1, eol);
      if (type === '+') return [line, eol + 2];
      if (type === '-') return [Object.assign(new Error(line), { redisError: true }), eol + 2];
      if (type === ':') return [Number(line), eol + 2];
      if (type === '$') {
        const n = Number(line);
        if (n < 0) return [null, eol + 2];
        if (buf.length < eol + 2 + n + 2) return null;
        return [buf.toString('utf8', eol + 2, eol + 2 + n), eol + 2 + n + 2];
      }
      if (type === '*') {
        const n = Number(line);
        if (n < 0) return [null, eol + 2];
        const arr = [];
        let j = eol + 2;
        for (let k = 0; k < n; k++) {
          const r = parse(j);
          if (!r) return null;
          arr.push(r[0]);
          j = r[1];
        }
        return [arr, j];
      }
      return [new Error(`unexpected RESP type ${type}`), eol + 2];
    };
    sock.on('data', (chunk) => {
      buf = Buffer.concat([buf, chunk]);
      const r = parse(0);
      if (!r) return;
      sock.end();
      if (r[0] instanceof Error) reject(r[0]);
      else resolve(r[0]);
    });
  });
}

/** Deletes every key matching `pattern` (SCAN + DEL); resolves with how many. */
export async function deleteRedisKeys(port, pattern) {
  let cursor = '0';
  let n = 0;
  do {
    const [next, keys] = await redisCall(port, ['SCAN', cursor, 'MATCH', pattern, 'COUNT', 1000]);
    if (keys.length) n += await redisCall(port, ['DEL', ...keys]);
    cursor = next;
  } while (cursor !== '0');
  return n;
}

/** A redis-server of our own on 127.0.0.1 (no persistence), for Redis failure tests. */
export class RedisProcess {
  static async start(port) {
    const r = new RedisProcess();
    r.port = port ?? (await freePort());
    await r.spawn();
    return r;
  }

  async spawn() {
    this.log = new LogTail(8 * 1024);
    this.exited = null;
    this.proc = spawn(
      'redis-server',
      ['--port', String(this.port), '--bind', HOST, '--save', '', '--appendonly', 'no'],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    this.proc.stdout.on('data', (c) => this.log.push(c));
    this.proc.stderr.on('data', (c) => this.log.push(c));
    this.exitPromise = new Promise((resolve) => this.proc.on('exit', (code, signal) => resolve((this.exited = { code, signal }))));
    await waitUntil(
      async () => {
        if (this.exited) throw new Error(`redis-server exited: ${JSON.stringify(this.exited)}\n${this.log.text}`);
        return (await redisCall(this.port, ['PING']).catch(() => null)) === 'PONG';
      },
      { timeout: 5000, what: `redis-server on port ${this.port}` },
    );
  }

  get url() {
    return `redis://${HOST}:${this.port}/0`;
  }

  /** SIGKILL; resolves when the process is gone. */
  async kill() {
    if (this.proc && !this.exited) {
      this.proc.kill('SIGKILL');
      await this.exitPromise;
    }
  }

  /** Starts redis-server again on the same port (empty: nothing was saved). */
  async restart() {
    await this.kill();
    await this.spawn();
  }
}

/** GET /ready on a node: resolves with the status (0 when it does not answer). */
export async function readyStatus(herald) {
  try {
    const res = await fetch(`${herald.httpBase}/ready`, { signal: AbortSignal.timeout(1000) });
    await res.arrayBuffer();
    return res.status;
  } catch {
    return 0;
  }
}

/** SIGKILL (no drain); resolves when the process is gone. */
export async function killHerald(herald) {
  if (!herald.exited) {
    herald.proc.kill('SIGKILL');
    await herald.exitPromise;
  }
}

/**
 * Like useHerald, for a cluster: starts `nodes` herald processes with the
 * same apps, all on the Redis at `redisUrl` under one unique prefix
 * `herald-e2e:<random>:` (its keys are deleted at the end), and one fake
 * Laravel auth server. Client factories take `node` (an index into
 * ctx.nodes, or a HeraldServer, e.g. one started by the test with
 * ctx.startNode) to choose where the client connects.
 */
export function useCluster(config, { nodes = 3, redisPort = 6379 } = {}) {
  const prefix = `herald-e2e:${crypto.randomBytes(6).toString('hex')}:`;
  const ctx = { nodes: [], extra: [], auth: null, prefix, _cleanups: [] };
  const nodeConfig = { redis_url: `redis://${HOST}:${redisPort}/0`, redis_prefix: prefix, ...config };

  before(async () => {
    try {
      if ((await redisCall(redisPort, ['PING']).catch((e) => e.message)) !== 'PONG') {
        throw new Error(`Redis at ${HOST}:${redisPort} is required for the cluster tests`);
      }
      ctx.nodes = await Promise.all(Array.from({ length: nodes }, () => HeraldServer.start(nodeConfig)));
      // The auth server only signs (with the app secrets), it never calls a node.
      ctx.auth = await startAuthServer({ apps: config.apps, appById: HeraldServer.prototype.appById, port: 1 });
    } catch (err) {
      ctx.startError = err;
    }
  });

  after(async () => {
    await runCleanups(ctx);
    if (ctx.auth) await ctx.auth.close();
    await Promise.all([...ctx.nodes, ...ctx.extra].map((n) => n.stop()));
    await deleteRedisKeys(redisPort, `${prefix}*`).catch(() => {});
  });

  const nodeOf = (node = 0) => (typeof node === 'number' ? ctx.nodes[node] : node);
  ctx.nodeOf = nodeOf;
  ctx.app = (id) => HeraldServer.prototype.appById.call({ apps: config.apps }, id ?? config.apps[0].id);
  ctx.api = (node, appId, extra) => apiClient(nodeOf(node), appId, extra);
  ctx.request = (node, opts) => signedRequest(nodeOf(node), opts);
  ctx.addCleanup = (fn) => ctx._cleanups.push(fn);

  /** Starts one more node with the file's config plus `over`; stopped at the end. */
  ctx.startNode = async (over = {}) => {
    const n = await HeraldServer.start({ ...nodeConfig, ...over });
    ctx.extra.push(n);
    return n;
  };

  ctx.pusher = async ({ node, appId, user, connect = true, ...opts } = {}) => {
    const srv = nodeOf(node);
    const a = ctx.app(appId);
    const client = new PusherJS(a.key, {
      cluster: 'mt1',
      wsHost: HOST,
      wsPort: srv.port,
      forceTLS: false,
      enabledTransports: ['ws'],
      disableStats: true,
      channelAuthorization: { endpoint: ctx.auth.url('/broadcasting/auth', { app: a.id, user }), transport: 'ajax' },
      userAuthentication: { endpoint: ctx.auth.url('/broadcasting/user-auth', { app: a.id, user }), transport: 'ajax' },
      ...opts,
    });
    ctx.addCleanup(() => client.disconnect());
    if (connect) await connected(client);
    return client;
  };

  ctx.echo = async ({ node, appId, user, ...opts } = {}) => {
    const srv = nodeOf(node);
    const a = ctx.app(appId);
    const echo = new Echo({
      broadcaster: 'pusher',
      cluster: 'mt1',
      key: a.key,
      wsHost: HOST,
      wsPort: srv.port,
      wssPort: srv.port,
      forceTLS: false,
      enabledTransports: ['ws'],
      disableStats: true,
      authEndpoint: ctx.auth.url('/broadcasting/auth', { app: a.id, user }),
      userAuthentication: { endpoint: ctx.auth.url('/broadcasting/user-auth', { app: a.id, user }), headers: {} },
      Pusher: PusherJS,
      withoutInterceptors: true,
      ...opts,
    });
    ctx.addCleanup(() => echo.disconnect());
    await connected(echo.connector.pusher);
    return echo;
  };

  ctx.raw = async ({ node, appId, key, query, ...opts } = {}) => {
    const c = await RawClient.open(nodeOf(node).wsUrl(key ?? ctx.app(appId).key, query), opts);
    ctx.addCleanup(() => c.close());
    return c;
  };

  ctx.channelAuth = (socketId, channel, { appId, channelData } = {}) =>
    apiClient({ apps: config.apps, appById: ctx.app, port: 1 }, appId).authorizeChannel(socketId, channel, channelData);

  ctx.logs = () =>
    [...ctx.nodes, ...ctx.extra]
      .map((n, i) => `=== node ${i} (port ${n.port}) ===\n${n.stdout.text.slice(-6000)}\n${n.stderr.text.slice(-6000)}`)
      .join('\n');

  ctx.test = (name, fn, opts = {}) =>
    it(name, { timeout: 30_000, ...opts }, async (t) => {
      try {
        if (ctx.startError) throw ctx.startError;
        await fn(t);
      } catch (err) {
        if (err && typeof err === 'object' && err !== ctx.startError) {
          try {
            err.message = `${err.message}\n${ctx.logs()}`;
          } catch {
            /* read-only message */
          }
        }
        throw err;
      } finally {
        await runCleanups(ctx);
      }
    });

  return ctx;
}

// ---------------------------------------------------------------------------
// Webhook receiver (tests/webhooks*.test.mjs)

/**
 * A webhook endpoint on 127.0.0.1 that records every request. `mode` decides
 * the answer: 'ok' (200), a status number (e.g. 503), or 'hang' (never
 * answers; Herald must cut the attempt at its timeout). Requests are
 * { at, headers, rawBody, batchId, status, aborted }: status is null while
 * unanswered, aborted is true when the client gave up first.
 */
export class WebhookReceiver {
  static async start({ mode = 'ok' } = {}) {
    const r = new WebhookReceiver();
    r.mode = mode;
    r.requests = [];
    r.server = http.createServer((req, res) => {
      const chunks = [];
      req.on('data', (c) => chunks.push(c));
      req.on('end', () => {
        const rec = {
          at: Date.now(),
          headers: req.headers,
          rawBody: Buffer.concat(chunks).toString('utf8'),
          batchId: req.headers['x-herald-batch-id'],
          status: null,
          aborted: false,
        };
        r.requests.push(rec);
        res.on('close', () => {
          if (!res.writableFinished) rec.aborted = true;
        });
        const mode = typeof r.mode === 'function' ? r.mode(rec) : r.mode;
        if (mode === 'hang') return; // Herald must give up on its own
        rec.status = mode === 'ok' ? 200 : mode;
        res.writeHead(rec.status, { 'content-type': 'application/json' }).end('{}');
      });
    });
    await new Promise((resolve) => r.server.listen(0, HOST, resolve));
    r.url = `http://${HOST}:${r.server.address().port}/webhook`;
    return r;
  }

  /** The requests answered 2xx. */
  accepted() {
    return this.requests.filter((x) => x.status >= 200 && x.status < 300);
  }

  /**
   * Checks every request with the pusher SDK's webhook verification (for app
   * `a`: {id, key, secret}) and returns the events of the accepted ones,
   * each with the batch id it came in: [{ batchId, event }].
   */
  verifiedEvents(a) {
    const sdk = new PusherServer({ appId: a.id, key: a.key, secret: a.secret });
    const out = [];
    for (const x of this.requests) {
      const wh = sdk.webhook({ headers: x.headers, rawBody: x.rawBody });
      if (!wh.isValid()) throw new Error(`webhook not valid for the pusher SDK: ${JSON.stringify(x.headers)} ${x.rawBody}`);
      if (x.status >= 200 && x.status < 300) for (const event of wh.getEvents()) out.push({ batchId: x.batchId, event });
    }
    return out;
  }

  /**
   * The accepted events, each batch counted once (a batch accepted twice is
   * one delivery repeated, which receivers de-duplicate by its id). Every
   * request is checked with the pusher SDK first.
   */
  uniqueEvents(a) {
    this.verifiedEvents(a);
    const seen = new Set();
    const out = [];
    for (const x of this.accepted()) {
      if (seen.has(x.batchId)) continue;
      seen.add(x.batchId);
      out.push(...JSON.parse(x.rawBody).events);
    }
    return out;
  }

  close() {
    this.server.closeAllConnections?.();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}

/** The webhook batches pending or leased in Redis under `prefix`, cluster-wide. */
export function redisWebhookBatches(prefix, port = 6379) {
  return redisCall(port, ['ZCARD', `${prefix}{webhooks}:due`]);
}
