// Apps in a database (docs/apps.md): two nodes (cluster through Redis) on
// a PostgreSQL apps store reached through a TCP proxy this file controls,
// apps_cache_ttl 1 s. Apps are managed with the real `herald apps` CLI
// while the nodes run; clients are pusher-js, the pusher SDK and raw
// sockets. PostgreSQL at 127.0.0.1:5432 (database test, user postgres) is
// required; each run uses a schema of its own, dropped at the end.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import crypto from 'node:crypto';
import net from 'node:net';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';

import {
  HOST,
  HeraldServer,
  PusherJS,
  PusherServer,
  RawClient,
  connected,
  deleteRedisKeys,
  record,
  subscribed,
  waitUntil,
} from '../harness.mjs';

const run = promisify(execFile);
const TTL_MS = 1000;
const PG = process.env.HERALD_TEST_POSTGRES || 'postgres://postgres@127.0.0.1:5432/test?sslmode=disable';
const SCHEMA = 'herald_e2e_' + crypto.randomBytes(5).toString('hex');
const PREFIX = `herald-e2e:${crypto.randomBytes(6).toString('hex')}:`;
// Within the TTL, on a loaded machine: the TTL, a re-check period and slack.
const WITHIN = 2 * TTL_MS + 4000;

async function psql(sql) {
  const { stdout } = await run('psql', [PG, '-v', 'ON_ERROR_STOP=1', '-qAtc', `SET search_path TO ${SCHEMA}; ${sql}`]);
  return stdout;
}

/** A TCP proxy to PostgreSQL that the test can cut off and restore. */
class Proxy {
  static async start(target) {
    const p = new Proxy();
    p.sockets = new Set();
    p.cut = false;
    p.server = net.createServer((client) => {
      if (p.cut) {
        client.destroy();
        return;
      }
      const upstream = net.connect(target, HOST);
      for (const s of [client, upstream]) {
        p.sockets.add(s);
        s.on('close', () => p.sockets.delete(s));
        s.on('error', () => {});
      }
      client.pipe(upstream);
      upstream.pipe(client);
      client.on('close', () => upstream.destroy());
      upstream.on('close', () => client.destroy());
    });
    await new Promise((resolve) => p.server.listen(0, HOST, resolve));
    p.port = p.server.address().port;
    return p;
  }
  cutOff() {
    this.cut = true;
    for (const s of this.sockets) s.destroy();
  }
  restore() {
    this.cut = false;
  }
  close() {
    this.cutOff();
    return new Promise((resolve) => this.server.close(resolve));
  }
}

let proxy;
let storeUrl;
const nodes = [];
const cleanups = [];

/** Runs `herald apps ...` on the store; resolves with {code, stdout, stderr}. */
async function cli(...args) {
  try {
    const { stdout, stderr } = await run(path.resolve(process.env.HERALD_BIN), ['apps', ...args], {
      env: { ...process.env, HERALD_APPS_STORE: storeUrl },
    });
    return { code: 0, stdout, stderr };
  } catch (err) {
    return { code: err.code, stdout: err.stdout, stderr: err.stderr };
  }
}

async function createApp(...flags) {
  const r = await cli('create', '--json', ...flags);
  assert.equal(r.code, 0, `herald apps create: ${r.stderr}`);
  const a = JSON.parse(r.stdout);
  assert.ok(a.secret, 'the secret is printed once on create');
  return a;
}

const sign = (secret, s) => crypto.createHmac('sha256', secret).update(s).digest('hex');

/** pusher-js on a node, signing private channels with `creds()` (read at each subscription). */
async function pusher(node, a, creds = () => a) {
  const client = new PusherJS(a.key, {
    cluster: 'mt1', wsHost: HOST, wsPort: node.port, forceTLS: false, enabledTransports: ['ws'], disableStats: true,
    channelAuthorization: {
      customHandler: ({ socketId, channelName }, cb) => {
        const c = creds();
        cb(null, { auth: `${c.key}:${sign(c.secret, `${socketId}:${channelName}`)}` });
      },
    },
  });
  cleanups.push(() => client.disconnect());
  await connected(client, 10_000);
  return client;
}

