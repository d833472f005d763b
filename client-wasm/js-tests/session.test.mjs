// The wasm client's auth and rules APIs in Node.js against the real server, including
// the automatic re-login after a reconnect.
import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import WebSocket from 'ws';
import { NoexClient } from '../pkg/index.js';
import { inbox, startServer } from './harness.mjs';

const config = {
  auth: {
    tokens: { 'tok-admin': { userId: 'ada', roles: ['admin'] }, 'tok-reader': { userId: 'rea', roles: ['reader'] } },
    permissions: { default: 'allow' },
  },
  store: { buckets: { notes: { key: 'id', schema: { id: { type: 'string', generated: 'uuid' }, text: { type: 'string' } } } } },
};

let server;
before(async () => { server = await startServer([], { config }); });
after(async () => { await server.stop(); });

test('login, whoami, permission tiers, logout', async () => {
  const client = await NoexClient.connect(server.url, { WebSocket });
  assert.equal(client.welcome.requiresAuth, true);
  await assert.rejects(client.store.bucket('notes').all(), { code: 'UNAUTHORIZED', message: 'Authentication required' });
  await assert.rejects(client.auth.login('bogus'), { code: 'UNAUTHORIZED', message: 'Invalid token' });
  assert.deepEqual(await client.auth.login('tok-reader'), { userId: 'rea', roles: ['reader'], expiresAt: null });
  assert.deepEqual(await client.store.bucket('notes').all(), []);
  // A tier refusal names the tier, as the original's.
  await assert.rejects(client.store.bucket('notes').insert({ text: 'x' }), {
    code: 'FORBIDDEN',
    message: 'Role level insufficient for store.insert (requires write)',
  });
  assert.deepEqual(await client.auth.logout(), { loggedOut: true });
  assert.deepEqual(await client.auth.whoami(), { authenticated: false });
  client.disconnect();
});

test('authToken logs in on connect and again after a reconnect', async () => {
  const own = await startServer([], { config });
  const client = await NoexClient.connect(own.url, {
    WebSocket,
    authToken: 'tok-admin',
    reconnect: { initialDelayMs: 50, maxDelayMs: 200, jitterMs: 0 },
  });
  assert.deepEqual(await client.auth.whoami(), { authenticated: true, userId: 'ada', roles: ['admin'], expiresAt: null });
  const reconnected = new Promise((resolve) => client.on('reconnected', resolve));
  await own.stop();
  const again = await startServer([], { config, port: own.port });
  try {
    await reconnected;
    // The re-login went out before any request made after the reconnect.
    assert.equal((await client.auth.whoami()).userId, 'ada');
    assert.equal((await client.store.bucket('notes').insert({ text: 'hi' })).text, 'hi');
    client.disconnect();
  } finally {
    await again.stop();
  }
});

test('rules: a subscriber gets the events another client emits', async () => {
  const a = await NoexClient.connect(server.url, { WebSocket, authToken: 'tok-admin' });
  const b = await NoexClient.connect(server.url, { WebSocket, authToken: 'tok-admin' });
  try {
    const seen = inbox();
    const unsubscribe = await a.rules.subscribe('order.*', (event, topic) => seen.push({ event, topic }));
    const emitted = await b.rules.emit('order.created', { total: 3 });
    assert.equal(emitted.source, 'api');
    assert.deepEqual(await seen.next(), { event: emitted, topic: 'order.created' });
    unsubscribe();
  } finally {
    a.disconnect();
    b.disconnect();
  }
});

test('rules: facts come back whole, {key, value, timestamp, source, version}', async () => {
  const client = await NoexClient.connect(server.url, { WebSocket, authToken: 'tok-admin' });
  try {
    const first = await client.rules.setFact('js:1', 'a');
    const set = await client.rules.setFact('js:1', 'b');
    assert.deepEqual(Object.keys(set), ['key', 'value', 'timestamp', 'source', 'version']);
    assert.equal(set.source, 'api');
    assert.equal(set.version, first.version + 1);
    assert.equal(typeof set.timestamp, 'number');
    assert.deepEqual(await client.rules.queryFacts('js:*'), [set]);
    assert.deepEqual((await client.rules.getAllFacts()).filter((f) => f.key === 'js:1'), [set]);
    assert.equal(await client.rules.getFact('js:1'), 'b');
  } finally {
    client.disconnect();
  }
});
