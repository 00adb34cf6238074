// Message recovery after a network cut, end to end: the real herald (alone,
// history in memory; and two nodes on Redis, history in Redis streams),
// pusher-js and Laravel Echo with clients/pusher-js-recovery, events
// published at 200/s through the HTTP API while the clients' network is
// down. Every client must end with every event exactly once, in order,
// and one herald:recovery saying so.
//
// The cut is a TCP proxy per client group that resets the client's socket
// and refuses new ones, then lets them through again (to the same node, or
// to the other node of the cluster) and, like a browser whose network comes
// back, raises pusher-js's 'online' event.

import assert from 'node:assert/strict';
import net from 'node:net';

import { enableRecovery } from '../../../clients/pusher-js-recovery/index.js';
import {
  Echo,
  HOST,
  PusherJS,
  app,
  connected,
  deleteRedisKeys,
  redisCall,
  sleep,
  subscribed,
  useCluster,
  useHerald,
  waitUntil,
} from '../harness.mjs';

const RATE = 200; // events per second
const HISTORY = [{ pattern: 'orders-*', size: 10000, ttl: '5m' }];
const apps = [app({ history: HISTORY, max_event_batch_size: 10 })];

const single = useHerald({ apps });
const cluster = useCluster({ apps }, { nodes: 2 });

/** waitUntil, with a description computed when it times out. */
async function waitFor(cond, timeout, describe) {
  try {
    await waitUntil(cond, { timeout, what: 'condition' });
  } catch (err) {
    if (!/timed out/.test(err.message)) throw err;
    throw new Error(`timed out after ${timeout} ms waiting for ${describe()}`);
  }
}

/** A TCP proxy in front of a herald node that the test can cut. */
class CutProxy {
  static async start(target) {
    const p = new CutProxy();
    p.target = target;
    p.refusing = false;
    p.pairs = new Set();
    p.server = net.createServer((down) => p.accept(down));
    await new Promise((resolve) => p.server.listen(0, HOST, resolve));
    p.port = p.server.address().port;
    return p;
  }

  accept(down) {
    down.on('error', () => {});
    if (this.refusing) {
      down.resetAndDestroy();
      return;
    }
    const up = net.createConnection({ host: HOST, port: this.target.port });
    up.on('error', () => {});
    const pair = { up, down };
    this.pairs.add(pair);
    const drop = () => {
      this.pairs.delete(pair);
      up.destroy();
      down.destroy();
    };
    up.on('close', drop);
    down.on('close', drop);
    down.pipe(up);
    up.pipe(down);
  }

  /** The network goes: open sockets are reset, new ones refused. */
  cut() {
    this.refusing = true;
    for (const { up, down } of [...this.pairs]) {
      down.resetAndDestroy();
      up.destroy();
    }
  }

  /** The network comes back, to `target` (a HeraldServer) from now on. */
  resume(target = this.target) {
    this.target = target;
    this.refusing = false;
  }

  close() {
    this.cut();
    return new Promise((resolve) => this.server.close(resolve));
  }
}

/** Publishes `tick` {seq} on channel at RATE/s, in batches of up to 10, through apis in turn. */
class Publisher {
  constructor(apis, channel) {
    this.apis = apis;
    this.channel = channel;
    this.sent = 0;
    this.stopped = false;
    this.t0 = Date.now();
    this.error = null;
    this.loop = this.run().catch((err) => {
      this.error = new Error(`publishing on ${this.channel} after ${this.sent} events: ${err.message} ${err.status ?? ''} ${err.body ?? ''}`);
    });
  }

  async run() {
    let i = 0;
    while (!this.stopped) {
      const due = Math.floor(((Date.now() - this.t0) * RATE) / 1000) - this.sent;
      if (due <= 0) {
        await sleep(5); // pacing: time is the subject here
        continue;
      }
      const batch = [];
      for (let k = 0; k < Math.min(10, due); k++) batch.push({ channel: this.channel, name: 'tick', data: { seq: this.sent + k + 1 } });
      // One request at a time: the order of publication is the order of the offsets.
      const res = await this.apis[i++ % this.apis.length].triggerBatch(batch);
      assert.equal(res.status, 200);
      this.sent += batch.length;
    }
  }

  /** Resolves once `n` more events were published. */
  async more(n) {
    const target = this.sent + n;
    await waitUntil(() => {
      if (this.error) throw this.error;
      return this.sent >= target;
    }, { timeout: 10_000 + (n * 2000) / RATE, what: `${n} more events on ${this.channel}` });
  }

