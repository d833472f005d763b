//! Engine configuration: every bound in one place, plus the injectable clock and log hook.

use std::sync::Arc;

use crate::event::{Clock, TokioClock};
use crate::model::LogLevel;

/// Receives every `log` action: level, interpolated message, rule id.
pub type LogHook = Arc<dyn Fn(LogLevel, &str, &str) + Send + Sync>;

/// Receives every change of the fact store (by clients, rules and timers alike), in order,
/// after the change; called without engine locks held. Used to persist facts.
pub type FactObserver = Arc<dyn Fn(&[crate::facts::FactChange]) + Send + Sync>;

/// Settings of a [`crate::RuleEngine`]. `EngineConfig::default()` suits most uses.
#[derive(Clone)]
pub struct EngineConfig {
    /// How many generations of rule-caused events / fact changes may trigger further rules.
    /// Work at this depth is still applied and delivered but triggers no rule. Default 10.
    pub max_chain_depth: usize,
    /// Most work items (events, fact changes, matches) processed for one external input;
    /// the rest is dropped with a warning. Default 10 000.
    pub max_work_per_input: usize,
    /// Default `maxIterations` of `for_each` (also the upper bound of explicit values). Default 1000.
    pub max_for_each_iterations: u64,
    /// Most registered rules. Default 10 000.
    pub max_rules: usize,
    /// Most active timers. Default 10 000.
    pub max_timers: usize,
    /// Most event subscriptions. Default 100 000.
    pub max_subscriptions: usize,
    /// Source of timestamps.
    pub clock: Arc<dyn Clock>,
    /// Optional receiver of `log` actions (they always go to `tracing` as well).
    pub log_hook: Option<LogHook>,
    /// Optional receiver of every fact change.
    pub fact_observer: Option<FactObserver>,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            max_chain_depth: 10,
            max_work_per_input: 10_000,
            max_for_each_iterations: 1000,
            max_rules: 10_000,
            max_timers: 10_000,
            max_subscriptions: 100_000,
            clock: Arc::new(TokioClock::new()),
            log_hook: None,
            fact_observer: None,
        }
    }
}

impl std::fmt::Debug for EngineConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EngineConfig")
            .field("max_chain_depth", &self.max_chain_depth)
            .field("max_work_per_input", &self.max_work_per_input)
            .field("max_for_each_iterations", &self.max_for_each_iterations)
            .field("max_rules", &self.max_rules)
            .field("max_timers", &self.max_timers)
            .field("max_subscriptions", &self.max_subscriptions)
            .field("clock", &self.clock)
            .field("log_hook", &self.log_hook.is_some())
            .field("fact_observer", &self.fact_observer.is_some())
            .finish()
    }
}
