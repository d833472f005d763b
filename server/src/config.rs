//! Server configuration: every field and default of docs/reference/protocol.md "Configuration and defaults", loadable from a
//! JSON file whose field names mirror the original server's config (camelCase).

use std::collections::BTreeMap;
use std::path::Path;

use noex_store::{BucketDefinition, QueryDefinition};
use serde::{Deserialize, Serialize};

use crate::auth::AuthConfig;
pub use crate::config_error::ConfigError;

/// Everything a server can be configured with. `ServerConfig::default()` is the spec's
/// defaults: `0.0.0.0:8080`, path `/`, 1 MiB frames, heartbeat 30 s / 10 s, backpressure
/// 1 MiB / 0.8, 100 subscriptions per connection, no auth, no rate limit.
///
/// ```
/// let config: noex_server::ServerConfig =
///     serde_json::from_str(r#"{"port": 9000, "heartbeat": {"intervalMs": 5000}}"#).unwrap();
/// assert_eq!(config.port, 9000);
/// assert_eq!(config.heartbeat.interval_ms, 5000);
/// assert_eq!(config.heartbeat.timeout_ms, 10_000); // default kept
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct ServerConfig {
    /// TCP port; `0` picks a free one (see `ServerHandle::local_addr`).
    pub port: u16,
    /// Address to bind.
    pub host: String,
    /// The only path on which WebSocket upgrades are accepted.
    pub path: String,
    /// Largest accepted incoming frame; bigger ones close the socket with 1009.
    pub max_payload_bytes: usize,
    /// Server name, reported by `server.stats`.
    pub name: String,
    /// Ping / pong liveness check.
    pub heartbeat: HeartbeatConfig,
    /// Outbound buffering limits for slow clients.
    pub backpressure: BackpressureConfig,
    /// Per-connection and global limits.
    pub connection_limits: ConnectionLimits,
    /// Server-wide bounds on what clients can make the server hold, queue or compute.
    pub limits: LimitsConfig,
    /// Request rate limit; `None` disables it.
    pub rate_limit: Option<RateLimitConfig>,
    /// Authentication and permissions; `None` disables auth (every `auth.*` is then
    /// `UNKNOWN_OPERATION`).
    pub auth: Option<AuthConfig>,
    /// Accepted `Origin` headers; `None` accepts every origin. Requests without an `Origin`
    /// header (non-browser clients) are always accepted.
    pub allowed_origins: Option<Vec<String>>,
    /// Whether error frames may carry `details`.
    pub expose_error_details: bool,
    /// Buckets and declarative queries that exist from the start.
    pub store: StoreSection,
    /// The rule engine: on or off, rules registered at start, the store bridge.
    pub rules: RulesSection,
    /// Where the store keeps its data: in memory (default) or durably on disk.
    pub persistence: PersistenceSection,
    /// The audit log and `audit.query`; `None` turns both off (`audit.query` then answers
    /// `UNKNOWN_OPERATION`).
    pub audit: Option<AuditConfig>,
    /// Session revocation: how long a revoked user may not log in again.
    pub revocation: RevocationConfig,
    /// Procedures: defined at start, their default timeout and `if` nesting.
    pub procedures: ProceduresSection,
    /// The plain-HTTP endpoints (`/health`, `/ready`, `/metrics`): on or off, a bearer
    /// token for `/metrics`, or a separate admin listener for them.
    pub http: HttpConfig,
    /// How the binary writes its log lines (the library leaves logging to its embedder).
    pub log: LogConfig,
    /// Built-in identity (`identity.*`): users, roles and password sessions in system
    /// buckets; off by default.
    pub identity: IdentitySection,
}

/// `identity: {enabled?, adminSecret?, sessionTtlMs?, maxLoginAttempts?, loginWindowMs?}`:
/// the built-in users, roles and password sessions (docs/12-identity.md).
///
/// ```
/// let config: noex_server::ServerConfig = serde_json::from_str(
///     r#"{"identity": {"enabled": true, "adminSecret": "a-long-bootstrap-secret"}}"#,
/// ).unwrap();
/// assert_eq!(config.identity.session_ttl_ms, 86_400_000);
/// assert!(config.validate().is_ok());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct IdentitySection {
    /// Whether `identity.*` is served (default `false`).
    pub enabled: bool,
    /// The secret of `identity.loginWithSecret` (the bootstrap superadmin); required when
    /// enabled, at least 16 bytes.
    pub admin_secret: Option<String>,
    /// How long a session token lives, ms (default 24 h, the original's).
    pub session_ttl_ms: u64,
    /// Failed `identity.login` for one username inside `loginWindowMs` after which its
    /// logins are refused with `RATE_LIMITED` (default 5, the original's).
    pub max_login_attempts: u32,
    /// The window of `maxLoginAttempts`, ms (default 15 min, the original's).
    pub login_window_ms: u64,
}

/// Shortest accepted `identity.adminSecret`, bytes.
pub const MIN_ADMIN_SECRET_BYTES: usize = 16;

impl Default for IdentitySection {
    fn default() -> Self {
        IdentitySection {
            enabled: false,
            admin_secret: None,
            session_ttl_ms: 24 * 60 * 60 * 1000,
            max_login_attempts: 5,
            login_window_ms: 15 * 60 * 1000,
        }
    }
}

/// `http: {health, metrics, metricsToken, admin, console, trustedProxies}`: the plain-HTTP endpoints served
/// beside the WebSocket upgrade (see docs/10-production.md, "Health, readiness and metrics"
/// and "The browser console").
///
/// ```
/// let config: noex_server::ServerConfig = serde_json::from_str(
///     r#"{"http": {"metricsToken": "s3cret", "admin": "127.0.0.1:9091"}}"#,
/// ).unwrap();
/// assert!(config.http.health && config.http.metrics); // defaults kept
/// assert_eq!(config.http.admin.as_deref(), Some("127.0.0.1:9091"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct HttpConfig {
    /// Serve `GET /health` and `GET /ready`. Default `true`.
    pub health: bool,
    /// Serve `GET /metrics` (and count what it reports). Default `true`.
    pub metrics: bool,
    /// When set, `/metrics` answers only requests with `Authorization: Bearer <token>`
    /// (401 otherwise). Default `null`.
    pub metrics_token: Option<String>,
    /// `IP:PORT` of a separate listener for these endpoints (port 0 picks a free one);
    /// the main listener then answers them 404. Default `null` (served on the main
    /// listener).
    pub admin: Option<String>,
    /// Serve the browser console under `/console/` (beside the other endpoints: on the
    /// admin listener with `admin`). It needs a binary built with the `console` feature and
    /// an `auth` section or `identity.enabled` (the console requires an admin login).
    /// Default `false`.
    pub console: bool,
    /// Addresses or networks (`"10.0.0.0/8"`) of reverse proxies whose
    /// `X-Forwarded-For` names the client: a connection from one of them is counted under
    /// the client's address for every per-address limit and shown with it in
    /// `server.connections`. Default `[]` (the header is ignored).
    pub trusted_proxies: Vec<String>,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            health: true,
            metrics: true,
            metrics_token: None,
            admin: None,
            console: false,
            trusted_proxies: Vec::new(),
        }
    }
}

