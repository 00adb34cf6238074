// @herald-ws/pusher-js-recovery: message recovery after a reconnect for
// pusher-js and Laravel Echo on a Herald server.
//
// Herald puts a `position` ({epoch, offset}) on every event of a channel
// that has history, and on its pusher_internal:subscription_succeeded.
// This plugin remembers the last position per channel and, when pusher-js
// subscribes again after a reconnect, adds `recover: {epoch, offset}` to
// pusher:subscribe. The server then replays what was missed, in order and
// exactly once, and ends with a `herald:recovery` event that says whether
// it could (when it could not, the app refetches its state).
//
// pusher-js drops unknown top-level fields when it decodes a frame
// (Protocol.decodeMessage), so positions are read from the raw frames of the
// transport (pusher.connection.connection.transport, 'message' events),
// bound again on every new connection. Channels without history carry no
// position, so nothing changes for them: their pusher:subscribe is sent as
// pusher-js built it.

const RECOVERY_EVENT = 'herald:recovery';
const SUBSCRIBED = 'pusher_internal:subscription_succeeded';
const SUBSCRIPTION_ERROR = 'pusher:subscription_error';

/**
 * Turns recovery on for a pusher-js client (or a Laravel Echo instance using
 * the `pusher` or `reverb` broadcaster). Call it right after creating the
 * client, before subscribing, so that the first subscription's position is
 * seen. Calling it twice on one client returns the same handle.
 *
 * @param {object} client a `Pusher` instance, or an `Echo` instance
 * @param {{onRecovery?: (result: RecoveryResult) => void}} [options]
 * @returns {Recovery}
 */
export function enableRecovery(client, options = {}) {
  const pusher = pusherOf(client);
  if (pusher[HANDLE]) {
    if (options.onRecovery) pusher[HANDLE].onRecovery(options.onRecovery);
    return pusher[HANDLE];
  }
  const recovery = new Recovery(pusher);
  if (options.onRecovery) recovery.onRecovery(options.onRecovery);
  Object.defineProperty(pusher, HANDLE, { value: recovery, configurable: true });
  return recovery;
}

const HANDLE = Symbol.for('herald.pusher-js-recovery');

function pusherOf(client) {
  // Echo keeps its pusher-js client at echo.connector.pusher.
  const p = client && client.connector && client.connector.pusher ? client.connector.pusher : client;
  if (!p || typeof p.send_event !== 'function' || !p.connection || typeof p.connection.bind !== 'function') {
    throw new TypeError('enableRecovery: expected a pusher-js client or a Laravel Echo instance using the pusher/reverb broadcaster');
  }
  return p;
}

/**
 * @typedef {{epoch: string, offset: number}} Position
 * @typedef {{channel: string, recovered: boolean, replayed: number,
 *            reason?: string, position: Position|null}} RecoveryResult
 */

/** The handle enableRecovery returns. */
export class Recovery {
  constructor(pusher) {
    this._pusher = pusher;
    // channel name → {position: Position|null, recovering: boolean}
    this._channels = new Map();
    this._listeners = new Set();
    this._transport = null;
    this._onRaw = (ev) => this._raw(ev);

    // Every pusher:subscribe goes through pusher.send_event (Channel.subscribe).
    const send = pusher.send_event;
    this._send = send;
    pusher.send_event = (name, data, channel) => send.call(pusher, name, this._outgoing(name, data), channel);
    // An unsubscribe by the app ends the channel's history for this client;
    // pusher-js sends no frame for it while disconnected, so it is caught here.
    const unsubscribe = pusher.unsubscribe;
    this._unsubscribe = unsubscribe;
    pusher.unsubscribe = (name) => {
      this._channels.delete(name);
      return unsubscribe.call(pusher, name);
    };
    // pusher-js makes a new transport per connection and emits 'connected'
    // after setting it, before any message of the new connection is read.
    this._onConnected = () => this._attach();
    pusher.connection.bind('connected', this._onConnected);
    this._attach();
  }

  /**
   * Calls fn with the outcome of every recovery (the `herald:recovery`
   * event of any channel). Returns a function that removes it.
   * `recovered: false` means events may be missing (reason `too_old`,
   * `epoch_changed`, `invalid` or `no_history`): refetch the state.
   */
  onRecovery(fn) {
    this._listeners.add(fn);
    return () => this._listeners.delete(fn);
  }

