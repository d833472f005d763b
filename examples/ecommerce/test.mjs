// End-to-end test of the e-commerce example: the real noex-server with noex.json (payment
// window shortened to 2 s), the real Rust `shop` CLI, Node clients (wasm package) checking
// what the transactions, rules and permissions did, and the page in headless Chromium.
//   node --test examples/ecommerce/test.mjs   (after cargo build -p noex-server -p noex-examples,
//                                             client-wasm/build-pkg, npm ci in client-wasm/js-tests)
// Binaries come from $CARGO_TARGET_DIR/debug (default target/debug). The screenshot goes to
// $NOEX_SCREENSHOT_DIR (default: a temp dir).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, writeFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { NoexClient } from '../../client-wasm/pkg/index.js';
import { serve } from '../common/serve.mjs';
import { requireDev, targetBin, startServer, launchChromium, screenshotPath, collectPageErrors } from '../common/harness.mjs';
import { mint } from './token.mjs';
import { configWithPaymentWindow } from './config.mjs';
import { placeOrder, orderStatus } from './web/shop.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const WebSocket = requireDev('ws');

const PAYMENT_WINDOW_MS = 2000;
const tokens = {
  admin: mint({ sub: 'ada', roles: ['admin'] }),
  carol: mint({ sub: 'carol', roles: ['customer'] }),
  dan: mint({ sub: 'dan', roles: ['customer'] }),
  expired: mint({ sub: 'carol', roles: ['customer'], ttlSeconds: -3600 }),
  forged: mint({ sub: 'mallory', roles: ['admin'], key: 'not-the-secret' }),
};

let tmp;
let server;
let wsUrl;
let web;
let browser;
let admin;


/** Runs the real `shop` binary; resolves to {code, stdout, stderr} (never rejects on exit codes). */
function shop(token, ...args) {
  return new Promise((resolve, reject) => {
    const argv = ['--url', wsUrl, ...(token ? ['--token', token] : []), ...args];
    execFile(targetBin('shop'), argv, { timeout: 20000 }, (error, stdout, stderr) => {
      if (error && typeof error.code !== 'number') reject(error);
      else resolve({ code: error ? error.code : 0, stdout, stderr });
    });
  });
}

/** `shop order`, expected to succeed; resolves to the order id it printed. */
async function shopOrder(token, product, qty) {
  const r = await shop(token, 'order', product, String(qty));
  assert.equal(r.code, 0, r.stderr);
  const m = r.stdout.match(/^order (o-[a-z0-9-]+) placed/);
  assert.ok(m, r.stdout);
  return m[1];
}

const connect = (token) => NoexClient.connect(wsUrl, { WebSocket, authToken: token, reconnect: { maxRetries: 0 } });
const stockOf = async (productId) => (await admin.store.bucket('inventory').get(productId)).stock;
const counts = async () => ({
  orders: await admin.store.bucket('orders').count(),
  log: await admin.store.bucket('order_log').count(),
});

