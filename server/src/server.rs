//! `Server::start` and `ServerHandle`: binding, the accept loop, and graceful shutdown.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::auth::{ChainValidator, TokenValidator};
use crate::config::{ConfigError, ServerConfig};
use crate::connection;
use crate::handshake::HandshakeGate;
use crate::http::Listener;
use crate::login_limit::LoginLimiter;
use crate::permissions::PermissionCheck;
use crate::rate_limit::RateLimiter;
use crate::registry::ConnectionRegistry;
use crate::shared::{AuthRuntime, Lifecycle, Shared};
use crate::subscriptions::SubscriptionCounters;
use noex_model::clock::{Clock, SystemClock};
use noex_protocol::payloads::{ConnectionInfo, ServerStats};
use noex_rules::{RuleEngine, RulesError};
use noex_store::{Store, StoreConfig, StoreError};

/// Failure to start a server.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The configuration is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A bucket or query of the config's `store` section could not be defined.
    #[error("cannot define {what}: {source}")]
    Store {
        /// E.g. `bucket "users"`.
        what: String,
        /// Why.
        source: Box<StoreError>,
    },
    /// A rule of the config's `rules` section could not be registered.
    #[error("cannot register rule #{index}: {source}")]
    Rule {
        /// Position in `rules.rules`.
        index: usize,
        /// Why.
        source: RulesError,
    },
    /// A procedure of the config's `procedures` section could not be registered.
    #[error("cannot register procedure #{index}: {message}")]
    Procedure {
        /// Position in `procedures.procedures`.
        index: usize,
        /// Why.
        message: String,
    },
    /// The built-in identity could not start (its system buckets or roles).
    #[error("cannot start the identity system: {message}")]
    Identity {
        /// Why.
        message: String,
    },
    /// The address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// `host:port` as configured.
        addr: String,
        /// Why.
        source: std::io::Error,
    },
}

/// The noex server. Start it with [`Server::start`], or with [`Server::builder`] to plug in
/// Rust hooks (token validator, permission check, clock).
pub struct Server;

impl Server {
    /// Binds `config.host:config.port` and serves until [`ServerHandle::stop`].
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), noex_server::StartError> {
    /// let config = noex_server::ServerConfig { port: 0, host: "127.0.0.1".into(), ..Default::default() };
    /// let server = noex_server::Server::start(config).await?;
    /// println!("listening on ws://{}/", server.local_addr());
    /// server.stop(std::time::Duration::from_secs(5)).await;
    /// # Ok(()) }
    /// ```
    pub async fn start(config: ServerConfig) -> Result<ServerHandle, StartError> {
        Server::builder(config).start().await
    }

    /// A builder for a server with embedder hooks.
    pub fn builder(config: ServerConfig) -> ServerBuilder {
        ServerBuilder {
            config,
            validator: None,
            permission_check: None,
            clock: None,
            store: None,
            rule_engine: None,
            audit_hook: None,
            ready_after: None,
        }
    }
}

/// Configures the Rust-side hooks of a server before starting it.
///
/// ```no_run
/// # async fn run() -> Result<(), noex_server::StartError> {
/// use noex_server::{Decision, Server, ServerConfig, Session};
/// let server = Server::builder(ServerConfig::default())
///     .permission_check(|_s: &Session, op: &str, _r: &str| {
///         if op == "store.clear" { Decision::Deny } else { Decision::Pass }
///     })
///     .start()
///     .await?;
/// # Ok(()) }
/// ```
pub struct ServerBuilder {
    config: ServerConfig,
    validator: Option<Arc<dyn TokenValidator>>,
    permission_check: Option<Arc<dyn PermissionCheck>>,
    clock: Option<Arc<dyn Clock>>,
    store: Option<Store>,
    rule_engine: Option<RuleEngine>,
    audit_hook: Option<crate::audit::AuditHook>,
    ready_after: Option<std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>>,
}

