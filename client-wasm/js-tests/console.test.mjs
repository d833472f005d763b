// The browser console (`--console`) in headless Chromium against the real server built with
// `--features console` (scripts/test copies it to target/debug/noex-server-console; or set
// NOEX_CONSOLE_SERVER_BIN): a reader's token is refused, an admin logs in, browses a bucket
// and its schema, filters records, subscribes to a query and sees a record inserted by a Node
// client appear without a reload, sees the connections, a rule and its events, and the
// metrics charts. Screenshots go to $NOEX_SCREENSHOT_DIR (default: a temp dir).
import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdtemp, mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import WebSocket from 'ws';
import { chromium } from 'playwright-core';
import { NoexClient } from '../pkg/index.js';
import { startServer, targetDir } from './harness.mjs';

const bin = process.env.NOEX_CONSOLE_SERVER_BIN ?? path.join(targetDir, 'debug', 'noex-server-console');
const tokens = {
  'admin-token': { userId: 'ada', roles: ['admin'] },
  'reader-token': { userId: 'rex', roles: ['reader'] },
};
const store = {
  buckets: {
    items: {
      key: 'id',
      schema: { id: { type: 'string', generated: 'uuid' }, name: { type: 'string', required: true }, price: { type: 'number' } },
      indexes: ['name'],
    },
  },
  queries: { 'all-items': { bucket: 'items', sort: { price: 'asc' } } },
};

let server;
let browser;
let node;
let shots;
before(async () => {
  assert.ok(existsSync(bin), `${bin} is missing: build it with client-wasm/build-pkg && cargo build -p noex-server `
    + '--features console, copied to target/debug/noex-server-console (scripts/test does), or set NOEX_CONSOLE_SERVER_BIN');
  server = await startServer(['--console'], { config: { store, auth: { tokens } }, bin });
  node = await NoexClient.connect(server.url, { WebSocket, authToken: 'admin-token' });
  const items = node.store.bucket('items');
  await items.insert({ name: 'teapot', price: 18 });
  await items.insert({ name: 'kettle', price: 25 });
  await items.insert({ name: 'cup', price: 4 });
  await node.rules.registerRule({
    id: 'confirm-order', name: 'Confirm orders', priority: 3,
    trigger: { type: 'event', topic: 'order.placed' },
    actions: [{ type: 'emit_event', topic: 'order.confirmed', data: { order: { ref: 'event.order' } } }],
  });
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update',
      '--disable-sync', '--disable-quic', '--no-first-run'],
  });
  shots = process.env.NOEX_SCREENSHOT_DIR ?? (await mkdtemp(path.join(tmpdir(), 'noex-console-')));
  await mkdir(shots, { recursive: true });
});
after(async () => {
  node?.disconnect();
  await browser?.close();
  await server?.stop();
});

/** A console page with its errors (uncaught exceptions, console errors: CSP violations among them) collected. */
async function openConsole() {
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  const errors = [];
  page.on('pageerror', (e) => errors.push(e.message));
  page.on('console', (msg) => { if (msg.type() === 'error') errors.push(msg.text()); });
  // /console redirects to /console/, under which the page's relative URLs resolve.
  const response = await page.goto(`http://127.0.0.1:${server.port}/console`);
  assert.equal(response.status(), 200);
  assert.equal(new URL(page.url()).pathname, '/console/');
  assert.match(response.headers()['content-security-policy'], /script-src 'self' 'wasm-unsafe-eval'/);
  await page.waitForFunction(() => window.noexConsole?.ready || window.noexConsole?.error);
  assert.equal(await page.evaluate(() => window.noexConsole.error), undefined);
  return { page, errors };
}