/// `log: {format}`: the binary's log format.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct LogConfig {
    /// `"text"` (default, human-readable) or `"json"` (one JSON object a line).
    pub format: LogFormat,
}

/// A log line format.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object a line, with the span fields (connection id, user id, operation).
    Json,
}

/// `procedures: {maxConditionDepth?, defaultTimeoutMs?, procedures?: [definition]}`: the
/// original's `procedures` section (its `maxSteps` is `limits.maxProcedureSteps` here), plus
/// procedures registered at start, in the wire shape of `procedures.register`'s
/// `procedure`. With persistence, one with the name of a persisted procedure replaces it.
///
/// ```
/// let config: noex_server::ServerConfig = serde_json::from_str(r#"{"procedures": {
///     "defaultTimeoutMs": 5000,
///     "procedures": [{"name": "ping", "steps": [{"action": "return", "value": "pong"}]}]
/// }}"#).unwrap();
/// assert_eq!(config.procedures.default_timeout_ms, 5000);
/// assert_eq!(config.procedures.max_condition_depth, 5); // default kept
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct ProceduresSection {
    /// Deepest nesting of `if` steps in a definition (default 5).
    pub max_condition_depth: usize,
    /// Timeout of a call whose procedure sets no `timeoutMs`, in ms (default 30 000).
    pub default_timeout_ms: u64,
    /// Calls one client (its user id once logged in, else its IP address) may run at once
    /// (default 2); its further calls wait until one of them ends, whatever connection
    /// they come from. Other clients' calls do not queue behind them (only for a free
    /// slot of `maxConcurrentCalls`).
    pub max_concurrent_calls_per_client: usize,
    /// Calls running at once over all clients (default `null`: one fewer than the CPU
    /// cores, at least 1, as the heavy-read slots); further calls wait for a slot, each
    /// client behind its own earlier calls. With the step results of one call bounded (4 ×
    /// `limits.maxResultBytes`), this bounds what all calls together hold and the cores
    /// they take from request handling.
    pub max_concurrent_calls: Option<usize>,
    /// Procedures registered at start, in order.
    pub procedures: Vec<serde_json::Value>,
}

impl Default for ProceduresSection {
    fn default() -> Self {
        ProceduresSection {
            max_condition_depth: 5,
            default_timeout_ms: 30_000,
            max_concurrent_calls_per_client: 2,
            max_concurrent_calls: None,
            procedures: Vec::new(),
        }
    }
}

/// Storage engine of the store.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum PersistenceEngine {
    /// Everything in memory; gone at exit.
    #[default]
    Memory,
    /// Durable storage in one redb file.
    Redb,
}

/// `persistence: {engine, dataDir?, path?, durability}`.
///
/// ```
/// let config: noex_server::ServerConfig = serde_json::from_str(
///     r#"{"persistence": {"engine": "redb", "dataDir": "./data", "durability": "batched:20ms"}}"#,
/// ).unwrap();
/// assert_eq!(config.persistence.engine, noex_server::PersistenceEngine::Redb);
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct PersistenceSection {
    /// `memory` (default) or `redb`.
    pub engine: PersistenceEngine,
    /// Directory of the database file (`noex-store.redb` inside it; created if missing).
    /// Default `./data`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_dir: Option<std::path::PathBuf>,
    /// The database file itself (instead of `dataDir`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<std::path::PathBuf>,
    /// `sync` (a write is acknowledged once it is on disk), `batched` (group commit every
    /// 50 ms) or `batched:<window>` such as `batched:20ms`.
    pub durability: String,
}

impl Default for PersistenceSection {
    fn default() -> Self {
        PersistenceSection {
            engine: PersistenceEngine::Memory,
            data_dir: None,
            path: None,
            durability: "sync".to_owned(),
        }
    }
}

impl PersistenceSection {
    /// The store's persistence settings; `None` for memory. Errors name the bad field.
    pub fn store_config(&self) -> Result<Option<noex_store::PersistenceConfig>, ConfigError> {
        if self.engine == PersistenceEngine::Memory {
            return Ok(None);
        }
        let durability = self
            .durability
            .parse::<noex_store::DurabilityMode>()
            .map_err(|_| ConfigError::Invalid {
                field: "persistence.durability",
                message: "must be sync, batched or batched:<window> (e.g. batched:20ms)",
            })?;
        Ok(Some(match (&self.path, &self.data_dir) {
            (Some(_), Some(_)) => {
                return Err(ConfigError::Invalid {
                    field: "persistence.path",
                    message: "and persistence.dataDir are exclusive",
                });
            }
            (Some(path), None) => noex_store::PersistenceConfig::new(path, durability),
            (None, dir) => noex_store::PersistenceConfig::in_dir(
                dir.clone().unwrap_or_else(|| "data".into()),
                durability,
            ),
        }))
    }
}

/// `rules: {enabled?, rules: [rule, ...], storeBridge, connectionEvents}`.
///
/// With `enabled` absent the library serves no rule engine (every `rules.*` answers
/// `RULES_NOT_AVAILABLE`) while the `noex-server` binary turns it on unless started with
/// `--no-rules`. `rules` have the shape `rules.registerRule` takes.
///
/// ```
/// let config: noex_server::ServerConfig = serde_json::from_str(r#"{"rules": {
///     "enabled": true,
///     "storeBridge": true,
///     "rules": [{"id": "greet", "name": "Greet", "trigger": {"type": "event", "topic": "user.joined"},
///                "actions": [{"type": "set_fact", "key": "greeted:${event.userId}", "value": true}]}]
/// }}"#).unwrap();
/// assert_eq!(config.rules.enabled, Some(true));
/// ```
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct RulesSection {
    /// Whether the engine runs (see the type's documentation for the default).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// Rules registered at start, in order.
    pub rules: Vec<serde_json::Value>,
    /// Forward every committed store change to the engine as the event
    /// `bucket.<name>.inserted|updated|deleted`.
    pub store_bridge: bool,
    /// Emit connection lifecycle events into the engine (source `server`):
    /// `connection.opened {connectionId, remoteAddress}`, `connection.login {connectionId,
    /// userId, roles}`, `connection.logout {connectionId, userId}` (logout, expiry, or a
    /// re-login as someone else) and `connection.closed {connectionId, remoteAddress,
    /// userId}` (`userId` is `null` when anonymous), however the socket ended.
    pub connection_events: bool,
}

