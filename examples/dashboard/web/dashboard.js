// The dashboard's data on top of the noex wasm client: which declarative queries make up the
// figures, how their results become one model, and how values are formatted. Used by the page
// (app.js) and by the test from Node with the same package: every function takes a connected
// NoexClient (logged in as a viewer).

/** The metric names the agent writes (the `name` enum of the `metrics` bucket). */
export const METRICS = ['cpu', 'mem', 'requests'];

/** Labels of the metrics for the page. */
export const LABELS = { cpu: 'CPU %', mem: 'memory %', requests: 'requests' };

/** The queries (noex.json `store.queries`) behind the figures: [query, params, where it goes]. */
export const FIGURE_QUERIES = [
  ...METRICS.flatMap((metric) => [
    ['avg-by-host', { name: metric }, { metric, stat: 'avg' }],
    ['max-by-host', { name: metric }, { metric, stat: 'max' }],
  ]),
  ['samples-by-host', undefined, { stat: 'samples' }],
  ['samples', undefined, { stat: 'total' }],
];

/** A model with no data: `{total, hosts: {host: {samples, cpu: {avg, max}, ...}}}`. */
export function emptyModel() {
  return { total: 0, hosts: {} };
}

function hostEntry(model, host) {
  model.hosts[host] ??= { samples: 0, ...Object.fromEntries(METRICS.map((m) => [m, { avg: null, max: null }])) };
  return model.hosts[host];
}

/**
 * Puts one query result into `model`. `groups` is a groupBy aggregate result
 * (`[{key: {host}, value}]`), or a number for the `samples` count. A host missing from a new
 * result (its records expired) loses that figure.
 */
export function applyResult(model, target, groups) {
  if (target.stat === 'total') {
    model.total = groups;
    return;
  }
  for (const entry of Object.values(model.hosts)) {
    if (target.stat === 'samples') entry.samples = 0;
    else entry[target.metric][target.stat] = null;
  }
  for (const { key, value } of groups) {
    const entry = hostEntry(model, key.host);
    if (target.stat === 'samples') entry.samples = value;
    else entry[target.metric][target.stat] = value;
  }
  for (const [host, entry] of Object.entries(model.hosts)) {
    if (entry.samples === 0 && METRICS.every((m) => entry[m].avg === null && entry[m].max === null)) delete model.hosts[host];
  }
}

/** Host names of a model, sorted. */
export function hostsOf(model) {
  return Object.keys(model.hosts).sort();
}

/** How a figure is shown: percentages and averages with one decimal, counts as integers. */
export function formatValue(metric, stat, value) {
  if (value === null || value === undefined) return '–';
  if (stat === 'samples' || stat === 'total') return String(value);
  if (metric === 'requests' && stat === 'max') return value.toFixed(0);
  return value.toFixed(1);
}

/**
 * Subscribes to every figure query; `onChange(model)` runs after the initial results arrived
 * and again on every push. Resolves to a function that unsubscribes them all.
 */
export async function watchFigures(client, onChange) {
  const model = emptyModel();
  let ready = false;
  const unsubscribes = [];
  try {
    for (const [query, params, target] of FIGURE_QUERIES) {
      unsubscribes.push(await client.store.subscribe(query, params, (result) => {
        applyResult(model, target, result);
        if (ready) onChange(model);
      }));
    }
  } catch (e) {
    for (const unsubscribe of unsubscribes) await unsubscribe().catch(() => {});
    throw e;
  }
  ready = true;
  onChange(model);
  return async () => {
    for (const unsubscribe of unsubscribes.splice(0)) await unsubscribe();
  };
}

/** The figures as they are now (initial results of the same queries). */
export async function readFigures(client) {
  let snapshot;
  const stop = await watchFigures(client, (model) => { snapshot ??= structuredClone(model); });
  await stop();
  return snapshot;
}

/**
 * Subscribes to the chart's query (`latest`: the newest 60 samples of `metric`, newest first);
 * `onChange(points)` gets them oldest first. Resolves to the unsubscribe function.
 */
export function watchLatest(client, metric, onChange) {
  return client.store.subscribe('latest', { name: metric }, (rows) => onChange([...rows].reverse()));
}

/** The chart's points of `metric` as they are now, oldest first. */
export async function readLatest(client, metric) {
  let points;
  const stop = await watchLatest(client, metric, (rows) => { points ??= rows; });
  await stop();
  return points;
}
