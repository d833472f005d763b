// Types of the noex client. Every payload and result type comes from the protocol bindings
// generated from the Rust wire types (./types, a copy of the repository's bindings/).
import type {
  AccessGranted,
  AccessRevoked,
  AclEntries,
  AuditEntry,
  AuditResult,
  IdentityLogin,
  IdentityRole,
  IdentityRoleList,
  IdentityUser,
  IdentityUserList,
  MyAccess,
  OwnerInfo,
  OwnerTransferred,
  PasswordChanged,
  PasswordReset,
  RoleAssigned,
  RoleRemoved,
  SessionsRevoked,
  RecordMeta,
  BucketConfig,
  BucketDefined,
  BucketDropped,
  BucketList,
  BucketSchema,
  BucketUpdated,
  BucketUpdates,
  Cleared,
  ConnectionInfo,
  Deleted,
  ErrorCode,
  Fact,
  FactDeleted,
  GroupAggregate,
  GroupByEntry,
  JsonValue,
  LoginResult,
  LogoutResult,
  Operation,
  PaginateResult,
  ProcedureCallResult,
  ProcedureList,
  ProcedureRegistered,
  ProcedureUnregistered,
  ProcedureUpdated,
  QueryConfig,
  QueryDefined,
  QueryList,
  QueryUndefined,
  RuleEnabled,
  RuleEvent,
  RuleList,
  RuleRegistered,
  RulesStats,
  RuleUnregistered,
  RuleUpdated,
  RuleValidation,
  ServerStats,
  StoreStats,
  TransactionOp,
  TransactionResult,
  Welcome,
  WhoAmI,
} from './types/index.js';

export type * from './types/index.js';

/** The fields of the operation `T` (everything but `type`), as the bindings define them. */
export type OperationFields<T extends Operation['type']> = Omit<Extract<Operation, { type: T }>, 'type'>;

/** A store filter, as `store.where` takes it. */
export type Filter = OperationFields<'store.where'>['filter'];

/** A stored record: the bucket's fields plus metadata. */
export type StoredRecord<T> = T & RecordMeta;

/** The fields of a record type, as a bucket is parameterised with. */
export type Fields = { [field: string]: JsonValue };

/** A page of records. */
export type Page<T> = Omit<PaginateResult, 'records'> & { records: StoredRecord<T>[] };

/** Codes of errors raised by the client itself. */
export type ClientErrorCode =
  | 'TIMEOUT'
  | 'DISCONNECTED'
  | 'PROTOCOL_ERROR'
  | 'CONNECTION_FAILED'
  | 'DECODE_ERROR'
  | 'INVALID_OPTIONS'
  | 'INVALID_ARGUMENT';

/** What every promise of the client rejects with. */
export interface NoexError extends Error {
  name: 'NoexError';
  /** A protocol error code from the server, or a client-side code. */
  code: ErrorCode | ClientErrorCode;
  message: string;
  /** Structured details from the server (validation issues, conflict, retryAfterMs), or null. */
  details: JsonValue | null;
}

/** Whether a caught value is a {@link NoexError}. */
export function isNoexError(value: unknown): value is NoexError;

/** Reconnect schedule: exponential backoff with additive jitter. */
export interface ReconnectOptions {
  enabled?: boolean;
  initialDelayMs?: number;
  maxDelayMs?: number;
  multiplier?: number;
  maxRetries?: number;
  jitterMs?: number;
}

/** Options of {@link NoexClient.connect}. */
export interface ClientOptions {
  /** WebSocket constructor for runtimes without a global one (Node 20: the `ws` package). */
  WebSocket?: abstract new (url: string) => unknown;
  /** How long a request waits for its answer (default 10000). */
  requestTimeoutMs?: number;
  /** How long a connection may wait for the server's welcome (default 5000). */
  connectTimeoutMs?: number;
  /** Answer the server's heartbeat pings (default true). */
  heartbeat?: boolean;
  /** Logged in with after connecting and after every reconnect. */
  authToken?: string;
  /** `false` disables reconnecting; an object tunes it (default: on, 1 s doubling to 30 s). */
  reconnect?: boolean | ReconnectOptions;
}

