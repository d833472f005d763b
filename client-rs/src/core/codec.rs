//! How the core turns frame text into JSON values and back. The native client uses
//! serde_json ([`SerdeJson`]); the browser client plugs in JavaScript's own `JSON`, so its
//! WebAssembly carries no JSON parser or printer of its own.

use serde_json::Value;

/// Decodes received frames and encodes frames to send.
pub trait Codec {
    /// Parses one received frame's text; `Err` carries a description for the
    /// [`crate::ClientError::Protocol`] error the core reports.
    fn decode(text: &str) -> Result<Value, String>;
    /// Writes one frame to send as JSON text.
    fn encode(value: &Value) -> String;
}

/// The default codec: serde_json.
///
/// ```
/// use noex_client::core::{Codec, SerdeJson};
/// let v = SerdeJson::decode(r#"{"a":[1,2.5]}"#).unwrap_or_default();
/// assert_eq!(SerdeJson::encode(&v), r#"{"a":[1,2.5]}"#);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SerdeJson;

impl Codec for SerdeJson {
    fn decode(text: &str) -> Result<Value, String> {
        serde_json::from_str(text).map_err(|e| e.to_string())
    }

    fn encode(value: &Value) -> String {
        value.to_string()
    }
}
