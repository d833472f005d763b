// Type-level check of the installed package: `tsc --noEmit --strict` must accept this file.
// Every `@ts-expect-error` is a negative check: if the marked line compiled, tsc would fail
// with "Unused '@ts-expect-error' directive".
import {
  NoexClient,
  isNoexError,
  type ErrorCode,
  type Fact,
  type IdentityLogin,
  type IdentityUser,
  type NoexError,
  type StoredRecord,
  type TransactionOp,
  type WhoAmI,
} from 'noex-client';

interface User {
  id: string;
  name: string;
  age: number;
}

export async function demo(url: string, WebSocket: new (url: string) => unknown): Promise<void> {
  const client = await NoexClient.connect(url, { WebSocket, requestTimeoutMs: 5000, reconnect: { maxRetries: 3 } });
  const users = client.store.bucket<User>('users');

  const ada: StoredRecord<User> = await users.insert({ name: 'Ada', age: 36 });
  const version: number = ada._version;
  const name: string = ada.name;
  // @ts-expect-error: `User` has no field `nmae`; a typo must not compile.
  await users.insert({ nmae: 'Ada' });
  // @ts-expect-error: a stored user has no `email`.
  console.log(ada.email);
  const found: StoredRecord<User> | null = await users.get(ada.id);
  const total: number = await users.sum('age');
  // @ts-expect-error: aggregates take a field of the record type.
  await users.sum('agee');
  const many: StoredRecord<User>[] = await users.insertMany([{ name: 'Bob' }, { name: 'Cyd', age: 3 }]);
  // @ts-expect-error: insertMany takes an array of records.
  await users.insertMany({ name: 'Bob' });
  const changed: number = await users.updateMany({ age: { $lt: 18 } }, { age: 18 });
  const removed: number = await users.deleteMany({});
  const upserted: StoredRecord<User> = await users.upsert({ id: 'u1', name: 'Ann' });
  const groups = await users.groupBy('name', { function: 'avg', field: 'age' });
  const groupValue = groups[0]?.value;
  // @ts-expect-error: groupBy groups by fields of the record type.
  await users.groupBy('nmae', { function: 'count' });
  // @ts-expect-error: "median" is not an aggregate function.
  await users.groupBy('name', { function: 'median', field: 'age' });
  console.log(many, changed, removed, upserted, groupValue);
  const page = await users.paginate({ limit: 10 });
  const firstName: string | undefined = page.records[0]?.name;

  const off = await client.store.subscribe<StoredRecord<User>[]>('all-users', undefined, (rows) => {
    console.log(rows.map((r) => r.name));
  });
  off();

  const tx: TransactionOp[] = [{ op: 'insert', bucket: 'users', data: { name: 'Bob' } }];
  // @ts-expect-error: `op` is one of the generated transaction operations.
  const badTx: TransactionOp = { op: 'merge', bucket: 'users', data: {} };
  const { results } = await client.store.transaction(tx);
  const index: number = results[0].index;

  // request() is typed by the generated Operation union.
  await client.request('store.first', { bucket: 'users', n: 2 });
  // @ts-expect-error: store.first takes `n`, not `count`.
  await client.request('store.first', { bucket: 'users', count: 2 });

  const off2 = client.on('reconnecting', ({ attempt, delayMs }) => console.log(attempt + delayMs));
  off2();

  try {
    await users.update('missing', { age: 1 });
  } catch (e) {
    if (isNoexError(e)) {
      const err: NoexError = e;
      console.log(err.code, err.message, err.details);
    }
  }
  const code: ErrorCode = 'NOT_FOUND';
  // @ts-expect-error: not a protocol error code.
  const badCode: ErrorCode = 'NOT_FOUNDD';

  const me: WhoAmI = await client.auth.whoami();
  const event = await client.rules.emit('order.created', { total: 1 });
  const topic: string = event.topic;
  // Every event has a source; facts are whole in every answer (the original's shapes).
  const source: string = event.source;
  await client.rules.subscribe('order.*', (e, t) => console.log(e.id, t, e.source));
  const facts: Fact[] = await client.rules.queryFacts('order:*');
  const factVersion: number = facts[0].version;
  const factSource: string = (await client.rules.getAllFacts())[0].source;
  const called = await client.procedures.call('transfer', { from: 'a', to: 'b', amount: 1 });
  const success: boolean = called.success;
  const steps: number = (await client.procedures.list()).procedures[0].stepsCount;
  // @ts-expect-error: procedures.call takes an object input.
  await client.procedures.call('transfer', 5);
  const denied = await client.audit.query({ result: 'error', limit: 10 });
  const who: string | null = denied[0].userId;
  // @ts-expect-error: `result` is "success" or "error".
  await client.audit.query({ result: 'failed' });
  const { revoked } = await client.server.revokeSessions({ role: 'contractor' });
  const off3 = client.on('session_revoked', ({ reason }) => console.log(reason));
  off3();
  const revokedCode: ErrorCode = 'SESSION_REVOKED';

  // The identity API: typed by the generated identity operations and results.
  const root: IdentityLogin = await client.identity.loginWithSecret('the-admin-secret');
  const rootRoles: string[] = root.user.roles;
  const alice: IdentityUser = await client.identity.createUser({ username: 'alice', password: 'correct horse', displayName: 'Alice' });
  // @ts-expect-error: createUser takes `displayName`, not `display_name`.
  await client.identity.createUser({ username: 'bob', password: 'correct horse', display_name: 'Bob' });
  // @ts-expect-error: a user needs a password.
  await client.identity.createUser({ username: 'bob' });
  const session = await client.identity.login('alice', 'correct horse');
  const token: string = session.token;
  const expiresAt: number = session.expiresAt;
  // @ts-expect-error: login takes a username and a password.
  await client.identity.login('alice');
  const identityMe = await client.identity.whoami();
  const myId: string | undefined = identityMe.authenticated ? identityMe.userId : undefined;
  await client.identity.updateUser(alice.id, { email: 'alice@example.com' });
  // @ts-expect-error: the user id is the first argument, not a field of the changes.
  await client.identity.updateUser(alice.id, { userId: 'x' });
  const usersPage = await client.identity.listUsers({ page: 1, pageSize: 20 });
  const totalUsers: number = usersPage.total;
  await client.identity.changePassword(alice.id, 'correct horse', 'a better horse');
  const role = await client.identity.createRole({ name: 'clerk', permissions: [{ allow: ['store.*'], buckets: ['orders'] }] });
  await client.identity.assignRole(alice.id, role.name);
  const granted: boolean = (await client.identity.grant({
    subjectType: 'user', subjectId: alice.id, resourceType: 'bucket', resourceName: 'orders', operations: ['read'],
  })).granted;
  // @ts-expect-error: a grant needs its operations.
  await client.identity.grant({ subjectType: 'user', subjectId: alice.id, resourceType: 'bucket', resourceName: 'orders' });
  await client.identity.revoke({ subjectType: 'user', subjectId: alice.id, resourceType: 'bucket', resourceName: 'orders' });
  const aclOwner: boolean | undefined = (await client.identity.getAcl('bucket', 'orders')).entries[0]?.isOwner;
  const owned = (await client.identity.myAccess()).resources.filter((r) => r.isOwner).map((r) => r.resourceName);
  const ownerName: string | undefined = (await client.identity.getOwner('bucket', 'orders')).owner?.username;
  await client.identity.transferOwner('bucket', 'orders', alice.id);
  const refreshedToken: string = (await client.identity.refreshSession()).token;
  const loggedOut: boolean = (await client.identity.logout()).loggedOut;
  console.log(rootRoles, token, expiresAt, myId, totalUsers, granted, aclOwner, owned, ownerName, refreshedToken, loggedOut);
  client.disconnect();
  console.log(source, factVersion, factSource);
  console.log(success, steps, version, name, found, total, firstName, badTx, index, code, badCode, me, topic, who, revoked, revokedCode);
}