  /** Stops and resolves with how many events were published. */
  async stop() {
    this.stopped = true;
    await this.loop;
    if (this.error) throw this.error;
    return this.sent;
  }
}

/**
 * A pusher-js (kind 'pusher') or Echo (kind 'echo') client through proxy,
 * with recovery on, following channel: `seqs` holds every tick's seq in
 * arrival order, `recoveries` every herald:recovery outcome.
 */
async function follower(kind, proxy, channel, label) {
  const opts = {
    cluster: 'mt1',
    wsHost: HOST,
    wsPort: proxy.port,
    forceTLS: false,
    enabledTransports: ['ws'],
    disableStats: true,
  };
  const f = { kind, label, seqs: [], recoveries: [] };
  let pusher;
  if (kind === 'echo') {
    const echo = new Echo({ broadcaster: 'pusher', key: apps[0].key, ...opts, Pusher: PusherJS, withoutInterceptors: true });
    cluster.addCleanup(() => echo.disconnect());
    enableRecovery(echo, { onRecovery: (r) => f.recoveries.push(r) });
    echo.channel(channel).listen('.tick', (d) => f.seqs.push(d.seq));
    pusher = echo.connector.pusher;
  } else {
    pusher = new PusherJS(apps[0].key, opts);
    cluster.addCleanup(() => pusher.disconnect());
    f.recovery = enableRecovery(pusher, { onRecovery: (r) => f.recoveries.push(r) });
    pusher.subscribe(channel).bind('tick', (d) => f.seqs.push(d.seq));
  }
  f.pusher = pusher;
  await connected(pusher);
  await subscribed(pusher.channel(channel));
  return f;
}

/** Checks that f got 1..n exactly once each, in order; describes what went wrong otherwise. */
function assertExactlyOnceInOrder(f, n) {
  const seen = new Map();
  let outOfOrder = 0;
  for (let i = 0; i < f.seqs.length; i++) {
    seen.set(f.seqs[i], (seen.get(f.seqs[i]) ?? 0) + 1);
    if (i > 0 && f.seqs[i] <= f.seqs[i - 1]) outOfOrder++;
  }
  const missing = [];
  for (let s = 1; s <= n; s++) if (!seen.has(s)) missing.push(s);
  const dups = [...seen].filter(([, c]) => c > 1).length;
  assert.ok(
    missing.length === 0 && dups === 0 && outOfOrder === 0 && f.seqs.length === n,
    `${f.label}: ${f.seqs.length} deliveries of ${n} events: ${missing.length} missing (first ${missing.slice(0, 5)}), ` +
      `${dups} duplicated, ${outOfOrder} out of order`,
  );
}

/**
 * Six followers (pusher-js and Echo on: the single node; a cluster node
 * they come back to; a cluster node they leave for the other one), one
 * publisher per deployment, a cut of `cutMs`. Reports the share recovered.
 */
