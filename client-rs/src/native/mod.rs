//! The native transport: [`Client`] over tokio-tungstenite, wrapping the sans-I/O core.

mod auth;
mod client;
mod driver;
mod identity;
mod procedures;
mod record;
mod rules;
mod store;
mod subscription;

pub use auth::Auth;
pub use client::{AuditQuery, Client, ClientOptions, EventStream};
pub use identity::{Identity, NewUser, UserChanges};
pub use procedures::Procedures;
pub use record::{Page, Record};
pub use rules::Rules;
pub use store::{Bucket, Store};
pub use subscription::Subscription;

/// Lifecycle events delivered by [`Client::events`].
pub use crate::core::LifecycleEvent as ClientEvent;
/// Reconnect settings used in [`ClientOptions`].
pub use crate::core::ReconnectPolicy;
