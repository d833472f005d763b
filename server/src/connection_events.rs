//! Connection lifecycle events (`connection.opened|login|logout|closed`, source `server`)
//! emitted into the rule engine when the config's `rules.connectionEvents` is on.

use noex_rules::EmitOptions;
use serde_json::Value;

use crate::shared::Shared;

/// Emits a connection lifecycle event (`connection.<what>`) into the engine when the
/// config's `rules.connectionEvents` is on; a no-op otherwise (`data` is not even built).
pub(crate) fn emit(shared: &Shared, what: &str, data: impl FnOnce() -> Value) {
    if !shared.config.rules.connection_events {
        return;
    }
    let Some(engine) = &shared.rules else { return };
    let data = data();
    let options = EmitOptions {
        source: Some("server".to_owned()),
        ..EmitOptions::default()
    };
    // Off the runtime worker: a rule on connection events may run a long cascade.
    let topic = format!("connection.{what}");
    if let Err(err) = engine.run_input_blocking(|e| e.emit_with(&topic, data, options)) {
        tracing::warn!(%err, what, "connection event not emitted to the rule engine");
    }
}
