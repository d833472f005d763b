//! Complex-event patterns (sequence, absence, count, aggregate) as a pure state machine over
//! event timestamps from the engine clock. The engine feeds events in and schedules the
//! absence deadlines this module asks for; no I/O and no tokio here.
//!
//! Semantics (per rule, per `groupBy` value; events without the field are ignored):
//! - sequence: the first matcher opens an instance; each next matcher must follow within
//!   `within` of the first event; `strict` aborts on an out-of-order event of the pattern.
//! - absence: `after` opens a wait of `within`; `expected` (same group) cancels it; the rule runs
//!   when the wait ends, seeing the `after` event as `event.*`.
//! - count: tumbling (default) windows open at the first event and are consumed by a match;
//!   sliding windows count the trailing `window` and fire on every event while the comparison holds.
//! - aggregate: trailing `window`; fires on every event while the comparison holds.
//!
//! Matched rules see `context.pattern`, `context.groupKey`, `context.count`,
//! `context.aggregateValue`, `context.matchedEvents` and `matched.<i>.<path>` refs.
//!
//! Bounded: at most [`MAX_GROUPS_PER_RULE`] group keys per rule and [`MAX_HISTORY`] events per
//! group; windows prune older events on every arrival.

use std::collections::{HashMap, VecDeque};

use serde_json::{Map, Value, json};

use crate::budget::approx_bytes;
use crate::event::Event;
use crate::model::{AggregateFunction, EventMatcher, TemporalPattern};
use crate::pattern::{display_value, get_path, parse_duration_ms, topic_matches};

/// Most distinct `groupBy` values tracked per rule; events of further groups are ignored.
pub const MAX_GROUPS_PER_RULE: usize = 10_000;
/// Most events kept per group for count / aggregate windows (oldest dropped first).
pub const MAX_HISTORY: usize = 10_000;

/// A pattern that completed: the rule runs with this as its trigger.
#[derive(Debug, Clone)]
pub(crate) struct TemporalMatch {
    pub rule_id: String,
    /// Data the rule sees as `event.*` (the last matched event, or the `after` event of an absence).
    pub trigger_data: Value,
    /// The event that completed the match (for correlation), if any.
    pub last_event: Option<Event>,
    /// Data of every matched event.
    pub matched: Vec<Value>,
    /// Context variables: `groupKey`, `count`, `aggregateValue`, `pattern`.
    pub info: Map<String, Value>,
}

/// An absence wait the engine must schedule: call [`TemporalState::absence_expired`] after `within_ms`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct AbsenceWait {
    pub rule_id: String,
    pub group: String,
    pub instance: u64,
    pub within_ms: u64,
}

#[derive(Debug, Default)]
struct GroupState {
    sequence: Option<(i64, Vec<Event>)>,
    absence: Option<(u64, Event)>,
    /// Count / aggregate window: timestamp, data, its approximate size.
    history: VecDeque<(i64, Value, usize)>,
    window_start: Option<i64>,
    /// Approximate bytes of `history`.
    history_bytes: usize,
    /// Approximate bytes of the events of `sequence` and `absence`.
    held_bytes: usize,
}

impl GroupState {
    fn bytes(&self) -> usize {
        self.history_bytes + self.held_bytes
    }

    fn recount_held(&mut self) {
        let sequence = self.sequence.as_ref().map_or(0, |(_, seen)| {
            seen.iter()
                .map(|e| approx_bytes(&e.data, usize::MAX))
                .sum::<usize>()
        });
        let absence = self
            .absence
            .as_ref()
            .map_or(0, |(_, e)| approx_bytes(&e.data, usize::MAX));
        self.held_bytes = sequence + absence;
    }

    fn push(&mut self, ts: i64, data: Value, size: usize) {
        if self.history.len() >= MAX_HISTORY
            && let Some((_, _, dropped)) = self.history.pop_front()
        {
            self.history_bytes = self.history_bytes.saturating_sub(dropped);
        }
        self.history.push_back((ts, data, size));
        self.history_bytes += size;
    }