/** Lifecycle events and their payloads. */
export interface ClientEvents {
  connected: Welcome;
  disconnected: { willReconnect: boolean };
  reconnecting: { attempt: number; delayMs: number };
  reconnected: Welcome;
  shutdown: { gracePeriodMs: number };
  /** An administrator revoked the session; the client does not reconnect (as the original's `session_revoked`). */
  session_revoked: { reason: string };
  error: NoexError;
}

/** Ends a subscription. */
export type Unsubscribe = () => void;

/** One bucket's operations; `T` is the record type (without metadata). */
export interface Bucket<T extends object = Fields> {
  readonly name: string;
  insert(data: Partial<T>): Promise<StoredRecord<T>>;
  get(key: JsonValue): Promise<StoredRecord<T> | null>;
  update(key: JsonValue, data: Partial<T>): Promise<StoredRecord<T>>;
  delete(key: JsonValue): Promise<Deleted>;
  all(): Promise<StoredRecord<T>[]>;
  where(filter: Filter): Promise<StoredRecord<T>[]>;
  findOne(filter: Filter): Promise<StoredRecord<T> | null>;
  count(filter?: Filter): Promise<number>;
  first(n: number): Promise<StoredRecord<T>[]>;
  last(n: number): Promise<StoredRecord<T>[]>;
  paginate(options: { limit: number; after?: JsonValue }): Promise<Page<T>>;
  sum(field: keyof T & string, filter?: Filter): Promise<number>;
  avg(field: keyof T & string, filter?: Filter): Promise<number>;
  min(field: keyof T & string, filter?: Filter): Promise<number | null>;
  max(field: keyof T & string, filter?: Filter): Promise<number | null>;
  /**
   * Inserts the records in one commit, all or none (a failing record's position is the
   * error's `details.index`); at most the server's `limits.maxBulkRecords`.
   */
  insertMany(data: Partial<T>[]): Promise<StoredRecord<T>[]>;
  /** Merges `data` into every record matching `filter` in one commit; how many. */
  updateMany(filter: Filter, data: Partial<T>): Promise<number>;
  /** Deletes every record matching `filter` in one commit; how many. */
  deleteMany(filter: Filter): Promise<number>;
  /** Inserts the record, or merges it into the record with its key. */
  upsert(data: Partial<T>): Promise<StoredRecord<T>>;
  /** One aggregate per group of records with equal values of `field` (or fields). */
  groupBy(
    field: (keyof T & string) | (keyof T & string)[],
    aggregate: GroupAggregate,
    filter?: Filter,
  ): Promise<GroupByEntry[]>;
  clear(): Promise<Cleared>;
}

/** `client.store`. */
export interface StoreApi {
  bucket<T extends object = Fields>(name: string): Bucket<T>;
  /** Calls `callback` with the initial result, every pushed result and the result after a reconnect. */
  subscribe<R = JsonValue>(query: string, params: JsonValue | undefined, callback: (data: R) => void): Promise<Unsubscribe>;
  subscribe<R = JsonValue>(query: string, callback: (data: R) => void): Promise<Unsubscribe>;
  transaction(operations: TransactionOp[]): Promise<TransactionResult>;
  buckets(): Promise<BucketList>;
  stats(): Promise<StoreStats>;
  defineBucket(name: string, config: BucketConfig): Promise<BucketDefined>;
  dropBucket(name: string): Promise<BucketDropped>;
  updateBucket(name: string, updates: BucketUpdates): Promise<BucketUpdated>;
  getBucketSchema(name: string): Promise<BucketSchema>;
  defineQuery(name: string, config: QueryConfig): Promise<QueryDefined>;
  undefineQuery(name: string): Promise<QueryUndefined>;
  listQueries(): Promise<QueryList>;
}

