// The server as a client written for the original TypeScript noex-server sees it.
import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, connect } from './harness.mjs';

let server;
before(async () => { server = await startServer(); });
after(async () => { await server.stop(); });

test('welcome comes first with the protocol version', async () => {
  const c = await connect(server.url);
  assert.equal(c.welcome.type, 'welcome');
  assert.equal(c.welcome.version, '1.0.0');
  assert.equal(c.welcome.requiresAuth, false);
  assert.ok(Number.isFinite(c.welcome.serverTime));
  c.close();
});

test('malformed frames are answered with id 0', async () => {
  const c = await connect(server.url);
  for (const [frame, code] of [['{oops', 'PARSE_ERROR'], ['[1]', 'PARSE_ERROR'], ['{"id":1}', 'INVALID_REQUEST'], ['{"type":"x.y"}', 'INVALID_REQUEST']]) {
    c.send(frame);
    const reply = await c.next();
    assert.deepEqual([reply.type, reply.id, reply.code], ['error', 0, code], frame);
  }
  c.close();
});

test('pipelined requests are answered in order, ids echoed', async () => {
  const c = await connect(server.url);
  for (let id = 1; id <= 200; id++) c.send(id % 2 ? { id, type: 'store.all', bucket: 'nope' } : { id, type: 'no.such' });
  for (let id = 1; id <= 200; id++) {
    const reply = await c.next();
    assert.equal(reply.id, id);
    assert.equal(reply.code, id % 2 ? 'BUCKET_NOT_DEFINED' : 'UNKNOWN_OPERATION');
  }
  c.close();
});

test('a binary frame closes with 1003', async () => {
  const c = await connect(server.url);
  c.ws.send(Buffer.from([1, 2, 3]));
  const { code, reason } = await c.closed;
  assert.deepEqual([code, reason], [1003, 'binary_not_supported']);
});

test('server.connections lists this connection', async () => {
  const c = await connect(server.url);
  const reply = await c.request({ id: 1, type: 'server.connections' });
  assert.equal(reply.type, 'result');
  assert.ok(reply.data.some((entry) => entry.remoteAddress === '127.0.0.1' && entry.connectionId.startsWith('conn-')));
  c.close();
});
