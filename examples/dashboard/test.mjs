// End-to-end test of the dashboard example: the real noex-server with
// examples/dashboard/noex.json, the real Rust agent (dashboard-agent) writing metrics, the page
// served on localhost in headless Chromium (playwright-core), and Node clients checking that the
// page shows what the server's queries return and that the permissions hold.
//   node --test examples/dashboard/test.mjs   (after cargo build -p noex-server -p noex-examples,
//                                             client-wasm/build-pkg, npm ci in client-wasm/js-tests)
// Binaries come from $CARGO_TARGET_DIR/debug (default target/debug); NOEX_SERVER_BIN and
// NOEX_AGENT_BIN override them. The screenshot goes to $NOEX_SCREENSHOT_DIR (default: a temp dir).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { NoexClient } from '../../client-wasm/pkg/index.js';
import { serve } from '../common/serve.mjs';
import { requireDev, targetBin, startServer, launchChromium, screenshotPath, collectPageErrors } from '../common/harness.mjs';
import { METRICS, hostsOf, formatValue, readFigures, readLatest } from './web/dashboard.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const WebSocket = requireDev('ws');

const agentBin = process.env.NOEX_AGENT_BIN ?? targetBin('dashboard-agent');
const HOSTS = ['web-1', 'web-2', 'db-1'];

let server;
let web;
let browser;
let viewer;
let agent;
let wsUrl;


/** Runs the real Rust agent to completion; resolves to {code, stdout, stderr}. */
async function runAgent(args) {
  const child = spawn(agentBin, ['--url', wsUrl, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk) => { stdout += chunk; });
  child.stderr.on('data', (chunk) => { stderr += chunk; });
  const [code] = await once(child, 'exit');
  return { code, stdout, stderr };
}

before(async () => {
  server = await startServer(path.join(here, 'noex.json'));
  wsUrl = server.url;
  web = await serve(path.join(here, 'web'), 0);
  browser = await launchChromium();
  viewer = await NoexClient.connect(wsUrl, { WebSocket, authToken: 'viewer-secret' });
  agent = await NoexClient.connect(wsUrl, { WebSocket, authToken: 'agent-secret' });
});

after(async () => {
  viewer?.disconnect();
  agent?.disconnect();
  await browser?.close();
  await new Promise((resolve) => (web ? web.close(resolve) : resolve()));
  await server?.stop();
});

const pageUrl = (query = '') => `http://127.0.0.1:${web.address().port}/?ws=${encodeURIComponent(wsUrl)}${query}`;

/** What the page's table must show for `model`: [host, metric, stat, text] per figure cell. */
function expectedCells(model) {
  return hostsOf(model).flatMap((host) => [
    ...METRICS.flatMap((metric) => ['avg', 'max'].map((stat) =>
      [host, metric, stat, formatValue(metric, stat, model.hosts[host][metric][stat])])),
    [host, '', 'samples', formatValue(null, 'samples', model.hosts[host].samples)],
  ]);
}

/** Waits until the page's total and every table cell show exactly what `model` says. */
async function waitForFigures(page, model) {
  const want = { total: String(model.total), cells: expectedCells(model) };
  const shown = () => ({
    total: document.getElementById('total').textContent,
    cells: [...document.querySelectorAll('#figures td.figure')]
      .map((td) => [td.dataset.host, td.dataset.metric ?? '', td.dataset.stat, td.textContent]),
  });
  await page.waitForFunction(([w, fn]) => JSON.stringify(new Function(`return (${fn})()`)()) === JSON.stringify(w),
    [want, shown.toString()], { timeout: 10000 }).catch(async (e) => {
    const got = await page.evaluate(shown);
    const banner = await page.$eval('#error', (n) => n.textContent);
    throw new Error(`figures: expected ${JSON.stringify(want)}, got ${JSON.stringify(got)}; banner: ${banner} (${e.message})`);
  });
}

