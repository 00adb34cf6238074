// Herald dashboard: polls the admin API (api/...) every second and draws
// its graphs on <canvas>. No dependencies, no build step.
'use strict';

const $ = (sel) => document.querySelector(sel);
const state = {
  csrf: '',
  app: '',
  lastSeq: 0,
  paused: false,
  selected: '', // presence channel whose members are shown
  logRows: 0,
};
const MAX_LOG_ROWS = 500;

async function api(path, opts = {}) {
  const headers = Object.assign({ 'Accept': 'application/json' }, opts.headers || {});
  if (opts.method === 'POST') {
    headers['X-CSRF-Token'] = state.csrf;
    headers['Content-Type'] = 'application/json';
  }
  const res = await fetch(path, Object.assign({}, opts, { headers, credentials: 'same-origin' }));
  if (res.status === 401) {
    window.location.reload(); // the session ended: back to the login
    throw new Error('logged out');
  }
  let body = null;
  try { body = await res.json(); } catch { /* not JSON */ }
  if (!res.ok) {
    throw new Error((body && body.error) || ('HTTP ' + res.status));
  }
  return body;
}

function text(el, v) { el.textContent = v; }

function fmtRate(v) {
  if (v >= 100) return Math.round(v).toString();
  return (Math.round(v * 10) / 10).toString();
}

// ---- graphs ----

function setupCanvas(c) {
  const dpr = window.devicePixelRatio || 1;
  const w = c.clientWidth || c.width, h = c.clientHeight || c.height;
  if (c.width !== Math.round(w * dpr) || c.height !== Math.round(h * dpr)) {
    c.width = Math.round(w * dpr);
    c.height = Math.round(h * dpr);
  }
  const ctx = c.getContext('2d');
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  return { ctx, w, h };
}

function niceMax(v) {
  if (v <= 1) return 1;
  const p = Math.pow(10, Math.floor(Math.log10(v)));
  for (const m of [1, 2, 5, 10]) if (m * p >= v) return m * p;
  return 10 * p;
}

// drawGraph plots lines [{values, color}] against times (ms), over the
// last `span` ms.
function drawGraph(canvas, times, lines, span) {
  const { ctx, w, h } = setupCanvas(canvas);
  const css = getComputedStyle(document.documentElement);
  const left = 44, right = 8, top = 8, bottom = 20;
  ctx.clearRect(0, 0, w, h);
  const now = times.length ? times[times.length - 1] : Date.now();
  const t0 = now - span;
  let max = 0;
  for (const l of lines) for (const v of l.values) max = Math.max(max, v);
  max = niceMax(max);
  ctx.strokeStyle = css.getPropertyValue('--line') || '#1e293b';
  ctx.fillStyle = css.getPropertyValue('--muted') || '#94a3b8';
  ctx.font = '11px system-ui, sans-serif';
  ctx.lineWidth = 1;
  for (let i = 0; i <= 4; i++) {
    const y = top + (h - top - bottom) * (1 - i / 4);
    ctx.beginPath(); ctx.moveTo(left, y); ctx.lineTo(w - right, y); ctx.stroke();
    const label = max * i / 4;
    ctx.fillText(Number.isInteger(label) ? label.toString() : label.toFixed(1), 4, y + 4);
  }
  for (let m = 0; m <= span / 60000; m++) {
    const x = left + (w - left - right) * (1 - (m * 60000) / span);
    ctx.textAlign = m === 0 ? 'right' : 'center';
    ctx.fillText(m === 0 ? 'now' : '-' + m + 'm', x, h - 5);
  }
  ctx.textAlign = 'left';
  const X = (t) => left + (w - left - right) * ((t - t0) / span);
  const Y = (v) => top + (h - top - bottom) * (1 - v / max);
  for (const l of lines) {
    ctx.strokeStyle = l.color;
    ctx.lineWidth = 2;
    ctx.beginPath();
    let started = false;
    for (let i = 0; i < times.length; i++) {
      if (times[i] < t0) continue;
      const x = X(times[i]), y = Y(l.values[i]);
      if (!started) { ctx.moveTo(x, y); started = true; } else ctx.lineTo(x, y);
    }
    ctx.stroke();
  }
}

// ---- stats, channels, members ----

function renderStats(s) {
  text($('#connections'), s.connections.toString());
  const series = s.series || [];
  const last = series.length ? series[series.length - 1] : null;
  text($('#rate-in'), last ? fmtRate(last.messages_in_per_second) : '0');
  text($('#rate-out'), last ? fmtRate(last.messages_out_per_second) : '0');
  const times = series.map((p) => p.t);
  const css = getComputedStyle(document.documentElement);
  const span = 5 * 60 * 1000;
  drawGraph($('#graph-connections'), times, [{ values: series.map((p) => p.connections), color: css.getPropertyValue('--accent') }], span);
  drawGraph($('#graph-messages'), times, [
    { values: series.map((p) => p.messages_in_per_second), color: css.getPropertyValue('--accent') },
    { values: series.map((p) => p.messages_out_per_second), color: css.getPropertyValue('--out') },
  ], span);
  renderChannels(s.channels || [], s.channels_error || '');
}

