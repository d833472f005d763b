//! Store statistics in the shape `store.stats` answers (docs/reference/protocol.md) (camelCase when serialized).

use serde::Serialize;
use std::collections::BTreeMap;

use crate::store::Store;

/// Bucket counts.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BucketStats {
    /// Number of buckets.
    pub count: usize,
    /// Their names.
    pub names: Vec<String>,
}

/// A total with a per-bucket breakdown.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PerBucket {
    /// Sum over buckets.
    pub total: usize,
    /// Value per bucket.
    pub per_bucket: BTreeMap<String, usize>,
}

/// Query counts.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct QueryStats {
    /// Defined queries.
    pub defined: usize,
    /// Active subscriptions.
    pub active_subscriptions: usize,
}

/// Persistence state.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PersistenceStats {
    /// Whether persistence is enabled.
    pub enabled: bool,
}

/// TTL sweep state.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TtlStats {
    /// Whether the background sweep runs.
    pub enabled: bool,
    /// Sweep interval.
    pub check_interval_ms: u64,
}

/// `stats()` result.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StoreStats {
    /// Store name.
    pub name: String,
    /// Buckets.
    pub buckets: BucketStats,
    /// Live and not-yet-swept records.
    pub records: PerBucket,
    /// Indexes (secondary indexes plus unique constraints).
    pub indexes: PerBucket,
    /// Queries and subscriptions.
    pub queries: QueryStats,
    /// Persistence.
    pub persistence: PersistenceStats,
    /// TTL sweep.
    pub ttl: TtlStats,
}

impl Store {
    /// Current statistics.
    pub fn stats(&self) -> StoreStats {
        let (names, records, indexes) = {
            let data = self.inner.data.read();
            let names: Vec<String> = data.buckets.keys().cloned().collect();
            let records: BTreeMap<String, usize> = data
                .buckets
                .iter()
                .map(|(n, b)| (n.clone(), b.len()))
                .collect();
            let indexes: BTreeMap<String, usize> = data
                .buckets
                .iter()
                .map(|(n, b)| (n.clone(), b.index_count()))
                .collect();
            (names, records, indexes)
        };
        let (defined, active) = {
            let reg = self.inner.reactive.lock();
            (reg.query_count(), reg.subscription_count())
        };
        StoreStats {
            name: self.inner.name.clone(),
            buckets: BucketStats {
                count: names.len(),
                names,
            },
            records: PerBucket {
                total: records.values().sum(),
                per_bucket: records,
            },
            indexes: PerBucket {
                total: indexes.values().sum(),
                per_bucket: indexes,
            },
            queries: QueryStats {
                defined,
                active_subscriptions: active,
            },
            persistence: PersistenceStats {
                enabled: self.inner.persist.is_some(),
            },
            ttl: TtlStats {
                enabled: !self.inner.ttl_interval.is_zero(),
                check_interval_ms: self.inner.ttl_interval.as_millis() as u64,
            },
        }
    }
}
