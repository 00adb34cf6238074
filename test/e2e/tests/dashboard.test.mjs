// The dashboard in a real browser: headless Chromium (Debian's
// /usr/bin/chromium) driven by playwright-core, against the real binary.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe } from 'node:test';
import { fileURLToPath } from 'node:url';

import { chromium } from 'playwright-core';

import { app, record, sleep, subscribed, useHerald, waitUntil } from '../harness.mjs';

const TOKEN = 'e2e-admin-token-' + Math.random().toString(36).slice(2);
const h = useHerald({ admin_token: TOKEN, apps: [app(), app({ id: 'other-app', key: 'other-key', secret: 'other-secret' })] });

const HERE = path.dirname(fileURLToPath(import.meta.url));
const ARTIFACTS = path.join(HERE, '..', 'artifacts');
const CHROMIUM = process.env.CHROMIUM_BIN || '/usr/bin/chromium';

let context; // a persistent browser context on a fresh profile
let profile;

before(async () => {
  profile = fs.mkdtempSync(path.join(os.tmpdir(), 'herald-chromium-'));
  context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    viewport: { width: 1280, height: 1100 },
  });
  // Generous: the machine may be busy with other test runs.
  context.setDefaultTimeout(60_000);
  context.setDefaultNavigationTimeout(60_000);
});

// Browser tests get more time than protocol tests (start-up, rendering).
const SLOW = { timeout: 180_000 };
// How long the page has to show something.
const SHOW = 30_000;

after(async () => {
  if (context) await context.close();
  if (profile) fs.rmSync(profile, { recursive: true, force: true });
});

const dashboardUrl = () => `${h.server.httpBase}/dashboard/`;

/** A new page, logged in (a page of its own, so each test starts fresh). */
async function loggedIn() {
  await context.clearCookies();
  const page = await context.newPage();
  h.addCleanup(() => page.close());
  await page.goto(dashboardUrl());
  await page.fill('#token', TOKEN);
  await Promise.all([page.waitForURL(dashboardUrl()), page.click('#login-button')]);
  await page.waitForSelector('#connections');
  // Live once the first poll came back.
  await page.waitForFunction(() => document.querySelector('#status').textContent.startsWith('live'), null, { timeout: SHOW });
  return page;
}

const connections = (page) => page.textContent('#connections').then((t) => Number(t));

async function waitText(page, selector, want, timeout = SHOW) {
  await page.waitForFunction(
    ([sel, w]) => document.querySelector(sel)?.textContent.trim() === w,
    [selector, String(want)],
    { timeout },
  ).catch(async (err) => {
    throw new Error(`${selector} is ${JSON.stringify(await page.textContent(selector))}, want ${want}: ${err.message}`);
  });
}