function renderChannels(channels, err) {
  text($('#channels-error'), err);
  text($('#channel-count'), channels.length.toString());
  $('#channels-empty').hidden = channels.length > 0;
  const tbody = $('#channels tbody');
  const rows = [];
  for (const c of channels) {
    const tr = document.createElement('tr');
    tr.dataset.channel = c.name;
    const presence = c.kind === 'presence' || c.kind === 'presence-cache';
    if (presence) tr.classList.add('presence');
    if (c.name === state.selected) tr.classList.add('selected');
    for (const v of [c.name, c.kind, c.subscription_count, presence ? c.user_count : '']) {
      const td = document.createElement('td');
      td.textContent = String(v);
      tr.appendChild(td);
    }
    if (presence) {
      tr.title = 'Show the members';
      tr.addEventListener('click', () => { state.selected = c.name; refreshMembers(); });
    }
    rows.push(tr);
  }
  tbody.replaceChildren(...rows);
  if (state.selected && !channels.some((c) => c.name === state.selected)) {
    state.selected = '';
    $('#members-panel').hidden = true;
  }
}

async function refreshMembers() {
  if (!state.selected) return;
  const ch = state.selected;
  try {
    const r = await api('api/apps/' + encodeURIComponent(state.app) + '/channels/' + encodeURIComponent(ch) + '/members');
    if (ch !== state.selected) return;
    text($('#members-channel'), ch);
    const items = r.members.map((m) => {
      const li = document.createElement('li');
      li.textContent = m.id + (m.info !== undefined ? ' ' + JSON.stringify(m.info) : '');
      return li;
    });
    $('#members').replaceChildren(...items);
    $('#members-panel').hidden = false;
  } catch (e) {
    text($('#members-channel'), ch + ' (' + e.message + ')');
  }
}

// ---- debug console ----

function logMatches(tr) {
  const f = $('#log-filter').value.trim().toLowerCase();
  return !f || tr.textContent.toLowerCase().includes(f);
}

function renderLog(events) {
  const tbody = $('#log tbody');
  for (const e of events) {
    const tr = document.createElement('tr');
    tr.className = 'log-entry type-' + e.type;
    const who = [e.socket_id, e.user_id ? 'user ' + e.user_id : ''].filter(Boolean).join(' · ');
    const cells = [new Date(e.time).toLocaleTimeString(), e.type, e.channel || '', e.event || '', who, e.data || ''];
    cells.forEach((v, i) => {
      const td = document.createElement('td');
      td.textContent = v;
      if (i === 5) td.className = 'data';
      tr.appendChild(td);
    });
    tr.hidden = !logMatches(tr);
    tbody.prepend(tr);
    state.logRows++;
  }
  while (state.logRows > MAX_LOG_ROWS) {
    tbody.lastElementChild.remove();
    state.logRows--;
  }
}

// ---- loop ----

async function tick() {
  if (!state.app) return;
  const app = encodeURIComponent(state.app);
  const [stats, log] = await Promise.all([
    api('api/apps/' + app + '/stats'),
    api('api/apps/' + app + '/log?after=' + state.lastSeq),
  ]);
  if (decodeURIComponent(app) !== state.app) return; // switched meanwhile
  renderStats(stats);
  if (log.last < state.lastSeq) state.lastSeq = 0; // the server restarted
  if (!state.paused) renderLog(log.events);
  state.lastSeq = log.last;
}

async function loop() {
  let n = 0;
  for (;;) {
    try {
      await tick();
      if (n++ % 2 === 0) await refreshMembers();
      text($('#status'), 'live · updated ' + new Date().toLocaleTimeString());
      $('#status').className = 'muted';
    } catch (e) {
      text($('#status'), 'not updated: ' + e.message);
      $('#status').className = 'error';
    }
    await new Promise((r) => setTimeout(r, 1000));
  }
}

function selectApp(id) {
  state.app = id;
  state.lastSeq = 0;
  state.selected = '';
  state.logRows = 0;
  $('#log tbody').replaceChildren();
  $('#members-panel').hidden = true;
  const u = new URL(window.location.href);
  u.searchParams.set('app', id);
  history.replaceState(null, '', u);
}

async function start() {
  const sess = await api('api/session');
  state.csrf = sess.csrf_token;
  const apps = await api('api/apps');
  const sel = $('#app-select');
  for (const a of apps) {
    const o = document.createElement('option');
    o.value = a.id;
    o.textContent = a.id + (a.enabled ? '' : ' (disabled)');
    sel.appendChild(o);
  }
  const wanted = new URL(window.location.href).searchParams.get('app');
  const first = apps.find((a) => a.id === wanted) || apps[0];
  if (first) { sel.value = first.id; selectApp(first.id); }
  sel.addEventListener('change', () => selectApp(sel.value));

  $('#logout').addEventListener('click', async () => {
    try { await api('logout', { method: 'POST', body: '{}' }); } finally { window.location.reload(); }
  });
  $('#log-pause').addEventListener('click', () => {
    state.paused = !state.paused;
    text($('#log-pause'), state.paused ? 'Resume' : 'Pause');
  });
  $('#log-clear').addEventListener('click', () => { $('#log tbody').replaceChildren(); state.logRows = 0; });
  $('#log-filter').addEventListener('input', () => {
    for (const tr of $('#log tbody').children) tr.hidden = !logMatches(tr);
  });
  $('#send-form').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const out = $('#send-result');
    out.className = '';
    text(out, 'sending…');
    try {
      await api('api/apps/' + encodeURIComponent(state.app) + '/events', {
        method: 'POST',
        body: JSON.stringify({ channel: $('#send-channel').value, event: $('#send-event').value, data: $('#send-data').value }),
      });
      out.className = 'ok';
      text(out, 'sent');
    } catch (e) {
      out.className = 'fail';
      text(out, e.message);
    }
  });
  loop();
}

start().catch((e) => { text($('#status'), 'failed to start: ' + e.message); $('#status').className = 'error'; });
