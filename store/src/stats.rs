//! `Store::stats`: the store's figures in the shared `store.stats` shape (`noex-model`'s
//! `stats` module, docs/reference/protocol.md).

use std::collections::BTreeMap;

pub use noex_model::stats::{
    BucketList, IndexStats, PersistenceStats, QueryStats, RecordStats, StoreStats, TtlStats,
};

use crate::store::Store;

impl Store {
    /// Current statistics.
    pub fn stats(&self) -> StoreStats {
        let (names, records, indexes) = {
            let data = self.inner.data.read();
            let names: Vec<String> = data.buckets.keys().cloned().collect();
            let records: BTreeMap<String, u64> = data
                .buckets
                .iter()
                .map(|(n, b)| (n.clone(), b.len() as u64))
                .collect();
            let indexes: BTreeMap<String, u64> = data
                .buckets
                .iter()
                .map(|(n, b)| (n.clone(), b.index_count() as u64))
                .collect();
            (names, records, indexes)
        };
        let (defined, active) = {
            let reg = self.inner.reactive.lock();
            (reg.query_count(), reg.subscription_count())
        };
        StoreStats {
            name: Some(self.inner.name.clone()),
            buckets: BucketList {
                count: names.len() as u64,
                names,
            },
            records: RecordStats {
                total: records.values().sum(),
                per_bucket: records,
            },
            indexes: IndexStats {
                total: indexes.values().sum(),
                per_bucket: indexes,
            },
            queries: QueryStats {
                defined: defined as u64,
                active_subscriptions: active as u64,
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