function api(node, a, secret = a.secret) {
  return new PusherServer({ appId: a.id, key: a.key, secret, host: HOST, port: node.port, useTLS: false, timeout: 5000 });
}

async function triggerStatus(node, a, secret) {
  try {
    const res = await api(node, a, secret).trigger('news', 'ev', { x: 1 });
    return res.status;
  } catch (err) {
    return err.status ?? 0;
  }
}

async function raw(node, key) {
  const c = await RawClient.open(node.wsUrl(key), { waitEstablished: false });
  cleanups.push(() => c.close());
  return c;
}

/** Connects a raw socket; resolves with 'ok' or the close code. */
async function tryConnect(node, key) {
  const c = await raw(node, key);
  const f = await c.next((x) => x.event === 'pusher:connection_established' || x.event === 'pusher:error', { timeout: 5000 });
  if (f.event === 'pusher:connection_established') {
    c.close();
    return 'ok';
  }
  return (await c.waitClose(5000)).code;
}

async function metric(node, name) {
  const text = await (await fetch(`${node.httpBase}/metrics`)).text();
  const m = text.match(new RegExp(`^${name} (\\S+)$`, 'm'));
  return m ? Number(m[1]) : undefined;
}

async function ready(node) {
  const res = await fetch(`${node.httpBase}/ready`);
  return { status: res.status, body: await res.json() };
}

const logs = () => nodes.map((n, i) => `=== node ${i} ===\n${n.stderr.text.slice(-5000)}`).join('\n');

function test(name, fn) {
  it(name, { timeout: 60_000 }, async () => {
    try {
      await fn();
    } catch (err) {
      err.message += '\n' + logs();
      throw err;
    } finally {
      for (const f of cleanups.splice(0)) await f();
    }
  });
}

