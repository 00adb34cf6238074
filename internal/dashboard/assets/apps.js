// Herald dashboard, Apps page: the apps admin API (api/admin/apps). The
// settings form is built from the list of per-app settings the server
// sends, so a new setting needs no change here.
'use strict';

const $ = (sel) => document.querySelector(sel);
const page = { csrf: '', writable: false, settings: [], apps: [], editing: null };

async function api(path, opts = {}) {
  const headers = { 'Accept': 'application/json' };
  if (opts.method === 'POST') {
    headers['X-CSRF-Token'] = page.csrf;
    headers['Content-Type'] = 'application/json';
  }
  const res = await fetch(path, Object.assign({}, opts, { headers, credentials: 'same-origin' }));
  if (res.status === 401) {
    window.location.reload();
    throw new Error('logged out');
  }
  let body = null;
  try { body = await res.json(); } catch { /* not JSON */ }
  if (!res.ok) throw new Error((body && body.error) || ('HTTP ' + res.status));
  return body;
}

function el(tag, attrs = {}, text) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  if (text !== undefined) e.textContent = text;
  return e;
}

async function load() {
  const data = await api('api/admin/apps');
  page.writable = data.writable;
  page.settings = data.settings;
  page.apps = data.apps;
  $('#store').textContent = 'store: ' + data.store;
  const ro = $('#read-only');
  ro.hidden = data.writable;
  ro.textContent = data.writable ? '' : 'Read-only: ' + data.read_only_reason;
  $('#new-app').hidden = !data.writable;
  render();
}

function render() {
  const tbody = $('#apps tbody');
  tbody.replaceChildren();
  for (const a of page.apps) {
    const tr = el('tr', { 'data-id': a.id });
    tr.append(el('td', {}, a.id), el('td', {}, a.key), el('td', { class: 'enabled' }, a.enabled ? 'yes' : 'no'));
    const td = el('td', { class: 'actions' });
    if (page.writable) {
      const btn = (label, cls, fn) => {
        const b = el('button', { type: 'button', class: cls }, label);
        b.addEventListener('click', () => fn(a).catch(showError));
        td.append(b, ' ');
      };
      btn('Edit', 'edit', edit);
      btn('Rotate secret', 'rotate', (app) => action(app, 'rotate-secret', 'Give app ' + app.id + ' a new secret? The old one stops working within the cache TTL.'));
      if (a.enabled) btn('Disable', 'disable', (app) => action(app, 'disable', 'Disable app ' + app.id + '? Its connections close with 4003.'));
      else btn('Enable', 'enable', (app) => action(app, 'enable'));
      btn('Delete', 'delete', (app) => action(app, 'delete', 'Delete app ' + app.id + '? Its connections close with 4001. This cannot be undone.'));
    }
    tr.append(td);
    tbody.append(tr);
  }
  $('#apps-empty').hidden = page.apps.length > 0;
}

function showError(err) { $('#apps-error').textContent = err.message; }

function showSecret(app) {
  if (!app.secret) return;
  $('#secret-app').textContent = app.id;
  $('#secret-value').textContent = app.secret;
  $('#secret-box').hidden = false;
}

async function action(app, what, question) {
  if (question && !window.confirm(question)) return;
  $('#apps-error').textContent = '';
  const res = await api('api/admin/apps/' + encodeURIComponent(app.id) + '/' + what, { method: 'POST', body: '{}' });
  showSecret(res);
  await load();
}

function fieldValue(s, v) {
  if (s.type === 'list') return (v || []).join(', ');
  if (s.type === 'json') return JSON.stringify(v || [], null, 1);
  return v === undefined || v === null ? '' : String(v);
}

function openEditor(app) {
  page.editing = app;
  $('#editor').hidden = false;
  $('#editor-title').textContent = app ? 'Edit app ' + app.id : 'New app';
  $('#f-id').value = app ? app.id : '';
  $('#f-id').disabled = !!app;
  $('#f-key').value = app ? app.key : '';
  $('#f-enabled').checked = app ? app.enabled : true;
  $('#form-result').textContent = '';
  const box = $('#settings');
  box.replaceChildren();
  for (const s of page.settings) {
    const v = app ? app[s.key] : s.default;
    const id = 's-' + s.key;
    let input;
    if (s.type === 'bool') {
      input = el('input', { type: 'checkbox', id, name: s.key });
      input.checked = !!v;
      const label = el('label', { class: 'check', title: s.expect });
      label.append(input, ' ' + s.key);
      box.append(label);
      continue;
    }
    input = s.type === 'json' ? el('textarea', { id, name: s.key, rows: '3' }) : el('input', { id, name: s.key });
    input.value = fieldValue(s, v);
    const label = el('label', { title: s.expect }, s.key);
    label.append(input);
    box.append(label);
  }
}

async function edit(app) { openEditor(app); }

function readSettings() {
  const out = {};
  for (const s of page.settings) {
    const input = document.getElementById('s-' + s.key);
    switch (s.type) {
      case 'bool': out[s.key] = input.checked; break;
      case 'int': {
        const n = Number(input.value.trim());
        out[s.key] = Number.isInteger(n) && input.value.trim() !== '' ? n : input.value; // the server names a bad value
        break;
      }
      case 'list': out[s.key] = input.value.split(',').map((x) => x.trim()).filter((x) => x); break;
      case 'json':
        try { out[s.key] = JSON.parse(input.value || '[]'); } catch { throw new Error(s.key + ': not valid JSON'); }
        break;
      default: out[s.key] = input.value.trim();
    }
  }
  return out;
}

async function save(ev) {
  ev.preventDefault();
  const result = $('#form-result');
  result.textContent = '';
  try {
    const body = { enabled: $('#f-enabled').checked, settings: readSettings() };
    const key = $('#f-key').value.trim();
    if (key) body.key = key;
    let res;
    if (page.editing) {
      res = await api('api/admin/apps/' + encodeURIComponent(page.editing.id), { method: 'POST', body: JSON.stringify(body) });
    } else {
      const id = $('#f-id').value.trim();
      if (id) body.id = id;
      res = await api('api/admin/apps', { method: 'POST', body: JSON.stringify(body) });
    }
    $('#editor').hidden = true;
    showSecret(res);
    await load();
  } catch (err) {
    result.textContent = err.message;
    result.className = 'fail';
  }
}

async function start() {
  const s = await api('api/session');
  page.csrf = s.csrf_token;
  $('#new-app').addEventListener('click', () => openEditor(null));
  $('#cancel').addEventListener('click', () => { $('#editor').hidden = true; });
  $('#secret-done').addEventListener('click', () => {
    $('#secret-box').hidden = true;
    $('#secret-value').textContent = '';
  });
  $('#app-form').addEventListener('submit', save);
  await load();
}

start().catch(showError);
