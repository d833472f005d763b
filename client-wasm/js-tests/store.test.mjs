// The wasm client's store API in Node.js against the real server: CRUD, queries,
// subscriptions pushed by a second client, transactions, reconnect with resubscription.
import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import WebSocket from 'ws';
import { NoexClient } from '../pkg/index.js';
import { inbox, startServer } from './harness.mjs';

const store = {
  buckets: {
    items: {
      key: 'id',
      schema: {
        id: { type: 'string', generated: 'uuid' },
        name: { type: 'string', required: true },
        price: { type: 'number', min: 0 },
      },
    },
  },
  queries: {
    'all-items': { bucket: 'items', sort: { price: 'asc' } },
    'items-cheaper-than': { bucket: 'items', filter: { price: { $lt: '{{ params.max }}' } } },
  },
};

let server;
before(async () => { server = await startServer([], { config: { store } }); });
after(async () => { await server.stop(); });

const strip = ({ _version, _createdAt, _updatedAt, ...rest }) => rest;

test('bucket CRUD and queries', async () => {
  const client = await NoexClient.connect(server.url, { WebSocket });
  await client.store.defineBucket('users', {
    key: 'id',
    schema: {
      id: { type: 'number', required: true },
      name: { type: 'string', required: true },
      age: { type: 'number' },
    },
  });
  const users = client.store.bucket('users');
  const ada = await users.insert({ id: 1, name: 'Ada', age: 36 });
  assert.deepEqual(strip(ada), { id: 1, name: 'Ada', age: 36 });
  assert.equal(ada._version, 1);
  await users.insert({ id: 2, name: 'Bob', age: 20 });
  await users.insert({ id: 3, name: 'Cyd', age: 50 });

  assert.deepEqual(strip(await users.get(1)), { id: 1, name: 'Ada', age: 36 });
  assert.equal(await users.get(99), null);
  const updated = await users.update(1, { age: 37 });
  assert.deepEqual([updated.age, updated._version], [37, 2]);
  await assert.rejects(users.update(99, { age: 1 }), { code: 'NOT_FOUND' });

  assert.deepEqual((await users.all()).map((u) => u.id), [1, 2, 3]);
  assert.deepEqual((await users.where({ age: { $gte: 37 } })).map((u) => u.id), [1, 3]);
  assert.equal((await users.findOne({ name: 'Bob' })).id, 2);
  assert.equal(await users.findOne({ name: 'Zed' }), null);
  assert.equal(await users.count(), 3);
  assert.equal(await users.count({ age: { $lt: 40 } }), 2);
  assert.deepEqual((await users.first(2)).map((u) => u.id), [1, 2]);
  assert.deepEqual((await users.last(1)).map((u) => u.id), [3]);
  const page = await users.paginate({ limit: 2 });
  assert.deepEqual([page.records.map((u) => u.id), page.hasMore, page.nextCursor], [[1, 2], true, 2]);
  const rest = await users.paginate({ limit: 2, after: page.nextCursor });
  assert.deepEqual([rest.records.map((u) => u.id), rest.hasMore], [[3], false]);
  assert.equal(await users.sum('age'), 107);
  assert.equal(await users.avg('age', { id: { $in: [2, 3] } }), 35);
  assert.equal(await users.min('age'), 20);
  assert.equal(await users.max('age'), 50);

  assert.deepEqual(await users.delete(2), { deleted: true });
  assert.equal(await users.count(), 2);
  assert.deepEqual(await users.clear(), { cleared: true });
  assert.deepEqual(await users.all(), []);
  client.disconnect();
});

test('schema and unique violations reject with their details', async () => {
  const client = await NoexClient.connect(server.url, { WebSocket });
  await assert.rejects(client.store.bucket('items').insert({ price: -1 }), (e) => {
    assert.equal(e.code, 'VALIDATION_ERROR');
    assert.ok(Array.isArray(e.details) && e.details.length >= 1, JSON.stringify(e.details));
    return true;
  });
  await assert.rejects(client.store.bucket('nope').all(), { code: 'BUCKET_NOT_DEFINED' });
  await assert.rejects(client.store.subscribe('no-such-query', () => {}), { code: 'QUERY_NOT_DEFINED' });
  client.disconnect();
});