impl ServerBuilder {
    /// Calls `hook` with every audit entry once it is logged (the original's
    /// `audit.onEntry`), e.g. to export the log. It runs on the request's task, after the
    /// entry is in the ring buffer: keep it quick (hand the entry to a channel). A panic in
    /// it is caught and logged. Needs the config's `audit` section.
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), noex_server::StartError> {
    /// use noex_server::{AuditConfig, Server, ServerConfig};
    /// let config = ServerConfig { audit: Some(AuditConfig::default()), ..Default::default() };
    /// let server = Server::builder(config)
    ///     .audit_hook(|entry| println!("{} {}", entry.operation, entry.resource))
    ///     .start()
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub fn audit_hook(
        mut self,
        hook: impl Fn(&noex_protocol::payloads::AuditEntry) + Send + Sync + 'static,
    ) -> Self {
        self.audit_hook = Some(Arc::new(hook));
        self
    }

    /// Serves `engine` as the rule engine (turning `rules.*` on whatever the config's
    /// `rules.enabled` says, unless it is `false`): the way to share an engine with
    /// in-process code or to give it a custom [`noex_rules::EngineConfig`] (the config's
    /// `limits` for rules do not apply to it). The config's rules are
    /// registered on it. With durable storage its rules are persisted by the server, but
    /// its facts only if its `EngineConfig::fact_observer` writes them (the server logs a
    /// warning at start when it has none).
    pub fn rule_engine(mut self, engine: RuleEngine) -> Self {
        self.rule_engine = Some(engine);
        self
    }

    /// Serves `store` instead of a fresh one: the way to register programmatic queries
    /// (Rust closures) before start, or to share a store with in-process code. The
    /// config's `store` section is still applied to it (its `name` is ignored).
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
    /// use noex_store::{Store, StoreConfig};
    /// let store = Store::start(StoreConfig::default())?;
    /// store.define_programmatic_query("open-orders", |ctx, _params| {
    ///     Ok(serde_json::json!(ctx.bucket("orders")?.count(None)?))
    /// })?;
    /// let server = noex_server::Server::builder(noex_server::ServerConfig::default())
    ///     .store(store)
    ///     .start()
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub fn store(mut self, store: Store) -> Self {
        self.store = Some(store);
        self
    }

    /// Validates login tokens with `validator` (tried before the config's token table and
    /// JWT). Enables auth even without an `auth` config section.
    pub fn token_validator(mut self, validator: impl TokenValidator) -> Self {
        self.validator = Some(Arc::new(validator));
        self
    }

    /// Consults `check` before the declarative permission rules.
    pub fn permission_check(mut self, check: impl PermissionCheck) -> Self {
        self.permission_check = Some(Arc::new(check));
        self
    }

    /// Reads time from `clock` for session expiry, JWT `nbf`, and rate-limit and
    /// failed-login windows, and gives it to the store the server starts (record timestamps,
    /// TTL expiry and sweep) and to its rule engine (timers, absence waits, event and fact
    /// timestamps). A store or rule engine passed to [`ServerBuilder::store`] or
    /// [`ServerBuilder::rule_engine`] keeps the clock of its own config. Default: the
    /// system clock.
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = Some(clock);
        self
    }

    /// Keeps the started server in its *starting* state until `gate` completes: `/ready`
    /// answers 503 `{"status":"starting"}` (so a load balancer sends it no traffic yet),
    /// `/health` answers 200, and WebSocket clients are closed with 1013
    /// `server_starting` (try again later). For an embedding application that warms a
    /// cache, loads its own data or waits for a dependency before it takes clients. A
    /// [`ServerHandle::stop`] meanwhile stops the server as usual.
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), noex_server::StartError> {
    /// let (warm, warmed) = tokio::sync::oneshot::channel::<()>();
    /// let server = noex_server::Server::builder(noex_server::ServerConfig::default())
    ///     .ready_after(async move { let _ = warmed.await; })
    ///     .start()
    ///     .await?;
    /// // ... fill the store ...
    /// let _ = warm.send(());
    /// # Ok(()) }
    /// ```
    pub fn ready_after(
        mut self,
        gate: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> Self {
        self.ready_after = Some(Box::pin(gate));
        self
    }

    /// Binds and serves. The listeners are bound first, before the store is loaded: a
    /// port in use is reported at once, and connections arriving while a large persisted
    /// store loads wait in the listen backlog and are answered once it is loaded.
    pub async fn start(self) -> Result<ServerHandle, StartError> {
        let ServerBuilder {
            config,
            validator,
            permission_check,
            clock,
            store,
            rule_engine,
            audit_hook,
            ready_after,
        } = self;
        config.validate()?;
        let addr = format!("{}:{}", config.host, config.port);
        let listener = TcpListener::bind(&addr)
            .await
            .map_err(|source| StartError::Bind {
                addr: addr.clone(),
                source,
            })?;
        let local_addr = listener
            .local_addr()
            .map_err(|source| StartError::Bind { addr, source })?;
        let admin = match &config.http.admin {
            Some(addr) => {
                let admin = TcpListener::bind(addr)
                    .await
                    .map_err(|source| StartError::Bind {
                        addr: addr.clone(),
                        source,
                    })?;
                let admin_addr = admin.local_addr().map_err(|source| StartError::Bind {
                    addr: addr.clone(),
                    source,
                })?;
                Some((admin, admin_addr))
            }
            None => None,
        };
        let metrics = crate::metrics::Metrics::new(config.http.metrics);
        let clock = clock.unwrap_or_else(|| Arc::new(SystemClock));
        let store = match store {
            Some(store) => store,
            None => Store::start(StoreConfig {
                name: config
                    .store
                    .name
                    .clone()
                    .unwrap_or_else(|| config.name.clone()),
                persistence: config.persistence.store_config()?,
                max_result_bytes: config.limits.max_result_bytes,
                max_buckets: config.limits.max_buckets,
                max_queries: config.limits.max_queries,
                max_record_bytes: config.limits.max_record_bytes,
                max_transaction_bytes: config.limits.max_transaction_bytes,
                max_store_bytes: config.limits.max_store_bytes,
                max_evaluation_time: config.limits.read_budget(),
                clock: Some(Arc::clone(&clock)),
                commit_observer: metrics.commit_observer(),
                ..StoreConfig::default()
            })
            .map_err(|source| StartError::Store {
                what: "the store".to_owned(),
                source: Box::new(source),
            })?,
        };
        apply_store_section(&store, &config.store)?;
        let audit = match &config.audit {
            Some(audit_config) => Some(
                crate::audit::AuditLog::start(audit_config, &store, audit_hook).map_err(
                    |source| StartError::Store {
                        what: format!(
                            "the audit bucket {:?}",
                            audit_config.bucket.as_deref().unwrap_or_default()
                        ),
                        source: Box::new(source),
                    },
                )?,
            ),
            None if audit_hook.is_some() => {
                return Err(StartError::Config(ConfigError::Invalid {
                    field: "audit",
                    message: "must be configured for an audit hook",
                }));
            }
            None => None,
        };
        let identity = if config.identity.enabled {
            let identity =
                crate::identity::Identity::start(&store, &config.identity, Arc::clone(&clock))
                    .map_err(|err| StartError::Identity {
                        message: err.message,
                    })?;
            Some(Arc::new(identity))
        } else {
            None
        };
        // Buckets neither procedures nor the rule engine see, with what they are for.
        let mut reserved: Vec<(String, &'static str)> = Vec::new();
        if let Some(bucket) = config.audit.as_ref().and_then(|a| a.bucket.clone()) {
            reserved.push((bucket, "the audit log"));
        }
        if identity.is_some() {
            for bucket in crate::identity::SYSTEM_BUCKETS {
                reserved.push((bucket.to_owned(), "the identity system"));
            }
        }
        let revocations =
            crate::revocation::Revocations::new(config.revocation, Arc::clone(&clock));
        let auth = match (&config.auth, validator, &identity) {
            (None, None, None) => None,
            (auth_config, custom, identity) => {
                let auth_config = auth_config.clone().unwrap_or_default();
                let mut validators = Vec::new();
                validators.extend(custom);
                validators.extend(auth_config.validators(&clock)?);
                // Identity session tokens log in through `auth.login` too, after the
                // configured sources.
                if let Some(identity) = identity {
                    validators.push(Arc::new(crate::identity::SessionValidator(Arc::clone(
                        identity,
                    )))
                        as Arc<dyn crate::auth::TokenValidator>);
                }
                if validators.is_empty() {
                    return Err(StartError::Config(ConfigError::Invalid {
                        field: "auth",
                        message: "needs \"tokens\", \"jwt\" or a custom token validator",
                    }));
                }
                let mut permissions = auth_config.permissions;
                if identity.is_some() && config.auth.is_none() {
                    // Built-in identity alone: a user may do what its roles' rules, its
                    // grants and its ownership allow, nothing else (as the original's
                    // built-in mode).
                    permissions.default = crate::permissions::DefaultPolicy::Deny;
                }
                Some(AuthRuntime {
                    required: auth_config.required,
                    validator: Arc::new(ChainValidator(validators)),
                    permissions,
                    hook: permission_check,
                    grants: identity.as_ref().map(|identity| {
                        Arc::new(crate::identity::IdentityGrants(Arc::clone(identity)))
                            as Arc<dyn crate::permissions::Grants>
                    }),
                })
            }
        };
        let rules = match (config.rules.enabled, rule_engine) {
            (Some(false), _) | (None, None) => None,
            (_, Some(engine)) => Some(engine),
            (Some(true), None) => Some(RuleEngine::new(noex_rules::EngineConfig {
                clock: Arc::clone(&clock),
                ..crate::rule_persistence::engine_config(&config.limits, &store)
            })),
        };
        if let Some(engine) = &rules {
            if store.persistence_path().is_some() && engine.config().fact_observer.is_none() {
                tracing::warn!(
                    "durable storage is on but the supplied rule engine has no fact_observer: \
                     its facts will not survive a restart"
                );
            }
            crate::rule_persistence::restore(&store, engine);
            for (index, rule) in config.rules.rules.iter().enumerate() {
                // The config is the source of truth for its rules: a persisted rule with
                // the same id is replaced.
                if let Some(id) = rule.get("id").and_then(serde_json::Value::as_str) {
                    let _ = engine.unregister_rule(id);
                }
                let registered = engine
                    .register_rule(rule)
                    .map_err(|source| StartError::Rule { index, source })?;
                crate::rule_persistence::persist_rule(&store, engine, &registered.input.id)
                    .map_err(|source| StartError::Store {
                        what: format!("rule {:?}", registered.input.id),
                        source: Box::new(source),
                    })?;
            }
            if config.rules.store_bridge {
                // The audit log's changes stay out of the engine: a rule or a
                // `rules.subscribe` would see every entry (the eighth red-team run).
                // Nor do the identity system's (users, sessions, password hashes).
                let hidden = reserved.iter().map(|(bucket, _)| bucket.clone()).collect();
                crate::store_bridge::bridge_store(&store, engine, hidden);
            }
        } else if !config.rules.rules.is_empty()
            || config.rules.store_bridge
            || config.rules.connection_events
        {
            return Err(StartError::Config(ConfigError::Invalid {
                field: "rules.enabled",
                message: "must be true when rules, the store bridge or connection events are configured",
            }));
        }
        let procedures = crate::procedures::Procedures::new(
            store.clone(),
            rules.clone(),
            crate::procedures::ProcedureLimits::of(&config.limits, &config.procedures),
            reserved,
        );
        procedures.restore();
        procedures
            .apply_config(&config.procedures.procedures)
            .map_err(|(index, message)| StartError::Procedure { index, message })?;
        if !local_addr.ip().is_loopback() && config.rate_limit.is_none() {
            tracing::warn!(
                %local_addr,
                "listening on a non-loopback address with rate limiting off"
            );
        }
        let (lifecycle, _) = watch::channel(if ready_after.is_some() {
            Lifecycle::Starting
        } else {
            Lifecycle::Running
        });
        let shared = Arc::new(Shared {
            rate_limiter: config.rate_limit.map(RateLimiter::new),
            login_limiter: LoginLimiter::new(config.limits.login),
            handshakes: HandshakeGate::new(&config.limits),
            // Checked by `validate`, which every start runs first.
            trusted_proxies: crate::proxy::TrustedProxies::parse(&config.http.trusted_proxies)
                .unwrap_or_default(),
            outbound: crate::outbound::OutboundBudget::new(config.limits.max_total_buffered_bytes),
            config,
            registry: Arc::new(ConnectionRegistry::default()),
            lifecycle,
            local_addr,
            started_at: Instant::now(),
            auth,
            clock,
            store,
            subscription_counters: Arc::new(SubscriptionCounters::default()),
            rules,
            event_json: Arc::default(),
            held_results: Arc::default(),
            audit,
            revocations,
            procedures,
            identity,
            heavy_reads: crate::heavy::HeavySlots::new(
                std::thread::available_parallelism().map_or(1, |n| n.get().saturating_sub(1)),
            ),
            metrics,
            console_assets: crate::console::AssetLimiter::default(),
        });
        if let Some(gate) = ready_after {
            let shared = Arc::downgrade(&shared);
            tokio::spawn(async move {
                gate.await;
                if let Some(shared) = shared.upgrade() {
                    // Only from Starting: a stop meanwhile is not undone.
                    shared.lifecycle.send_if_modified(|state| {
                        let starting = *state == Lifecycle::Starting;
                        if starting {
                            *state = Lifecycle::Running;
                        }
                        starting
                    });
                }
            });
        }
        let accept_task = tokio::spawn(accept_loop(listener, Arc::clone(&shared), Listener::Main));
        let (admin_task, admin_addr) = match admin {
            Some((admin, addr)) => (
                Some(tokio::spawn(accept_loop(
                    admin,
                    Arc::clone(&shared),
                    Listener::Admin,
                ))),
                Some(addr),
            ),
            None => (None, None),
        };
        Ok(ServerHandle {
            shared,
            accept_task: parking_lot::Mutex::new(Some(accept_task)),
            admin_task: parking_lot::Mutex::new(admin_task),
            admin_addr,
        })
    }
}

/// Defines the config's buckets and queries. With persistence they may already exist
/// (loaded from disk): an identical bucket is kept with its records, a different one is an
/// error (changing a schema is `store.updateBucket`'s job), and a query is (re)defined as
/// the config says.
fn apply_store_section(
    store: &Store,
    section: &crate::config::StoreSection,
) -> Result<(), StartError> {
    let failed = |what: String| {
        move |source| StartError::Store {
            what,
            source: Box::new(source),
        }
    };
    let existing = store.bucket_names();
    for (name, definition) in &section.buckets {
        let what = format!("bucket \"{name}\"");
        if existing.contains(name) {
            let stored = store.bucket_schema(name).map_err(failed(what.clone()))?;
            if &stored != definition {
                return Err(StartError::Store {
                    what,
                    source: Box::new(StoreError::InvalidDefinition {
                        message: "the persisted bucket has a different definition; change it with \
                                  store.updateBucket or drop it first"
                            .to_owned(),
                    }),
                });
            }
            continue;
        }
        store
            .define_bucket(name, definition.clone())
            .map_err(failed(what))?;
    }
    let existing: Vec<String> = store.list_queries().into_iter().map(|q| q.name).collect();
    for (name, definition) in &section.queries {
        let what = format!("query \"{name}\"");
        if existing.contains(name) {
            store.undefine_query(name).map_err(failed(what.clone()))?;
        }
        store
            .define_query(name, definition.clone())
            .map_err(failed(what))?;
    }
    Ok(())
}

/// Accepts connections on `listener` (the main one or the `http.admin` one): every one
/// holds a place under the pending-handshake caps until its upgrade or HTTP answer is done.
async fn accept_loop(listener: TcpListener, shared: Arc<Shared>, kind: Listener) {
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                let proxy = shared.trusted_proxies.trusts(peer.ip());
                let Some(slot) = shared.handshakes.admit(peer.ip(), proxy) else {
                    // Over `maxPendingHandshakesPerIp`: dropped at once, with a reset so
                    // that nothing of it lingers. (At `maxPendingHandshakes` the oldest
                    // pending handshake makes room instead.)
                    tracing::debug!(%peer, "too many pending handshakes: connection dropped");
                    let _ = stream.set_zero_linger();
                    continue;
                };
                let _ = stream.set_nodelay(true);
                tokio::spawn(connection::serve(
                    stream,
                    peer,
                    Arc::clone(&shared),
                    slot,
                    kind,
                ));
            }
            Err(err) if out_of_descriptors(&err) && shared.handshakes.evict_oldest() => {
                // Out of file descriptors while connections sit in their handshake (say,
                // a flood of TCP connects that never send a byte): the oldest makes room,
                // as at `maxPendingHandshakes`, instead of locking every new client out
                // until the handshake timeout. Its task closes it; accept again after it ran.
                tracing::debug!(%err, "out of file descriptors: oldest pending handshake evicted");
                tokio::task::yield_now().await;
            }
            Err(err) => {
                // Typically EMFILE with every descriptor held by open connections: back off
                // briefly instead of spinning.
                tracing::warn!(%err, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

/// Whether an accept failed because the process or the system is out of file descriptors
/// (`EMFILE`, `ENFILE`).
fn out_of_descriptors(err: &std::io::Error) -> bool {
    matches!(err.raw_os_error(), Some(23 | 24))
}

/// A running server.
pub struct ServerHandle {
    shared: Arc<Shared>,
    /// The accept loop, which owns the listener; taken by `stop`.
    accept_task: parking_lot::Mutex<Option<JoinHandle<()>>>,
    /// The `http.admin` listener's accept loop, when configured; taken by `stop`.
    admin_task: parking_lot::Mutex<Option<JoinHandle<()>>>,
    admin_addr: Option<SocketAddr>,
}

impl ServerHandle {
    /// The bound address (the real port when configured with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.shared.local_addr
    }

    /// The bound address of the `http.admin` listener, when configured.
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin_addr
    }

    /// Open WebSocket connections.
    pub fn connection_count(&self) -> usize {
        self.shared.registry.len()
    }

    /// The configuration the server runs with.
    pub fn config(&self) -> &ServerConfig {
        &self.shared.config
    }

    /// Time since start.
    pub fn uptime(&self) -> Duration {
        self.shared.started_at.elapsed()
    }

    /// Resolves once no connection is open (every closed connection's subscriptions are
    /// released by then).
    pub async fn wait_idle(&self) {
        self.shared.registry.wait_empty().await;
    }

    /// The store the server serves: in-process code can read and write it directly, and
    /// `store().settle().await` waits until every change so far has been pushed to the
    /// subscriptions' outbound queues.
    pub fn store(&self) -> &Store {
        &self.shared.store
    }

    /// The rule engine, when the server runs one.
    pub fn rules(&self) -> Option<&RuleEngine> {
        self.shared.rules.as_ref()
    }

    /// What `server.stats` answers (the original's `getStats()`).
    pub fn stats(&self) -> ServerStats {
        crate::ops::server::stats(&self.shared, None)
    }

    /// Each open connection's outbound buffer: what backpressure holds for slow clients.
    pub fn connection_buffers(&self) -> Vec<crate::registry::ConnectionBuffer> {
        self.shared.registry.buffers()
    }

    /// Outbound bytes in memory over all connections, as `limits.maxTotalBufferedBytes`
    /// counts them (data shared by several subscribers once).
    pub fn outbound_bytes(&self) -> usize {
        self.shared.outbound.total()
    }

    /// What `server.connections` answers (the original's `getConnections()`).
    pub fn connections(&self) -> Vec<ConnectionInfo> {
        crate::ops::server::connections(&self.shared.registry.snapshot())
    }

    /// Revokes every session of `user_id` (the original's `revokeSession`): its connections
    /// are sent `{type: "system", event: "session_revoked", reason}` and closed with 4002
    /// `session_revoked`, their subscriptions end, and the user may not log in again for
    /// `revocation.blacklistTtlMs` (even when no connection was open). Returns how many
    /// connections were revoked.
    pub fn revoke_session(&self, user_id: &str) -> usize {
        self.shared.revocations.revoke_user(user_id)
    }

    /// Revokes the authenticated connections matching every field of `filter` (the
    /// original's `revokeSessions`, plus a connection id), blacklisting each one's user.
    /// Unauthenticated connections are never revoked. Returns how many were revoked.
    ///
    /// ```no_run
    /// # fn run(server: &noex_server::ServerHandle) {
    /// use noex_server::RevokeFilter;
    /// let revoked = server.revoke_sessions(&RevokeFilter {
    ///     role: Some("writer".into()),
    ///     ..Default::default()
    /// });
    /// println!("{revoked} connections revoked");
    /// # }
    /// ```
    pub fn revoke_sessions(&self, filter: &crate::revocation::RevokeFilter) -> usize {
        self.shared.revocations.revoke(filter)
    }

    /// Whether `user_id` is blacklisted now (revoked within `revocation.blacklistTtlMs`).
    pub fn is_revoked(&self, user_id: &str) -> bool {
        self.shared.revocations.is_revoked(user_id)
    }

    /// Users blacklisted now.
    pub fn revoked_users(&self) -> usize {
        self.shared.revocations.blacklisted()
    }

    /// Entries the audit log holds in memory (0 without an `audit` section).
    pub fn audit_len(&self) -> usize {
        self.shared.audit.as_ref().map_or(0, |log| log.len())
    }

    /// Stops gracefully: when `grace` is non-zero and clients are connected, they receive
    /// `{type: "system", event: "shutdown", gracePeriodMs}` and the server waits until they
    /// have all left or `grace` ends; connections arriving meanwhile are closed with 1001.
    /// Then every remaining connection is closed with 1000 `server_shutdown` and the listener
    /// is released. Calling it again does nothing more.
    pub async fn stop(&self, grace: Duration) {
        let grace_ms = u64::try_from(grace.as_millis()).unwrap_or(u64::MAX);
        let started = self.shared.lifecycle.send_if_modified(|state| {
            if matches!(*state, Lifecycle::Running | Lifecycle::Starting) {
                *state = Lifecycle::Draining { grace_ms };
                true
            } else {
                false
            }
        });
        if started && grace_ms > 0 {
            let _ = tokio::time::timeout(grace, self.shared.registry.wait_empty()).await;
        }
        self.shared.lifecycle.send_replace(Lifecycle::Closing);
        // Connections close promptly once told to; bound the wait in case a peer's socket
        // is stuck so that stop() always returns.
        let _ =
            tokio::time::timeout(Duration::from_secs(5), self.shared.registry.wait_empty()).await;
        let tasks = [
            self.accept_task.lock().take(),
            self.admin_task.lock().take(),
        ];
        for task in tasks.into_iter().flatten() {
            task.abort();
            // Awaited: the listener is closed once `stop` returns, so the port can be bound
            // again at once (an aborted task is dropped only when the runtime gets to it).
            let _ = task.await;
        }
        if let Some(engine) = &self.shared.rules {
            // No timer fires into a stopped server.
            engine.shutdown();
        }
        // Batched writes still in their window reach the disk before stop returns.
        if let Err(err) = self.shared.store.flush() {
            tracing::error!(%err, "flushing the store at stop failed");
        }
    }
}

impl Drop for ServerHandle {
    fn drop(&mut self) {
        if let Some(task) = self.accept_task.lock().take() {
            task.abort();
        }
        if let Some(task) = self.admin_task.lock().take() {
            task.abort();
        }
        self.shared.lifecycle.send_replace(Lifecycle::Closing);
    }
}
