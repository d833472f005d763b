// The wasm client's procedures API in Node.js against the real server: register, get,
// list, update, call (the guide's transfer, atomic and checked), errors, unregister.
import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import WebSocket from 'ws';
import { NoexClient } from '../pkg/index.js';
import { startServer } from './harness.mjs';

const store = {
  buckets: {
    accounts: {
      key: 'id',
      schema: { id: { type: 'string' }, balance: { type: 'number', min: 0 } },
    },
  },
};

const transfer = {
  name: 'transfer',
  description: 'Move money between two accounts',
  transaction: true,
  input: { from: { type: 'string' }, to: { type: 'string' }, amount: { type: 'number' } },
  steps: [
    { action: 'store.get', bucket: 'accounts', key: '{{ input.from }}', as: 'source' },
    { action: 'store.get', bucket: 'accounts', key: '{{ input.to }}', as: 'target' },
    {
      action: 'if',
      condition: { $gte: ['$source.balance', '$input.amount'] },
      then: [
        { action: 'store.update', bucket: 'accounts', key: '{{ input.from }}',
          data: { balance: { $subtract: ['$source.balance', '$input.amount'] } } },
        { action: 'store.update', bucket: 'accounts', key: '{{ input.to }}',
          data: { balance: { $add: ['$target.balance', '$input.amount'] } } },
        { action: 'return', value: { ok: true } },
      ],
      else: [{ action: 'return', value: { ok: false } }],
    },
  ],
};

let server;
before(async () => { server = await startServer([], { config: { store } }); });
after(async () => { await server.stop(); });

test('register, call and manage a procedure', async () => {
  const client = await NoexClient.connect(server.url, { WebSocket });
  assert.deepEqual(await client.procedures.register(transfer), { name: 'transfer', registered: true });
  assert.deepEqual(await client.procedures.get('transfer'), transfer);
  assert.deepEqual(await client.procedures.list(), {
    procedures: [{ name: 'transfer', description: 'Move money between two accounts', stepsCount: 3 }],
  });
  const accounts = client.store.bucket('accounts');
  await accounts.insert({ id: 'alice', balance: 100 });
  await accounts.insert({ id: 'bob', balance: 0 });

  const moved = await client.procedures.call('transfer', { from: 'alice', to: 'bob', amount: 40 });
  assert.equal(moved.success, true);
  assert.deepEqual(moved.result, { ok: true });
  assert.equal(moved.results.source.balance, 100);
  const refused = await client.procedures.call('transfer', { from: 'bob', to: 'alice', amount: 41 });
  assert.deepEqual(refused.result, { ok: false });
  assert.equal((await accounts.get('alice')).balance, 60);
  assert.equal((await accounts.get('bob')).balance, 40);

  await assert.rejects(client.procedures.call('transfer', { from: 'bob', to: 'alice', amount: '1' }), {
    code: 'VALIDATION_ERROR',
    message: 'Invalid procedure input: Input "amount": expected number, got string',
  });
  assert.deepEqual(await client.procedures.update('transfer', { timeoutMs: 500 }), { name: 'transfer', updated: true });
  assert.equal((await client.procedures.get('transfer')).timeoutMs, 500);
  assert.deepEqual(await client.procedures.unregister('transfer'), { name: 'transfer', unregistered: true });
  await assert.rejects(client.procedures.call('transfer', {}), {
    code: 'NOT_FOUND',
    message: 'Procedure "transfer" not found',
  });
  client.disconnect();
});
