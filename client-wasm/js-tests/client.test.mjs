// The wasm client package (client-wasm/pkg, built by client-wasm/build-pkg) in Node.js
// against the real server: connect, requests, errors, lifecycle.
import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import WebSocket from 'ws';
import { NoexClient, isNoexError, protocolVersion } from '../pkg/index.js';
import { startServer } from './harness.mjs';

let server;
before(async () => { server = await startServer(); });
after(async () => { await server.stop(); });

test('connects, reports the welcome, and the server sees the connection', async () => {
  assert.equal(await protocolVersion(), '1.0.0');
  const client = await NoexClient.connect(server.url, { WebSocket });
  assert.equal(client.isConnected, true);
  assert.equal(client.welcome.version, '1.0.0');
  assert.equal(client.welcome.requiresAuth, false);
  const connections = await client.server.connections();
  assert.ok(connections.some((c) => c.remoteAddress === '127.0.0.1' && c.connectionId.startsWith('conn-')));
  client.disconnect();
  assert.equal(client.isConnected, false);
});

test('pipelined requests each get their own answer', async () => {
  const client = await NoexClient.connect(server.url, { WebSocket });
  const answers = await Promise.allSettled(
    Array.from({ length: 50 }, (_, i) => (i % 2 ? client.server.connections() : client.request('no.such'))),
  );
  answers.forEach((a, i) => {
    if (i % 2) assert.ok(Array.isArray(a.value));
    else assert.equal(a.reason.code, 'UNKNOWN_OPERATION');
  });
  client.disconnect();
});

test('server errors reject with a NoexError carrying code, message and details', async () => {
  const client = await NoexClient.connect(server.url, { WebSocket });
  await assert.rejects(client.request('no.such', { x: 1 }), (e) => {
    assert.ok(isNoexError(e));
    assert.ok(e instanceof Error);
    assert.deepEqual([e.name, e.code, e.message, e.details], ['NoexError', 'UNKNOWN_OPERATION', 'Unknown operation "no.such"', null]);
    return true;
  });
  // Fields that do not validate are sent as given: the server's message is the answer.
  await assert.rejects(client.request('store.first', { bucket: 'b', n: 0 }), {
    code: 'VALIDATION_ERROR',
    message: 'Missing or invalid "n": expected positive integer',
  });
  await assert.rejects(client.request('store.all', 5), { code: 'INVALID_ARGUMENT' });
  client.disconnect();
});

test('pending requests reject with DISCONNECTED on disconnect; later ones too', async () => {
  const client = await NoexClient.connect(server.url, { WebSocket });
  const events = [];
  client.on('disconnected', (e) => events.push(e));
  const pending = client.server.connections();
  client.disconnect();
  await assert.rejects(pending, { code: 'DISCONNECTED' });
  await assert.rejects(client.server.connections(), { code: 'DISCONNECTED' });
  assert.deepEqual(events, [{ willReconnect: false }]);
});

test('connect fails with CONNECTION_FAILED when nothing listens', async () => {
  const port = await freePort();
  await assert.rejects(NoexClient.connect(`ws://127.0.0.1:${port}/`, { WebSocket }), { code: 'CONNECTION_FAILED' });
});

test('without a WebSocket constructor in Node 20 connect explains what to pass', async () => {
  if (globalThis.WebSocket) return; // Node 22+ has one
  await assert.rejects(NoexClient.connect(server.url), (e) => e.code === 'CONNECTION_FAILED' && /ws/.test(e.message));
});

test('malformed options are rejected', async () => {
  await assert.rejects(NoexClient.connect(server.url, { WebSocket, requestTimeoutMs: 'soon' }), { code: 'INVALID_OPTIONS' });
});

/** A port nothing listens on. */
async function freePort() {
  const srv = net.createServer();
  await new Promise((r) => srv.listen(0, '127.0.0.1', r));
  const { port } = srv.address();
  await new Promise((r) => srv.close(r));
  return port;
}
