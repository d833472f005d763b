// Session revocation and the audit log through the wasm client package in Node.js, against
// the real server binary: a revoked client is told why and does not reconnect (as the
// original client), and an admin reads who revoked whom with `audit.query`.
import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import WebSocket from 'ws';
import { NoexClient } from '../pkg/index.js';
import { startServer } from './harness.mjs';

let server;
before(async () => {
  server = await startServer([], {
    config: {
      auth: {
        tokens: {
          'tok-admin': { userId: 'ada', roles: ['admin'] },
          'tok-writer': { userId: 'wes', roles: ['writer'] },
        },
      },
      audit: {},
    },
  });
});
after(async () => { await server.stop(); });

const fast = { initialDelayMs: 10, maxDelayMs: 20, jitterMs: 0 };

test('a revoked client gets session_revoked and does not reconnect', async () => {
  const writer = await NoexClient.connect(server.url, { WebSocket, authToken: 'tok-writer', reconnect: fast });
  const admin = await NoexClient.connect(server.url, { WebSocket, authToken: 'tok-admin' });
  const events = [];
  const closed = new Promise((resolve) => {
    writer.on('session_revoked', (e) => events.push(['session_revoked', e]));
    writer.on('reconnecting', (e) => events.push(['reconnecting', e]));
    writer.on('disconnected', (e) => { events.push(['disconnected', e]); resolve(); });
  });

  await assert.rejects(writer.server.revokeSessions({ userId: 'ada' }), (e) => e.code === 'FORBIDDEN');
  assert.deepEqual(await admin.server.revokeSessions({ userId: 'wes' }), { revoked: 1 });
  await closed;
  assert.deepEqual(events, [
    ['session_revoked', { reason: 'Session revoked by administrator' }],
    ['disconnected', { willReconnect: false }],
  ]);
  assert.equal(writer.isConnected, false);

  // A fresh login of the revoked user is refused while the blacklist lasts.
  await assert.rejects(
    NoexClient.connect(server.url, { WebSocket, authToken: 'tok-writer', reconnect: false }),
    (e) => e.code === 'SESSION_REVOKED' && e.message === 'Session has been revoked',
  );

  const entries = await admin.audit.query({ operation: 'server.revokeSessions' });
  assert.equal(entries.length, 2);
  assert.equal(entries[0].userId, 'ada');
  assert.equal(entries[0].result, 'success');
  assert.deepEqual(entries[0].details, { userId: 'wes' });
  assert.equal(entries[1].userId, 'wes');
  assert.equal(entries[1].result, 'error');
  assert.equal((await admin.audit.query({ limit: 1 })).length, 1);
  await assert.rejects(admin.audit.query({ limit: 0 }), (e) => e.code === 'VALIDATION_ERROR');
  admin.disconnect();
});
