// The noex console. It logs in with an admin session through the wasm client — the npm
// package the server serves under pkg/, the one applications use — then shows buckets with
// their schemas and record counts, a record browser, a live query, rules with their stats and
// recent events, the connected clients, and /metrics as sparklines. Every value from the
// server goes into the page as text (textContent, text nodes), never as markup.
import { NoexClient } from './pkg/index.js';

const REFRESH_MS = 3000;
const METRICS_MS = 2000;
const CHART_POINTS = 60;
const MAX_EVENTS = 50;
const MAX_CELL = 200;
const ADHOC = '';

const $ = (id) => document.getElementById(id);

/** What the end-to-end test reads. */
const probe = { ready: false, loggedIn: false, liveUpdates: 0, refreshes: 0, metricsPolls: 0, error: undefined };
window.noexConsole = probe;

/** An element with text children (strings become text nodes, never markup). */
function h(tag, props = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (key === 'className') el.className = value;
    else if (key.startsWith('on')) el.addEventListener(key.slice(2), value);
    else el.setAttribute(key, value);
  }
  for (const child of children) el.append(child instanceof Node ? child : String(child ?? ''));
  return el;
}

/** A value for a table cell: strings as they are, the rest as JSON, cut to MAX_CELL. */
function cell(value) {
  const text = typeof value === 'string' ? value : JSON.stringify(value) ?? '';
  return text.length > MAX_CELL ? `${text.slice(0, MAX_CELL)}…` : text;
}

/** `1 bucket`, `2 buckets`. */
function count(n, word) {
  return `${n} ${word}${n === 1 ? '' : 's'}`;
}

function describe(error) {
  if (error && typeof error === 'object' && 'code' in error) return `${error.code}: ${error.message}`;
  return String(error?.message ?? error);
}

function setStatus(text, kind) {
  const el = $('status');
  el.textContent = text;
  el.className = `status ${kind ?? ''}`;
}

/** Parses a JSON object typed by the user; '' gives `undefined`. */
function parseObject(text, what) {
  if (text.trim() === '') return undefined;
  let value;
  try {
    value = JSON.parse(text);
  } catch (e) {
    throw new Error(`${what} is not JSON: ${e.message}`);
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) throw new Error(`${what} must be a JSON object`);
  return value;
}

// ---------------------------------------------------------------------------------------
// Session

const state = {
  config: null,
  client: null,
  identitySession: false,
  timers: [],
  names: [],
  live: null,
  events: null,
  records: null,
  metrics: { last: null, series: new Map(), token: '', refused: false },
};

async function boot() {
  const response = await fetch('config.json', { cache: 'no-store' });
  if (!response.ok) throw new Error(`config.json: HTTP ${response.status}`);
  state.config = await response.json();
  $('server-name').textContent = state.config.name;
  const proto = location.protocol === 'https:' ? 'wss:' : 'ws:';
  const host = state.config.sameListener ? location.host : `${location.hostname}:${state.config.wsPort}`;
  $('ws-url').value = `${proto}//${host}${state.config.wsPath}`;
  $('identity-form').hidden = !state.config.identity;
  $('token-form').addEventListener('submit', (e) => {
    e.preventDefault();
    login({ token: $('token').value });
  });
  $('identity-form').addEventListener('submit', (e) => {
    e.preventDefault();
    login({ username: $('username').value, password: $('password').value });
  });
  $('logout').addEventListener('click', () => logout(''));
  $('records-form').addEventListener('submit', (e) => {
    e.preventDefault();
    loadRecords('first');
  });
  $('records-next').addEventListener('click', () => loadRecords('next'));
  $('records-prev').addEventListener('click', () => loadRecords('prev'));
  $('live-form').addEventListener('submit', (e) => {
    e.preventDefault();
    subscribeLive();
  });
  $('live-query').addEventListener('change', () => {
    $('adhoc').open = $('live-query').value === ADHOC;
  });
  $('live-stop').addEventListener('click', () => stopLive());
  $('events-form').addEventListener('submit', (e) => {
    e.preventDefault();
    watchEvents($('events-pattern').value.trim() || '*');
  });
  $('metrics-token-form').addEventListener('submit', (e) => {
    e.preventDefault();
    state.metrics.token = $('metrics-token').value;
    state.metrics.refused = false;
    pollMetrics();
  });
  showLogin('');
  probe.ready = true;
}

function showLogin(message) {
  $('login-view').hidden = false;
  $('console-view').hidden = true;
  $('logout').hidden = true;
  $('who').textContent = '';
  $('login-error').textContent = message;
  setStatus('logged out');
}