    fn prune(&mut self, oldest: i64) {
        while self.history.front().is_some_and(|(ts, _, _)| *ts < oldest) {
            if let Some((_, _, dropped)) = self.history.pop_front() {
                self.history_bytes = self.history_bytes.saturating_sub(dropped);
            }
        }
    }

    fn clear_history(&mut self) {
        self.history.clear();
        self.history_bytes = 0;
    }
}

/// Per-rule, per-group temporal state.
#[derive(Debug, Default)]
pub(crate) struct TemporalState {
    rules: HashMap<String, HashMap<String, GroupState>>,
    next_instance: u64,
    /// Approximate bytes of event data held by all groups of all rules.
    bytes: usize,
    /// Events not buffered because of the byte bound.
    refused: u64,
}

fn matcher_matches(m: &EventMatcher, event: &Event) -> bool {
    topic_matches(&m.topic, &event.topic)
        && m.filter.as_ref().is_none_or(|f| {
            f.iter().all(|(path, want)| {
                get_path(&event.data, path).is_some_and(|v| crate::eval::json_eq(v, want))
            })
        })
}

fn group_key(group_by: &Option<String>, event: &Event) -> Option<String> {
    match group_by {
        None => Some(String::new()),
        Some(field) => get_path(&event.data, field)
            .filter(|v| !v.is_null())
            .map(display_value),
    }
}

fn info(pattern: &TemporalPattern, group: &str, grouped: bool) -> Map<String, Value> {
    let mut m = Map::new();
    let kind = match pattern {
        TemporalPattern::Sequence { .. } => "sequence",
        TemporalPattern::Absence { .. } => "absence",
        TemporalPattern::Count { .. } => "count",
        TemporalPattern::Aggregate { .. } => "aggregate",
    };
    m.insert("pattern".into(), json!(kind));
    if grouped {
        m.insert("groupKey".into(), json!(group));
    }
    m
}

impl TemporalState {
    /// Forgets everything about a rule (unregistered, updated or disabled).
    pub(crate) fn clear_rule(&mut self, rule_id: &str) {
        if let Some(groups) = self.rules.remove(rule_id) {
            self.bytes = self
                .bytes
                .saturating_sub(groups.values().map(GroupState::bytes).sum::<usize>());
        }
    }

    /// Approximate bytes of event data held by all patterns.
    #[cfg(test)]
    pub(crate) fn bytes(&self) -> usize {
        self.bytes
    }

