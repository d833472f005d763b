//! Named timers on the engine clock ([`crate::EngineConfig::clock`]). Each timer is one task
//! waiting (`Clock::sleep_until`) for its deadline, then firing into the engine; a timer set
//! again under the same name replaces (aborts) the old one. Absence waits of temporal
//! patterns use the same mechanism. With a manual clock, advancing it past a deadline fires
//! the timer; with the default tokio clock, the wait is a tokio sleep.
//!
//! Deadlines (ms on the engine clock) are kept here so [`crate::RuleEngine::settle`] can tell
//! whether anything that is due has not run yet, without sleeping.

use noex_model::clock::Clock;
use serde_json::Value;
use std::collections::HashMap;
use std::sync::{Arc, Weak};
use tokio::sync::Semaphore;
use tokio::task::AbortHandle;

use crate::temporal::AbsenceWait;

/// What timer tasks fire into (the engine): given to [`Timers::set`] and
/// [`Timers::schedule_absence`] by their caller, so timers know nothing of the engine's
/// insides. A task holds it weakly and stops once the engine is gone.
pub(crate) trait TimerTarget: Send + Sync {
    /// The clock deadlines are measured and waited on.
    fn clock(&self) -> Arc<dyn Clock>;
    /// Permits to run an input's cascade; a firing task holds one while it runs.
    fn inputs(&self) -> &Semaphore;
    /// Timer `name` (set as `id`) reached its deadline; `next` is its next deadline for a
    /// repeat. Runs the expiry's cascade; false when the timer was replaced or cancelled.
    fn fire_timer(self: Arc<Self>, name: &str, id: u64, next: Option<u64>) -> bool;
    /// An absence wait ran out: runs its cascade.
    fn fire_absence(self: Arc<Self>, wait: AbsenceWait);
}

/// Runs `f` without holding a tokio runtime worker: on a worker of a multi-thread runtime,
/// the worker's other tasks move to another thread while `f` runs (`block_in_place`);
/// anywhere else (a current-thread runtime, a thread of its own) `f` runs as it is.
pub(crate) fn off_worker<R>(f: impl FnOnce() -> R) -> R {
    match tokio::runtime::Handle::try_current() {
        Ok(handle) if handle.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(f)
        }
        _ => f(),
    }
}

/// What a `set_timer` action resolved to.
#[derive(Debug, Clone)]
pub(crate) struct TimerSpec {
    pub name: String,
    pub duration_ms: u64,
    pub topic: String,
    pub data: Value,
    /// `(interval_ms, max_count)`.
    pub repeat: Option<(u64, Option<u64>)>,
    pub correlation_id: Option<String>,
}

/// A public view of an active timer.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TimerInfo {
    /// Timer name.
    pub name: String,
    /// Topic of the event emitted on expiry.
    pub topic: String,
    /// Milliseconds until the next expiry (0 when due).
    pub remaining_ms: u64,
    /// How many times it already fired.
    pub fired: u64,
}

pub(crate) struct TimerEntry {
    pub id: u64,
    pub spec: TimerSpec,
    /// Next expiry, ms on the engine clock.
    pub deadline: u64,
    pub fired: u64,
    /// Approximate memory of the timer ([`footprint`]), counted in [`Timers::data_bytes`].
    bytes: usize,
    handle: Option<AbortHandle>,
}

/// Active timers and absence waits.
#[derive(Default)]
pub(crate) struct Timers {
    entries: HashMap<String, TimerEntry>,
    /// Absence waits by instance: their deadline, ms on the engine clock.
    absence: HashMap<u64, u64>,
    next_id: u64,
    /// Approximate memory of every active timer's data together.
    data_bytes: usize,
}

/// Bytes a timer holds besides its data: its entry, its task, the name's copies.
const TIMER_OVERHEAD: usize = 256;

/// Approximate memory of a timer: its data, its name (kept three times: the map's key,
/// the spec, the task), its topic and correlation id, and [`TIMER_OVERHEAD`]. The name
/// and topic are interpolated from events, so they can be as large as the data (red team,
/// round 4: 1 000 timers named from a 400 KB event field took 1.1 GB uncounted).
pub(crate) fn footprint(spec: &TimerSpec, cap: usize) -> usize {
    crate::budget::approx_bytes(&spec.data, cap)
        .saturating_add(spec.name.len().saturating_mul(3))
        .saturating_add(spec.topic.len())
        .saturating_add(spec.correlation_id.as_ref().map_or(0, String::len))
        .saturating_add(TIMER_OVERHEAD)
}

fn runtime() -> Result<tokio::runtime::Handle, String> {
    tokio::runtime::Handle::try_current()
        .map_err(|_| "timers need a running tokio runtime".to_string())
}

impl Timers {
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    pub(crate) fn list(&self, now: u64) -> Vec<TimerInfo> {
        let mut list: Vec<TimerInfo> = self
            .entries
            .values()
            .map(|t| TimerInfo {
                name: t.spec.name.clone(),
                topic: t.spec.topic.clone(),
                remaining_ms: t.deadline.saturating_sub(now),
                fired: t.fired,
            })
            .collect();
        list.sort_by(|a, b| a.name.cmp(&b.name));
        list
    }