/** `client.rules`. */
export interface RulesApi {
  emit(
    topic: string,
    data?: { [key: string]: JsonValue },
    options?: Omit<OperationFields<'rules.emit'>, 'topic' | 'data'>,
  ): Promise<RuleEvent>;
  setFact(key: string, value: JsonValue): Promise<Fact>;
  getFact(key: string): Promise<JsonValue | null>;
  deleteFact(key: string): Promise<FactDeleted>;
  queryFacts(pattern: string): Promise<Fact[]>;
  getAllFacts(): Promise<Fact[]>;
  /** Calls `callback` for every event whose topic matches `pattern`. */
  subscribe(pattern: string, callback: (event: RuleEvent, topic: string) => void): Promise<Unsubscribe>;
  stats(): Promise<RulesStats>;
  registerRule(rule: OperationFields<'rules.registerRule'>['rule']): Promise<RuleRegistered>;
  unregisterRule(ruleId: string): Promise<RuleUnregistered>;
  updateRule(ruleId: string, updates: OperationFields<'rules.updateRule'>['updates']): Promise<RuleUpdated>;
  enableRule(ruleId: string): Promise<RuleEnabled>;
  disableRule(ruleId: string): Promise<RuleEnabled>;
  getRule(ruleId: string): Promise<{ [key: string]: JsonValue }>;
  getRules(): Promise<RuleList>;
  validateRule(rule: OperationFields<'rules.validateRule'>['rule']): Promise<RuleValidation>;
}

/** `client.procedures`: server-side procedures (register, update, unregister and list are admin). */
export interface ProceduresApi {
  register(procedure: OperationFields<'procedures.register'>['procedure']): Promise<ProcedureRegistered>;
  unregister(name: string): Promise<ProcedureUnregistered>;
  update(name: string, updates: OperationFields<'procedures.update'>['updates']): Promise<ProcedureUpdated>;
  /** The definition as registered. */
  get(name: string): Promise<{ [key: string]: JsonValue }>;
  list(): Promise<ProcedureList>;
  /** Runs the procedure; `result` is what its `return` step gave. */
  call(name: string, input?: { [key: string]: JsonValue }): Promise<ProcedureCallResult>;
}

/** `client.auth`. */
export interface AuthApi {
  login(token: string): Promise<LoginResult>;
  logout(): Promise<LogoutResult>;
  whoami(): Promise<WhoAmI>;
}

/** `client.server` (admin tier). */
export interface ServerApi {
  stats(): Promise<ServerStats>;
  connections(): Promise<ConnectionInfo[]>;
  /** Revokes matching sessions (admin; an extension of this server): at least one filter. */
  revokeSessions(filter: { userId?: string; role?: string; connectionId?: string }): Promise<SessionsRevoked>;
}

/** A new user of `identity.createUser`: a username and a password, and optional profile fields. */
export type NewUser = OperationFields<'identity.createUser'>;

/** Profile changes of `identity.updateUser`; a field left out stays as it is. */
export type UserChanges = Omit<OperationFields<'identity.updateUser'>, 'userId'>;

/** A new role of `identity.createRole`. */
export type NewRole = OperationFields<'identity.createRole'>;

/** Changes of `identity.updateRole`. */
export type RoleChanges = Omit<OperationFields<'identity.updateRole'>, 'roleId'>;

/** What `identity.grant` gives: operations on a resource to a user or a role. */
export type GrantRequest = OperationFields<'identity.grant'>;

/** What `identity.revoke` takes back (every operation when `operations` is left out). */
export type RevokeRequest = OperationFields<'identity.revoke'>;

/**
 * `client.identity`: the server's built-in users, roles and password sessions (served when
 * its config has `identity.enabled`).
 *
 * A successful {@link IdentityApi.login}, {@link IdentityApi.loginWithSecret} or
 * {@link IdentityApi.refreshSession} leaves the client logged in as `auth.login` does: the
 * session token of the answer is sent with `auth.login` after every reconnect, until
 * {@link IdentityApi.logout} (or `auth.logout`).
 */
