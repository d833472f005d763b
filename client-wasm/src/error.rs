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
        other => (client_code(other), message_of(other), JsValue::NULL),
    };
    make(code, &message, &details)
}

/// The message of a client-side error as its `Display` writes it (a server error: the
/// server's message), put together without the formatting
/// machinery (which would otherwise be linked into the WebAssembly for this alone).
fn message_of(error: &ClientError) -> String {
    let (prefix, detail) = match error {
        ClientError::Server { message, .. } => ("", message.as_str()),
        ClientError::Timeout => ("request timed out", ""),
        ClientError::Disconnected => ("disconnected", ""),
        ClientError::Protocol(m) => ("protocol error: ", m.as_str()),
        ClientError::Connect(m) => ("connection failed: ", m.as_str()),
        ClientError::Decode(m) => ("cannot decode result: ", m.as_str()),
    };
    let mut message = String::with_capacity(prefix.len() + detail.len());
    message.push_str(prefix);
    message.push_str(detail);
    message
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_those_of_display() {
        for e in [
            ClientError::Timeout,
            ClientError::Disconnected,
            ClientError::Protocol("p".into()),
            ClientError::Connect("c".into()),
            ClientError::Decode("d".into()),
        ] {
            assert_eq!(message_of(&e), e.to_string());
        }
    }
}
