// noex client for browsers and Node.js. The protocol logic (correlation, timeouts,
// subscriptions, reconnect, re-login, re-subscription, heartbeats) runs in WebAssembly:
// it is the Rust client core (client-rs/src/core) behind `WasmClient`. This module only
// loads the wasm and names the operations: each method is one `request(type, fields)`.
import init, { WasmClient, protocolVersion as wasmProtocolVersion } from './wasm/noex_client_wasm.js';

let loading;

/** Loads and instantiates the wasm module once (from disk in Node, by URL elsewhere). */
export function loadWasm() {
  loading ??= (async () => {
    const url = new URL('./wasm/noex_client_wasm_bg.wasm', import.meta.url);
    if (url.protocol === 'file:' && typeof process === 'object' && process.versions?.node) {
      const fsModule = 'node:fs/promises';
      const { readFile } = await import(/* @vite-ignore */ /* webpackIgnore: true */ fsModule);
      await init({ module_or_path: await readFile(url) });
    } else {
      await init({ module_or_path: url });
    }
  })();
  return loading;
}

/** The protocol version the client speaks. */
export async function protocolVersion() {
  await loadWasm();
  return wasmProtocolVersion();
}

/** True for the errors the client rejects with: `{name: "NoexError", code, message, details}`. */
export function isNoexError(value) {
  return value instanceof Error && value.name === 'NoexError' && typeof value.code === 'string';
}

export class NoexClient {
  #core;
  #listeners;

  /** Connects, waits for the welcome, logs in when `options.authToken` is set. */
  static async connect(url, options = {}) {
    await loadWasm();
    const listeners = new Map();
    const core = new WasmClient(String(url), options, (name, payload) => {
      for (const handler of [...(listeners.get(name) ?? [])]) handler(payload);
    });
    try {
      await core.opened();
    } catch (error) {
      core.disconnect();
      core.free();
      throw error;
    }
    const client = new NoexClient(core, listeners);
    if (options.authToken) {
      try {
        await client.auth.login(options.authToken);
      } catch (error) {
        client.disconnect();
        throw error;
      }
    }
    return client;
  }

  constructor(core, listeners) {
    this.#core = core;
    this.#listeners = listeners;
    const request = (type, fields) => core.request(type, fields);
    const subscribeStore = (query, params, callback) => {
      if (typeof params === 'function') [params, callback] = [undefined, params];
      const [key, initial] = core.subscribe(query, params, callback);
      return initial.then(() => () => core.unsubscribe(key));
    };
    const subscribeRules = (pattern, callback) => {
      const [key, done] = core.subscribeRules(pattern, (push) => callback(push.event, push.topic));
      return done.then(() => () => core.unsubscribe(key));
    };
    this.store = Object.freeze({
      bucket: (name) => new Bucket(request, name),
      subscribe: subscribeStore,
      transaction: (operations) => request('store.transaction', { operations }),
      buckets: () => request('store.buckets'),
      stats: () => request('store.stats'),
      defineBucket: (name, config) => request('store.defineBucket', { name, config }),
      dropBucket: (name) => request('store.dropBucket', { name }),
      updateBucket: (name, updates) => request('store.updateBucket', { name, updates }),
      getBucketSchema: (name) => request('store.getBucketSchema', { name }),
      defineQuery: (name, config) => request('store.defineQuery', { name, config }),
      undefineQuery: (name) => request('store.undefineQuery', { name }),
      listQueries: () => request('store.listQueries'),
    });
    this.rules = Object.freeze({
      emit: (topic, data, options) => request('rules.emit', { topic, data, ...options }),
      setFact: (key, value) => request('rules.setFact', { key, value }),
      getFact: (key) => request('rules.getFact', { key }),
      deleteFact: (key) => request('rules.deleteFact', { key }),
      queryFacts: (pattern) => request('rules.queryFacts', { pattern }),
      getAllFacts: () => request('rules.getAllFacts'),
      subscribe: subscribeRules,
      stats: () => request('rules.stats'),
      registerRule: (rule) => request('rules.registerRule', { rule }),
      unregisterRule: (ruleId) => request('rules.unregisterRule', { ruleId }),
      updateRule: (ruleId, updates) => request('rules.updateRule', { ruleId, updates }),
      enableRule: (ruleId) => request('rules.enableRule', { ruleId }),
      disableRule: (ruleId) => request('rules.disableRule', { ruleId }),
      getRule: (ruleId) => request('rules.getRule', { ruleId }),
      getRules: () => request('rules.getRules'),
      validateRule: (rule) => request('rules.validateRule', { rule }),
    });
    this.procedures = Object.freeze({
      register: (procedure) => request('procedures.register', { procedure }),
      unregister: (name) => request('procedures.unregister', { name }),
      update: (name, updates) => request('procedures.update', { name, updates }),
      get: (name) => request('procedures.get', { name }),
      list: () => request('procedures.list'),
      call: (name, input) => request('procedures.call', { name, input }),
    });
    this.auth = Object.freeze({
      login: (token) => request('auth.login', { token }),
      logout: () => request('auth.logout'),
      whoami: () => request('auth.whoami'),
    });
    // The built-in identity (docs/12-identity.md). A successful login, loginWithSecret or
    // refreshSession leaves the client as auth.login does: the core keeps the session token
    // and logs in with it again after every reconnect, until logout.
    this.identity = Object.freeze({
      login: (username, password) => request('identity.login', { username, password }),
      loginWithSecret: (secret) => request('identity.loginWithSecret', { secret }),
      logout: () => request('identity.logout'),
      whoami: () => request('identity.whoami'),
      refreshSession: () => request('identity.refreshSession'),
      createUser: (user) => request('identity.createUser', user),
      getUser: (userId) => request('identity.getUser', { userId }),
      updateUser: (userId, changes) => request('identity.updateUser', { ...changes, userId }),
      deleteUser: (userId) => request('identity.deleteUser', { userId }),
      listUsers: (options = {}) => request('identity.listUsers', options),
      enableUser: (userId) => request('identity.enableUser', { userId }),
      disableUser: (userId) => request('identity.disableUser', { userId }),
      changePassword: (userId, currentPassword, newPassword) =>
        request('identity.changePassword', { userId, currentPassword, newPassword }),
      resetPassword: (userId, newPassword) => request('identity.resetPassword', { userId, newPassword }),
      createRole: (role) => request('identity.createRole', role),
      updateRole: (roleId, changes) => request('identity.updateRole', { ...changes, roleId }),
      deleteRole: (roleId) => request('identity.deleteRole', { roleId }),
      listRoles: () => request('identity.listRoles'),
      assignRole: (userId, roleName) => request('identity.assignRole', { userId, roleName }),
      removeRole: (userId, roleName) => request('identity.removeRole', { userId, roleName }),
      getUserRoles: (userId) => request('identity.getUserRoles', { userId }),
      grant: (grant) => request('identity.grant', grant),
      revoke: (revocation) => request('identity.revoke', revocation),
      getAcl: (resourceType, resourceName) => request('identity.getAcl', { resourceType, resourceName }),
      myAccess: () => request('identity.myAccess'),
      getOwner: (resourceType, resourceName) => request('identity.getOwner', { resourceType, resourceName }),
      transferOwner: (resourceType, resourceName, newOwnerId) =>
        request('identity.transferOwner', { resourceType, resourceName, newOwnerId }),
    });
    this.audit = Object.freeze({
      // As the original client: resolves with the entries, newest first.
      query: (filter = {}) => request('audit.query', filter).then((data) => data.entries),
    });
    this.server = Object.freeze({
      stats: () => request('server.stats'),
      connections: () => request('server.connections'),
      revokeSessions: (filter) => request('server.revokeSessions', filter),
    });
  }