/// `store: {name?, buckets: {NAME: bucket definition}, queries: {NAME: query definition}}`:
/// the store as it is when the server starts. Definitions have the wire shape of
/// `store.defineBucket` / `store.defineQuery`.
///
/// ```
/// let config: noex_server::ServerConfig = serde_json::from_str(r#"{"store": {
///     "buckets": {"users": {"key": "id", "schema": {"id": {"type": "string", "generated": "uuid"}}}},
///     "queries": {"all-users": {"bucket": "users"}}
/// }}"#).unwrap();
/// assert!(config.store.buckets.contains_key("users"));
/// ```
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct StoreSection {
    /// Store name reported by `store.stats` (default: the server's `name`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Buckets defined at start, by name.
    pub buckets: BTreeMap<String, BucketDefinition>,
    /// Declarative queries defined at start, by name.
    pub queries: BTreeMap<String, QueryDefinition>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            port: 8080,
            host: "0.0.0.0".to_owned(),
            path: "/".to_owned(),
            max_payload_bytes: 1_048_576,
            name: "noex-server".to_owned(),
            heartbeat: HeartbeatConfig::default(),
            backpressure: BackpressureConfig::default(),
            connection_limits: ConnectionLimits::default(),
            limits: LimitsConfig::default(),
            rate_limit: None,
            auth: None,
            allowed_origins: None,
            expose_error_details: true,
            store: StoreSection::default(),
            rules: RulesSection::default(),
            persistence: PersistenceSection::default(),
            procedures: ProceduresSection::default(),
            http: HttpConfig::default(),
            log: LogConfig::default(),
            audit: None,
            revocation: RevocationConfig::default(),
            identity: IdentitySection::default(),
        }
    }
}

/// Default of `audit.maxEntries`.
pub const DEFAULT_AUDIT_MAX_ENTRIES: usize = 10_000;
/// Largest `audit.maxEntries` accepted.
pub const MAX_AUDIT_MAX_ENTRIES: usize = 1_000_000;
/// A tier of operations to audit, as the config names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AuditTier {
    /// Reads.
    Read,
    /// Data mutations.
    Write,
    /// Structural changes and server introspection (the default).
    Admin,
}

impl AuditTier {
    /// The operation tier it names.
    pub fn tier(self) -> noex_protocol::Tier {
        match self {
            AuditTier::Read => noex_protocol::Tier::Read,
            AuditTier::Write => noex_protocol::Tier::Write,
            AuditTier::Admin => noex_protocol::Tier::Admin,
        }
    }
}

/// `audit: {tiers, maxEntries, bucket?}`: turns the audit log (and `audit.query`) on.
///
/// ```
/// let config: noex_server::ServerConfig =
///     serde_json::from_str(r#"{"audit": {"tiers": ["admin", "write"], "bucket": "_audit"}}"#).unwrap();
/// let audit = config.audit.unwrap();
/// assert_eq!(audit.max_entries, 10_000); // default kept
/// assert_eq!(audit.bucket.as_deref(), Some("_audit"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct AuditConfig {
    /// Which tiers of operations are logged. Default `["admin"]`.
    pub tiers: Vec<AuditTier>,
    /// Entries kept in memory (a ring buffer: the oldest goes first), and in `bucket`.
    /// Default [`DEFAULT_AUDIT_MAX_ENTRIES`].
    pub max_entries: usize,
    /// A bucket every entry is also appended to (defined at start if missing), keeping the
    /// newest `maxEntries`: with durable storage the log survives a restart. Clients cannot
    /// touch it through `store.*` (`FORBIDDEN`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bucket: Option<String>,
}

impl Default for AuditConfig {
    fn default() -> Self {
        AuditConfig {
            tiers: vec![AuditTier::Admin],
            max_entries: DEFAULT_AUDIT_MAX_ENTRIES,
            bucket: None,
        }
    }
}

/// Default of `revocation.blacklistTtlMs`: one hour.
pub const DEFAULT_BLACKLIST_TTL_MS: u64 = 3_600_000;
/// `revocation: {blacklistTtlMs}`.
///
/// ```
/// let config: noex_server::ServerConfig =
///     serde_json::from_str(r#"{"revocation": {"blacklistTtlMs": 60000}}"#).unwrap();
/// assert_eq!(config.revocation.blacklist_ttl_ms, 60_000);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct RevocationConfig {
    /// How long a revoked user may not log in again, in ms. Default
    /// [`DEFAULT_BLACKLIST_TTL_MS`].
    pub blacklist_ttl_ms: u64,
}

impl Default for RevocationConfig {
    fn default() -> Self {
        RevocationConfig {
            blacklist_ttl_ms: DEFAULT_BLACKLIST_TTL_MS,
        }
    }
}

/// `heartbeat: {intervalMs, timeoutMs}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct HeartbeatConfig {
    /// Time between pings; the connection closes with 4001 when the previous ping got no pong.
    pub interval_ms: u64,
    /// How long a client has to answer a ping before the connection closes with 4001
    /// (checked at the latest at the next ping). Also the write deadline: a connection
    /// whose socket accepts no bytes for this long while the server has something to send
    /// is dropped (reset), whatever is queued for it.
    pub timeout_ms: u64,
}

impl Default for HeartbeatConfig {
    fn default() -> Self {
        HeartbeatConfig {
            interval_ms: 30_000,
            timeout_ms: 10_000,
        }
    }
}

/// `backpressure: {maxBufferedBytes, highWaterMark}`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct BackpressureConfig {
    /// Outbound bytes a connection may have queued.
    pub max_buffered_bytes: usize,
    /// Fraction of `maxBufferedBytes` at which pushes are held back.
    pub high_water_mark: f64,
}

impl Default for BackpressureConfig {
    fn default() -> Self {
        BackpressureConfig {
            max_buffered_bytes: 1_048_576,
            high_water_mark: 0.8,
        }
    }
}

