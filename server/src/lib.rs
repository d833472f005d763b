//! noex-server: the real-time data server speaking the noex WebSocket protocol
//! (`docs/reference/protocol.md` in the repository).
//!
//! - [`Server::start`] binds and serves; the returned [`ServerHandle`] reports the bound
//!   address and connection count and stops the server gracefully.
//! - [`ServerConfig`] holds every setting with the spec's defaults; the `noex-server` binary
//!   loads it from a JSON file and command-line flags.
//!
//! Inside, every accepted socket passes `handshake` (caps and deadline; a plain HTTP
//! request is answered by `endpoints` through `http`, from the counters of `metrics`), every connection
//! is one task (`connection`) over a guarded socket (`socket`) owning its state
//! (`connection_state`), requests go through `router` to one module per operation family
//! in `ops` (failed logins are limited by `login_limit`), and every failure becomes one
//! protocol error in `error`. Beside the requests: `store_bridge` (store changes into the
//! rule engine), `rule_persistence` (facts and rules on disk) and `connection_events`;
//! `audit` (the audit log) and `revocation` (revoked sessions and their blacklist).
//! `docs/architecture.md` walks through it all.

#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

mod access;
mod audit;
mod auth;
mod auth_session;
mod config;
mod config_error;
mod connection;
mod connection_events;
mod connection_state;
mod console;
mod endpoints;
mod error;
mod handshake;
mod heavy;
mod http;
mod identity;
mod login_limit;
mod metrics;
mod ops;
mod outbound;
mod permissions;
mod procedures;
mod proxy;
mod rate_limit;
mod registry;
mod revocation;
mod router;
mod rule_events;
mod rule_persistence;
mod server;
mod session;
mod shared;
mod socket;
mod store_bridge;
mod subscriptions;

pub use access::authorize;
pub use audit::{AuditHook, MAX_AUDIT_DETAILS_BYTES, MAX_AUDIT_TEXT_BYTES};
pub use auth::{
    AuthConfig, JwtAlgorithm, JwtConfig, JwtValidator, Session, StaticToken, StaticTokenValidator,
    TokenValidator, ValidateFuture,
};
pub use config::{
    AuditConfig, AuditTier, BackpressureConfig, ConfigError, ConnectionLimits,
    DEFAULT_AUDIT_MAX_ENTRIES, DEFAULT_BLACKLIST_TTL_MS, DEFAULT_MAX_CONNECTIONS_PER_IP,
    HeartbeatConfig, HttpConfig, IdentitySection, LimitsConfig, LogConfig, LogFormat, LoginLimits,
    MAX_AUDIT_MAX_ENTRIES, PersistenceEngine, PersistenceSection, ProceduresSection,
    RateLimitConfig, RevocationConfig, RulesSection, ServerConfig, StoreSection,
};
pub use error::ServerError;
pub use noex_model::clock::{Clock, ManualClock, SystemClock, TokioClock};
pub use permissions::{
    Decision, DefaultPolicy, Patterns, PermissionCheck, PermissionRule, PermissionsConfig, Tier,
    match_pattern,
};
pub use procedures::CONFLICT_ATTEMPTS as PROCEDURE_CONFLICT_ATTEMPTS;
pub use rate_limit::RateLimiter;
pub use registry::{ConnectionBuffer, ConnectionEntry, ConnectionRegistry};
pub use revocation::{MAX_REVOKED_USERS, REVOKED_CLOSE_CODE, REVOKED_REASON, RevokeFilter};
pub use server::{Server, ServerBuilder, ServerHandle, StartError};
