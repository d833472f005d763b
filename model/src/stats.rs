//! Store statistics in the shape `store.stats` answers (and `store.buckets`' `{count,
//! names}`): the store fills them, the protocol carries them.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// `store.buckets` → `{count, names}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct BucketList {
    /// Number of buckets.
    pub count: u64,
    /// Their names.
    pub names: Vec<String>,
}

/// Record counts in [`StoreStats`].
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(rename_all = "camelCase")]
pub struct RecordStats {
    /// All records.
    pub total: u64,
    /// Records per bucket.
    pub per_bucket: BTreeMap<String, u64>,
}

/// Index counts in [`StoreStats`].
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(rename_all = "camelCase")]
pub struct IndexStats {
    /// All secondary indexes.
    pub total: u64,
    /// Indexes per bucket.
    pub per_bucket: BTreeMap<String, u64>,
}

/// Query counts in [`StoreStats`].
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(rename_all = "camelCase")]
pub struct QueryStats {
    /// Defined queries.
    pub defined: u64,
    /// Open subscriptions over all queries.
    pub active_subscriptions: u64,
}

/// Persistence state in [`StoreStats`].
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct PersistenceStats {
    /// Whether records are written to durable storage.
    pub enabled: bool,
}

/// TTL sweep state in [`StoreStats`].
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(rename_all = "camelCase")]
pub struct TtlStats {
    /// Whether a background sweep runs.
    pub enabled: bool,
    /// Sweep period.
    pub check_interval_ms: u64,
}

/// `store.stats`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct StoreStats {
    /// Store name, when configured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "ts", ts(optional))]
    pub name: Option<String>,
    /// Bucket count and names.
    pub buckets: BucketList,
    /// Record counts.
    pub records: RecordStats,
    /// Index counts.
    pub indexes: IndexStats,
    /// Query counts.
    pub queries: QueryStats,
    /// Persistence state.
    pub persistence: PersistenceStats,
    /// TTL sweep state.
    pub ttl: TtlStats,
}
