// The dashboard page: one NoexClient logged in with the viewer token (read-only). Everything
// shown comes from live subscriptions to the declarative queries of noex.json:
//   figures   avg-by-host / max-by-host {name}, samples-by-host, samples   (see dashboard.js)
//   chart     latest {name}: the newest 60 samples of the selected metric
// URL parameters: ?ws=ws://host:port/ (default: this host, port 8081) and ?token= (default
// viewer-secret, the viewer token of noex.json).
import { NoexClient } from '/pkg/index.js';
import { METRICS, LABELS, hostsOf, formatValue, watchFigures, watchLatest } from './dashboard.js';

const params = new URLSearchParams(location.search);
const url = params.get('ws') ?? `ws://${location.hostname}:8081/`;
const token = params.get('token') ?? 'viewer-secret';
const $ = (id) => document.getElementById(id);
const SVG = 'http://www.w3.org/2000/svg';
const PALETTE = ['#2563eb', '#dc2626', '#059669', '#d97706', '#7c3aed', '#0891b2', '#db2777', '#65a30d'];
window.dashboard = { pushes: 0 };

const state = { model: null, points: [], metric: 'cpu', stopChart: null };

function showError(e) {
  const banner = $('error');
  banner.textContent = e ? `${e.code ?? 'ERROR'}: ${e.message}` : '';
  banner.hidden = !e;
}

function el(tag, props = {}, text) {
  const node = document.createElement(tag);
  Object.assign(node, props);
  if (text !== undefined) node.textContent = text;
  return node;
}

/** A stable color per host: its place among every host seen (figures and chart). */
function colorOf(host) {
  const hosts = [...new Set([...hostsOf(state.model ?? { hosts: {} }), ...state.points.map((p) => p.host)])].sort();
  return PALETTE[Math.max(0, hosts.indexOf(host)) % PALETTE.length];
}

function countPush() {
  window.dashboard.pushes += 1;
  $('pushes').textContent = `${window.dashboard.pushes} pushes received`;
  $('pushes').dataset.count = String(window.dashboard.pushes);
}

function cell(host, metric, stat, value) {
  const td = el('td', { className: 'figure' }, formatValue(metric, stat, value));
  Object.assign(td.dataset, { host, stat, value: value === null ? '' : String(value) });
  if (metric) td.dataset.metric = metric;
  return td;
}

function renderFigures(model) {
  state.model = model;
  $('total').textContent = formatValue(null, 'total', model.total);
  $('total').dataset.value = String(model.total);
  const tbody = $('figures').tBodies[0];
  const before = new Map([...tbody.querySelectorAll('td.figure')].map((td) => [`${td.dataset.host}/${td.dataset.metric}/${td.dataset.stat}`, td.textContent]));
  tbody.replaceChildren(...hostsOf(model).map((host) => {
    const entry = model.hosts[host];
    const tr = el('tr');
    tr.dataset.host = host;
    const name = el('td', { className: 'host' });
    const dot = el('i');
    dot.style.background = colorOf(host);
    name.append(dot, host);
    tr.append(name);
    for (const metric of METRICS) {
      tr.append(cell(host, metric, 'avg', entry[metric].avg), cell(host, metric, 'max', entry[metric].max));
    }
    tr.append(cell(host, undefined, 'samples', entry.samples));
    for (const td of tr.querySelectorAll('td.figure')) {
      const old = before.get(`${td.dataset.host}/${td.dataset.metric}/${td.dataset.stat}`);
      if (old !== undefined && old !== td.textContent) td.classList.add('changed');
    }
    return tr;
  }));
  $('empty').hidden = model.total > 0;
  renderChart();
}

function svg(tag, attrs, text) {
  const node = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
  if (text !== undefined) node.textContent = text;
  return node;
}

