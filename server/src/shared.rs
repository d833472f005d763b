//! The state every connection task shares with the accept loop: the configuration, the
//! store and rule engine, auth as it runs, the registry of connections, the limits' counters
//! and the server's lifecycle. Built once by `server`, read by everything below it.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use noex_rules::RuleEngine;
use noex_store::Store;
use tokio::sync::watch;

use crate::auth::TokenValidator;
use crate::config::ServerConfig;
use crate::handshake::HandshakeGate;
use crate::login_limit::LoginLimiter;
use crate::permissions::{PermissionCheck, PermissionsConfig};
use crate::rate_limit::RateLimiter;
use crate::registry::ConnectionRegistry;
use crate::subscriptions::SubscriptionCounters;
use noex_model::clock::Clock;

/// Auth as the running server applies it.
pub(crate) struct AuthRuntime {
    pub(crate) required: bool,
    pub(crate) validator: Arc<dyn TokenValidator>,
    pub(crate) permissions: PermissionsConfig,
    pub(crate) hook: Option<Arc<dyn PermissionCheck>>,
    /// The built-in identity's grants and role rules, when identity is on.
    pub(crate) grants: Option<Arc<dyn crate::permissions::Grants>>,
}

/// Where the server is in its life; connection tasks watch it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Lifecycle {
    /// Not serving yet: the gate of [`crate::ServerBuilder::ready_after`] is still open.
    /// `/ready` answers 503 `starting`; WebSocket clients are closed with 1013
    /// `server_starting`.
    Starting,
    /// Serving.
    Running,
    /// `stop` was called: connections were told `{event: "shutdown", gracePeriodMs}`,
    /// new connections are closed with 1001.
    Draining {
        /// The announced grace period.
        grace_ms: u64,
    },
    /// Grace is over: every connection closes with 1000 `server_shutdown`.
    Closing,
}

/// State shared by the accept loop and every connection task.
pub(crate) struct Shared {
    pub(crate) config: ServerConfig,
    pub(crate) registry: Arc<ConnectionRegistry>,
    pub(crate) lifecycle: watch::Sender<Lifecycle>,
    pub(crate) local_addr: SocketAddr,
    pub(crate) started_at: Instant,
    pub(crate) auth: Option<AuthRuntime>,
    pub(crate) rate_limiter: Option<RateLimiter>,
    /// Failed-login limits (`limits.login`), applied with or without `rate_limiter`.
    pub(crate) login_limiter: LoginLimiter,
    /// Connections still in their WebSocket handshake.
    pub(crate) handshakes: Arc<HandshakeGate>,
    /// `http.trustedProxies`, parsed.
    pub(crate) trusted_proxies: crate::proxy::TrustedProxies,
    pub(crate) clock: Arc<dyn Clock>,
    /// The embedded store every connection reads and writes.
    pub(crate) store: Store,
    /// Subscription ids and the server-wide count.
    pub(crate) subscription_counters: Arc<SubscriptionCounters>,
    /// The rule engine, when the server runs one.
    pub(crate) rules: Option<RuleEngine>,
    /// The last event pushed to `rules.subscribe` subscribers, serialized once for all of them.
    pub(crate) event_json: Arc<crate::rule_events::EventJson>,
    /// Outbound text in memory over all connections (`limits.maxTotalBufferedBytes`).
    pub(crate) outbound: Arc<crate::outbound::OutboundBudget>,
    /// Slots for heavy reads on the blocking pool (scans of large buckets, the first
    /// evaluation of a subscription): one fewer than the machine's cores (at least one),
    /// so however many clients start them at once, a core stays free for the runtime
    /// workers that answer everybody else; one turn per client (see `heavy`).
    pub(crate) heavy_reads: crate::heavy::HeavySlots,
    /// Estimated memory of the results all store subscriptions hold
    /// (`limits.maxTotalSubscriptionResultBytes`).
    pub(crate) held_results: Arc<std::sync::atomic::AtomicUsize>,
    /// The audit log, when the config has an `audit` section.
    pub(crate) audit: Option<crate::audit::AuditLog>,
    /// Revoked users and the authenticated connections revocation can reach.
    pub(crate) revocations: Arc<crate::revocation::Revocations>,
    /// The registered procedures.
    pub(crate) procedures: crate::procedures::Procedures,
    /// What `/metrics` reports.
    pub(crate) metrics: crate::metrics::Metrics,
    /// How often each address fetches the console's large files.
    pub(crate) console_assets: crate::console::AssetLimiter,
    /// The built-in identity, when `identity.enabled`.
    pub(crate) identity: Option<Arc<crate::identity::Identity>>,
}

impl Shared {
    /// What permission checks need to know about the store and the rule engine.
    pub(crate) fn resolver(&self) -> crate::access::Resolver<'_> {
        crate::access::Resolver {
            store: &self.store,
            rules: self.rules.as_ref(),
        }
    }
}