  /** The last position seen on a channel, or null. */
  position(channel) {
    const s = this._channels.get(channel);
    return s && s.position ? { ...s.position } : null;
  }

  /**
   * Sets the position a channel's next subscription recovers from, e.g. the
   * `epoch` and `last_offset` of the history endpoint a backend read the
   * state from, so that the first subscription continues it with no gap.
   */
  setPosition(channel, position) {
    if (!validPosition(position)) throw new TypeError('setPosition: expected {epoch: string, offset: number}');
    this._state(channel).position = { epoch: position.epoch, offset: position.offset };
  }

  /** Forgets a channel's position: its next subscription starts fresh. */
  forget(channel) {
    this._channels.delete(channel);
  }

  /** Turns recovery off and restores the client's own methods. */
  disable() {
    this._detach();
    this._pusher.connection.unbind('connected', this._onConnected);
    this._pusher.send_event = this._send;
    this._pusher.unsubscribe = this._unsubscribe;
    this._channels.clear();
    this._listeners.clear();
    delete this._pusher[HANDLE];
  }

  _state(channel) {
    let s = this._channels.get(channel);
    if (!s) {
      s = { position: null, recovering: false };
      this._channels.set(channel, s);
    }
    return s;
  }

  _outgoing(name, data) {
    if (name !== 'pusher:subscribe' || !data || typeof data.channel !== 'string') return data;
    const s = this._channels.get(data.channel);
    if (!s || !s.position) {
      if (s) s.recovering = false;
      return data;
    }
    s.recovering = true;
    return { ...data, recover: { epoch: s.position.epoch, offset: s.position.offset } };
  }

  _attach() {
    const conn = this._pusher.connection.connection;
    const transport = conn && conn.transport;
    if (!transport || transport === this._transport) return;
    this._detach();
    this._transport = transport;
    transport.bind('message', this._onRaw);
  }

  _detach() {
    if (this._transport) {
      this._transport.unbind('message', this._onRaw);
      this._transport = null;
    }
  }

  _raw(ev) {
    const text = ev && ev.data;
    // Only history frames mention a position; the others are not parsed twice.
    if (typeof text !== 'string' || text.indexOf('position') === -1) return;
    let msg;
    try {
      msg = JSON.parse(text);
    } catch {
      return;
    }
    if (!msg || typeof msg.channel !== 'string' || !this._pusher.channel(msg.channel)) return;
    const name = msg.channel;
    if (msg.event === RECOVERY_EVENT) {
      this._recovery(name, msg.data);
      return;
    }
    if (!validPosition(msg.position)) return;
    const s = this._state(name);
    // During a recovery the subscription's position is the top the replay
    // goes up to, not what this client has: the replayed events move it.
    if (msg.event === SUBSCRIBED && s.recovering) return;
    s.position = { epoch: msg.position.epoch, offset: msg.position.offset };
  }

  _recovery(name, raw) {
    let data = raw;
    if (typeof raw === 'string') {
      try {
        data = JSON.parse(raw);
      } catch {
        return;
      }
    }
    if (!data || typeof data !== 'object') return;
    const s = this._state(name);
    s.recovering = false;
    const position = validPosition(data.position) ? { epoch: data.position.epoch, offset: data.position.offset } : null;
    // Recovered or not, live events go on from the server's top; when the
    // window is gone the app refetches and continues from there.
    if (position) s.position = position;
    const result = {
      channel: name,
      recovered: data.recovered === true,
      replayed: Number.isInteger(data.replayed) ? data.replayed : 0,
      position,
    };
    if (typeof data.reason === 'string') result.reason = data.reason;
    for (const fn of [...this._listeners]) {
      try {
        fn(result);
      } catch (err) {
        // A failing listener must not stop the others or pusher-js.
        queueMicrotask(() => {
          throw err;
        });
      }
    }
  }
}

function validPosition(p) {
  return !!p && typeof p === 'object' && typeof p.epoch === 'string' && p.epoch !== '' &&
    Number.isSafeInteger(p.offset) && p.offset >= 0;
}

export default enableRecovery;