describe('apps in PostgreSQL, two nodes', () => {
  before(async () => {
    await run('psql', [PG, '-qc', `CREATE SCHEMA ${SCHEMA}`]);
    proxy = await Proxy.start(5432);
    storeUrl = `postgres://postgres@${HOST}:${proxy.port}/test?sslmode=disable&search_path=${SCHEMA}`;
    const m = await cli('migrate');
    assert.equal(m.code, 0, m.stderr);
    const cfg = { apps_store: storeUrl, apps_cache_ttl: `${TTL_MS}ms`, redis_url: `redis://${HOST}:6379/0`, redis_prefix: PREFIX, log_level: 'info' };
    nodes.push(...(await Promise.all([HeraldServer.start(cfg), HeraldServer.start(cfg)])));
  });

  after(async () => {
    await Promise.all(nodes.map((n) => n.stop()));
    if (proxy) await proxy.close();
    await run('psql', [PG, '-qc', `DROP SCHEMA IF EXISTS ${SCHEMA} CASCADE`]).catch(() => {});
    await deleteRedisKeys(6379, `${PREFIX}*`).catch(() => {});
  });

  test('an app created with `herald apps create` while the nodes run accepts pusher-js on both within the TTL', async () => {
    const key = 'k' + crypto.randomBytes(8).toString('hex');
    // Unknown first: refused with 4001, and remembered (negative cache).
    assert.equal(await tryConnect(nodes[0], key), 4001);
    assert.equal(await tryConnect(nodes[1], key), 4001);
    const a = await createApp('--key', key, '--enable-client-messages');
    const t0 = Date.now();
    for (const n of nodes) {
      await waitUntil(async () => (await tryConnect(n, key)) === 'ok', { timeout: WITHIN, what: `the new app on port ${n.port}` });
    }
    const took = Date.now() - t0;
    const c0 = await pusher(nodes[0], a);
    const c1 = await pusher(nodes[1], a);
    const logs0 = record(c0.subscribe('news'), 'ev');
    const logs1 = record(c1.subscribe('news'), 'ev');
    await Promise.all([subscribed(c0.channel('news')), subscribed(c1.channel('news'))]);
    assert.equal(await triggerStatus(nodes[1], a), 200);
    await Promise.all([logs0.waitFor(1), logs1.waitFor(1)]);
    assert.ok(took < WITHIN, `accepted on both nodes ${took} ms after create`);
  });

  test('a rotated secret signs from then on; the old one is refused after the TTL, also for open connections', async () => {
    const a = await createApp();
    await waitUntil(async () => (await tryConnect(nodes[0], a.key)) === 'ok', { timeout: WITHIN, what: 'the new app' });
    let creds = { key: a.key, secret: a.secret };
    const client = await pusher(nodes[0], a, () => creds);
    await subscribed(client.subscribe('private-before'));
    const r = await cli('rotate-secret', a.id, '--json');
    assert.equal(r.code, 0, r.stderr);
    const rotated = JSON.parse(r.stdout);
    assert.notEqual(rotated.secret, a.secret);
    // The API: the old secret is refused on both nodes, the new one works.
    for (const n of nodes) {
      await waitUntil(async () => (await triggerStatus(n, a, a.secret)) === 401, { timeout: WITHIN, what: 'old secret refused' });
      assert.equal(await triggerStatus(n, a, rotated.secret), 200);
    }
    // The open connection: a subscription signed with the old secret is
    // refused once the node re-checked the app, one signed with the new
    // secret succeeds.
    await waitUntil(async () => {
      const ch = client.subscribe('private-old-' + crypto.randomBytes(3).toString('hex'));
      try {
        await subscribed(ch, 3000);
        return false;
      } catch {
        return true;
      }
    }, { timeout: WITHIN + 5000, what: 'a subscription signed with the old secret refused' });
    creds = { key: a.key, secret: rotated.secret };
    await subscribed(client.subscribe('private-after'));
    assert.equal(client.connection.state, 'connected');
  });

  test('disable closes open connections with 4003 and refuses new ones (API 403); enable accepts again', async () => {
    const a = await createApp();
    await waitUntil(async () => (await tryConnect(nodes[1], a.key)) === 'ok', { timeout: WITHIN, what: 'the new app' });
    const open = [await RawClient.open(nodes[0].wsUrl(a.key)), await RawClient.open(nodes[1].wsUrl(a.key))];
    cleanups.push(() => open.forEach((c) => c.close()));
    const d = await cli('disable', a.id);
    assert.equal(d.code, 0, d.stderr);
    for (const c of open) assert.equal((await c.waitClose(WITHIN)).code, 4003);
    for (const n of nodes) {
      assert.equal(await tryConnect(n, a.key), 4003);
      assert.equal(await triggerStatus(n, a), 403);
    }
    assert.equal((await cli('enable', a.id)).code, 0);
    for (const n of nodes) {
      await waitUntil(async () => (await tryConnect(n, a.key)) === 'ok', { timeout: WITHIN, what: 'enabled again' });
    }
  });

  test('delete closes open connections with 4001 and refuses new ones (API 404); CLI exit codes', async () => {
    const a = await createApp();
    await waitUntil(async () => (await tryConnect(nodes[0], a.key)) === 'ok', { timeout: WITHIN, what: 'the new app' });
    const client = await pusher(nodes[0], a);
    const closed = new Promise((resolve) => client.connection.bind('error', (e) => resolve(e)));
    const open = await RawClient.open(nodes[1].wsUrl(a.key));
    cleanups.push(() => open.close());
    assert.equal((await cli('delete', a.id)).code, 0);
    assert.equal((await open.waitClose(WITHIN)).code, 4001);
    const err = await closed;
    assert.equal(err.data?.code ?? err.error?.data?.code, 4001, JSON.stringify(err));
    for (const n of nodes) {
      assert.equal(await tryConnect(n, a.key), 4001);
      assert.equal(await triggerStatus(n, a), 404);
    }
    const again = await cli('delete', a.id);
    assert.equal(again.code, 3, `deleting twice exits 3 (not found): ${again.stderr}`);
    const dup = await cli('create', '--id', 'dup-' + a.id);
    assert.equal(dup.code, 0, dup.stderr);
    assert.equal((await cli('create', '--id', 'dup-' + a.id)).code, 4, 'a taken id exits 4');
    assert.equal((await cli('update', 'dup-' + a.id, '--max-connections', '-5')).code, 2, 'a bad value exits 2');
  });

  test('hostile rows are refused with a log line naming the app and the field; the other apps are not disturbed', async () => {
    const good = await createApp();
    const many = JSON.stringify(Array.from({ length: 5000 }, (_, i) => `https://o${i}.example`));
    const rows = [
      ['hostile-json', '{"max_connections": 5', 'settings'],
      ['hostile-negative', '{"max_connections": -20}', 'max_connections'],
      ['hostile-origins', `{"allowed_origins": ${many}}`, 'allowed_origins'],
      ['hostile-type', '{"enable_client_messages": "yes please"}', 'enable_client_messages'],
    ];
    for (const [id, settings] of rows) {
      await psql(`INSERT INTO herald_apps (id, app_key, secret, enabled, settings) VALUES ('${id}', 'key-${id}', 's', true, '${settings}')`);
    }
    for (const [id, , field] of rows) {
      assert.equal(await tryConnect(nodes[0], `key-${id}`), 4001, id);
      await waitUntil(() => nodes[0].stderr.text.includes(`"app_id":"${id}"`) && nodes[0].stderr.text.includes(field) , { timeout: 5000, what: `a log line naming ${id} and ${field}` });
    }
    assert.equal(await tryConnect(nodes[0], good.key), 'ok');
    assert.equal((await ready(nodes[0])).status, 200);
    const list = await cli('list', '--json');
    assert.equal(list.code, 0, list.stderr);
    const ids = JSON.parse(list.stdout).map((x) => x.id);
    assert.ok(ids.includes(good.id) && !ids.some((x) => x.startsWith('hostile-')), `list: ${ids}`);
    assert.equal(nodes[0].exited, null, 'the node is still running');
  });

  test('a database cut off leaves known apps working; /ready and /metrics say so; recovery is seen', async () => {
    const a = await createApp();
    for (const n of nodes) {
      await waitUntil(async () => (await tryConnect(n, a.key)) === 'ok', { timeout: WITHIN, what: 'the new app' });
    }
    const client = await pusher(nodes[0], a);
    const errorsBefore = (await metric(nodes[0], 'herald_apps_store_errors_total')) ?? 0;
    proxy.cutOff();
    try {
      for (const n of nodes) {
        await waitUntil(async () => (await ready(n)).body.degraded, { timeout: WITHIN + 5000, what: `/ready degraded on port ${n.port}` });
        const r = await ready(n);
        assert.equal(r.status, 200, 'a node serving from its cache stays in the load balancer');
        assert.match(r.body.degraded, /apps store/);
        assert.ok(!r.body.degraded.includes(storeUrl), 'no DSN in /ready');
        assert.equal(await metric(n, 'herald_apps_store_up'), 0);
      }
      assert.ok((await metric(nodes[0], 'herald_apps_store_errors_total')) > errorsBefore);
      // Known apps keep working, past the TTL: connections and the API.
      for (const n of nodes) {
        assert.equal(await tryConnect(n, a.key), 'ok');
        assert.equal(await triggerStatus(n, a), 200);
      }
      assert.equal(client.connection.state, 'connected', 'an open connection stays');
      // An unknown key is refused (not found or over capacity), quickly.
      const code = await tryConnect(nodes[1], 'never-seen-' + crypto.randomBytes(4).toString('hex'));
      assert.ok(code === 4100 || code === 4001, `unknown key during the outage: ${code}`);
    } finally {
      proxy.restore();
    }
    for (const n of nodes) {
      await waitUntil(async () => !(await ready(n)).body.degraded, { timeout: WITHIN + 10_000, what: 'recovered' });
      assert.equal(await metric(n, 'herald_apps_store_up'), 1);
    }
  });
});
