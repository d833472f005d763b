//! Request ids: any finite JSON number, echoed back exactly as the client wrote it.

use serde::{Deserialize, Serialize};
use serde_json::Number;
use ts_rs::TS;

/// The `id` of a request. The spec only requires a finite number, so a client may send
/// `7`, `7.5` or `-1`; the server echoes the very same number (an integer stays an integer).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, TS)]
#[serde(transparent)]
#[ts(type = "number")]
pub struct RequestId(Number);

impl RequestId {
    /// The id used in errors for frames whose own id could not be read.
    pub fn zero() -> Self {
        RequestId(Number::from(0u64))
    }

    /// Wraps a JSON number.
    pub fn from_number(number: Number) -> Self {
        RequestId(number)
    }

    /// The id as an unsigned integer, when it is one (clients allocate these).
    pub fn as_u64(&self) -> Option<u64> {
        self.0.as_u64()
    }

    /// The underlying JSON number.
    pub fn as_number(&self) -> &Number {
        &self.0
    }
}

impl From<u64> for RequestId {
    fn from(value: u64) -> Self {
        RequestId(Number::from(value))
    }
}

impl std::fmt::Display for RequestId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}
