//! Client errors as JavaScript values: an `Error` carrying the protocol's `code`,
//! `message` and `details`.
//!
//! Server errors keep their protocol code (`VALIDATION_ERROR`, `NOT_FOUND`, ...). Errors
//! that happen on the client side get codes of their own, listed in [`client_code`].

use js_sys::{Object, Reflect};
use noex_client::ClientError;
use wasm_bindgen::prelude::*;

/// The `code` of an error raised by the client itself rather than by the server.
pub fn client_code(error: &ClientError) -> &'static str {
    match error {
        ClientError::Server { .. } => "SERVER_ERROR",
        ClientError::Timeout => "TIMEOUT",
        ClientError::Disconnected => "DISCONNECTED",
        ClientError::Protocol(_) => "PROTOCOL_ERROR",
        ClientError::Connect(_) => "CONNECTION_FAILED",
        ClientError::Decode(_) => "DECODE_ERROR",
    }
}

/// Builds `Error(message)` with `name = "NoexError"`, `code` and `details` set.
pub fn to_js(error: &ClientError) -> JsValue {
    let (code, message, details) = match error {
        ClientError::Server {
            code,
            message,
            details,
        } => (
            code.as_str(),
            message.clone(),
            details
                .as_ref()
                .map(crate::json::to_js)
                .unwrap_or(JsValue::NULL),
        ),
        other => (client_code(other), other.to_string(), JsValue::NULL),
    };
    make(code, &message, &details)
}

/// Builds a `NoexError` from its parts.
pub fn make(code: &str, message: &str, details: &JsValue) -> JsValue {
    let error: Object = js_sys::Error::new(message).into();
    // Setting properties on a fresh Error object cannot fail.
    let _ = Reflect::set(&error, &"name".into(), &"NoexError".into());
    let _ = Reflect::set(&error, &"code".into(), &code.into());
    let _ = Reflect::set(&error, &"details".into(), details);
    error.into()
}