/** Collects `order.*` events of a client; `next(pred)` resolves with the first (past or future) match. */
async function eventLog(client) {
  const events = [];
  const waiters = [];
  await client.rules.subscribe('order.*', (event, topic) => {
    events.push({ topic, data: event.data });
    for (const w of waiters.splice(0)) if (!w.done(events)) waiters.push(w);
  });
  return {
    events,
    next(pred, timeoutMs = 10000) {
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no matching event within ${timeoutMs} ms; seen ${JSON.stringify(events)}`)), timeoutMs);
        const w = { done: (all) => { const hit = all.find(pred); if (hit) { clearTimeout(timer); resolve(hit); } return !!hit; } };
        if (!w.done(events)) waiters.push(w);
      });
    },
  };
}

before(async () => {
  tmp = await mkdtemp(path.join(tmpdir(), 'noex-shop-'));
  const configFile = path.join(tmp, 'noex.json');
  await writeFile(configFile, JSON.stringify(configWithPaymentWindow(PAYMENT_WINDOW_MS)));
  server = await startServer(configFile);
  wsUrl = server.url;
  web = await serve(path.join(here, 'web'), 0);
  browser = await launchChromium();
  admin = await connect(tokens.admin);
  // The demo catalogue, created by the CLI with the admin token.
  const seeded = await shop(tokens.admin, 'seed');
  assert.equal(seeded.code, 0, seeded.stderr);
  assert.match(seeded.stdout, /seeded: 8 records created/);
});

after(async () => {
  admin?.disconnect();
  await browser?.close();
  await new Promise((resolve) => (web ? web.close(resolve) : resolve()));
  await server?.stop();
  if (tmp) await rm(tmp, { recursive: true, force: true });
});

test('the shop CLI places an order as one transaction; a short stock fails it with nothing written', async () => {
  const before = await counts();
  const orderId = await shopOrder(tokens.carol, 'mug', 3);
  assert.equal(await stockOf('mug'), 7);
  const order = await admin.store.bucket('orders').get(orderId);
  assert.deepEqual({ customer: order.customer, productId: order.productId, qty: order.qty, total: order.total },
    { customer: 'carol', productId: 'mug', qty: 3, total: 36 });
  const log = await admin.store.bucket('order_log').where({ orderId });
  assert.equal(log.length, 1);
  assert.deepEqual({ id: log[0].id, change: log[0].change, stockBefore: log[0].stockBefore, stockAfter: log[0].stockAfter },
    { id: 'mug@1', change: -3, stockBefore: 10, stockAfter: 7 });
  assert.deepEqual(await counts(), { orders: before.orders + 1, log: before.log + 1 });
  const listed = await shop(tokens.carol, 'orders');
  assert.match(listed.stdout, new RegExp(`${orderId}\\s+3 x mug`));

  // 5 hoodies, 2 in stock: the stock update fails validation (min 0) and takes the order and
  // the log entry with it.
  const short = await shop(tokens.carol, 'order', 'hoodie', '5');
  assert.equal(short.code, 1);
  assert.match(short.stderr, /not enough stock of hoodie: 2 left, 5 ordered; nothing was written \(VALIDATION_ERROR: /);
  assert.equal(await stockOf('hoodie'), 2);
  assert.deepEqual(await counts(), { orders: before.orders + 1, log: before.log + 1 });
  assert.equal(await admin.store.bucket('orders').count({ productId: 'hoodie' }), 0);

  // Four CLI orders at once from the same stock: the log key <product>@<version> lets only one
  // commit per reading; the others fail whole (ALREADY_EXISTS) and retry, so none is lost.
  const ids = await Promise.all([1, 2, 3, 4].map(() => shopOrder(tokens.dan, 'sticker', 2)));
  assert.equal(new Set(ids).size, 4);
  assert.equal(await stockOf('sticker'), 50 - 8);
  const stickerLog = await admin.store.bucket('order_log').where({ productId: 'sticker' });
  assert.deepEqual(stickerLog.map((e) => e.stockAfter).sort((a, b) => b - a), [48, 46, 44, 42]);

  // The guard itself: a transaction computed from a stale reading (version 1, already used)
  // fails whole with ALREADY_EXISTS on the log key; nothing of it is written.
  const node = await connect(tokens.dan);
  const stale = { before: await counts(), stock: await stockOf('sticker') };
  await assert.rejects(node.store.transaction([
    { op: 'update', bucket: 'inventory', key: 'sticker', data: { stock: 49 } },
    { op: 'insert', bucket: 'orders', data: { id: 'o-stale', customer: 'dan', productId: 'sticker', qty: 1, unitPrice: 3.5, total: 3.5, placedAt: 1 } },
    { op: 'insert', bucket: 'order_log', data: { id: 'sticker@1', orderId: 'o-stale', customer: 'dan', productId: 'sticker', change: -1, stockBefore: 50, stockAfter: 49, at: 1 } },
  ]), (e) => e.code === 'ALREADY_EXISTS' && e.details.bucket === 'order_log');
  assert.equal(await stockOf('sticker'), stale.stock);
  assert.deepEqual(await counts(), stale.before);

  // The same transaction from the wasm client (web/shop.js), and its failure on a short stock.
  const placed = await placeOrder(node, { customer: 'dan', productId: 'tshirt', qty: 5 });
  assert.equal(placed.total, 125);
  assert.equal(await stockOf('tshirt'), 0);
  await assert.rejects(placeOrder(node, { customer: 'dan', productId: 'tshirt', qty: 1 }),
    (e) => e.code === 'VALIDATION_ERROR' && e.details.some((d) => d.field === 'stock' && d.code === 'min'));
  assert.equal(await admin.store.bucket('orders').count({ productId: 'tshirt' }), 1);
  node.disconnect();
});

test('JWT auth: customers are FORBIDDEN admin operations, admins may; invalid and expired tokens are rejected', async () => {
  const before = await stockOf('mug');
  const denied = await shop(tokens.carol, 'restock', 'mug', '5');
  assert.equal(denied.code, 1);
  assert.match(denied.stderr, /restocking mug: FORBIDDEN: No permission for store.insert on restocks/);
  assert.equal(await stockOf('mug'), before);
  const allowed = await shop(tokens.admin, 'restock', 'mug', '5');
  assert.equal(allowed.code, 0, allowed.stderr);
  assert.equal(await stockOf('mug'), before + 5);
  const restocks = await admin.store.bucket('restocks').where({ productId: 'mug' });
  assert.deepEqual(restocks.map((r) => [r.qty, r.by, r.stockBefore, r.stockAfter]), [[5, 'ada', before, before + 5]]);

  const carol = await connect(tokens.carol);
  const who = await carol.auth.whoami();
  assert.deepEqual([who.userId, who.roles], ['carol', ['customer']]);
  await assert.rejects(carol.store.bucket('products').insert({ id: 'free', name: 'Free', price: 0 }), { code: 'FORBIDDEN' });
  // Every operation inside a transaction is checked on its own: a customer may not slip a
  // write into a bucket they cannot write directly (here the admin-only restocks).
  await assert.rejects(carol.store.transaction([
    { op: 'insert', bucket: 'products', data: { id: 'free', name: 'Free', price: 0 } },
  ]), { code: 'FORBIDDEN', message: 'No permission for store.insert on products' });
  await assert.rejects(carol.store.transaction([
    { op: 'update', bucket: 'inventory', key: 'mug', data: { stock: 1000 } },
    { op: 'insert', bucket: 'restocks', data: { id: 'mug@x', productId: 'mug', qty: 1, by: 'carol', stockBefore: 0, stockAfter: 1000, at: 0 } },
  ]), { code: 'FORBIDDEN', message: 'No permission for store.insert on restocks' });
  assert.equal(await stockOf('mug'), before + 5);
  await assert.rejects(carol.store.bucket('orders').delete('anything'), { code: 'FORBIDDEN' });
  await assert.rejects(carol.rules.emit('order.created', { orderId: 'o-fake' }), { code: 'FORBIDDEN' });
  await assert.rejects(carol.store.subscribe('revenue', undefined, () => {}), { code: 'FORBIDDEN' });
  // What customers may do: read the catalogue, subscribe to it, emit payments.
  assert.equal((await carol.store.bucket('products').all()).length, 4);
  await carol.rules.emit('payment.received', { orderId: 'o-unknown' });
  carol.disconnect();
  assert.equal(await admin.store.subscribe('revenue', undefined, () => {}).then((u) => typeof u), 'function');

  await assert.rejects(connect(tokens.expired), { code: 'UNAUTHORIZED', message: 'Token has expired' });
  await assert.rejects(connect(tokens.forged), { code: 'UNAUTHORIZED', message: 'Invalid token' });
  const anonymous = await NoexClient.connect(wsUrl, { WebSocket, reconnect: { maxRetries: 0 } });
  await assert.rejects(anonymous.store.bucket('products').all(), { code: 'UNAUTHORIZED', message: 'Authentication required' });
  anonymous.disconnect();
  const expired = await shop(tokens.expired, 'products');
  assert.equal(expired.code, 1);
  assert.match(expired.stderr, /UNAUTHORIZED: Token has expired/);
  const forged = await shop(tokens.forged, 'products');
  assert.equal(forged.code, 1);
  assert.match(forged.stderr, /UNAUTHORIZED: Invalid token/);
});

test('rules: a paid order becomes paid; an unpaid one gets order.payment_timeout and is cancelled', async () => {
  const carol = await connect(tokens.carol);
  const events = await eventLog(carol);
  // Placed first, paid at once: its window is the first to end, and it must not fire.
  const paid = await shopOrder(tokens.carol, 'sticker', 1);
  await events.next((e) => e.topic === 'order.status' && e.data.orderId === paid && e.data.status === 'pending');
  const payment = await shop(tokens.carol, 'pay', paid);
  assert.equal(payment.code, 0, payment.stderr);
  assert.equal(payment.stdout.trim(), `order ${paid}: paid`);
  await events.next((e) => e.topic === 'order.status' && e.data.orderId === paid && e.data.status === 'paid');
  assert.equal(await orderStatus(carol, paid), 'paid');

  // Placed second, never paid: the absence rule fires when its window ends.
  const placedAt = Date.now();
  const unpaid = await shopOrder(tokens.carol, 'sticker', 1);
  assert.equal(await orderStatus(carol, unpaid), 'pending');
  const timeout = await events.next((e) => e.topic === 'order.payment_timeout' && e.data.orderId === unpaid);
  assert.ok(Date.now() - placedAt >= PAYMENT_WINDOW_MS - 50, 'the timeout came before the window ended');
  assert.equal(timeout.data.customer, 'carol');
  await events.next((e) => e.topic === 'order.status' && e.data.orderId === unpaid && e.data.status === 'cancelled');
  assert.equal(await orderStatus(carol, unpaid), 'cancelled');
  // The paid order's window ended before the unpaid one's: no timeout, still paid.
  // (Orders of the first test, never paid, time out meanwhile too.)
  assert.deepEqual(events.events.filter((e) => e.topic === 'order.payment_timeout' && [paid, unpaid].includes(e.data.orderId))
    .map((e) => e.data.orderId), [unpaid]);
  assert.equal(await orderStatus(carol, paid), 'paid');

  // Paying after the cancellation is refused by the rules; paying twice is refused by the CLI.
  const late = await shop(tokens.carol, 'pay', unpaid);
  assert.equal(late.code, 1);
  assert.match(late.stderr, /payment of .* refused: the order was cancelled/);
  assert.equal(await orderStatus(carol, unpaid), 'cancelled');
  const twice = await shop(tokens.carol, 'pay', paid);
  assert.equal(twice.code, 1);
  assert.match(twice.stderr, /is already paid/);
  carol.disconnect();
});

test('the page shows live stock, my orders with their rule-kept status, and errors with their code', async () => {
  const page = await browser.newPage({ viewport: { width: 1100, height: 700 } });
  const errors = collectPageErrors(page);
  const base = `http://127.0.0.1:${web.address().port}/?ws=${encodeURIComponent(wsUrl)}`;
  await page.goto(`${base}&token=${tokens.carol}`);
  await page.waitForFunction(() => window.shop?.ready || window.shop?.error);
  assert.equal(await page.evaluate(() => window.shop.error), undefined);
  assert.equal(await page.textContent('#who'), 'carol (customer)');

  const stockCell = (id) => `#products tr[data-product="${id}"] td.stock`;
  const waitForText = (selector, text) => page.waitForFunction(([s, t]) => document.querySelector(s)?.textContent === t,
    [selector, text], { timeout: 10000 }).catch(async (e) => {
    throw new Error(`${selector}: expected ${JSON.stringify(text)}, got ${JSON.stringify(await page.$eval(selector, (n) => n.textContent).catch(() => null))}; banner ${await page.textContent('#error')} (${e.message})`);
  });
  const mug = await stockOf('mug');
  await waitForText(stockCell('mug'), String(mug));
  await waitForText(stockCell('tshirt'), '0');

  // The CLI orders: the page's stock and "my orders" follow live.
  const orderId = await shopOrder(tokens.carol, 'mug', 2);
  await waitForText(stockCell('mug'), String(mug - 2));
  const status = `#orders tr[data-order="${orderId}"] td.status`;
  await waitForText(status, 'pending');
  await page.click(`#orders tr[data-order="${orderId}"] button.pay`);
  await waitForText(status, 'paid');

  // An order from the page's form; left unpaid, the rules cancel it when the window ends.
  await page.selectOption('#order-product', 'sticker');
  await page.fill('#order-qty', '3');
  await page.click('#order button');
  const fromPage = await page.waitForFunction(() => [...document.querySelectorAll('#orders tr')]
    .find((tr) => tr.children[1].textContent === 'sticker' && tr.children[2].textContent === '3')?.dataset.order);
  await waitForText(`#orders tr[data-order="${await fromPage.jsonValue()}"] td.status`, 'cancelled');

  // Ordering more than the stock: the banner shows the protocol code, nothing changes.
  const before = await counts();
  await page.selectOption('#order-product', 'hoodie');
  await page.fill('#order-qty', '9');
  await page.click('#order button');
  await page.waitForFunction(() => document.querySelector('#error').textContent.startsWith('VALIDATION_ERROR: '));
  assert.deepEqual(await counts(), before);
  assert.equal(await page.isHidden('#admin'), true);

  // The admin page restocks; the customer's page sees it.
  const adminPage = await browser.newPage({ viewport: { width: 1100, height: 700 } });
  const adminErrors = collectPageErrors(adminPage);
  await adminPage.goto(`${base}&token=${tokens.admin}`);
  await adminPage.waitForFunction(() => window.shop?.ready || window.shop?.error);
  assert.equal(await adminPage.evaluate(() => window.shop.error), undefined);
  await adminPage.waitForFunction((n) => document.querySelector('#order-count').textContent === String(n), before.orders);
  await adminPage.selectOption('#restock-product', 'tshirt');
  await adminPage.fill('#restock-qty', '4');
  await adminPage.click('#restock button');
  await waitForText(stockCell('tshirt'), '4');
  await adminPage.close();
  assert.deepEqual(adminErrors, []);

  const shot = await screenshotPath('ecommerce.png');
  await page.screenshot({ path: shot, fullPage: true });
  console.log(`screenshot: ${shot}`);
  assert.deepEqual(errors, []);
  await page.close();
});