/// `connectionLimits: {maxSubscriptionsPerConnection, maxTotalSubscriptions?, maxConnectionsPerIp?}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct ConnectionLimits {
    /// Store plus rules subscriptions one connection may hold.
    pub max_subscriptions_per_connection: u32,
    /// Subscriptions over all connections; `None` for no limit.
    pub max_total_subscriptions: Option<u64>,
    /// Connections from one IP address (the one over it is closed with 4003
    /// `too_many_connections`); `null` for no limit. Default
    /// [`DEFAULT_MAX_CONNECTIONS_PER_IP`].
    pub max_connections_per_ip: Option<u32>,
}

/// The default of `connectionLimits.maxConnectionsPerIp`: enough for a few hundred users
/// behind one NAT (an office, a carrier-grade NAT) with a tab or two each, while one host
/// cannot hold thousands of connections. Raise it (or set `null`) behind a proxy that
/// makes every client come from its address.
pub const DEFAULT_MAX_CONNECTIONS_PER_IP: u32 = 256;

impl Default for ConnectionLimits {
    fn default() -> Self {
        ConnectionLimits {
            max_subscriptions_per_connection: 100,
            max_total_subscriptions: None,
            max_connections_per_ip: Some(DEFAULT_MAX_CONNECTIONS_PER_IP),
        }
    }
}