async function login(credentials) {
  const url = $('ws-url').value.trim();
  const buttons = document.querySelectorAll('#login-view button');
  buttons.forEach((b) => { b.disabled = true; });
  $('login-error').textContent = '';
  setStatus('logging in');
  let client;
  try {
    let token = credentials.token;
    if (credentials.username !== undefined) {
      // identity.login on a connection of its own; its token then logs in the console's
      // connection (again after every reconnect) with auth.login.
      const first = await NoexClient.connect(url, { reconnect: false });
      try {
        token = (await first.request('identity.login', {
          username: credentials.username,
          password: credentials.password,
        })).token;
      } finally {
        first.disconnect();
      }
    }
    client = await NoexClient.connect(url, { authToken: token });
    // Admin only: the console reads the server's own view of itself.
    try {
      await Promise.all([client.server.stats(), client.server.connections()]);
    } catch (e) {
      if (e?.code === 'FORBIDDEN' || e?.code === 'UNAUTHORIZED') {
        throw new Error('admin access required: this session may not call server.stats and server.connections');
      }
      throw e;
    }
    const who = await client.auth.whoami().catch(() => null);
    state.client = client;
    state.identitySession = credentials.username !== undefined;
    $('token').value = '';
    $('password').value = '';
    $('who').textContent = who?.userId ? `${who.userId} (${(who.roles ?? []).join(', ') || 'no roles'})` : '';
    startConsole(client);
  } catch (e) {
    // A password login refused here still opened an identity session: end it.
    if (client && credentials.username !== undefined) await client.request('identity.logout').catch(() => {});
    client?.disconnect();
    showLogin(describe(e));
  } finally {
    buttons.forEach((b) => { b.disabled = false; });
  }
}

async function logout(message) {
  const client = state.client;
  if (!client) return;
  for (const timer of state.timers) clearInterval(timer);
  state.timers = [];
  await stopLive();
  state.events?.unsubscribe();
  state.events = null;
  if (state.identitySession) await client.request('identity.logout').catch(() => {});
  client.disconnect();
  state.client = null;
  probe.loggedIn = false;
  showLogin(message);
}

function startConsole(client) {
  $('login-view').hidden = true;
  $('console-view').hidden = false;
  $('logout').hidden = false;
  setStatus('connected', 'ok');
  client.on('disconnected', () => setStatus('disconnected', 'bad'));
  client.on('reconnecting', ({ attempt }) => setStatus(`reconnecting (${attempt})`, 'bad'));
  client.on('reconnected', () => setStatus('connected', 'ok'));
  client.on('session_revoked', () => logout('the session was revoked'));
  client.on('shutdown', () => setStatus('server stopping', 'bad'));
  probe.loggedIn = true;
  state.timers.push(setInterval(refresh, REFRESH_MS), setInterval(pollMetrics, METRICS_MS));
  refresh();
  pollMetrics();
  loadQueries();
}

// ---------------------------------------------------------------------------------------
// Buckets, connections, rules: refreshed every REFRESH_MS

let refreshing = false;

async function refresh() {
  const client = state.client;
  // One refresh at a time: a slow server gets no pile of them.
  if (!client?.isConnected || refreshing) return;
  refreshing = true;
  try {
    const [stats, connections] = await Promise.all([client.server.stats(), client.server.connections()]);
    renderBuckets(stats.store);
    renderConnections(connections);
    await renderRules(client, stats);
    probe.refreshes++;
  } catch (e) {
    probe.error = describe(e);
    setStatus(`refresh failed: ${describe(e)}`, 'bad');
  } finally {
    refreshing = false;
  }
}

function renderBuckets(store) {
  const names = store.buckets.names;
  $('buckets-total').textContent = `${count(names.length, 'bucket')}, ${count(store.records.total, 'record')}`;
  const selected = $('records-select').value;
  $('buckets').tBodies[0].replaceChildren(...names.map((name) => {
    const row = h('tr', { className: 'pick', onclick: () => selectBucket(name) },
      h('td', {}, name),
      h('td', { className: 'num' }, store.records.perBucket[name] ?? 0),
      h('td', { className: 'num' }, store.indexes.perBucket[name] ?? 0));
    if (name === state.records?.bucket) row.classList.add('selected');
    return row;
  }));
  if (names.join('\n') !== state.names.join('\n')) {
    state.names = names;
    $('records-select').replaceChildren(...names.map((name) => h('option', { value: name }, name)));
    if (names.includes(selected)) $('records-select').value = selected;
  }
}

