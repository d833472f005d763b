//! Events and the injectable clock that stamps them (and facts).

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// An event flowing through the engine: emitted by a client, a rule, a timer or a bridge.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Event {
    /// Unique id (UUID v4).
    pub id: String,
    /// `.`-separated topic.
    pub topic: String,
    /// Payload (an object for client events).
    pub data: Value,
    /// When it was emitted (ms since the Unix epoch, from the engine clock).
    pub timestamp: i64,
    /// Correlation id shared by every event of one causal chain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub correlation_id: Option<String>,
    /// Id of the event that caused this one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub causation_id: Option<String>,
    /// Who emitted it (`api`, `rule:<id>`, `timer:<name>`, `store`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
}

/// Optional metadata for [`crate::RuleEngine::emit_with`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EmitOptions {
    /// Source recorded on the event (for example `"store"` for the store bridge).
    pub source: Option<String>,
    /// Correlation id; rule-emitted descendants carry it on.
    pub correlation_id: Option<String>,
    /// Causation id.
    pub causation_id: Option<String>,
}

/// A source of wall-clock timestamps (ms since the Unix epoch). Injected for deterministic tests.
pub trait Clock: Send + Sync + std::fmt::Debug {
    /// Current time in ms since the Unix epoch.
    fn now_ms(&self) -> i64;
}

/// The default clock: wall time at creation plus elapsed *tokio* time, so timestamps and
/// temporal windows advance with `tokio::time::advance` under paused time.
#[derive(Debug)]
pub struct TokioClock {
    base_ms: i64,
    base: tokio::time::Instant,
}

impl TokioClock {
    /// Starts the clock at the current system time.
    pub fn new() -> Self {
        let base_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0);
        Self {
            base_ms,
            base: tokio::time::Instant::now(),
        }
    }
}

impl Default for TokioClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for TokioClock {
    fn now_ms(&self) -> i64 {
        self.base_ms + self.base.elapsed().as_millis() as i64
    }
}

/// A clock that only moves when told to. Cloning shares the same time.
#[derive(Debug, Clone, Default)]
pub struct ManualClock {
    now: Arc<AtomicI64>,
}

impl ManualClock {
    /// A clock reading `start_ms`.
    pub fn new(start_ms: i64) -> Self {
        Self {
            now: Arc::new(AtomicI64::new(start_ms)),
        }
    }
    /// Moves the clock forward by `ms`.
    pub fn advance(&self, ms: i64) {
        self.now.fetch_add(ms, Ordering::SeqCst);
    }
    /// Sets the clock to `ms`.
    pub fn set(&self, ms: i64) {
        self.now.store(ms, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> i64 {
        self.now.load(Ordering::SeqCst)
    }
}