  /** Any operation: `{type, ...fields}`; resolves with the result's `data`. */
  request(type, fields) {
    return this.#core.request(type, fields);
  }

  /** Registers a lifecycle handler; returns the function that removes it. */
  on(event, handler) {
    const set = this.#listeners.get(event) ?? new Set();
    set.add(handler);
    this.#listeners.set(event, set);
    return () => this.off(event, handler);
  }

  /** Removes a lifecycle handler. */
  off(event, handler) {
    this.#listeners.get(event)?.delete(handler);
  }

  /** The welcome of the current connection. */
  get welcome() {
    return this.#core.welcome;
  }

  /** Whether requests can be sent now. */
  get isConnected() {
    return this.#core.isConnected;
  }

  /** Closes the connection for good; pending requests reject with `DISCONNECTED`. */
  disconnect() {
    this.#core.disconnect();
  }
}

/** One bucket's operations. */
class Bucket {
  #request;

  constructor(request, name) {
    this.#request = request;
    this.name = name;
  }

  #call(op, fields) {
    return this.#request(`store.${op}`, { bucket: this.name, ...fields });
  }

  insert(data) { return this.#call('insert', { data }); }
  get(key) { return this.#call('get', { key }); }
  update(key, data) { return this.#call('update', { key, data }); }
  delete(key) { return this.#call('delete', { key }); }
  all() { return this.#call('all'); }
  where(filter) { return this.#call('where', { filter }); }
  findOne(filter) { return this.#call('findOne', { filter }); }
  count(filter) { return this.#call('count', { filter }); }
  first(n) { return this.#call('first', { n }); }
  last(n) { return this.#call('last', { n }); }
  paginate({ limit, after } = {}) { return this.#call('paginate', { limit, after }); }
  sum(field, filter) { return this.#call('sum', { field, filter }); }
  avg(field, filter) { return this.#call('avg', { field, filter }); }
  min(field, filter) { return this.#call('min', { field, filter }); }
  max(field, filter) { return this.#call('max', { field, filter }); }
  insertMany(data) { return this.#call('insertMany', { data }); }
  updateMany(filter, data) { return this.#call('updateMany', { filter, data }); }
  deleteMany(filter) { return this.#call('deleteMany', { filter }); }
  upsert(data) { return this.#call('upsert', { data }); }
  groupBy(field, aggregate, filter) { return this.#call('groupBy', { field, aggregate, filter }); }
  clear() { return this.#call('clear'); }
}