/** Polls `check` (a server-side state the page cannot signal) every 50 ms, for at most 10 s. */
async function waitFor(check, what) {
  for (let i = 0; !(await check()); i++) {
    assert.ok(i < 200, `timed out waiting: ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function logIn(page, token) {
  await page.fill('#token', token);
  await page.click('#token-form button[type=submit]');
}

async function shot(page, name) {
  const file = path.join(shots, name);
  await page.screenshot({ path: file, fullPage: true });
  console.log(`screenshot: ${file}`);
}

test('a token without admin rights is refused and the console stays logged out', async () => {
  const { page, errors } = await openConsole();
  assert.equal(await page.inputValue('#ws-url'), server.url);
  await logIn(page, 'reader-token');
  await page.waitForFunction(() => document.getElementById('login-error').textContent !== '');
  assert.match(await page.textContent('#login-error'), /admin access required/);
  assert.equal(await page.evaluate(() => window.noexConsole.loggedIn), false);
  assert.equal(await page.isVisible('#console-view'), false);
  // A wrong token is refused by the server itself.
  await logIn(page, 'no-such-token');
  await page.waitForFunction(() => /UNAUTHORIZED/.test(document.getElementById('login-error').textContent));
  await shot(page, 'console-refused.png');
  // Neither login left a connection behind: only the Node client's stays open.
  await waitFor(async () => (await node.server.connections()).length === 1, 'the refused logins disconnected');
  assert.deepEqual(errors, []);
  await page.close();
});

test('an admin browses a bucket, sees a live query update after another client inserts, the clients, rules and metrics', async () => {
  const { page, errors } = await openConsole();
  await logIn(page, 'admin-token');
  await page.waitForFunction(() => window.noexConsole.loggedIn || document.getElementById('login-error').textContent);
  assert.equal(await page.textContent('#login-error'), '');
  assert.match(await page.textContent('#who'), /ada \(admin\)/);

  // Buckets with their record counts; a click shows the schema and the records.
  await page.waitForFunction(() => [...document.querySelectorAll('#buckets tbody tr')]
    .some((tr) => tr.cells[0].textContent === 'items' && tr.cells[1].textContent === '3'));
  await page.click('#buckets tbody tr >> text=items');
  await page.waitForFunction(() => document.querySelectorAll('#records tbody tr').length === 3);
  const schema = JSON.parse(await page.textContent('#schema'));
  assert.deepEqual(schema.schema.price, { type: 'number' });
  assert.deepEqual(schema.indexes, ['name']);
  const names = await page.$$eval('#records tbody tr', (rows) => rows.map((tr) => tr.cells[0].textContent));
  assert.deepEqual(names.sort(), ['cup', 'kettle', 'teapot'].sort());

  // Pages of 2, then a filter.
  await page.fill('#records-limit', '2');
  await page.click('#records-form button[type=submit]');
  await page.waitForFunction(() => document.querySelectorAll('#records tbody tr').length === 2);
  await page.click('#records-next');
  await page.waitForFunction(() => document.querySelectorAll('#records tbody tr').length === 1
    && document.getElementById('records-page').textContent === 'page 2');
  assert.equal(await page.isDisabled('#records-next'), true);
  await page.fill('#records-filter', '{"price": {"$gt": 10}}');
  await page.fill('#records-limit', '25');
  await page.click('#records-form button[type=submit]');
  await page.waitForFunction(() => document.getElementById('records-bucket').textContent === 'items, 2 matching');
  await page.fill('#records-filter', '{"price": ');
  await page.click('#records-form button[type=submit]');
  await page.waitForFunction(() => /not JSON/.test(document.getElementById('records-error').textContent));
  await page.fill('#records-filter', '');

  // A live query: the defined one, sorted by price; a Node client's insert appears.
  await page.waitForFunction(() => document.getElementById('live-query').value === 'all-items');
  await page.click('#live-form button[type=submit]');
  await page.waitForFunction(() => document.querySelectorAll('#live tbody tr').length === 3);
  await node.store.bucket('items').insert({ name: 'saucer <b>bold</b>', price: 9 });
  await page.waitForFunction(() => document.querySelectorAll('#live tbody tr').length === 4);
  const live = await page.$$eval('#live thead th, #live tbody tr', (els) => els.map((el) => el.textContent));
  assert.ok(live.some((text) => text.includes('saucer <b>bold</b>')), 'the markup is shown as text');
  assert.equal(await page.$$eval('#live b', (bs) => bs.length), 0, 'no markup from data');
  const prices = await page.$$eval('#live tbody tr', (rows) => {
    const column = [...document.querySelectorAll('#live thead th')].findIndex((th) => th.textContent === 'price');
    return rows.map((tr) => Number(tr.cells[column].textContent));
  });
  assert.deepEqual(prices, [4, 9, 18, 25]);
  assert.ok((await page.evaluate(() => window.noexConsole.liveUpdates)) >= 2);
  assert.match(await page.textContent('#live-state'), /subscribed to all-items/);

  // An ad-hoc query.
  await page.selectOption('#live-query', '');
  await page.fill('#adhoc-config', '{"bucket": "items", "filter": {"price": {"$lt": 10}}}');
  await page.click('#live-form button[type=submit]');
  await page.waitForFunction(() => document.querySelectorAll('#live tbody tr').length === 2);
  const adhoc = (await node.store.listQueries()).queries.filter((q) => q.name.startsWith('console-'));
  assert.equal(adhoc.length, 1);
  assert.equal(adhoc[0].activeSubscriptions, 1);
  await page.click('#live-stop');
  await page.waitForFunction(() => document.getElementById('live-state').textContent === 'not subscribed');
  // Undefined again once unsubscribed.
  await waitFor(async () => !(await node.store.listQueries()).queries.some((q) => q.name.startsWith('console-')),
    'the ad-hoc query is undefined');
  await page.selectOption('#live-query', 'all-items');
  await page.click('#live-form button[type=submit]');
  await page.waitForFunction(() => document.querySelectorAll('#live tbody tr').length === 4);
  await node.store.bucket('items').insert({ name: 'mug', price: 12 });
  await page.waitForFunction(() => document.querySelectorAll('#live tbody tr').length === 5
    && document.getElementById('live-updates').textContent.startsWith('1 update, 5 rows'));
  assert.equal(await page.$$eval('#live tbody tr.fresh', (rows) => rows.map((tr) => tr.cells[0].textContent)).then((n) => n.join()), 'mug');

  // Connections: the Node client's and the console's own.
  await page.waitForFunction(() => {
    const users = [...document.querySelectorAll('#connections tbody tr')].map((tr) => tr.cells[1].textContent);
    return users.length === 2 && users.every((u) => u === 'ada');
  });

  // Rules and recent events.
  await page.waitForFunction(() => [...document.querySelectorAll('#rules tbody tr')]
    .some((tr) => tr.cells[0].textContent === 'confirm-order' && tr.cells[3].textContent === 'yes'));
  await node.rules.emit('order.placed', { order: 'o-17' });
  await page.waitForFunction(() => {
    const topics = [...document.querySelectorAll('#events li .topic')].map((s) => s.textContent);
    return topics.includes('order.placed') && topics.includes('order.confirmed');
  });
  assert.match(await page.textContent('#events'), /"order":"o-17"/);

  // Metrics: the console polls /metrics; after a burst of requests the rate shows.
  await page.waitForFunction(() => window.noexConsole.metricsPolls >= 2);
  for (let i = 0; i < 40; i++) await node.store.bucket('items').count();
  await page.waitForFunction(() => {
    const chart = document.querySelector('[data-chart=requests]');
    return chart && Number(chart.querySelector('.value').textContent) > 0 && chart.querySelector('polyline');
  });
  assert.equal(await page.textContent('[data-chart=connections] .value'), '2');
  await page.waitForFunction(() => document.querySelector('[data-chart=subscriptions] polyline'));

  await page.fill('#records-filter', '');
  await page.click('#records-form button[type=submit]');
  await page.waitForFunction(() => document.querySelectorAll('#records tbody tr').length === 5);
  await shot(page, 'console-live.png');

  // Logging out closes the console's connection.
  await page.click('#logout');
  await page.waitForFunction(() => !window.noexConsole.loggedIn);
  await waitFor(async () => (await node.server.connections()).length === 1, 'the console disconnected');
  assert.deepEqual(errors, []);
  await page.close();
});

test('with the built-in identity, an admin user logs in with a password, a user without the role is refused, /metrics takes its token', async () => {
  const secret = 'console-test-admin-secret';
  const identity = await startServer(['--console', '--metrics-token', 'scrape-secret'],
    { config: { identity: { enabled: true, adminSecret: secret } }, bin });
  const root = await NoexClient.connect(identity.url, { WebSocket });
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  try {
    await root.request('identity.loginWithSecret', { secret });
    const olga = await root.request('identity.createUser', { username: 'olga', password: 'correct horse battery' });
    await root.request('identity.assignRole', { userId: olga.id, roleName: 'admin' });
    await root.request('identity.createUser', { username: 'pete', password: 'correct horse battery' });

    const errors = [];
    page.on('pageerror', (e) => errors.push(e.message));
    page.on('console', (msg) => { if (msg.type() === 'error') errors.push(msg.text()); });
    await page.goto(`http://127.0.0.1:${identity.port}/console/`);
    await page.waitForFunction(() => window.noexConsole?.ready);
    assert.equal(await page.isVisible('#identity-form'), true);
    const logIn = async (username) => {
      await page.fill('#username', username);
      await page.fill('#password', 'correct horse battery');
      await page.click('#identity-form button[type=submit]');
    };
    await logIn('pete');
    await page.waitForFunction(() => /admin access required/.test(document.getElementById('login-error').textContent));
    assert.equal(await page.evaluate(() => window.noexConsole.loggedIn), false);
    await logIn('olga');
    await page.waitForFunction(() => window.noexConsole.loggedIn);
    await page.waitForFunction((id) => [...document.querySelectorAll('#connections tbody tr')]
      .some((tr) => tr.cells[1].textContent === id), olga.id);
    // /metrics wants its bearer token here: the page asks for it, then charts.
    await page.waitForSelector('#metrics-token-form', { state: 'visible' });
    assert.equal(await page.evaluate(() => window.noexConsole.metricsPolls), 0);
    await page.fill('#metrics-token', 'scrape-secret');
    await page.click('#metrics-token-form button[type=submit]');
    await page.waitForFunction(() => window.noexConsole.metricsPolls >= 1);
    await page.waitForSelector('#metrics-token-form', { state: 'hidden' });
    // The console's session is the identity's: logging out ends it.
    await page.click('#logout');
    await page.waitForFunction(() => !window.noexConsole.loggedIn);
    await waitFor(async () => (await root.server.connections()).length === 1, 'the console disconnected');
    // Chromium logs the refused scrape (the page polls again only once given a token).
    assert.deepEqual(errors, ['Failed to load resource: the server responded with a status of 401 (Unauthorized)']);
  } finally {
    await page.close();
    root.disconnect();
    await identity.stop();
  }
});