test('a subscription gets the initial result, then pushes caused by another client', async () => {
  const watcher = await NoexClient.connect(server.url, { WebSocket });
  const writer = await NoexClient.connect(server.url, { WebSocket });
  const seen = inbox();
  const unsubscribe = await watcher.store.subscribe('items-cheaper-than', { max: 10 }, seen.push);
  assert.deepEqual(await seen.next(), []);

  const pen = await writer.store.bucket('items').insert({ name: 'pen', price: 2 });
  assert.deepEqual((await seen.next()).map(strip), [{ id: pen.id, name: 'pen', price: 2 }]);
  await writer.store.bucket('items').insert({ name: 'car', price: 9000 }); // outside the query
  await writer.store.bucket('items').update(pen.id, { price: 3 });
  assert.deepEqual((await seen.next()).map((i) => i.price), [3]);

  unsubscribe();
  await writer.store.bucket('items').insert({ name: 'cup', price: 1 });
  // The unsubscribe went out before this round trip, so no push can follow.
  await watcher.server.connections();
  assert.equal(seen.pending(), 0);
  await writer.store.bucket('items').clear();
  watcher.disconnect();
  writer.disconnect();
});

test('a transaction commits all its operations or none', async () => {
  const client = await NoexClient.connect(server.url, { WebSocket });
  const items = client.store.bucket('items');
  const lamp = await items.insert({ name: 'lamp', price: 30 });
  const { results } = await client.store.transaction([
    { op: 'insert', bucket: 'items', data: { name: 'desk', price: 120 } },
    { op: 'update', bucket: 'items', key: lamp.id, data: { price: 25 } },
    { op: 'count', bucket: 'items' },
  ]);
  assert.deepEqual(results.map((r) => r.index), [0, 1, 2]);
  assert.equal(results[0].data.name, 'desk');
  assert.equal(results[1].data.price, 25);
  assert.equal(results[2].data, 2);

  await assert.rejects(
    client.store.transaction([
      { op: 'insert', bucket: 'items', data: { name: 'ghost', price: 1 } },
      { op: 'update', bucket: 'items', key: 'missing', data: { price: 1 } },
    ]),
    { code: 'NOT_FOUND' },
  );
  assert.equal(await items.count({ name: 'ghost' }), 0);
  await items.clear();
  client.disconnect();
});

test('after a server restart the client reconnects and the subscription resumes', async () => {
  const own = await startServer([], { config: { store } });
  const client = await NoexClient.connect(own.url, {
    WebSocket,
    reconnect: { initialDelayMs: 50, maxDelayMs: 200, jitterMs: 0 },
  });
  const events = inbox();
  for (const name of ['disconnected', 'reconnecting', 'reconnected', 'error']) {
    client.on(name, (payload) => events.push({ name, payload }));
  }
  const seen = inbox();
  await client.store.subscribe('all-items', seen.push);
  assert.deepEqual(await seen.next(), []);
  await client.store.bucket('items').insert({ name: 'before', price: 1 });
  assert.deepEqual((await seen.next()).map((i) => i.name), ['before']);

  await own.stop();
  assert.deepEqual(await events.next(), { name: 'disconnected', payload: { willReconnect: true } });
  assert.equal((await events.next()).name, 'reconnecting');
  const again = await startServer([], { config: { store }, port: own.port });
  try {
    let event;
    do event = await events.next(); while (event.name === 'reconnecting' || event.name === 'disconnected');
    assert.equal(event.name, 'reconnected');
    // The fresh result of the new (empty, in-memory) server replaces the old one...
    assert.deepEqual(await seen.next(), []);
    // ...and pushes caused by another client arrive on the resumed subscription.
    const other = await NoexClient.connect(again.url, { WebSocket });
    await other.store.bucket('items').insert({ name: 'after', price: 2 });
    assert.deepEqual((await seen.next()).map((i) => i.name), ['after']);
    other.disconnect();
    assert.equal(client.isConnected, true);
    client.disconnect();
  } finally {
    await again.stop();
  }
});
