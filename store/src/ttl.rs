//! Time-to-live: the purge of expired records (each removal is a `deleted` change that
//! notifies subscribers) and the background sweep driven by tokio time.

use serde_json::Value;
use std::sync::Weak;
use std::time::Duration;

use crate::store::{Inner, Store};

impl Store {
    /// Removes every expired record now; returns how many were removed.
    pub fn purge_ttl(&self) -> usize {
        purge(&self.inner)
    }
}

fn purge(inner: &Inner) -> usize {
    let result = inner.write(|data, now, changes| {
        let names: Vec<String> = data.buckets.keys().cloned().collect();
        for name in names {
            let keys: Vec<Value> = match data.buckets.get(&name) {
                Some(b) => b
                    .expired_keys(now)
                    .iter()
                    .filter_map(|k| b.get_raw(k).and_then(|r| r.get(&b.def.key)).cloned())
                    .collect(),
                None => continue,
            };
            for key in keys {
                data.apply_remove(&name, &key, changes)?;
            }
        }
        Ok(changes.len())
    });
    result.unwrap_or(0)
}

/// Periodically purges expired records until the store is dropped.
pub(crate) async fn run_sweep(inner: Weak<Inner>, interval: Duration) {
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticker.tick().await;
    loop {
        ticker.tick().await;
        let Some(inner) = inner.upgrade() else { break };
        let removed = purge(&inner);
        if removed > 0 {
            tracing::debug!(removed, "ttl sweep");
        }
    }
}
