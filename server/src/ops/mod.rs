//! The operations, one module per family: `store.*` ([`store`]), `rules.*` ([`rules`]),
//! `auth.*` ([`auth`]), `server.*` ([`server`]), `procedures.*` ([`procedures`]) and
//! `identity.*` ([`identity`]). Each handler is a function of its typed
//! request and a narrow context holding only what it needs; none sees the connection.
//! The router checks the session and permissions and picks the family.
//!
//! To add a family: a module here with its context and `handle`, and one arm in
//! `router::handle` (see docs/architecture.md, "Where to add an operation").

use std::sync::Arc;
use std::sync::atomic::AtomicUsize;

use serde_json::Value;

use crate::error::ServerError;
use crate::outbound::{OutboundBudget, OutboundQueue};
use crate::registry::Registration;
use crate::subscriptions::ConnectionSubscriptions;

pub(crate) mod auth;
pub(crate) mod identity;
pub(crate) mod procedures;
pub(crate) mod rules;
pub(crate) mod server;
pub(crate) mod store;

/// The parts of one connection that subscribing and unsubscribing touch, borrowed from it
/// for the duration of one request.
pub(crate) struct Subscriptions<'a> {
    /// The connection's subscriptions (ids within its limits, cancel on drop).
    pub(crate) subscriptions: &'a mut ConnectionSubscriptions,
    /// Its registry entry (per-connection counts in `server.connections`).
    pub(crate) registration: &'a Registration,
    /// Its outbound queue: pushes go there, held *pending* until the answer is queued.
    pub(crate) queue: &'a Arc<OutboundQueue>,
    /// Outbound bytes over all connections (push data shared by several subscribers).
    pub(crate) outbound: &'a Arc<OutboundBudget>,
    /// Subscriptions to release once the answer is queued.
    pub(crate) activate_after_reply: &'a mut Vec<String>,
    /// Where a subscription's source reports that it ended one.
    pub(crate) ended: &'a mut crate::subscriptions::EndedSubscriptions,
    /// Memory the connection's store subscriptions' results hold.
    pub(crate) held_results: &'a Arc<AtomicUsize>,
}

/// Serializes a result payload; failure here is a bug, reported as `INTERNAL_ERROR`.
pub(crate) fn to_json(value: impl serde::Serialize) -> Result<Value, ServerError> {
    serde_json::to_value(value).map_err(ServerError::internal)
}
