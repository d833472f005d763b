// The wasm client's `identity` API in Node.js against the real server with the built-in
// identity on: bootstrap with the admin secret, users and password logins, grants, roles,
// ownership, passwords, logout, and a password session that survives a reconnect (the server
// restarts on durable storage; the client logs in again with the session's token).
import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import WebSocket from 'ws';
import { NoexClient } from '../pkg/index.js';
import { startServer } from './harness.mjs';

const secret = 'js-tests-admin-secret-0123456789';
const config = {
  identity: { enabled: true, adminSecret: secret },
  store: { buckets: { notes: { key: 'id', schema: { id: { type: 'string', generated: 'uuid' }, text: { type: 'string' } } } } },
};
const fast = { initialDelayMs: 50, maxDelayMs: 200, jitterMs: 0 };

let server;
before(async () => { server = await startServer([], { config }); });
after(async () => { await server.stop(); });

/** A client logged in as the bootstrap superadmin. */
async function superadmin(url) {
  const admin = await NoexClient.connect(url, { WebSocket });
  const session = await admin.identity.loginWithSecret(secret);
  assert.equal(session.user.id, '__superadmin__');
  assert.deepEqual(session.user.roles, ['superadmin']);
  return admin;
}

test('bootstrap, password login, whoami, a grant gives store access and revoke takes it, changePassword, logout', async () => {
  const anonymous = await NoexClient.connect(server.url, { WebSocket });
  assert.deepEqual(await anonymous.identity.whoami(), { authenticated: false });
  await assert.rejects(anonymous.identity.loginWithSecret('not-the-secret-at-all'), { code: 'UNAUTHORIZED', message: 'Invalid secret' });
  anonymous.disconnect();

  const admin = await superadmin(server.url);
  const created = await admin.identity.createUser({ username: 'alice', password: 'correct horse battery', displayName: 'Alice' });
  assert.equal(created.username, 'alice');
  assert.equal(created.displayName, 'Alice');
  assert.equal(created.enabled, true);
  await assert.rejects(admin.identity.createUser({ username: 'bob', password: 'short' }), {
    code: 'VALIDATION_ERROR',
    message: 'Password must be at least 8 characters',
  });

  const alice = await NoexClient.connect(server.url, { WebSocket });
  // A wrong password and an unknown user get the same answer.
  await assert.rejects(alice.identity.login('alice', 'wrong horse'), { code: 'UNAUTHORIZED', message: 'Invalid credentials' });
  await assert.rejects(alice.identity.login('mallory', 'wrong horse'), { code: 'UNAUTHORIZED', message: 'Invalid credentials' });
  const session = await alice.identity.login('alice', 'correct horse battery');
  assert.equal(typeof session.token, 'string');
  assert.ok(session.expiresAt > Date.now());
  assert.deepEqual(session.user, { id: created.id, username: 'alice', displayName: 'Alice', roles: [] });
  const me = await alice.identity.whoami();
  assert.equal(me.authenticated, true);
  assert.equal(me.authenticated && me.userId, created.id);
  // auth.whoami sees the same session.
  assert.equal((await alice.auth.whoami()).authenticated, true);

  // No role, no grant: no store access.
  const notes = alice.store.bucket('notes');
  await assert.rejects(notes.all(), { code: 'FORBIDDEN' });
  assert.deepEqual(
    await admin.identity.grant({ subjectType: 'user', subjectId: created.id, resourceType: 'bucket', resourceName: 'notes', operations: ['read', 'write'] }),
    { granted: true },
  );
  const note = await notes.insert({ text: 'granted' });
  assert.deepEqual((await notes.all()).map((n) => n.text), ['granted']);
  const access = await alice.identity.myAccess();
  assert.deepEqual(access.user, { id: created.id, username: 'alice', roles: [] });
  assert.deepEqual(access.resources, [{ resourceType: 'bucket', resourceName: 'notes', operations: ['read', 'write'], isOwner: false }]);
  const acl = await admin.identity.getAcl('bucket', 'notes');
  assert.deepEqual(acl.entries, [{ subjectType: 'user', subjectId: created.id, subjectName: 'alice', operations: ['read', 'write'], isOwner: false }]);

  // Revoking write keeps read; revoking everything ends access.
  assert.deepEqual(
    await admin.identity.revoke({ subjectType: 'user', subjectId: created.id, resourceType: 'bucket', resourceName: 'notes', operations: ['write'] }),
    { revoked: true },
  );
  assert.equal((await notes.get(note.id)).text, 'granted');
  await assert.rejects(notes.insert({ text: 'no' }), { code: 'FORBIDDEN' });
  await admin.identity.revoke({ subjectType: 'user', subjectId: created.id, resourceType: 'bucket', resourceName: 'notes' });
  await assert.rejects(notes.all(), { code: 'FORBIDDEN' });
  assert.deepEqual((await alice.identity.myAccess()).resources, []);

  // changePassword checks the current one and ends the user's sessions.
  await assert.rejects(alice.identity.changePassword(created.id, 'not my password', 'a new password 2'), { code: 'UNAUTHORIZED' });
  assert.deepEqual(await alice.identity.changePassword(created.id, 'correct horse battery', 'a new password 2'), { changed: true });
  const other = await NoexClient.connect(server.url, { WebSocket });
  await assert.rejects(other.auth.login(session.token), { code: 'UNAUTHORIZED' });
  await assert.rejects(other.identity.login('alice', 'correct horse battery'), { code: 'UNAUTHORIZED', message: 'Invalid credentials' });
  assert.equal((await other.identity.login('alice', 'a new password 2')).user.id, created.id);

  // Logout ends the session: the connection is anonymous, the token stops working.
  const current = await other.identity.refreshSession();
  assert.deepEqual(await other.identity.logout(), { loggedOut: true });
  assert.deepEqual(await other.identity.whoami(), { authenticated: false });
  await assert.rejects(alice.auth.login(current.token), { code: 'UNAUTHORIZED' });

  for (const c of [admin, alice, other]) c.disconnect();
});

