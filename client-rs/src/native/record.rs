//! Result shapes of the typed store API: [`Record`] (fields + metadata) and [`Page`].

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A record as stored: your fields (`T`) plus the store's metadata.
///
/// ```
/// use noex_client::Record;
/// let r: Record<serde_json::Value> = serde_json::from_value(serde_json::json!(
///     {"name": "a", "_version": 2, "_createdAt": 1, "_updatedAt": 3})).unwrap();
/// assert_eq!(r.version, 2);
/// assert_eq!(r.data["name"], "a");
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record<T> {
    /// The record's own fields.
    #[serde(flatten)]
    pub data: T,
    /// Version, incremented by every update.
    #[serde(rename = "_version", default)]
    pub version: u64,
    /// Creation time (ms since the epoch).
    #[serde(rename = "_createdAt", default)]
    pub created_at: u64,
    /// Last update time (ms since the epoch).
    #[serde(rename = "_updatedAt", default)]
    pub updated_at: u64,
    /// Expiry time for TTL buckets.
    #[serde(
        rename = "_expiresAt",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub expires_at: Option<u64>,
}

/// One page of `store.paginate`.
///
/// ```
/// let p = noex_client::Page::<u8> { records: vec![1], has_more: false, next_cursor: None };
/// assert_eq!(p.records.len(), 1);
/// ```
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Page<T> {
    /// The records.
    pub records: Vec<T>,
    /// Whether more records follow.
    pub has_more: bool,
    /// Pass as `after` for the next page.
    #[serde(default)]
    pub next_cursor: Option<Value>,
}