/// `limits`: every bound on what a client can make the server allocate, queue or compute,
/// with the answer at the limit. The defaults are safe for a server on the internet; the
/// production chapter of the guide lists them.
///
/// ```
/// let config: noex_server::ServerConfig =
///     serde_json::from_str(r#"{"limits": {"maxBuckets": 50, "login": {"maxFailuresPerIp": 10}}}"#).unwrap();
/// assert_eq!(config.limits.max_buckets, 50);
/// assert_eq!(config.limits.login.max_failures_per_ip, 10);
/// assert_eq!(config.limits.login.window_ms, 60_000); // default kept
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct LimitsConfig {
    /// Time a new TCP connection has to complete the WebSocket handshake; then it is dropped.
    pub handshake_timeout_ms: u64,
    /// Connections still in the handshake, over all clients; a new one beyond it makes the
    /// oldest pending one be dropped.
    pub max_pending_handshakes: u32,
    /// Connections still in the handshake from one IP address; more are dropped at once.
    pub max_pending_handshakes_per_ip: u32,
    /// WebSocket pings one connection may send per second (each one makes the server queue
    /// a pong); the connection over it is closed with 1008 `too_many_pings`.
    pub max_pings_per_second: u32,
    /// Deepest nesting of arrays and objects in one request (`PARSE_ERROR` beyond, checked
    /// before the request is parsed).
    pub max_json_depth: u32,
    /// Most JSON values (scalars, strings, arrays, objects; object keys count too) in one
    /// request (`PARSE_ERROR` beyond, checked before the request is parsed).
    pub max_json_elements: u32,
    /// Largest result or push one request or subscription may produce, in bytes of JSON;
    /// over it the request fails with `VALIDATION_ERROR` pointing to `store.paginate`.
    pub max_result_bytes: usize,
    /// Estimated memory ([`noex_store::memory_size`]) of the results one connection's
    /// store subscriptions hold together, each counted in full even when shared:
    /// `store.subscribe` past it answers `RATE_LIMITED`; a re-evaluation that grows the
    /// total past it ends that subscription with a `RATE_LIMITED` notice.
    pub max_subscription_result_bytes: usize,
    /// The same over all connections of the server.
    pub max_total_subscription_result_bytes: usize,
    /// Operator and field nodes in one filter a client sends (reads, counts, aggregates,
    /// query definitions, transaction operations; an `$in` list is one node):
    /// `VALIDATION_ERROR` beyond, before anything runs.
    pub max_filter_nodes: usize,
    /// Estimated scan work of one `store.transaction`: the records of the bucket of each
    /// filter read (`where`, `findOne`, `count`) times its filter's nodes, summed.
    /// `VALIDATION_ERROR` beyond, before any operation runs.
    pub max_transaction_scan_cost: usize,
    /// Wall time one heavy read may run on the heavy-read pool (a scan of a large bucket,
    /// a transaction with heavy reads or many operations, the first evaluation of a
    /// subscription over a large bucket): past it, it stops and answers
    /// `VALIDATION_ERROR` (a transaction rolls back, no subscription is made), giving the
    /// shared slot back to the next client's heavy read. Re-evaluations of subscriptions
    /// on the store's slow lane have the same budget; one past it ends its
    /// subscriptions with that error.
    pub max_read_ms: u64,
    /// Operations in one `store.transaction` (`VALIDATION_ERROR` beyond, before any of
    /// them runs).
    pub max_transaction_ops: usize,
    /// Records one bulk write may touch: the records of a `store.insertMany`, the matches
    /// of a `store.updateMany` / `store.deleteMany` (`VALIDATION_ERROR` beyond, naming the
    /// limit, before anything is written).
    pub max_bulk_records: usize,
    /// Largest record, in bytes: the larger of its JSON (metadata included) and its
    /// estimated memory (`noex_store::memory_size`); an insert, update or
    /// transaction writing a bigger one fails with `VALIDATION_ERROR`.
    pub max_record_bytes: usize,
    /// Most bytes of records one write may write: a `store.transaction`, a bulk write
    /// (`store.insertMany` / `updateMany` / `upsert`) or a procedure call, every inserted
    /// or updated record counted as for `max_record_bytes`. Past it the write fails with
    /// `VALIDATION_ERROR` and nothing is written. At least `max_record_bytes`.
    pub max_transaction_bytes: usize,
    /// Most bytes all records of the store may take together, each counted as the larger
    /// of its JSON and its estimated memory (an approximation of the memory in use); a write that would grow the total past it fails with
    /// `RATE_LIMITED` and changes nothing. Deletes and expiry free room.
    pub max_store_bytes: usize,
    /// Buckets per server (`RATE_LIMITED` beyond).
    pub max_buckets: usize,
    /// Defined queries per server (`RATE_LIMITED` beyond).
    pub max_queries: usize,
    /// Facts per server: `rules.setFact` of a new key beyond it answers `RATE_LIMITED`; a
    /// rule's `set_fact` of a new key is an action error (`actionErrors`). Existing facts
    /// can always be changed or deleted; facts restored at start are all kept.
    pub max_facts: usize,
    /// Largest fact value, in bytes: the larger of its JSON and an estimate of its size in
    /// memory (a parsed array of small numbers takes ~35x its JSON). `rules.setFact` of a
    /// larger one answers `VALIDATION_ERROR`; a rule's `set_fact` of one, or `set_timer`
    /// with `onExpire.data` over it, is an action error.
    pub max_fact_bytes: usize,
    /// Bytes of all facts together (every value counted as for `max_fact_bytes`, plus every
    /// key): `rules.setFact`
    /// that would grow them past it answers `RATE_LIMITED`; a rule's `set_fact` is an
    /// action error. Shrinking or deleting facts always works; restored facts are all kept.
    pub max_facts_bytes: usize,
    /// Registered rules per server (`RATE_LIMITED` beyond).
    pub max_rules: usize,
    /// Largest rule definition, in bytes: the larger of its JSON and its estimated memory
    /// (as for `max_fact_bytes`). `rules.registerRule` / `rules.updateRule` of a larger one
    /// answers `VALIDATION_ERROR`. Rules restored at start are all kept.
    pub max_rule_bytes: usize,
    /// Bytes of all registered rules together (each counted as for `max_rule_bytes`):
    /// `rules.registerRule`, or a growing `rules.updateRule`, past it answers
    /// `RATE_LIMITED`. Unregistering frees room; rules restored at start are all kept.
    pub max_rules_bytes: usize,
    /// Registered procedures per server (`procedures.register` beyond it answers
    /// `RATE_LIMITED`).
    pub max_procedures: usize,
    /// Largest procedure definition, in bytes of JSON (`VALIDATION_ERROR` beyond).
    pub max_procedure_bytes: usize,
    /// Most steps in one procedure definition, nested `then`/`else` steps included
    /// (`VALIDATION_ERROR` at registration), which also bounds the steps one call executes.
    pub max_procedure_steps: usize,
    /// Active rule timers per server; a rule's `set_timer` of a new name beyond it is an
    /// action error.
    pub max_timers: usize,
    /// Shortest rule timer duration and repeat interval, in ms: `rules.registerRule` /
    /// `rules.updateRule` of a rule with a literal one below it answers `VALIDATION_ERROR`;
    /// a computed one (`{ref}`, `${...}`) is raised to it when the timer is set.
    pub min_timer_interval_ms: u64,
    /// `log` lines one rule may write per second (token bucket per rule, one second of
    /// burst); more are dropped, and the rule's next line that passes is preceded by one
    /// warning saying how many were. Warnings about the rule (failed condition or action,
    /// truncated `for_each`) share the bucket and quote at most 256 characters of the error.
    pub max_rule_logs_per_second: u32,
    /// Work units one input to the rule engine (a `rules.emit`, `rules.setFact`, store
    /// change, fired timer) may use, its whole cascade included: one per event or fact
    /// change queued, rule evaluated, action and `for_each` iteration executed. At the bound
    /// the rest of the cascade is dropped and counted; the request still succeeds.
    pub max_rule_work_per_input: usize,
    /// Generations of rule-caused work that may trigger further rules; deeper work is
    /// applied and delivered but triggers no rule.
    pub max_rule_chain_depth: usize,
    /// Approximate bytes (as held in memory) of the values rules may produce for one input:
    /// event data, fact values, timer data, interpolated strings. Counted as produced, never
    /// refunded; at the bound the rest of the cascade is dropped and counted, the request
    /// still succeeds.
    pub max_rule_queued_bytes: usize,
    /// Approximate bytes rule conditions may look at for one input, its whole cascade
    /// included: 64 per condition evaluated plus the strings searched or compared
    /// (`contains`, `not_contains`, `matches`: the haystack) and the arrays and objects
    /// compared. Charged before the comparison; at the bound the rest of the cascade is
    /// dropped and counted, the request still succeeds.
    pub max_rule_scan_bytes: usize,
    /// Approximate bytes (as held in memory) of event data all temporal rule patterns
    /// together keep (sequence steps, absence waits, count and aggregate windows). An event
    /// that would take them past it is not buffered (not counted, starts or advances
    /// nothing) and a warning is logged; events leaving their windows free room.
    pub max_rule_temporal_bytes: usize,
    /// Outbound bytes in memory over all connections: queued, in flight and held pushes
    /// (data shared by several subscribers counts once). Over it the connection holding
    /// the most is closed with 1008 `buffer_limit` and its buffers are freed.
    pub max_total_buffered_bytes: usize,
    /// Failed `auth.login` attempts, limited even without `rateLimit`.
    pub login: LoginLimits,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            handshake_timeout_ms: 10_000,
            max_pending_handshakes: 1024,
            max_pending_handshakes_per_ip: 32,
            max_pings_per_second: 20,
            max_json_depth: 64,
            max_json_elements: 100_000,
            max_result_bytes: 8 * 1024 * 1024,
            max_subscription_result_bytes: 64 * 1024 * 1024,
            max_total_subscription_result_bytes: 1024 * 1024 * 1024,
            max_filter_nodes: 1_000,
            max_transaction_scan_cost: 2_000_000,
            max_read_ms: 1_000,
            max_transaction_ops: 1_000,
            max_bulk_records: 1_000,
            max_record_bytes: 1024 * 1024,
            max_transaction_bytes: 16 * 1024 * 1024,
            max_store_bytes: 1024 * 1024 * 1024,
            max_buckets: 1_000,
            max_queries: 1_000,
            max_facts: 100_000,
            max_fact_bytes: 64 * 1024,
            max_facts_bytes: 64 * 1024 * 1024,
            max_rules: 1_000,
            max_rule_bytes: 64 * 1024,
            max_rules_bytes: 32 * 1024 * 1024,
            max_procedures: 1_000,
            max_procedure_bytes: 64 * 1024,
            max_procedure_steps: 100,
            max_timers: 10_000,
            min_timer_interval_ms: 100,
            max_rule_logs_per_second: 20,
            max_rule_work_per_input: 10_000,
            max_rule_chain_depth: 10,
            max_rule_queued_bytes: 16 * 1024 * 1024,
            max_rule_scan_bytes: 16 * 1024 * 1024,
            max_rule_temporal_bytes: 64 * 1024 * 1024,
            max_total_buffered_bytes: 256 * 1024 * 1024,
            login: LoginLimits::default(),
        }
    }
}

/// `limits.login: {maxFailuresPerConnection, maxFailuresPerIp, windowMs}`: after this many
/// failed logins inside the window, `auth.login` answers `RATE_LIMITED` (with
/// `details.retryAfterMs`) without trying the token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct LoginLimits {
    /// Failed logins one connection may make per window.
    pub max_failures_per_connection: u32,
    /// Failed logins from one IP address per window (all its connections together).
    pub max_failures_per_ip: u32,
    /// The window, in ms.
    pub window_ms: u64,
}