/** Draws the latest samples: one line per host, time on x, value on y; no library. */
function renderChart() {
  const chart = $('chart');
  const [width, height, left, right, top, bottom] = [720, 260, 44, 12, 12, 26];
  const points = state.points;
  chart.dataset.metric = state.metric;
  chart.dataset.points = String(points.length);
  const children = [];
  const percent = state.metric !== 'requests';
  const peak = Math.max(percent ? 100 : 10, ...points.map((p) => p.value));
  const yMax = percent ? 100 : Math.ceil(peak / 50) * 50;
  const times = points.map((p) => p.at);
  const [t0, t1] = [Math.min(...times), Math.max(...times)];
  const x = (at) => (t1 > t0 ? left + ((at - t0) / (t1 - t0)) * (width - left - right) : (left + width - right) / 2);
  const y = (v) => top + (1 - v / yMax) * (height - top - bottom);
  for (let i = 0; i <= 4; i++) {
    const v = (yMax * i) / 4;
    children.push(svg('line', { class: 'grid', x1: left, x2: width - right, y1: y(v), y2: y(v) }));
    children.push(svg('text', { class: 'axis', x: left - 6, y: y(v) + 4, 'text-anchor': 'end' }, String(v)));
  }
  if (points.length === 0) {
    children.push(svg('text', { class: 'axis', x: width / 2, y: height / 2, 'text-anchor': 'middle' }, 'no samples yet'));
  } else {
    const span = Math.round((t1 - t0) / 1000);
    children.push(svg('text', { class: 'axis', x: left, y: height - 8 }, `−${span} s`));
    children.push(svg('text', { class: 'axis', x: width - right, y: height - 8, 'text-anchor': 'end' }, new Date(t1).toLocaleTimeString()));
  }
  const hosts = [...new Set(points.map((p) => p.host))].sort();
  for (const host of hosts) {
    const series = points.filter((p) => p.host === host);
    const color = colorOf(host);
    children.push(svg('polyline', { stroke: color, points: series.map((p) => `${x(p.at).toFixed(1)},${y(p.value).toFixed(1)}`).join(' ') }));
    for (const p of series) {
      const dot = svg('circle', { class: 'point', cx: x(p.at).toFixed(1), cy: y(p.value).toFixed(1), r: 3, fill: color, 'data-host': host, 'data-value': p.value, 'data-id': p.id });
      dot.append(svg('title', {}, `${host} ${LABELS[state.metric]} ${p.value} at ${new Date(p.at).toLocaleTimeString()}`));
      children.push(dot);
    }
  }
  chart.replaceChildren(...children);
  $('legend').replaceChildren(...hosts.map((host) => {
    const li = el('li');
    const dot = el('i');
    dot.style.background = colorOf(host);
    li.append(dot, host);
    return li;
  }));
}

async function showMetric(metric) {
  await state.stopChart?.();
  state.metric = metric;
  let first = true;
  state.stopChart = await watchLatest(client, metric, (points) => {
    if (!first) countPush();
    first = false;
    state.points = points;
    renderChart();
  });
}

let client;
try {
  client = await NoexClient.connect(url, { authToken: token });
  client.on('disconnected', () => {
    $('status').textContent = `disconnected from ${url}, reconnecting`;
    showError({ code: 'DISCONNECTED', message: 'lost the connection to the server; the figures are frozen until it is back' });
  });
  client.on('reconnected', () => {
    $('status').textContent = `connected to ${url} (reconnected)`;
    showError(null);
  });
  let initial = true;
  await watchFigures(client, (model) => {
    if (!initial) countPush();
    renderFigures(model);
  });
  initial = false;
  await showMetric('cpu');
  $('metric').addEventListener('change', (ev) => {
    showMetric(ev.target.value).then(() => showError(null), showError);
  });
  const who = await client.auth.whoami();
  $('status').textContent = `connected to ${url} as ${who.userId} (${who.roles.join(', ')}), protocol ${client.welcome.version}`;
  window.dashboard.ready = true;
} catch (e) {
  $('status').textContent = `not connected to ${url}`;
  showError(e);
  window.dashboard.error = `${e.code}: ${e.message}`;
}
