// Auth from Node, with the config file format documented in the README.
import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, connect } from './harness.mjs';

let server;
before(async () => {
  server = await startServer([], {
    config: {
      auth: {
        tokens: { 'tok-admin': { userId: 'ada', roles: ['admin'] }, 'tok-reader': { userId: 'rea', roles: ['reader'] } },
        permissions: { default: 'allow' },
      },
      heartbeat: { intervalMs: 100, timeoutMs: 1000 },
    },
  });
});
after(async () => { await server.stop(); });

test('login, whoami, tier check, logout', async () => {
  const c = await connect(server.url);
  assert.equal(c.welcome.requiresAuth, true);
  const before = await c.request({ id: 1, type: 'store.all', bucket: 'b' });
  assert.equal(before.code, 'UNAUTHORIZED');
  const login = await c.request({ id: 2, type: 'auth.login', token: 'tok-reader' });
  assert.deepEqual(login.data, { userId: 'rea', roles: ['reader'], expiresAt: null });
  const denied = await c.request({ id: 3, type: 'store.insert', bucket: 'b', data: {} });
  assert.deepEqual([denied.code, denied.message], ['FORBIDDEN', 'Role level insufficient for store.insert (requires write)']);
  const out = await c.request({ id: 4, type: 'auth.logout' });
  assert.deepEqual(out.data, { loggedOut: true });
  c.close();
});

test('a client that answers pings stays connected', async () => {
  const c = await connect(server.url);
  let pings = 0;
  while (pings < 3) {
    const msg = await c.next();
    if (msg.type === 'ping') { pings++; c.send({ type: 'pong', timestamp: msg.timestamp }); }
  }
  const who = await c.request({ id: 9, type: 'auth.whoami' });
  const reply = who.type === 'ping' ? await c.next() : who;
  assert.deepEqual(reply.data, { authenticated: false });
  c.close();
});