impl Default for LoginLimits {
    fn default() -> Self {
        LoginLimits {
            max_failures_per_connection: 5,
            max_failures_per_ip: 30,
            window_ms: 60_000,
        }
    }
}

/// `rateLimit: {maxRequests, windowMs}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RateLimitConfig {
    /// Requests allowed per window and key.
    pub max_requests: u32,
    /// Sliding window length.
    pub window_ms: u64,
}

impl ServerConfig {
    /// Reads a JSON config file; absent fields keep their defaults.
    pub fn from_file(path: &Path) -> Result<ServerConfig, ConfigError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: shown.clone(),
            source,
        })?;
        let mut deserializer = serde_json::Deserializer::from_str(&text);
        let config: ServerConfig =
            serde_path_to_error::deserialize(&mut deserializer).map_err(|e| {
                ConfigError::Parse {
                    path: shown.clone(),
                    message: match e.path().to_string().as_str() {
                        "." => e.inner().to_string(),
                        field => format!("{field}: {}", e.inner()),
                    },
                }
            })?;
        // Only whitespace may follow the object (`serde_json::from_str` checks this too).
        deserializer.end().map_err(|e| ConfigError::Parse {
            path: shown,
            message: e.to_string(),
        })?;
        config.validate()?;
        Ok(config)
    }

    /// Checks value ranges that the types alone do not express.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |field, message| Err(ConfigError::Invalid { field, message });
        if !self.path.starts_with('/') {
            return invalid("path", "must start with \"/\"");
        }
        if self.max_payload_bytes == 0 {
            return invalid("maxPayloadBytes", "must be at least 1");
        }
        if self.heartbeat.interval_ms == 0 {
            return invalid("heartbeat.intervalMs", "must be at least 1");
        }
        if self.heartbeat.timeout_ms == 0 {
            return invalid("heartbeat.timeoutMs", "must be at least 1");
        }
        if self.backpressure.max_buffered_bytes == 0 {
            return invalid("backpressure.maxBufferedBytes", "must be at least 1");
        }
        let hwm = self.backpressure.high_water_mark;
        if !(hwm > 0.0 && hwm <= 1.0) {
            return invalid("backpressure.highWaterMark", "must be in (0, 1]");
        }
        if self.connection_limits.max_subscriptions_per_connection == 0 {
            return invalid(
                "connectionLimits.maxSubscriptionsPerConnection",
                "must be at least 1",
            );
        }
        self.limits.validate()?;
        if let Some(audit) = &self.audit {
            if audit.max_entries == 0 || audit.max_entries > MAX_AUDIT_MAX_ENTRIES {
                return invalid("audit.maxEntries", "must be between 1 and 1000000");
            }
            if audit.bucket.as_deref() == Some("") {
                return invalid("audit.bucket", "must not be empty");
            }
        }
        if self.identity.enabled {
            let secret = self.identity.admin_secret.as_deref().unwrap_or_default();
            if secret.len() < MIN_ADMIN_SECRET_BYTES {
                return invalid(
                    "identity.adminSecret",
                    "must be at least 16 bytes when identity is enabled",
                );
            }
            if self.identity.session_ttl_ms == 0 {
                return invalid("identity.sessionTtlMs", "must be at least 1");
            }
            if self.identity.max_login_attempts == 0 {
                return invalid("identity.maxLoginAttempts", "must be at least 1");
            }
            if self.identity.login_window_ms == 0 {
                return invalid("identity.loginWindowMs", "must be at least 1");
            }
        }
        if self.revocation.blacklist_ttl_ms == 0 {
            return invalid("revocation.blacklistTtlMs", "must be at least 1");
        }
        if self.limits.max_total_buffered_bytes < self.backpressure.max_buffered_bytes {
            return invalid(
                "limits.maxTotalBufferedBytes",
                "must be at least backpressure.maxBufferedBytes",
            );
        }
        if let Some(tokens) = self.auth.as_ref().and_then(|auth| auth.tokens.as_ref()) {
            // The token itself is a secret: not named in the message.
            if tokens.values().any(|token| token.user_id.is_empty()) {
                return invalid("auth.tokens", "has a token with an empty userId");
            }
        }
        if self.rules.enabled == Some(false)
            && (!self.rules.rules.is_empty()
                || self.rules.store_bridge
                || self.rules.connection_events)
        {
            return invalid(
                "rules.enabled",
                "is false but rules, the store bridge or connection events are configured",
            );
        }
        if self.http.metrics_token.as_deref() == Some("") {
            return invalid("http.metricsToken", "must not be empty (null turns it off)");
        }
        if let Some(admin) = &self.http.admin
            && admin.parse::<std::net::SocketAddr>().is_err()
        {
            return invalid(
                "http.admin",
                "must be an IP:PORT address such as 127.0.0.1:9091",
            );
        }
        if crate::proxy::TrustedProxies::parse(&self.http.trusted_proxies).is_err() {
            return invalid(
                "http.trustedProxies",
                "must list IP addresses or networks such as 10.0.0.0/8",
            );
        }
        if self.http.console {
            if !crate::console::BUILT_IN {
                return invalid(
                    "http.console",
                    "is on but this binary was built without the console: run \
                     client-wasm/build-pkg && cargo build -p noex-server --features console",
                );
            }
            if self.auth.is_none() && !self.identity.enabled {
                return invalid(
                    "http.console",
                    "needs an `auth` section or `identity.enabled`: the console requires an \
                     admin login",
                );
            }
            if self.http.admin.is_none()
                && (self.path == "/console" || self.path.starts_with("/console/"))
            {
                return invalid(
                    "http.console",
                    "cannot share its /console path with the WebSocket path (move one, or \
                     the console to http.admin)",
                );
            }
        }
        if self.procedures.max_condition_depth == 0 {
            return invalid("procedures.maxConditionDepth", "must be at least 1");
        }
        if self.procedures.default_timeout_ms == 0 {
            return invalid("procedures.defaultTimeoutMs", "must be at least 1");
        }
        if self.procedures.max_concurrent_calls == Some(0) {
            return invalid("procedures.maxConcurrentCalls", "must be at least 1");
        }
        if self.procedures.max_concurrent_calls_per_client == 0 {
            return invalid(
                "procedures.maxConcurrentCallsPerClient",
                "must be at least 1",
            );
        }
        self.persistence.store_config()?;
        if let Some(rate) = self.rate_limit {
            if rate.max_requests == 0 {
                return invalid("rateLimit.maxRequests", "must be at least 1");
            }
            if rate.window_ms == 0 {
                return invalid("rateLimit.windowMs", "must be at least 1");
            }
        }
        Ok(())
    }
}