describe('dashboard', () => {
  h.test('a wrong token is refused with 401 and a message; no session is made', async () => {
    await context.clearCookies();
    const page = await context.newPage();
    h.addCleanup(() => page.close());
    await page.goto(dashboardUrl());
    await page.fill('#token', 'not-the-token');
    const [resp] = await Promise.all([
      page.waitForResponse((r) => r.url().endsWith('/dashboard/login')),
      page.click('#login-button'),
    ]);
    assert.equal(resp.status(), 401);
    assert.match(await page.textContent('#login-error'), /Wrong admin token/);
    assert.equal(await page.$('#connections'), null, 'the dashboard is not shown');
    assert.deepEqual(await context.cookies(), []);
    const api = await page.evaluate(async () => {
      const r = await fetch('api/apps');
      return { status: r.status, body: await r.json() };
    });
    assert.deepEqual(api, { status: 401, body: { error: 'Log in to the dashboard first', code: 401 } });
  }, SLOW);

  h.test('logs in; the connection count follows clients connecting and disconnecting', async () => {
    const page = await loggedIn();
    const cookies = await context.cookies();
    assert.equal(cookies.length, 1);
    assert.equal(cookies[0].httpOnly, true);
    assert.equal(cookies[0].sameSite, 'Strict');
    await waitText(page, '#connections', 0);
    const clients = [await h.pusher(), await h.pusher(), await h.pusher()];
    await waitText(page, '#connections', 3);
    clients[0].disconnect();
    clients[1].disconnect();
    await waitText(page, '#connections', 1);
    // The graph has points (drawn from the samples).
    const points = await page.evaluate(async () => (await (await fetch('api/apps/app-id/stats')).json()).series.length);
    assert.ok(points >= 1);
  }, SLOW);

  h.test('an event published through the HTTP API appears in the live log', async () => {
    const page = await loggedIn();
    const res = await h.api().trigger('orders', 'order-shipped', { id: 42 });
    assert.equal(res.status, 200);
    const row = page.locator('#log tbody tr.type-api_event', { hasText: 'order-shipped' });
    await row.first().waitFor({ timeout: SHOW });
    const text = await row.first().textContent();
    assert.match(text, /orders/);
    assert.match(text, /\{"id":42\}/);
  }, SLOW);

  h.test('an event sent from the form reaches a pusher-js client; channels and members are listed', async () => {
    const page = await loggedIn();
    const client = await h.pusher({ user: 1 });
    const news = client.subscribe('news');
    await subscribed(news);
    const room = client.subscribe('presence-room');
    await subscribed(room);
    const got = record(news, 'from-dashboard');

    await page.fill('#send-channel', 'news');
    await page.fill('#send-event', 'from-dashboard');
    await page.fill('#send-data', '{"hello":"browser"}');
    await page.click('#send-button');
    await waitText(page, '#send-result', 'sent');
    await got.waitFor(1, SHOW);
    assert.deepEqual(got[0].data, { hello: 'browser' });

    // The channels table and the presence members.
    await page.locator('#channels tbody tr', { hasText: 'news' }).waitFor({ timeout: SHOW });
    const roomRow = page.locator('#channels tbody tr.presence', { hasText: 'presence-room' });
    await roomRow.waitFor({ timeout: SHOW });
    await roomRow.click();
    await page.locator('#members li', { hasText: 'Ada Lovelace' }).waitFor({ timeout: SHOW });
    // The test event shows in the console too.
    await page.locator('#log tbody tr.type-dashboard_event', { hasText: 'from-dashboard' }).first().waitFor({ timeout: SHOW });
  }, SLOW);

  h.test('screenshot of a dashboard with traffic (test artifact)', async () => {
    const page = await loggedIn();
    const clients = [];
    for (const user of [1, 2, 3]) {
      const c = await h.pusher({ user });
      await subscribed(c.subscribe('presence-lobby'));
      await subscribed(c.subscribe('orders'));
      await subscribed(c.subscribe('private-chat'));
      clients.push(c);
    }
    for (let i = 0; i < 4; i++) clients.push(await h.pusher());
    const chat = clients[0].channel('private-chat');
    // A few seconds of traffic, so that the graphs have a shape.
    for (let s = 0; s < 6; s++) {
      for (let i = 0; i <= s * 2; i++) await h.api().trigger('orders', 'order-created', { id: s * 100 + i, total: '9.99' });
      chat.trigger('client-typing', { user: 'Ada' });
      await sleep(1000);
    }
    await page.locator('#channels tbody tr.presence', { hasText: 'presence-lobby' }).click();
    await page.locator('#members li', { hasText: 'Grace Hopper' }).waitFor({ timeout: SHOW });
    await waitUntil(async () => (await connections(page)) === 7, { timeout: SHOW, what: '7 connections shown' });
    await page.fill('#send-channel', 'orders');
    await page.fill('#send-event', 'order-created');
    // Traffic while the picture is taken, so the rates are not zero.
    let n = 0;
    const traffic = setInterval(() => { h.api().trigger('orders', 'order-created', { id: 1000 + n++, total: '9.99' }).catch(() => {}); }, 100);
    h.addCleanup(() => clearInterval(traffic));
    await page.waitForFunction(() => Number(document.querySelector('#rate-out').textContent) > 0, null, { timeout: SHOW });
    fs.mkdirSync(ARTIFACTS, { recursive: true });
    const file = path.join(ARTIFACTS, 'dashboard.png');
    await page.screenshot({ path: file, fullPage: true });
    clearInterval(traffic);
    assert.ok(fs.statSync(file).size > 10_000);
    if (process.env.HERALD_UPDATE_SCREENSHOT) {
      fs.copyFileSync(file, path.join(HERE, '..', '..', '..', 'docs', 'img', 'dashboard.png'));
    }
  }, SLOW);
});