    /// Feeds one event to one rule's pattern. Its data is buffered only while all patterns
    /// together hold at most `max_bytes` (see `EngineConfig::max_temporal_bytes`).
    pub(crate) fn process(
        &mut self,
        rule_id: &str,
        pattern: &TemporalPattern,
        event: &Event,
        now: i64,
        max_bytes: usize,
    ) -> (Vec<TemporalMatch>, Vec<AbsenceWait>) {
        let mut matches = Vec::new();
        let mut waits = Vec::new();
        let (group_by, relevant) = match pattern {
            TemporalPattern::Sequence {
                events, group_by, ..
            } => (group_by, events.iter().any(|m| matcher_matches(m, event))),
            TemporalPattern::Absence {
                after,
                expected,
                group_by,
                ..
            } => (
                group_by,
                matcher_matches(after, event) || matcher_matches(expected, event),
            ),
            TemporalPattern::Count {
                event: m, group_by, ..
            }
            | TemporalPattern::Aggregate {
                event: m, group_by, ..
            } => (group_by, matcher_matches(m, event)),
        };
        if !relevant {
            return (matches, waits);
        }
        let Some(group) = group_key(group_by, event) else {
            return (matches, waits);
        };
        let groups = self.rules.entry(rule_id.to_string()).or_default();
        if !groups.contains_key(&group) && groups.len() >= MAX_GROUPS_PER_RULE {
            tracing::warn!(rule_id, "temporal group limit reached; event ignored");
            return (matches, waits);
        }
        let size = approx_bytes(&event.data, max_bytes);
        let fits = self.bytes.saturating_add(size) <= max_bytes;
        if !fits {
            self.refused += 1;
            if self.refused.is_power_of_two() {
                tracing::warn!(
                    rule_id,
                    refused = self.refused,
                    max_bytes,
                    "temporal patterns hold their byte limit; event not buffered"
                );
            }
            if matches!(
                pattern,
                TemporalPattern::Count { .. } | TemporalPattern::Aggregate { .. }
            ) {
                return (matches, waits);
            }
        }
        let state = groups.entry(group.clone()).or_default();
        let before = state.bytes();
        let base = |extra: Map<String, Value>| {
            let mut m = info(pattern, &group, group_by.is_some());
            m.extend(extra);
            m
        };
        match pattern {
            TemporalPattern::Sequence {
                events,
                within,
                strict,
                ..
            } => {
                let within = parse_duration_ms(within).unwrap_or(0) as i64;
                if let Some((started, _)) = &state.sequence
                    && now - started > within
                {
                    state.sequence = None;
                }
                let mut consumed = false;
                if let Some((_, seen)) = &mut state.sequence {
                    if let Some(next) = events.get(seen.len())
                        && fits
                        && matcher_matches(next, event)
                    {
                        seen.push(event.clone());
                        consumed = true;
                        if seen.len() == events.len() {
                            let seen = std::mem::take(seen);
                            state.sequence = None;
                            matches.push(TemporalMatch {
                                rule_id: rule_id.to_string(),
                                trigger_data: event.data.clone(),
                                last_event: Some(event.clone()),
                                matched: seen.iter().map(|e| e.data.clone()).collect(),
                                info: base(Map::new()),
                            });
                        }
                    } else if *strict {
                        state.sequence = None;
                    }
                }
                if !consumed
                    && fits
                    && state.sequence.is_none()
                    && events.first().is_some_and(|m| matcher_matches(m, event))
                {
                    state.sequence = Some((now, vec![event.clone()]));
                }
            }
            TemporalPattern::Absence {
                after,
                expected,
                within,
                ..
            } => {
                if state.absence.is_some() && matcher_matches(expected, event) {
                    state.absence = None;
                } else if fits && state.absence.is_none() && matcher_matches(after, event) {
                    self.next_instance += 1;
                    state.absence = Some((self.next_instance, event.clone()));
                    waits.push(AbsenceWait {
                        rule_id: rule_id.to_string(),
                        group,
                        instance: self.next_instance,
                        within_ms: parse_duration_ms(within).unwrap_or(0),
                    });
                }
            }
            TemporalPattern::Count {
                threshold,
                comparison,
                window,
                sliding,
                ..
            } => {
                let window = parse_duration_ms(window).unwrap_or(0) as i64;
                if !*sliding && state.window_start.is_some_and(|s| now - s >= window) {
                    state.clear_history();
                    state.window_start = None;
                }
                state.window_start.get_or_insert(now);
                state.push(now, event.data.clone(), size);
                if *sliding {
                    state.prune(now - window);
                }
                let count = state.history.len() as f64;
                if comparison.holds(count, *threshold) {
                    let matched: Vec<Value> =
                        state.history.iter().map(|(_, d, _)| d.clone()).collect();
                    if !*sliding {
                        // A tumbling window is consumed by its match; the next event opens a new one.
                        state.clear_history();
                        state.window_start = None;
                    }
                    let mut extra = Map::new();
                    extra.insert("count".into(), json!(matched.len()));
                    matches.push(TemporalMatch {
                        rule_id: rule_id.to_string(),
                        trigger_data: event.data.clone(),
                        last_event: Some(event.clone()),
                        matched,
                        info: base(extra),
                    });
                }
            }
            TemporalPattern::Aggregate {
                field,
                function,
                threshold,
                comparison,
                window,
                ..
            } => {
                let window = parse_duration_ms(window).unwrap_or(0) as i64;
                state.push(now, event.data.clone(), size);
                state.prune(now - window);
                let values: Vec<f64> = state
                    .history
                    .iter()
                    .filter_map(|(_, d, _)| get_path(d, field).and_then(Value::as_f64))
                    .collect();
                let value = match function {
                    AggregateFunction::Count => Some(state.history.len() as f64),
                    _ if values.is_empty() => None,
                    AggregateFunction::Sum => Some(values.iter().sum()),
                    AggregateFunction::Avg => {
                        Some(values.iter().sum::<f64>() / values.len() as f64)
                    }
                    AggregateFunction::Min => values.iter().copied().reduce(f64::min),
                    AggregateFunction::Max => values.iter().copied().reduce(f64::max),
                };
                if let Some(value) = value
                    && comparison.holds(value, *threshold)
                {
                    let mut extra = Map::new();
                    extra.insert("aggregateValue".into(), json!(value));
                    extra.insert("count".into(), json!(state.history.len()));
                    matches.push(TemporalMatch {
                        rule_id: rule_id.to_string(),
                        trigger_data: event.data.clone(),
                        last_event: Some(event.clone()),
                        matched: state.history.iter().map(|(_, d, _)| d.clone()).collect(),
                        info: base(extra),
                    });
                }
            }
        }
        state.recount_held();
        self.bytes = self.bytes.saturating_sub(before) + state.bytes();
        (matches, waits)
    }