    /// Starts (or replaces) a timer: at most `max` timers, which together take at most
    /// `max_bytes` (approximate memory, see [`footprint`]).
    pub(crate) fn set(
        &mut self,
        engine: &Arc<dyn TimerTarget>,
        spec: TimerSpec,
        max: usize,
        max_bytes: usize,
    ) -> Result<(), String> {
        if !self.entries.contains_key(&spec.name) && self.entries.len() >= max {
            return Err(format!("timer limit ({max}) reached"));
        }
        let bytes = footprint(&spec, max_bytes.saturating_add(1));
        let replaced = self.entries.get(&spec.name).map_or(0, |e| e.bytes);
        if self
            .data_bytes
            .saturating_sub(replaced)
            .saturating_add(bytes)
            > max_bytes
        {
            return Err(format!(
                "timers' memory limit ({max_bytes} bytes for all timers together) reached"
            ));
        }
        let handle = runtime()?;
        self.cancel(&spec.name);
        self.next_id += 1;
        let id = self.next_id;
        let clock = engine.clock();
        let deadline = clock.now_ms().saturating_add(spec.duration_ms);
        let weak: Weak<dyn TimerTarget> = Arc::downgrade(engine);
        let name = spec.name.clone();
        let repeat = spec.repeat;
        let task = handle.spawn(async move {
            let mut deadline = deadline;
            let mut fired = 0u64;
            loop {
                clock.sleep_until(deadline).await;
                let Some(engine) = weak.upgrade() else { return };
                fired += 1;
                let next = repeat
                    .filter(|(_, max)| max.is_none_or(|m| fired < m))
                    .map(|(interval, _)| deadline.saturating_add(interval));
                // The expiry's cascade runs off the runtime's workers, one input permit
                // at a time with the other inputs (many timers due at once queue here).
                let permit = engine.inputs().acquire().await.ok();
                let still_set = off_worker(|| Arc::clone(&engine).fire_timer(&name, id, next));
                drop(permit);
                if !still_set {
                    return;
                }
                match next {
                    Some(n) => deadline = n,
                    None => return,
                }
            }
        });
        self.entries.insert(
            spec.name.clone(),
            TimerEntry {
                id,
                spec,
                deadline,
                fired: 0,
                bytes,
                handle: Some(task.abort_handle()),
            },
        );
        self.data_bytes = self.data_bytes.saturating_add(bytes);
        Ok(())
    }

    /// Cancels a timer; whether it existed.
    pub(crate) fn cancel(&mut self, name: &str) -> bool {
        match self.entries.remove(name) {
            Some(entry) => {
                self.data_bytes = self.data_bytes.saturating_sub(entry.bytes);
                if let Some(h) = entry.handle {
                    h.abort();
                }
                true
            }
            None => false,
        }
    }

    /// Called by a firing timer task: the entry, if `id` is still the current timer of `name`.
    /// Updates the deadline for a repeat, or removes the entry after its last expiry.
    pub(crate) fn on_fire(&mut self, name: &str, id: u64, next: Option<u64>) -> Option<TimerSpec> {
        let entry = self.entries.get_mut(name).filter(|e| e.id == id)?;
        entry.fired += 1;
        let spec = entry.spec.clone();
        match next {
            Some(n) => entry.deadline = n,
            None => {
                if let Some(entry) = self.entries.remove(name) {
                    self.data_bytes = self.data_bytes.saturating_sub(entry.bytes);
                }
            }
        }
        Some(spec)
    }

    /// Schedules the end of an absence wait.
    pub(crate) fn schedule_absence(&mut self, engine: &Arc<dyn TimerTarget>, wait: AbsenceWait) {
        let Ok(handle) = runtime() else {
            tracing::warn!(rule_id = %wait.rule_id, "absence pattern needs a running tokio runtime; wait ignored");
            return;
        };
        let clock = engine.clock();
        let deadline = clock.now_ms().saturating_add(wait.within_ms);
        self.absence.insert(wait.instance, deadline);
        let weak: Weak<dyn TimerTarget> = Arc::downgrade(engine);
        handle.spawn(async move {
            clock.sleep_until(deadline).await;
            if let Some(engine) = weak.upgrade() {
                let _permit = engine.inputs().acquire().await.ok();
                off_worker(|| Arc::clone(&engine).fire_absence(wait));
            }
        });
    }

    /// Forgets an absence wait (it fired).
    pub(crate) fn absence_done(&mut self, instance: u64) {
        self.absence.remove(&instance);
    }

    /// Whether a timer or absence wait is due but has not run yet.
    pub(crate) fn any_due(&self, now: u64) -> bool {
        self.entries.values().any(|t| t.deadline <= now) || self.absence.values().any(|d| *d <= now)
    }

    /// Cancels everything.
    pub(crate) fn abort_all(&mut self) {
        for (_, entry) in self.entries.drain() {
            if let Some(h) = entry.handle {
                h.abort();
            }
        }
        self.data_bytes = 0;
        self.absence.clear();
    }
}