test('users, roles and ownership: every other identity method', async () => {
  const admin = await superadmin(server.url);
  const bob = await admin.identity.createUser({ username: 'bob', password: 'bob password 1', email: 'bob@example.com', metadata: { team: 'ops' } });
  assert.deepEqual([bob.email, bob.metadata], ['bob@example.com', { team: 'ops' }]);
  assert.equal((await admin.identity.getUser(bob.id)).username, 'bob');
  const updated = await admin.identity.updateUser(bob.id, { displayName: 'Bob B.' });
  assert.deepEqual([updated.displayName, updated.email], ['Bob B.', 'bob@example.com']);
  const page = await admin.identity.listUsers({ page: 1, pageSize: 1 });
  assert.equal(page.pageSize, 1);
  assert.equal(page.users.length, 1);
  assert.ok(page.total >= 2);
  assert.ok((await admin.identity.listUsers()).users.some((u) => u.id === bob.id));

  // A custom role with permission rules, assigned by name.
  const role = await admin.identity.createRole({ name: 'note-reader', description: 'Reads notes', permissions: [{ allow: ['store.all'], buckets: ['notes'] }] });
  assert.deepEqual([role.name, role.system], ['note-reader', false]);
  assert.equal((await admin.identity.updateRole(role.id, { description: 'Reads all notes' })).description, 'Reads all notes');
  assert.ok((await admin.identity.listRoles()).roles.some((r) => r.name === 'admin' && r.system));
  assert.deepEqual(await admin.identity.assignRole(bob.id, 'note-reader'), { assigned: true });
  assert.deepEqual((await admin.identity.getUserRoles(bob.id)).roles.map((r) => r.name), ['note-reader']);
  const client = await NoexClient.connect(server.url, { WebSocket });
  assert.deepEqual((await client.identity.login('bob', 'bob password 1')).user.roles, ['note-reader']);
  assert.ok(Array.isArray(await client.store.bucket('notes').all()));
  await assert.rejects(client.store.bucket('notes').insert({ text: 'x' }), { code: 'FORBIDDEN' });
  // Only admins administer users.
  await assert.rejects(client.identity.listUsers(), { code: 'FORBIDDEN' });
  // A role removed ends the user's connections (session_revoked).
  const revoked = new Promise((resolve) => client.on('session_revoked', resolve));
  assert.deepEqual(await admin.identity.removeRole(bob.id, 'note-reader'), { removed: true });
  assert.equal(typeof (await revoked).reason, 'string');
  assert.deepEqual(await admin.identity.deleteRole(role.id), { deleted: true });

  // Ownership: the creator of a bucket owns it; a superadmin hands it over.
  await admin.store.defineBucket('docs', { key: 'id', schema: { id: { type: 'string', generated: 'uuid' } } });
  assert.deepEqual(await admin.identity.getOwner('bucket', 'docs'), { owner: { userId: '__superadmin__', username: '__superadmin__', resourceType: 'bucket', resourceName: 'docs' } });
  assert.deepEqual(await admin.identity.transferOwner('bucket', 'docs', bob.id), { transferred: true });
  assert.deepEqual(await admin.identity.getOwner('bucket', 'docs'), { owner: { userId: bob.id, username: 'bob', resourceType: 'bucket', resourceName: 'docs' } });
  const owner = await NoexClient.connect(server.url, { WebSocket });
  await owner.identity.login('bob', 'bob password 1');
  assert.deepEqual((await owner.identity.myAccess()).resources,
    [{ resourceType: 'bucket', resourceName: 'docs', operations: ['admin', 'read', 'write'], isOwner: true }]);

  // Disable, enable, reset, delete.
  assert.equal((await admin.identity.disableUser(bob.id)).enabled, false);
  const refused = await NoexClient.connect(server.url, { WebSocket });
  await assert.rejects(refused.identity.login('bob', 'bob password 1'), { code: 'UNAUTHORIZED' });
  assert.equal((await admin.identity.enableUser(bob.id)).enabled, true);
  assert.deepEqual(await admin.identity.resetPassword(bob.id, 'bob password 2'), { reset: true });
  assert.equal((await refused.identity.login('bob', 'bob password 2')).user.username, 'bob');
  assert.deepEqual(await admin.identity.deleteUser(bob.id), { deleted: true });
  await assert.rejects(admin.identity.getUser(bob.id), { code: 'NOT_FOUND' });

  for (const c of [admin, client, owner, refused]) c.disconnect();
});

