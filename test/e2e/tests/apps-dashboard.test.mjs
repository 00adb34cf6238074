// The dashboard's Apps page in headless Chromium (Debian's /usr/bin/chromium
// via playwright-core) against the real binary: one node on a SQLite apps
// store (created on first start) and one on the config store (read-only).
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';

import { chromium } from 'playwright-core';

import { HeraldServer, RawClient, app, waitUntil } from '../harness.mjs';

const TOKEN = 'e2e-apps-token-' + Math.random().toString(36).slice(2);
const CHROMIUM = process.env.CHROMIUM_BIN || '/usr/bin/chromium';
const SLOW = { timeout: 180_000 };
const SHOW = 30_000;

let context;
let profile;
let dir;
let db; // node on the SQLite store
let cfg; // node on the config store

before(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'herald-apps-ui-'));
  [db, cfg] = await Promise.all([
    HeraldServer.start({ admin_token: TOKEN, apps_store: `sqlite://${path.join(dir, 'apps.db')}`, apps_cache_ttl: '500ms', log_level: 'info' }),
    HeraldServer.start({ admin_token: TOKEN, apps: [app()], log_level: 'info' }),
  ]);
  profile = fs.mkdtempSync(path.join(os.tmpdir(), 'herald-chromium-'));
  context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    viewport: { width: 1280, height: 1100 },
  });
  context.setDefaultTimeout(60_000);
  context.setDefaultNavigationTimeout(60_000);
});

after(async () => {
  if (context) await context.close();
  await Promise.all([db, cfg].filter(Boolean).map((s) => s.stop()));
  for (const d of [profile, dir]) if (d) fs.rmSync(d, { recursive: true, force: true });
});

/** A logged-in page on the Apps page of `srv`. */
async function appsPage(srv) {
  await context.clearCookies();
  const page = await context.newPage();
  page.on('dialog', (d) => d.accept()); // the confirm() of rotate, disable, delete
  await page.goto(`${srv.httpBase}/dashboard/`);
  await page.fill('#token', TOKEN);
  await Promise.all([page.waitForURL(`${srv.httpBase}/dashboard/`), page.click('#login-button')]);
  await page.click('#apps-link');
  await page.waitForURL(`${srv.httpBase}/dashboard/apps`);
  await page.waitForFunction(() => document.querySelector('#store').textContent.startsWith('store:'), null, { timeout: SHOW });
  return page;
}

const row = (page, id) => page.locator(`#apps tbody tr[data-id="${id}"]`);

/** Connects a raw socket; resolves with 'ok' or the close code. */
async function tryConnect(srv, key) {
  const c = await RawClient.open(srv.wsUrl(key), { waitEstablished: false });
  try {
    const f = await c.next((x) => x.event === 'pusher:connection_established' || x.event === 'pusher:error', { timeout: 5000 });
    if (f.event === 'pusher:connection_established') return 'ok';
    return (await c.waitClose(5000)).code;
  } finally {
    c.close();
  }
}

describe('dashboard Apps page', () => {
  it('creates, edits, rotates, disables and deletes an app; the secret is shown once', SLOW, async () => {
    const page = await appsPage(db);
    try {
      assert.equal(await page.isHidden('#read-only'), true);
      await page.click('#new-app');
      await page.fill('#f-id', 'ui-app');
      await page.fill('#f-key', 'ui-key');
      await page.fill('#s-max_connections', '25');
      await page.check('#s-enable_client_messages');
      await page.click('#save');
      await page.locator('#secret-box').waitFor({ state: 'visible', timeout: SHOW });
      const secret = (await page.textContent('#secret-value')).trim();
      assert.match(secret, /^[0-9a-f]{32}$/);
      await row(page, 'ui-app').waitFor({ timeout: SHOW });
      await page.click('#secret-done');
      assert.equal(await page.textContent('#secret-value'), '', 'the secret is gone once dismissed');
      // The app works: a connection with its key is accepted.
      await waitUntil(async () => (await tryConnect(db, 'ui-key')) === 'ok', { timeout: 10_000, what: 'the new app accepts connections' });

      // Edit: a bad value is refused with the field named, a good one saved.
      await row(page, 'ui-app').locator('button.edit').click();
      assert.equal(await page.inputValue('#s-max_connections'), '25');
      await page.fill('#s-max_connections', '-3');
      await page.click('#save');
      await page.waitForFunction(() => /max_connections/.test(document.querySelector('#form-result').textContent), null, { timeout: SHOW });
      await page.fill('#s-max_connections', '30');
      await page.click('#save');
      await page.locator('#editor').waitFor({ state: 'hidden', timeout: SHOW });
      const shown = await page.evaluate(async () => (await (await fetch('api/admin/apps/ui-app')).json()));
      assert.equal(shown.max_connections, 30);
      assert.equal(shown.enable_client_messages, true);
      assert.equal(shown.secret, undefined, 'the secret is never shown again');

      // Rotate: a new secret, shown once.
      await row(page, 'ui-app').locator('button.rotate').click();
      await page.locator('#secret-box').waitFor({ state: 'visible', timeout: SHOW });
      const rotated = (await page.textContent('#secret-value')).trim();
      assert.match(rotated, /^[0-9a-f]{32}$/);
      assert.notEqual(rotated, secret);
      await page.click('#secret-done');

      // Disable: refused with 4003.
      await row(page, 'ui-app').locator('button.disable').click();
      await page.waitForFunction(() => document.querySelector('#apps tr[data-id="ui-app"] td.enabled')?.textContent === 'no', null, { timeout: SHOW });
      await waitUntil(async () => (await tryConnect(db, 'ui-key')) === 4003, { timeout: 10_000, what: '4003 after disable' });

      // Delete: gone, refused with 4001.
      await row(page, 'ui-app').locator('button.delete').click();
      await row(page, 'ui-app').waitFor({ state: 'detached', timeout: SHOW });
      await waitUntil(async () => (await tryConnect(db, 'ui-key')) === 4001, { timeout: 10_000, what: '4001 after delete' });
    } finally {
      await page.close();
    }
  });

  it('the config store is listed read-only and says so; writes answer 409', SLOW, async () => {
    const page = await appsPage(cfg);
    try {
      await page.locator('#read-only').waitFor({ state: 'visible', timeout: SHOW });
      assert.match(await page.textContent('#read-only'), /read-only/);
      assert.equal(await page.isHidden('#new-app'), true);
      await row(page, 'app-id').waitFor({ timeout: SHOW });
      assert.equal(await row(page, 'app-id').locator('button').count(), 0, 'no action on a read-only store');
      const res = await page.evaluate(async () => {
        const s = await (await fetch('api/session')).json();
        const r = await fetch('api/admin/apps/app-id/disable', { method: 'POST', headers: { 'X-CSRF-Token': s.csrf_token, 'Content-Type': 'application/json' }, body: '{}' });
        return { status: r.status, body: await r.json() };
      });
      assert.equal(res.status, 409);
      assert.match(res.body.error, /read-only/);
    } finally {
      await page.close();
    }
  });
});
