//! noex-client-wasm: the noex client core compiled to WebAssembly for browsers and Node.js.
//!
//! The protocol logic — request correlation, timeouts, subscriptions, reconnect with
//! backoff, re-login and re-subscription, heartbeat replies — is the sans-I/O
//! [`noex_client::core::ClientCore`], the same state machine the native Rust client runs.
//! This crate only feeds it: [`socket`] opens the JavaScript `WebSocket` (the global one,
//! or a constructor passed in the options, e.g. the `ws` package in Node 20), [`timer`]
//! schedules `setTimeout`, and [`client::WasmClient`] moves frames, timer ticks and user
//! calls into the core and its outputs back out as resolved promises and callbacks.
//!
//! The ergonomic JavaScript API (`NoexClient.connect`, `client.store.bucket(..)`, ...) is
//! a thin module in `client-wasm/js/` over [`client::WasmClient`]; it adds no protocol
//! logic.

pub mod client;
pub mod error;
pub mod json;
pub mod options;
pub mod socket;
pub mod timer;

use wasm_bindgen::prelude::*;

pub use client::WasmClient;

/// The protocol version this client speaks.
#[wasm_bindgen(js_name = protocolVersion)]
pub fn protocol_version() -> String {
    noex_protocol::PROTOCOL_VERSION.to_owned()
}