test('a password session survives a reconnect: the client logs in again with its token, until logout', async () => {
  const dir = await mkdtemp(path.join(tmpdir(), 'noex-identity-'));
  const durable = ['--persistence', 'redb', '--data-dir', dir];
  let own = await startServer(durable, { config });
  const admin = await superadmin(own.url);
  const carol = await admin.identity.createUser({ username: 'carol', password: 'carol password' });
  await admin.identity.grant({ subjectType: 'user', subjectId: carol.id, resourceType: 'bucket', resourceName: 'notes', operations: ['read', 'write'] });
  admin.disconnect();

  const client = await NoexClient.connect(own.url, { WebSocket, reconnect: fast });
  const errors = [];
  client.on('error', (e) => errors.push(e));
  const first = await client.identity.login('carol', 'carol password');
  await client.store.bucket('notes').insert({ text: 'before' });
  const restart = async () => {
    const reconnected = new Promise((resolve) => client.on('reconnected', resolve));
    await own.stop();
    own = await startServer(durable, { config, port: own.port });
    await reconnected;
  };
  try {
    await restart();
    // The re-login (auth.login with the session token) went out before this request.
    const me = await client.identity.whoami();
    assert.equal(me.authenticated && me.userId, carol.id);
    assert.deepEqual((await client.store.bucket('notes').all()).map((n) => n.text), ['before']);
    // The connection holds an identity session again: refreshSession works on it, and the
    // refreshed token is the one used after the next reconnect.
    const refreshed = await client.identity.refreshSession();
    assert.notEqual(refreshed.token, first.token);
    await restart();
    assert.equal((await client.identity.whoami()).authenticated, true);
    assert.deepEqual(errors, []);

    // After logout no login is replayed (a dead token would fail and be reported as `error`).
    await client.identity.logout();
    await restart();
    assert.deepEqual(await client.identity.whoami(), { authenticated: false });
    assert.deepEqual(errors, []);
  } finally {
    client.disconnect();
    await own.stop();
    await rm(dir, { recursive: true, force: true });
  }
});