    /// An absence wait ran out: the match, when the instance is still waiting.
    pub(crate) fn absence_expired(
        &mut self,
        rule_id: &str,
        pattern: &TemporalPattern,
        group: &str,
        instance: u64,
    ) -> Option<TemporalMatch> {
        let groups = self.rules.get_mut(rule_id)?;
        let state = groups.get_mut(group)?;
        match &state.absence {
            Some((id, _)) if *id == instance => {}
            _ => return None,
        }
        let before = state.bytes();
        let (_, after) = state.absence.take()?;
        state.recount_held();
        self.bytes = self.bytes.saturating_sub(before) + state.bytes();
        let grouped = matches!(
            pattern,
            TemporalPattern::Absence {
                group_by: Some(_),
                ..
            }
        );
        Some(TemporalMatch {
            rule_id: rule_id.to_string(),
            trigger_data: after.data.clone(),
            matched: vec![after.data.clone()],
            last_event: Some(after),
            info: info(pattern, group, grouped),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(topic: &str, data: Value) -> Event {
        Event {
            id: "e".into(),
            topic: topic.into(),
            data,
            timestamp: 0,
            correlation_id: None,
            causation_id: None,
            source: None,
        }
    }

    fn pattern(value: Value) -> TemporalPattern {
        serde_json::from_value(value).expect("a valid pattern")
    }

    #[test]
    fn buffered_event_data_stays_within_the_byte_bound_and_is_freed() {
        let count = pattern(json!({"type": "count", "event": {"topic": "order.c"},
            "threshold": 1_000_000, "window": "1h"}));
        let mut state = TemporalState::default();
        let max = 100_000;
        let blob = json!({"b": "x".repeat(9_000)});
        for i in 0..100 {
            state.process("r", &count, &event("order.c", blob.clone()), i, max);
            assert!(state.bytes() <= max, "{}", state.bytes());
        }
        let held = state.rules["r"][""].history.len();
        assert!((9..=11).contains(&held), "{held} events held");
        // A sequence refused for want of room does not start; small events still pass.
        let sequence = pattern(json!({"type": "sequence", "within": "1h",
            "events": [{"topic": "a"}, {"topic": "b"}]}));
        state.process("s", &sequence, &event("a", blob.clone()), 0, max);
        assert!(state.rules["s"][""].sequence.is_none());
        // Forgetting a rule frees its bytes; a sliding window frees what leaves it.
        state.clear_rule("r");
        assert_eq!(state.bytes(), 0);
        let sliding = pattern(json!({"type": "count", "event": {"topic": "t"},
            "threshold": 1_000_000, "window": 10, "sliding": true}));
        state.process("w", &sliding, &event("t", blob.clone()), 0, max);
        assert!(state.bytes() > 9_000);
        state.process("w", &sliding, &event("t", json!({})), 100, max);
        assert!(state.bytes() < 1_000, "{}", state.bytes());
        state.process("s", &sequence, &event("a", blob.clone()), 0, max);
        assert!(state.rules["s"][""].sequence.is_some());
        state.process("s", &sequence, &event("b", json!({})), 1, max);
        assert!(state.bytes() < 1_000, "{}", state.bytes());
    }
}
