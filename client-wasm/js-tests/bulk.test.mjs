// The wasm client's bulk operations in Node.js against the real server: insertMany (one
// push for all its records, a bad record rejected by its index with nothing written, the
// per-call limit), updateMany, deleteMany, upsert and groupBy.
import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import WebSocket from 'ws';
import { NoexClient } from '../pkg/index.js';
import { inbox, startServer } from './harness.mjs';

const store = {
  buckets: {
    stock: {
      key: 'sku',
      schema: {
        sku: { type: 'string', required: true },
        shelf: { type: 'string', required: true },
        qty: { type: 'number', min: 0 },
      },
    },
  },
  queries: {
    'all-stock': { bucket: 'stock' },
  },
};

let server;
before(async () => {
  server = await startServer([], { config: { store, limits: { maxBulkRecords: 5 } } });
});
after(async () => { await server.stop(); });

const item = (sku, shelf, qty) => ({ sku, shelf, qty });

test('insertMany is one commit: one push, or nothing and the failing index', async () => {
  const watcher = await NoexClient.connect(server.url, { WebSocket });
  const client = await NoexClient.connect(server.url, { WebSocket });
  const seen = inbox();
  await watcher.store.subscribe('all-stock', seen.push);
  assert.deepEqual(await seen.next(), []);
  const stock = client.store.bucket('stock');

  const inserted = await stock.insertMany([item('a', 'top', 1), item('b', 'low', 2), item('c', 'top', 3)]);
  assert.deepEqual(inserted.map((r) => [r.sku, r._version]), [['a', 1], ['b', 1], ['c', 1]]);
  assert.deepEqual((await seen.next()).map((r) => r.sku), ['a', 'b', 'c']);

  await assert.rejects(
    stock.insertMany([item('d', 'top', 1), item('e', 'top', 1), item('f', 'top', -1)]),
    (err) => {
      assert.equal(err.code, 'VALIDATION_ERROR');
      assert.equal(err.details.index, 2);
      assert.equal(err.details.issues[0].field, 'qty');
      return true;
    },
  );
  await assert.rejects(
    stock.insertMany([1, 2, 3, 4, 5, 6].map((n) => item(`n${n}`, 'top', n))),
    { code: 'VALIDATION_ERROR', message: 'store.insertMany may write at most 5 records (got 6)' },
  );
  assert.deepEqual((await stock.all()).map((r) => r.sku), ['a', 'b', 'c']);
  // Neither failure pushed anything: the next push is the next commit's.
  await stock.upsert(item('b', 'low', 20));
  assert.deepEqual((await seen.next()).map((r) => r.qty), [1, 20, 3]);
  assert.equal(seen.pending(), 0);

  watcher.disconnect();
  client.disconnect();
});

test('updateMany, deleteMany, upsert and groupBy', async () => {
  const client = await NoexClient.connect(server.url, { WebSocket });
  const stock = client.store.bucket('stock');
  await stock.deleteMany({});
  await stock.insertMany([item('a', 'top', 1), item('b', 'low', 2), item('c', 'top', 3)]);

  assert.equal(await stock.updateMany({ shelf: 'top' }, { qty: 10 }), 2);
  assert.deepEqual((await stock.where({ qty: 10 })).map((r) => r.sku), ['a', 'c']);

  const created = await stock.upsert(item('d', 'low', 4));
  assert.equal(created._version, 1);
  const merged = await stock.upsert({ sku: 'd', qty: 5 });
  assert.deepEqual([merged.shelf, merged.qty, merged._version], ['low', 5, 2]);

  assert.deepEqual(await stock.groupBy('shelf', { function: 'sum', field: 'qty' }), [
    { key: { shelf: 'top' }, value: 20 },
    { key: { shelf: 'low' }, value: 7 },
  ]);
  assert.deepEqual(await stock.groupBy(['shelf'], { function: 'count' }, { qty: { $lt: 10 } }), [
    { key: { shelf: 'low' }, value: 2 },
  ]);

  assert.equal(await stock.deleteMany({ shelf: 'low' }), 2);
  assert.deepEqual((await stock.all()).map((r) => r.sku), ['a', 'c']);
  client.disconnect();
});
