//! noex-client-wasm: the noex client core compiled to WebAssembly for browsers and Node.js.

use wasm_bindgen::prelude::*;

/// The protocol version this client speaks.
#[wasm_bindgen(js_name = protocolVersion)]
pub fn protocol_version() -> String {
    noex_protocol::PROTOCOL_VERSION.to_owned()
}