export interface IdentityApi {
  /** Logs in with a username and a password (a wrong one rejects with `UNAUTHORIZED`). */
  login(username: string, password: string): Promise<IdentityLogin>;
  /** Logs in as the bootstrap superadmin with the server's `identity.adminSecret`. */
  loginWithSecret(secret: string): Promise<IdentityLogin>;
  /** Ends the session; its token stops working. */
  logout(): Promise<LogoutResult>;
  /** Describes the session. */
  whoami(): Promise<WhoAmI>;
  /** A new token with a fresh expiry; the old one stops working. */
  refreshSession(): Promise<IdentityLogin>;
  /** Creates a user (admin). */
  createUser(user: NewUser): Promise<IdentityUser>;
  /** One user (admin). */
  getUser(userId: string): Promise<IdentityUser>;
  /** Changes a user's profile (the user itself or an admin). */
  updateUser(userId: string, changes: UserChanges): Promise<IdentityUser>;
  /** Deletes a user, its role assignments and its sessions (admin). */
  deleteUser(userId: string): Promise<Deleted>;
  /** One page of users (admin); page from 1, 1 to 200 users per page (default 50). */
  listUsers(options?: OperationFields<'identity.listUsers'>): Promise<IdentityUserList>;
  /** Lets a user log in again (admin). */
  enableUser(userId: string): Promise<IdentityUser>;
  /** Stops a user from logging in and ends its sessions at once (admin). */
  disableUser(userId: string): Promise<IdentityUser>;
  /** Changes one's own password; ends the user's sessions. */
  changePassword(userId: string, currentPassword: string, newPassword: string): Promise<PasswordChanged>;
  /** Sets a user's password (admin); ends the user's sessions. */
  resetPassword(userId: string, newPassword: string): Promise<PasswordReset>;
  /** Creates a role (superadmin). */
  createRole(role: NewRole): Promise<IdentityRole>;
  /** Changes a role's description or permissions (superadmin). */
  updateRole(roleId: string, changes: RoleChanges): Promise<IdentityRole>;
  /** Deletes a role that is not a system role, and its assignments (superadmin). */
  deleteRole(roleId: string): Promise<Deleted>;
  /** Every role (admin). */
  listRoles(): Promise<IdentityRoleList>;
  /** Gives a user a role, by the role's name (admin). */
  assignRole(userId: string, roleName: string): Promise<RoleAssigned>;
  /** Takes a role from a user (admin). */
  removeRole(userId: string, roleName: string): Promise<RoleRemoved>;
  /** The roles of a user (admin). */
  getUserRoles(userId: string): Promise<IdentityRoleList>;
  /** Grants operations on a resource; merges with an existing grant. */
  grant(grant: GrantRequest): Promise<AccessGranted>;
  /** Takes operations (all without `operations`) back from a grant. */
  revoke(revocation: RevokeRequest): Promise<AccessRevoked>;
  /** The grants on a resource, its owner first. */
  getAcl(resourceType: string, resourceName: string): Promise<AclEntries>;
  /** The caller's grants and owned resources. */
  myAccess(): Promise<MyAccess>;
  /** Who owns a resource. */
  getOwner(resourceType: string, resourceName: string): Promise<OwnerInfo>;
  /** Gives a resource to another user (its owner or a superadmin). */
  transferOwner(resourceType: string, resourceName: string, newOwnerId: string): Promise<OwnerTransferred>;
}

/** Filters of `audit.query`; every given one must match. */
export interface AuditQuery {
  userId?: string;
  operation?: string;
  result?: AuditResult;
  from?: number;
  to?: number;
  limit?: number;
}

export interface AuditApi {
  /** Entries of the audit log (admin), newest first. */
  query(filter?: AuditQuery): Promise<AuditEntry[]>;
}

/** A connection to a noex server, driven by the Rust client core compiled to WebAssembly. */
export declare class NoexClient {
  /** Connects, waits for the welcome, and logs in when `options.authToken` is set. */
  static connect(url: string | URL, options?: ClientOptions): Promise<NoexClient>;
  private constructor();
  readonly store: StoreApi;
  readonly rules: RulesApi;
  readonly procedures: ProceduresApi;
  readonly auth: AuthApi;
  readonly identity: IdentityApi;
  readonly server: ServerApi;
  readonly audit: AuditApi;
  /** Any operation, typed by the bindings; resolves with the result's `data`. */
  request<K extends Operation['type']>(type: K, fields?: OperationFields<K>): Promise<unknown>;
  on<E extends keyof ClientEvents>(event: E, handler: (payload: ClientEvents[E]) => void): () => void;
  off<E extends keyof ClientEvents>(event: E, handler: (payload: ClientEvents[E]) => void): void;
  readonly welcome: Welcome | null;
  readonly isConnected: boolean;
  disconnect(): void;
}

/** Instantiates the wasm module (done by `connect`; call it to load early). */
export function loadWasm(): Promise<void>;

/** The protocol version the client speaks. */
export function protocolVersion(): Promise<string>;
