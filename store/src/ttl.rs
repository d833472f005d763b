//! Time-to-live: the purge of expired records (each removal is a `deleted` change that
//! notifies subscribers) and the background sweep, which waits on the store's clock: with a
//! manual clock, advancing it past the next sweep time runs the sweep.

use noex_model::clock::Clock;
use serde_json::Value;
use std::sync::{Arc, Weak};
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

/// Purges expired records every `interval` of the store's clock until the store is dropped
/// (the next sweep is `interval` after the previous one ran, however far the clock jumped).
pub(crate) async fn run_sweep(inner: Weak<Inner>, clock: Arc<dyn Clock>, interval: Duration) {
    let interval_ms = u64::try_from(interval.as_millis()).unwrap_or(u64::MAX);
    loop {
        clock
            .sleep_until(clock.now_ms().saturating_add(interval_ms))
            .await;
        let Some(inner) = inner.upgrade() else { break };
        let removed = purge(&inner);
        if removed > 0 {
            tracing::debug!(removed, "ttl sweep");
        }
    }
}
