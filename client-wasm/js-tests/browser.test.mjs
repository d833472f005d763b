// The wasm client in headless Chromium (Debian's /usr/bin/chromium driven by playwright-core):
// a page served on localhost connects with the npm package, subscribes, and shows the push
// caused by a Node client. The screenshot goes to $NOEX_SCREENSHOT_DIR (default: a temp dir).
import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { readFile, mkdtemp, mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import WebSocket from 'ws';
import { chromium } from 'playwright-core';
import { NoexClient } from '../pkg/index.js';
import { startServer } from './harness.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const pkgDir = path.resolve(here, '../pkg');
const types = { '.html': 'text/html', '.js': 'text/javascript', '.wasm': 'application/wasm', '.ts': 'text/plain' };

const store = {
  buckets: { items: { key: 'id', schema: { id: { type: 'string', generated: 'uuid' }, name: { type: 'string' }, price: { type: 'number' } } } },
  queries: { 'all-items': { bucket: 'items', sort: { price: 'asc' } } },
};

let server;
let web;
let browser;
before(async () => {
  server = await startServer([], { config: { store } });
  web = http.createServer(async (req, res) => {
    const { pathname } = new URL(req.url, 'http://localhost');
    const file = pathname.startsWith('/pkg/')
      ? path.join(pkgDir, pathname.slice('/pkg/'.length))
      : path.join(here, 'browser', pathname === '/' ? 'index.html' : pathname);
    if (!file.startsWith(pkgDir) && !file.startsWith(path.join(here, 'browser'))) {
      res.writeHead(403).end();
      return;
    }
    try {
      const body = await readFile(file);
      res.writeHead(200, { 'content-type': types[path.extname(file)] ?? 'application/octet-stream' }).end(body);
    } catch {
      res.writeHead(404).end();
    }
  });
  await new Promise((resolve) => web.listen(0, '127.0.0.1', resolve));
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update',
      '--disable-sync', '--disable-quic', '--no-first-run'],
  });
});
after(async () => {
  await browser?.close();
  await new Promise((resolve) => (web ? web.close(resolve) : resolve()));
  await server?.stop();
});

test('a page subscribes with the wasm client and shows a push caused by a Node client', async () => {
  const page = await browser.newPage({ viewport: { width: 640, height: 360 } });
  const errors = [];
  page.on('pageerror', (e) => errors.push(e.message));
  await page.goto(`http://127.0.0.1:${web.address().port}/?ws=${encodeURIComponent(server.url)}`);
  await page.waitForFunction(() => window.noex?.ready || window.noex?.error);
  assert.equal(await page.evaluate(() => window.noex.error), undefined);
  assert.match(await page.textContent('#status'), /connected \(protocol 1\.0\.0\)/);

  const node = await NoexClient.connect(server.url, { WebSocket });
  await node.store.bucket('items').insert({ name: 'teapot', price: 18 });
  await node.store.bucket('items').insert({ name: 'kettle', price: 25 });
  await page.waitForFunction(() => document.querySelectorAll('#items li').length === 2);
  assert.deepEqual(await page.$$eval('#items li', (lis) => lis.map((li) => li.textContent)), ['teapot: 18', 'kettle: 25']);

  // The browser's connection is a real one the server sees.
  const connections = await node.server.connections();
  assert.ok(connections.some((c) => c.storeSubscriptionCount === 1));
  node.disconnect();

  const dir = process.env.NOEX_SCREENSHOT_DIR ?? (await mkdtemp(path.join(tmpdir(), 'noex-browser-')));
  await mkdir(dir, { recursive: true });
  const shot = path.join(dir, 'wasm-client-push.png');
  await page.screenshot({ path: shot });
  console.log(`screenshot: ${shot}`);
  assert.deepEqual(errors, []);
  await page.close();
});

test('a page logs in with a password through client.identity', async () => {
  const secret = 'browser-test-admin-secret-0123';
  const own = await startServer([], { config: { identity: { enabled: true, adminSecret: secret } } });
  const admin = await NoexClient.connect(own.url, { WebSocket });
  const page = await browser.newPage({ viewport: { width: 640, height: 360 } });
  try {
    await admin.identity.loginWithSecret(secret);
    const alice = await admin.identity.createUser({ username: 'alice', password: 'correct horse battery' });
    const errors = [];
    page.on('pageerror', (e) => errors.push(e.message));
    await page.goto(`http://127.0.0.1:${web.address().port}/identity.html?ws=${encodeURIComponent(own.url)}`);
    await page.waitForFunction(() => window.noex?.ready || window.noex?.error);
    assert.equal(await page.evaluate(() => window.noex.error), undefined);

    await page.fill('#username', 'alice');
    await page.fill('#password', 'wrong horse');
    await page.click('#login button');
    await page.waitForFunction(() => document.getElementById('status').textContent.startsWith('failed'));
    assert.equal(await page.textContent('#status'), 'failed: UNAUTHORIZED Invalid credentials');

    await page.fill('#password', 'correct horse battery');
    await page.click('#login button');
    await page.waitForFunction(() => document.getElementById('status').textContent.startsWith('logged in'));
    assert.equal(await page.textContent('#status'), `logged in as alice (${alice.id})`);
    // The browser's connection is logged in as alice on the server.
    const connections = await admin.server.connections();
    assert.ok(connections.some((c) => c.userId === alice.id), JSON.stringify(connections));
    assert.deepEqual(errors, []);
  } finally {
    await page.close();
    admin.disconnect();
    await own.stop();
  }
});