async function selectBucket(name) {
  $('records-select').value = name;
  $('schema-title').textContent = `Schema of ${name}`;
  try {
    const schema = await state.client.store.getBucketSchema(name);
    $('schema').textContent = JSON.stringify(schema.config, null, 2);
    $('schema').classList.remove('muted');
  } catch (e) {
    $('schema').textContent = describe(e);
  }
  await loadRecords('first');
}

function renderConnections(connections) {
  $('connections-total').textContent = `${connections.length} open`;
  const now = Date.now();
  $('connections').tBodies[0].replaceChildren(...connections.map((c) => h('tr', {},
    h('td', {}, c.connectionId),
    h('td', {}, c.userId ?? (c.authenticated ? '?' : 'anonymous')),
    h('td', {}, c.remoteAddress),
    h('td', { title: new Date(c.connectedAt).toISOString() }, age(now - c.connectedAt)),
    h('td', { className: 'num' }, c.storeSubscriptionCount + c.rulesSubscriptionCount))));
}

function age(ms) {
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min`;
  return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
}

async function renderRules(client, stats) {
  const on = stats.rulesEnabled && stats.rules;
  $('events-form').querySelector('button').disabled = !on;
  if (!on) {
    $('rules-total').textContent = 'rule engine off';
    $('rules-stats').replaceChildren();
    $('rules').tBodies[0].replaceChildren();
    return;
  }
  const r = stats.rules;
  $('rules-stats').replaceChildren(...[
    ['rules', r.rulesCount], ['facts', r.factsCount], ['timers', r.timersCount],
    ['events', r.eventsProcessed], ['executed', r.rulesExecuted], ['action errors', r.actionErrors],
    ['subscriptions', r.subscriptionsCount], ['avg ms', Number(r.avgProcessingTimeMs).toFixed(2)],
  ].map(([label, value]) => h('div', {}, h('dt', {}, label), h('dd', {}, value))));
  // The first time, the event subscription is in place before the rules are listed.
  if (!state.events) await watchEvents($('events-pattern').value.trim() || '*');
  const { rules } = await client.rules.getRules();
  $('rules-total').textContent = `${rules.length} registered`;
  $('rules').tBodies[0].replaceChildren(...rules.map((rule) => h('tr', {},
    h('td', {}, rule.id), h('td', {}, rule.name), h('td', { className: 'num' }, rule.priority),
    h('td', {}, rule.enabled ? 'yes' : 'no'))));
}

// ---------------------------------------------------------------------------------------
// Record browser: store.paginate pages without a filter, store.where pages with one

async function loadRecords(direction) {
  const client = state.client;
  const bucket = $('records-select').value;
  $('records-error').textContent = '';
  if (!client || !bucket) return;
  let r = state.records;
  try {
    if (direction === 'first' || !r) {
      const limit = Math.min(500, Math.max(1, Number.parseInt($('records-limit').value, 10) || 25));
      const filter = parseObject($('records-filter').value, 'the filter');
      r = { bucket, limit, filter, page: 0, cursors: [undefined], all: null };
      if (filter) r.all = await client.store.bucket(bucket).where(filter);
    } else {
      r = { ...r, page: r.page + (direction === 'next' ? 1 : -1) };
    }
    let records;
    let hasMore;
    if (r.all) {
      records = r.all.slice(r.page * r.limit, (r.page + 1) * r.limit);
      hasMore = r.all.length > (r.page + 1) * r.limit;
    } else {
      const page = await client.store.bucket(r.bucket).paginate({ limit: r.limit, after: r.cursors[r.page] });
      records = page.records;
      hasMore = page.hasMore;
      r.cursors = r.cursors.slice(0, r.page + 1);
      if (hasMore) r.cursors.push(page.nextCursor);
    }
    state.records = r;
    $('records-bucket').textContent = r.filter ? `${r.bucket}, ${r.all.length} matching` : r.bucket;
    $('records-page').textContent = `page ${r.page + 1}${r.all ? ` of ${Math.max(1, Math.ceil(r.all.length / r.limit))}` : ''}`;
    $('records-prev').disabled = r.page === 0;
    $('records-next').disabled = !hasMore;
    renderTable($('records'), records, null);
  } catch (e) {
    $('records-error').textContent = describe(e);
  }
}

/** Fills `table` with `rows` (objects, one column per field; anything else as one value). */
function renderTable(table, rows, previous) {
  const list = Array.isArray(rows) ? rows : [rows];
  const objects = list.every((row) => row !== null && typeof row === 'object' && !Array.isArray(row));
  const columns = [];
  if (objects) {
    for (const row of list) for (const key of Object.keys(row)) if (!columns.includes(key)) columns.push(key);
    // Metadata last.
    columns.sort((a, b) => Number(a.startsWith('_')) - Number(b.startsWith('_')));
  }
  const head = objects ? columns : ['value'];
  table.tHead.replaceChildren(h('tr', {}, ...head.map((c) => h('th', {}, c))));
  table.tBodies[0].replaceChildren(...list.map((row) => {
    const tr = h('tr', {}, ...(objects ? columns.map((c) => h('td', {}, c in row ? cell(row[c]) : '')) : [h('td', {}, cell(row))]));
    if (previous && !previous.has(JSON.stringify(row))) tr.classList.add('fresh');
    return tr;
  }));
  if (list.length === 0) table.tBodies[0].append(h('tr', {}, h('td', { className: 'muted' }, 'no records')));
}

// ---------------------------------------------------------------------------------------
// Live query

async function loadQueries() {
  const select = $('live-query');
  const options = [h('option', { value: ADHOC }, '(ad-hoc query)')];
  try {
    const { queries } = await state.client.store.listQueries();
    for (const q of queries) options.push(h('option', { value: q.name }, `${q.name} (${q.config?.bucket ?? q.type})`));
  } catch (e) {
    $('live-error').textContent = `store.listQueries: ${describe(e)}`;
  }
  select.replaceChildren(...options);
  if (options.length > 1) select.value = options[1].value;
  $('adhoc').open = select.value === ADHOC;
}

async function subscribeLive() {
  const client = state.client;
  $('live-error').textContent = '';
  await stopLive();
  let temporary = null;
  try {
    let query = $('live-query').value;
    const params = parseObject($('live-params').value, 'the params');
    if (query === ADHOC) {
      const config = parseObject($('adhoc-config').value, 'the query definition');
      if (!config) throw new Error('the ad-hoc query needs a definition');
      temporary = `console-${Math.random().toString(36).slice(2, 10)}`;
      await client.store.defineQuery(temporary, config);
      query = temporary;
    }
    const live = { query: temporary ? 'ad-hoc query' : query, temporary, updates: 0, seen: null, unsubscribe: null };
    state.live = live;
    live.unsubscribe = await client.store.subscribe(query, params, (result) => {
      if (state.live !== live) return;
      live.updates++;
      probe.liveUpdates++;
      const rows = Array.isArray(result) ? result : [result];
      renderTable($('live'), result, live.seen);
      live.seen = new Set(rows.map((row) => JSON.stringify(row)));
      const size = Array.isArray(result) ? count(result.length, 'row') : 'one value';
      const updates = live.updates - 1;
      const what = updates === 0 ? 'initial result' : count(updates, 'update');
      $('live-updates').textContent = `${what}, ${size}, last at ${new Date().toLocaleTimeString()}`;
    });
    $('live-state').textContent = `subscribed to ${live.query}`;
    $('live-stop').disabled = false;
  } catch (e) {
    state.live = null;
    if (temporary) await client.store.undefineQuery(temporary).catch(() => {});
    $('live-error').textContent = describe(e);
  }
}

async function stopLive() {
  const live = state.live;
  state.live = null;
  $('live-stop').disabled = true;
  $('live-state').textContent = 'not subscribed';
  if (!live) return;
  live.unsubscribe?.();
  if (live.temporary && state.client) await state.client.store.undefineQuery(live.temporary).catch(() => {});
}

// ---------------------------------------------------------------------------------------
// Rule events

async function watchEvents(pattern) {
  const client = state.client;
  $('events-error').textContent = '';
  const previous = state.events;
  const watch = { pattern, unsubscribe: () => {} };
  state.events = watch;
  previous?.unsubscribe();
  $('events').replaceChildren();
  try {
    watch.unsubscribe = await client.rules.subscribe(pattern, (event, topic) => {
      if (state.events !== watch) return;
      const list = $('events');
      list.prepend(h('li', {},
        h('span', { className: 'time' }, new Date(event.timestamp).toLocaleTimeString()),
        h('span', { className: 'topic' }, topic),
        cell(event.data)));
      while (list.children.length > MAX_EVENTS) list.lastElementChild.remove();
    });
  } catch (e) {
    $('events-error').textContent = describe(e);
  }
}

// ---------------------------------------------------------------------------------------
// Metrics: /metrics every METRICS_MS, a few series as sparklines

const CHARTS = [
  { id: 'connections', label: 'open connections', metric: 'noex_connections_open', rate: false },
  { id: 'requests', label: 'requests / s', metric: 'noex_requests_total', rate: true },
  { id: 'pushes', label: 'pushes / s', metric: 'noex_pushes_total', rate: true },
  { id: 'subscriptions', label: 'subscriptions', metric: 'noex_subscriptions', rate: false },
];

/** Sums every sample of each metric in a Prometheus text exposition, by metric name. */
function parseMetrics(text) {
  const sums = new Map();
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const end = line.search(/[{ ]/);
    const name = end < 0 ? line : line.slice(0, end);
    const value = Number(line.slice(line.lastIndexOf(' ') + 1));
    if (Number.isFinite(value)) sums.set(name, (sums.get(name) ?? 0) + value);
  }
  return sums;
}

let polling = false;

async function pollMetrics() {
  if (!state.client || polling || state.metrics.refused) return;
  polling = true;
  try {
    await scrapeMetrics();
  } finally {
    polling = false;
  }
}

async function scrapeMetrics() {
  const note = $('metrics-note');
  if (!state.config.metrics) {
    note.textContent = 'Metrics are off on this server (http.metrics).';
    return;
  }
  const headers = state.metrics.token ? { Authorization: `Bearer ${state.metrics.token}` } : {};
  let response;
  try {
    response = await fetch('/metrics', { headers, cache: 'no-store' });
  } catch (e) {
    note.textContent = `/metrics: ${describe(e)}`;
    return;
  }
  if (response.status === 401) {
    // No polling with a token known to be refused until another one is given.
    state.metrics.refused = true;
    $('metrics-token-form').hidden = false;
    note.textContent = 'This server asks for a bearer token on /metrics (http.metricsToken).';
    return;
  }
  if (!response.ok) {
    note.textContent = `/metrics: HTTP ${response.status}`;
    return;
  }
  $('metrics-token-form').hidden = true;
  const sums = parseMetrics(await response.text());
  const now = performance.now();
  const last = state.metrics.last;
  for (const chart of CHARTS) {
    const value = sums.get(chart.metric) ?? 0;
    let point = value;
    if (chart.rate) {
      const before = last?.sums.get(chart.metric);
      if (before === undefined) continue;
      point = Math.max(0, value - before) / Math.max(0.001, (now - last.at) / 1000);
    }
    const points = state.metrics.series.get(chart.id) ?? [];
    points.push(point);
    if (points.length > CHART_POINTS) points.shift();
    state.metrics.series.set(chart.id, points);
  }
  state.metrics.last = { at: now, sums };
  note.textContent = `last scrape ${new Date().toLocaleTimeString()}`;
  renderCharts();
  probe.metricsPolls++;
}

const SVG = 'http://www.w3.org/2000/svg';

function renderCharts() {
  $('charts').replaceChildren(...CHARTS.map((chart) => {
    const points = state.metrics.series.get(chart.id) ?? [];
    const latest = points.at(-1);
    const shown = latest === undefined ? '…' : chart.rate ? latest.toFixed(1) : String(Math.round(latest));
    return h('div', { className: 'chart', 'data-chart': chart.id },
      h('div', { className: 'label' }, chart.label),
      h('div', { className: 'value' }, shown),
      sparkline(points));
  }));
}

/** An SVG sparkline of `points` over the full width (the newest on the right; the scale starts at 0). */
function sparkline(points) {
  const svg = document.createElementNS(SVG, 'svg');
  const width = 100;
  svg.setAttribute('viewBox', `0 0 ${width} 40`);
  svg.setAttribute('preserveAspectRatio', 'none');
  if (points.length < 2) return svg;
  const max = Math.max(...points, 1e-9);
  const step = width / (points.length - 1);
  const xy = points.map((p, i) => `${(i * step).toFixed(2)},${(40 - (p / max) * 38).toFixed(2)}`);
  const area = document.createElementNS(SVG, 'polygon');
  area.setAttribute('points', `0,40 ${xy.join(' ')} ${width},40`);
  const line = document.createElementNS(SVG, 'polyline');
  line.setAttribute('points', xy.join(' '));
  svg.append(area, line);
  return svg;
}

window.addEventListener('unhandledrejection', (e) => {
  probe.error = describe(e.reason);
});

boot().catch((e) => {
  probe.error = describe(e);
  setStatus(`failed: ${describe(e)}`, 'bad');
});
