//! noex-client: a sans-I/O client core plus a native tokio transport.
//!
//! - [`core`]: the state machine (no I/O, no clock, builds for wasm32).
//! - [`ClientError`]: the error type.
//! - With the `native` feature (default): [`Client`] over tokio-tungstenite, typed
//!   store / rules / auth APIs and [`Subscription`] streams.

pub mod core;
mod error;
#[cfg(feature = "native")]
mod native;

pub use error::ClientError;
#[cfg(feature = "native")]
pub use native::*;
/// The wire types (re-exported so users need no direct dependency on `noex-protocol`).
pub use noex_protocol as protocol;
/// One operation of a store transaction (`client.store().transaction(ops)`).
pub use noex_protocol::TransactionOp;