/** Waits until the chart shows exactly `points` (the `latest` query's rows) as circles. */
async function waitForChart(page, metric, points) {
  const want = points.map((p) => [p.id, p.host, String(p.value)]);
  const shown = () => [...document.querySelectorAll('#chart circle.point')]
    .map((c) => [Number(c.dataset.id), c.dataset.host, c.dataset.value]).sort((a, b) => a[0] - b[0]);
  await page.waitForFunction(([m, w, fn]) => document.getElementById('chart').dataset.metric === m
      && JSON.stringify(new Function(`return (${fn})()`)()) === JSON.stringify(w),
  [metric, want, shown.toString()], { timeout: 10000 }).catch(async (e) => {
    throw new Error(`chart ${metric}: expected ${JSON.stringify(want)}, got ${JSON.stringify(await page.evaluate(shown))} (${e.message})`);
  });
}

test('the Rust agent writes metrics; the page shows the live aggregates and chart the server computes; permissions hold', async () => {
  const page = await browser.newPage({ viewport: { width: 820, height: 900 } });
  const errors = collectPageErrors(page);
  await page.goto(pageUrl());
  await page.waitForFunction(() => window.dashboard?.ready || window.dashboard?.error);
  assert.equal(await page.evaluate(() => window.dashboard.error), undefined);
  assert.match(await page.textContent('#status'), /as wall-screen \(viewer\)/);

  // Empty store: no host rows, total 0, an empty chart.
  await waitForFigures(page, { total: 0, hosts: {} });
  assert.equal(await page.isVisible('#empty'), true);
  assert.equal(await page.getAttribute('#chart', 'data-points'), '0');

  // The real Rust agent writes 4 rounds: 3 hosts x 3 metrics each.
  const first = await runAgent(['--token', 'agent-secret', '--count', '4', '--interval-ms', '20', '--seed', '42']);
  assert.equal(first.code, 0, `agent failed: ${first.stderr}`);
  assert.match(first.stdout, /4 round\(s\), 36 sample\(s\) written, 0 failed/);
  assert.match(first.stdout, /^round 4: web-1 cpu=[\d.]+ mem=[\d.]+ requests=\d+ \| web-2 /m);

  // The page's figures are the server's query results (read here by a Node viewer client).
  const afterFirst = await readFigures(viewer);
  assert.equal(afterFirst.total, 36);
  assert.deepEqual(hostsOf(afterFirst), [...HOSTS].sort());
  for (const host of HOSTS) assert.equal(afterFirst.hosts[host].samples, 12);
  await waitForFigures(page, afterFirst);
  assert.equal(await page.isVisible('#empty'), false);
  // Cross-check the groupBy aggregates against plain per-host reads of the bucket.
  const metrics = viewer.store.bucket('metrics');
  for (const host of HOSTS) {
    for (const name of METRICS) {
      const rows = await metrics.where({ host, name });
      assert.equal(rows.length, 4);
      const values = rows.map((r) => r.value);
      const mean = values.reduce((a, b) => a + b, 0) / values.length;
      assert.ok(Math.abs(afterFirst.hosts[host][name].avg - mean) < 1e-9, `${host} ${name} avg`);
      assert.equal(afterFirst.hosts[host][name].max, Math.max(...values));
      assert.ok(values.every((v) => v >= 0 && (name === 'requests' || v <= 100)));
    }
  }
  // The chart shows the `latest` cpu samples: 4 rounds x 3 hosts = 12 points.
  const cpuPoints = await readLatest(viewer, 'cpu');
  assert.equal(cpuPoints.length, 12);
  await waitForChart(page, 'cpu', cpuPoints);
  const pushesAfterFirst = Number(await page.getAttribute('#pushes', 'data-count'));
  assert.ok(pushesAfterFirst > 0, 'the page got pushes');

  // A second run changes the figures again, live.
  const second = await runAgent(['--token', 'agent-secret', '--count', '2', '--interval-ms', '20', '--seed', '7', '--quiet']);
  assert.equal(second.code, 0, `agent failed: ${second.stderr}`);
  assert.equal(second.stdout.trim(), 'dashboard-agent: 2 round(s), 18 sample(s) written, 0 failed');
  const afterSecond = await readFigures(viewer);
  assert.equal(afterSecond.total, 54);
  await waitForFigures(page, afterSecond);
  await waitForChart(page, 'cpu', await readLatest(viewer, 'cpu'));
  assert.ok(Number(await page.getAttribute('#pushes', 'data-count')) > pushesAfterFirst);

  // The chart follows the metric selector (requests: 6 rounds x 3 hosts = 18 points).
  await page.selectOption('#metric', 'requests');
  const requestPoints = await readLatest(viewer, 'requests');
  assert.equal(requestPoints.length, 18);
  await waitForChart(page, 'requests', requestPoints);

  // A sample written by a Node agent client shows up too (chart and figures).
  await agent.store.bucket('metrics').insert({ host: 'cache-1', name: 'requests', value: 999, at: Date.now() });
  const withCache = await readFigures(viewer);
  assert.equal(withCache.hosts['cache-1'].requests.max, 999);
  await waitForFigures(page, withCache);
  await waitForChart(page, 'requests', await readLatest(viewer, 'requests'));

  // Permissions. A viewer cannot write...
  await assert.rejects(viewer.store.bucket('metrics').insert({ host: 'web-1', name: 'cpu', value: 1, at: 1 }),
    { code: 'FORBIDDEN', message: 'No permission for store.insert on metrics' });
  await assert.rejects(viewer.store.bucket('metrics').clear(), { code: 'FORBIDDEN' });
  // ...an agent can only insert into metrics, not read...
  await assert.rejects(agent.store.bucket('metrics').all(), { code: 'FORBIDDEN', message: 'No permission for store.all on metrics' });
  await assert.rejects(agent.store.subscribe('samples', undefined, () => {}), { code: 'FORBIDDEN' });
  // ...and an invalid record is refused by the schema, with every problem listed.
  await assert.rejects(agent.store.bucket('metrics').insert({ host: 'Web 1', name: 'disk', value: -1 }), (e) => {
    assert.equal(e.code, 'VALIDATION_ERROR');
    assert.deepEqual(e.details.map((d) => [d.field, d.code]).sort(),
      [['at', 'required'], ['host', 'pattern'], ['name', 'enum'], ['value', 'min']]);
    return true;
  });
  // Without a token nothing works.
  const anonymous = await NoexClient.connect(wsUrl, { WebSocket });
  try {
    assert.equal(anonymous.welcome.requiresAuth, true);
    await assert.rejects(anonymous.store.bucket('metrics').all(), { code: 'UNAUTHORIZED', message: 'Authentication required' });
    await assert.rejects(anonymous.store.subscribe('samples', undefined, () => {}), { code: 'UNAUTHORIZED' });
    await assert.rejects(anonymous.store.bucket('metrics').insert({ host: 'x', name: 'cpu', value: 1, at: 1 }), { code: 'UNAUTHORIZED' });
    await assert.rejects(anonymous.auth.login('nope'), { code: 'UNAUTHORIZED', message: 'Invalid token' });
  } finally {
    anonymous.disconnect();
  }
  // The Rust agent reports a rejected token and a forbidden write clearly, with exit code 1.
  const badToken = await runAgent(['--token', 'nope', '--count', '1']);
  assert.equal(badToken.code, 1);
  assert.match(badToken.stderr, /dashboard-agent: error: login with --token was rejected by .*: UNAUTHORIZED: Invalid token/);
  const asViewer = await runAgent(['--token', 'viewer-secret', '--count', '1']);
  assert.equal(asViewer.code, 1);
  assert.match(asViewer.stderr, /dashboard-agent: error: writing round 1 into "metrics" failed: FORBIDDEN: No permission for store.transaction on \*/);
  const badHost = await runAgent(['--hosts', 'Web 1', '--count', '1']);
  assert.equal(badHost.code, 2);
  assert.match(badHost.stderr, /--hosts: "Web 1" is not a valid host name/);
  // Nothing of that reached the store.
  assert.equal((await readFigures(viewer)).total, 55);

  // A page with a wrong token shows the error banner.
  const denied = await browser.newPage();
  await denied.goto(pageUrl('&token=wrong'));
  await denied.waitForFunction(() => window.dashboard?.ready || window.dashboard?.error);
  assert.equal(await denied.textContent('#error'), 'UNAUTHORIZED: Invalid token');
  assert.equal(await denied.isVisible('#error'), true);
  await denied.close();

  // Back to the cpu chart for the screenshot.
  await page.selectOption('#metric', 'cpu');
  await waitForChart(page, 'cpu', await readLatest(viewer, 'cpu'));
  assert.equal(await page.isVisible('#error'), false);
  const shot = await screenshotPath('dashboard.png');
  await page.screenshot({ path: shot, fullPage: true });
  console.log(`screenshot: ${shot}`);
  assert.deepEqual(errors, []);
  await page.close();
});