async function cutScenario(t, cutMs) {
  const channel = `orders-cut-${cutMs}`;
  const [A, B] = cluster.nodes;
  const pm = await CutProxy.start(single.server);
  const ps = await CutProxy.start(A);
  const po = await CutProxy.start(A);
  cluster.addCleanup(() => Promise.all([pm.close(), ps.close(), po.close()]));
  const followers = await Promise.all([
    follower('pusher', pm, channel, 'memory, pusher-js'),
    follower('echo', pm, channel, 'memory, Echo'),
    follower('pusher', ps, channel, 'redis same node, pusher-js'),
    follower('echo', ps, channel, 'redis same node, Echo'),
    follower('pusher', po, channel, 'redis other node, pusher-js'),
    follower('echo', po, channel, 'redis other node, Echo'),
  ]);
  const mem = followers.slice(0, 2);
  const red = followers.slice(2);
  const pubMem = new Publisher([single.api()], channel);
  const pubRed = new Publisher([cluster.api(0), cluster.api(1)], channel);
  // A test that fails or times out must not leave publishers running into the next one.
  cluster.addCleanup(() => Promise.all([pubMem.stop(), pubRed.stop()]).catch(() => {}));
  await Promise.all([pubMem.more(RATE / 2), pubRed.more(RATE / 2)]);
  await waitUntil(() => followers.every((f) => f.seqs.length > 0), { what: 'live events before the cut' });

  for (const p of [pm, ps, po]) p.cut();
  await sleep(cutMs); // the outage itself
  for (const f of followers) f.lastBeforeCut = f.seqs.at(-1);
  pm.resume();
  ps.resume();
  po.resume(B);
  PusherJS.Runtime.getNetwork().emit('online');
  const atResume = { mem: pubMem.sent, red: pubRed.sent };

  await waitFor(() => followers.every((f) => f.recoveries.length > 0), 20_000,
    () => `herald:recovery on every client (${followers.map((f) => `${f.label}: ${f.pusher.connection.state}, ${f.recoveries.length}`).join('; ')})`);
  await Promise.all([pubMem.more(RATE / 2), pubRed.more(RATE / 2)]);
  const total = { mem: await pubMem.stop(), red: await pubRed.stop() };
  for (const [group, fs] of [['mem', mem], ['red', red]]) {
    await waitFor(() => fs.every((f) => f.seqs.length >= total[group]), 15_000,
      () => `every ${group} client to reach ${total[group]} (${fs.map((f) => `${f.label}: ${f.seqs.length}`).join(', ')})`);
  }
  for (const f of followers) {
    const group = mem.includes(f) ? 'mem' : 'red';
    assertExactlyOnceInOrder(f, total[group]);
    assert.equal(f.recoveries.length, 1, `${f.label}: one recovery, got ${JSON.stringify(f.recoveries)}`);
    const r = f.recoveries[0];
    assert.equal(r.recovered, true, `${f.label}: ${JSON.stringify(r)}`);
    // Whatever was published between its last event before the cut and
    // its return came through the replay.
    const missed = atResume[group] - f.lastBeforeCut;
    assert.ok(r.replayed >= missed, `${f.label}: replayed ${r.replayed}, missed at least ${missed}`);
    t.diagnostic(`${f.label}: cut ${cutMs / 1000} s at ${RATE}/s: ${r.replayed} replayed, ${total[group]}/${total[group]} received once in order (100%), 0 duplicates`);
  }
}

cluster.test('5 s cut at 200 events/s: every event once, in order (memory node, Redis same node, Redis other node; pusher-js and Echo)', (t) =>
  cutScenario(t, 5000), { timeout: 60_000 });

cluster.test('30 s cut at 200 events/s: every event once, in order (memory node, Redis same node, Redis other node; pusher-js and Echo)', (t) =>
  cutScenario(t, 30_000), { timeout: 150_000 });

cluster.test('Redis loses the stream during the cut: herald:recovery says epoch_changed, live events go on in the new epoch', async () => {
  const channel = 'orders-epoch';
  const [A, B] = cluster.nodes;
  const p = await CutProxy.start(A);
  cluster.addCleanup(() => p.close());
  const f = await follower('pusher', p, channel, 'pusher-js');
  const api = cluster.api(0);
  for (let i = 1; i <= 5; i++) await api.trigger(channel, 'tick', { seq: i });
  await waitUntil(() => f.seqs.length === 5, { what: '5 events' });
  const before = f.recovery.position(channel);
  assert.equal(before.offset, 5);

  p.cut();
  await api.trigger(channel, 'tick', { seq: 6 });
  // The channel's history keys (internal/cluster/keys.go): its meta hash
  // (epoch, top) and its stream.
  const app = apps[0].id;
  const deleted =
    (await deleteRedisKeys(6379, `${cluster.prefix}{${app}}:h:${channel}`)) +
    (await deleteRedisKeys(6379, `${cluster.prefix}{${app}}:hx:${channel}`));
  assert.equal(deleted, 2, 'the channel history keys exist in Redis under the prefix');
  await api.trigger(channel, 'tick', { seq: 7 }); // the first event of the new epoch
  p.resume(B);
  PusherJS.Runtime.getNetwork().emit('online');
  await waitUntil(() => f.recoveries.length === 1, { timeout: 20_000, what: 'herald:recovery' });
  const r = f.recoveries[0];
  assert.equal(r.recovered, false);
  assert.equal(r.reason, 'epoch_changed');
  assert.notEqual(r.position.epoch, before.epoch);
  assert.equal(r.position.offset, 1);
  assert.deepEqual(f.seqs, [1, 2, 3, 4, 5], 'nothing replayed when the window is gone');

  await api.trigger(channel, 'tick', { seq: 8 });
  await waitUntil(() => f.seqs.length === 6, { what: 'the live event after the failed recovery' });
  assert.deepEqual(f.seqs, [1, 2, 3, 4, 5, 8]);
  assert.deepEqual(f.recovery.position(channel), { epoch: r.position.epoch, offset: 2 });
  assert.equal(await redisCall(6379, ['PING']), 'PONG');
});