impl LimitsConfig {
    /// `max_read_ms` as the budget handed to [`noex_store::with_read_deadline`].
    pub fn read_budget(&self) -> std::time::Duration {
        std::time::Duration::from_millis(self.max_read_ms)
    }

    /// Every limit must be at least 1 (a zero would refuse everything).
    fn validate(&self) -> Result<(), ConfigError> {
        let checks: [(&'static str, u64); 40] = [
            ("limits.handshakeTimeoutMs", self.handshake_timeout_ms),
            (
                "limits.maxPendingHandshakes",
                self.max_pending_handshakes.into(),
            ),
            (
                "limits.maxPendingHandshakesPerIp",
                self.max_pending_handshakes_per_ip.into(),
            ),
            ("limits.maxPingsPerSecond", self.max_pings_per_second.into()),
            ("limits.maxJsonDepth", self.max_json_depth.into()),
            ("limits.maxJsonElements", self.max_json_elements.into()),
            ("limits.maxResultBytes", self.max_result_bytes as u64),
            ("limits.maxTransactionOps", self.max_transaction_ops as u64),
            ("limits.maxBulkRecords", self.max_bulk_records as u64),
            ("limits.maxFilterNodes", self.max_filter_nodes as u64),
            (
                "limits.maxTransactionScanCost",
                self.max_transaction_scan_cost as u64,
            ),
            (
                "limits.maxSubscriptionResultBytes",
                self.max_subscription_result_bytes as u64,
            ),
            (
                "limits.maxTotalSubscriptionResultBytes",
                self.max_total_subscription_result_bytes as u64,
            ),
            ("limits.maxRecordBytes", self.max_record_bytes as u64),
            (
                "limits.maxTransactionBytes",
                self.max_transaction_bytes as u64,
            ),
            ("limits.maxStoreBytes", self.max_store_bytes as u64),
            ("limits.maxBuckets", self.max_buckets as u64),
            ("limits.maxQueries", self.max_queries as u64),
            ("limits.maxFacts", self.max_facts as u64),
            ("limits.maxFactBytes", self.max_fact_bytes as u64),
            ("limits.maxFactsBytes", self.max_facts_bytes as u64),
            ("limits.maxRules", self.max_rules as u64),
            ("limits.maxRuleBytes", self.max_rule_bytes as u64),
            ("limits.maxRulesBytes", self.max_rules_bytes as u64),
            ("limits.maxProcedures", self.max_procedures as u64),
            ("limits.maxProcedureBytes", self.max_procedure_bytes as u64),
            ("limits.maxProcedureSteps", self.max_procedure_steps as u64),
            ("limits.maxTimers", self.max_timers as u64),
            ("limits.minTimerIntervalMs", self.min_timer_interval_ms),
            ("limits.maxReadMs", self.max_read_ms),
            (
                "limits.maxRuleLogsPerSecond",
                self.max_rule_logs_per_second.into(),
            ),
            (
                "limits.maxRuleWorkPerInput",
                self.max_rule_work_per_input as u64,
            ),
            ("limits.maxRuleChainDepth", self.max_rule_chain_depth as u64),
            (
                "limits.maxRuleQueuedBytes",
                self.max_rule_queued_bytes as u64,
            ),
            ("limits.maxRuleScanBytes", self.max_rule_scan_bytes as u64),
            (
                "limits.maxRuleTemporalBytes",
                self.max_rule_temporal_bytes as u64,
            ),
            (
                "limits.maxTotalBufferedBytes",
                self.max_total_buffered_bytes as u64,
            ),
            (
                "limits.login.maxFailuresPerConnection",
                self.login.max_failures_per_connection.into(),
            ),
            (
                "limits.login.maxFailuresPerIp",
                self.login.max_failures_per_ip.into(),
            ),
            ("limits.login.windowMs", self.login.window_ms),
        ];
        if let Some((field, _)) = checks.iter().find(|(_, value)| *value == 0) {
            return Err(ConfigError::Invalid {
                field,
                message: "must be at least 1",
            });
        }
        if self.max_transaction_bytes < self.max_record_bytes {
            return Err(ConfigError::Invalid {
                field: "limits.maxTransactionBytes",
                message: "must be at least limits.maxRecordBytes",
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_the_spec_defaults() {
        let c = ServerConfig::default();
        assert_eq!(
            (c.port, c.host.as_str(), c.path.as_str()),
            (8080, "0.0.0.0", "/")
        );
        assert_eq!(c.max_payload_bytes, 1_048_576);
        assert_eq!(c.name, "noex-server");
        assert_eq!(
            (c.heartbeat.interval_ms, c.heartbeat.timeout_ms),
            (30_000, 10_000)
        );
        assert_eq!(c.backpressure.max_buffered_bytes, 1_048_576);
        assert_eq!(c.backpressure.high_water_mark, 0.8);
        assert_eq!(c.connection_limits.max_subscriptions_per_connection, 100);
        assert!(c.rate_limit.is_none() && c.allowed_origins.is_none());
        c.validate().unwrap();
    }

    #[test]
    fn procedure_settings_are_validated_like_their_neighbours() {
        let c: ServerConfig = serde_json::from_str("{}").unwrap();
        assert_eq!(
            (
                c.limits.max_procedures,
                c.limits.max_procedure_bytes,
                c.limits.max_procedure_steps
            ),
            (1_000, 65_536, 100)
        );
        assert_eq!(
            (
                c.procedures.max_condition_depth,
                c.procedures.default_timeout_ms,
                c.procedures.max_concurrent_calls_per_client
            ),
            (5, 30_000, 2)
        );
        for (json, field) in [
            (
                r#"{"limits": {"maxProcedureSteps": 0}}"#,
                "limits.maxProcedureSteps",
            ),
            (
                r#"{"limits": {"maxProcedures": 0}}"#,
                "limits.maxProcedures",
            ),
            (
                r#"{"procedures": {"defaultTimeoutMs": 0}}"#,
                "procedures.defaultTimeoutMs",
            ),
        ] {
            let c: ServerConfig = serde_json::from_str(json).unwrap();
            match c.validate() {
                Err(ConfigError::Invalid { field: f, .. }) => assert_eq!(f, field),
                other => panic!("{json}: {other:?}"),
            }
        }
        assert!(
            serde_json::from_str::<ServerConfig>(r#"{"procedures": {"maxSteps": 5}}"#).is_err()
        );
    }

    #[test]
    fn the_http_section_is_validated() {
        let c: ServerConfig = serde_json::from_str("{}").unwrap();
        assert_eq!(c.http, HttpConfig::default());
        assert!(c.http.health && c.http.metrics);
        assert_eq!(c.log.format, LogFormat::Text);
        let c: ServerConfig = serde_json::from_str(
            r#"{"http": {"admin": "127.0.0.1:0", "metricsToken": "t"}, "log": {"format": "json"}}"#,
        )
        .unwrap();
        assert!(c.validate().is_ok());
        assert_eq!(c.log.format, LogFormat::Json);
        for (json, field) in [
            (r#"{"http": {"metricsToken": ""}}"#, "http.metricsToken"),
            (r#"{"http": {"admin": "localhost"}}"#, "http.admin"),
            (r#"{"http": {"admin": "nowhere:80"}}"#, "http.admin"),
            (
                r#"{"http": {"trustedProxies": ["10.0.0.0/8", "localhost"]}}"#,
                "http.trustedProxies",
            ),
        ] {
            let c: ServerConfig = serde_json::from_str(json).unwrap();
            match c.validate() {
                Err(ConfigError::Invalid { field: f, .. }) => assert_eq!(f, field),
                other => panic!("{json}: {other:?}"),
            }
        }
        assert!(serde_json::from_str::<ServerConfig>(r#"{"log": {"format": "xml"}}"#).is_err());
        // The console: off by default, and on only with a login and a path of its own
        // (and, in a binary without the `console` feature, not at all).
        assert!(!HttpConfig::default().console);
        let tokens = r#""auth": {"tokens": {"t": {"userId": "ada", "roles": ["admin"]}}}"#;
        for (json, ok) in [
            (r#"{"http": {"console": true}}"#.to_owned(), false),
            (format!(r#"{{"http": {{"console": true}}, {tokens}}}"#), true),
            (
                r#"{"http": {"console": true}, "identity": {"enabled": true, "adminSecret": "0123456789abcdef"}}"#
                    .to_owned(),
                true,
            ),
            (
                format!(r#"{{"http": {{"console": true}}, "path": "/console/ws", {tokens}}}"#),
                false,
            ),
            (
                format!(
                    r#"{{"http": {{"console": true, "admin": "127.0.0.1:0"}}, "path": "/console", {tokens}}}"#
                ),
                true,
            ),
        ] {
            let c: ServerConfig = serde_json::from_str(&json).unwrap();
            match c.validate() {
                Ok(()) => assert!(ok && crate::console::BUILT_IN, "{json}"),
                Err(ConfigError::Invalid { field, message }) => {
                    assert_eq!(field, "http.console", "{json}");
                    if crate::console::BUILT_IN {
                        assert!(!ok, "{json}: {message}");
                    } else {
                        assert!(message.contains("--features console"), "{message}");
                    }
                }
                Err(other) => panic!("{json}: {other:?}"),
            }
        }
    }

    #[test]
    fn connections_per_ip_are_limited_by_default_and_null_lifts_the_limit() {
        let c: ServerConfig = serde_json::from_str("{}").unwrap();
        assert_eq!(c.connection_limits.max_connections_per_ip, Some(256));
        assert_eq!(c.limits.max_total_buffered_bytes, 256 * 1024 * 1024);
        let c: ServerConfig =
            serde_json::from_str(r#"{"connectionLimits": {"maxConnectionsPerIp": null}}"#).unwrap();
        assert_eq!(c.connection_limits.max_connections_per_ip, None);
    }

    #[test]
    fn the_total_outbound_cap_holds_at_least_one_connections_buffer() {
        let mut c = ServerConfig::default();
        c.limits.max_total_buffered_bytes = c.backpressure.max_buffered_bytes - 1;
        assert_eq!(
            c.validate().unwrap_err().to_string(),
            "invalid config: \"limits.maxTotalBufferedBytes\" must be at least backpressure.maxBufferedBytes"
        );
    }

    #[test]
    fn an_empty_object_is_the_default_config() {
        let c: ServerConfig = serde_json::from_str("{}").unwrap();
        assert_eq!(c, ServerConfig::default());
    }

    #[test]
    fn unknown_fields_are_named_in_the_error() {
        let err = serde_json::from_str::<ServerConfig>(r#"{"prot": 1}"#).unwrap_err();
        assert!(err.to_string().contains("prot"), "{err}");
        let err =
            serde_json::from_str::<ServerConfig>(r#"{"heartbeat": {"interval": 1}}"#).unwrap_err();
        assert!(err.to_string().contains("interval"), "{err}");
    }

    /// Found by fuzzing (fuzz/, target config): the file reader ignored whatever followed
    /// the config object, so `{} x` or two concatenated configs loaded as the first one.
    #[test]
    fn text_after_the_config_object_is_an_error() {
        let dir = std::env::temp_dir().join(format!("noex-config-trailing-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        for (name, text) in [
            ("nul.json", "{}\u{0}\u{e}"),
            ("two.json", r#"{"port": 1} {"port": 2}"#),
            ("junk.json", r#"{"port": 1}}"#),
        ] {
            let path = dir.join(name);
            std::fs::write(&path, text).unwrap();
            let err = ServerConfig::from_file(&path).expect_err(text);
            assert!(matches!(err, ConfigError::Parse { .. }), "{text:?}: {err}");
            assert!(err.to_string().contains("trailing characters"), "{err}");
        }
        let path = dir.join("ok.json");
        std::fs::write(&path, "{\"port\": 1}\n\n").unwrap();
        assert_eq!(ServerConfig::from_file(&path).unwrap().port, 1);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn out_of_range_values_name_the_field() {
        let mut c = ServerConfig::default();
        c.backpressure.high_water_mark = 1.5;
        assert!(
            c.validate()
                .unwrap_err()
                .to_string()
                .contains("backpressure.highWaterMark")
        );
        let c = ServerConfig {
            path: "ws".into(),
            ..ServerConfig::default()
        };
        assert!(c.validate().unwrap_err().to_string().contains("\"path\""));
        let mut c = ServerConfig::default();
        c.limits.login.window_ms = 0;
        assert!(
            c.validate()
                .unwrap_err()
                .to_string()
                .contains("limits.login.windowMs")
        );
    }
}
