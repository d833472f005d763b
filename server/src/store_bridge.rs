//! The store bridge: every committed store change becomes a rule-engine event
//! (`bucket.<name>.inserted|updated|deleted`, source `store`), so rules can react to data.
//! Only the bridge emits under the reserved topic root.

use noex_rules::{EmitOptions, RuleEngine};
use noex_store::Store;

/// The first topic segment of the store change events (`bucket.<name>.<change>`): only the
/// store bridge emits under it, so `rules.emit` and rules cannot forge store changes.
pub(crate) const RESERVED_TOPIC_ROOT: &str = "bucket";

/// The `source` of the events the store bridge emits.
pub(crate) const STORE_SOURCE: &str = "store";

/// Forwards every committed store change to `engine` as the event
/// `bucket.<name>.inserted|updated|deleted` (source `store`) carrying the change
/// `{type, bucket, key, record | oldRecord + newRecord, version}`, except the changes of
/// the `hidden` buckets (the audit log's and the identity system's, which no client may
/// read). Returns the store handler id.
pub(crate) fn bridge_store(store: &Store, engine: &RuleEngine, hidden: Vec<String>) -> u64 {
    let engine = engine.clone();
    store.on_change("bucket.*.*", move |change| {
        if hidden.iter().any(|h| h == &change.bucket) {
            return;
        }
        let data = match serde_json::to_value(change) {
            Ok(data) => data,
            Err(err) => {
                tracing::error!(%err, "cannot forward a store change to the rule engine");
                return;
            }
        };
        let options = EmitOptions {
            source: Some(STORE_SOURCE.to_owned()),
            ..EmitOptions::default()
        };
        if let Err(err) = engine.emit_with(&change.topic(), data, options) {
            tracing::warn!(%err, "store change not forwarded to the rule engine");
        }
    })
}
