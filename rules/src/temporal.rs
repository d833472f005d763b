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
//!
//! All rules share one byte pool (`max_bytes`, see `EngineConfig::max_temporal_bytes`). When an
//! event of rule R does not fit, the rule holding the most bytes gives way while it holds more
//! than R would after buffering the event: its largest group loses its oldest window events
//! first, and a group with no window events left loses its sequence / absence wait too. Only
//! when no other rule holds more is the event refused. So a rule that holds, with the event, at
//! most `max_bytes / n` (n: the rules holding temporal data, itself included) always gets room.

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

    /// Holds nothing a later event could continue: the group can be forgotten.
    fn is_empty(&self) -> bool {
        self.history.is_empty()
            && self.sequence.is_none()
            && self.absence.is_none()
            && self.window_start.is_none()
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

/// Smallest eviction step, as a fraction of the pool: a full pool then costs one scan per
/// 1/64 of it freed, not one per event.
const EVICTION_CHUNK_DIVISOR: usize = 64;

/// One rule's groups and the bytes they hold together.
#[derive(Debug, Default)]
struct RuleState {
    /// Who registered the rule (`""` for rules without an owner): a full pool takes room
    /// from the owner holding the most.
    owner: String,
    groups: HashMap<String, GroupState>,
    /// Approximate bytes held by all of `groups` (the sum of their [`GroupState::bytes`]).
    bytes: usize,
}

impl RuleState {
    /// Frees about `goal` bytes from the largest group, stopping once the rule holds no more
    /// than `floor`: oldest window events first; a group with no window events left is dropped
    /// with its sequence / absence wait (an evicted wait then never fires). Bytes freed.
    fn evict(&mut self, goal: usize, floor: usize) -> usize {
        let Some(key) = self
            .groups
            .iter()
            .max_by_key(|(_, g)| g.bytes())
            .map(|(k, _)| k.clone())
        else {
            return 0;
        };
        let Some(group) = self.groups.get_mut(&key) else {
            return 0;
        };
        let start = self.bytes;
        let wanted = |bytes: usize| bytes > floor && start - bytes < goal;
        while wanted(self.bytes) {
            let Some((_, _, dropped)) = group.history.pop_front() else {
                break;
            };
            group.history_bytes = group.history_bytes.saturating_sub(dropped);
            self.bytes = self.bytes.saturating_sub(dropped);
        }
        if group.history.is_empty() && (group.held_bytes == 0 || wanted(self.bytes)) {
            let rest = group.bytes();
            self.groups.remove(&key);
            self.bytes = self.bytes.saturating_sub(rest);
        }
        start - self.bytes
    }
}

/// Per-rule, per-group temporal state.
#[derive(Debug, Default)]
pub(crate) struct TemporalState {
    /// Only rules holding some group state have an entry.
    rules: HashMap<String, RuleState>,
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
        if let Some(rule) = self.rules.remove(rule_id) {
            self.bytes = self.bytes.saturating_sub(rule.bytes);
        }
    }

    /// Makes room for `size` more bytes of a rule of `owner` holding `own` bytes, which is
    /// not in `self.rules` while this runs (so it never gives way to itself). Owners first:
    /// while another owner holds more than `owner` would with the event, the largest rule
    /// of the owner holding the most gives way; then, within `owner`, its largest rule
    /// while that holds more than `own + size`. Whether the event now fits.
    ///
    /// So one client registering twenty rules gets no more of the pool than another with
    /// one (red team, round 4), and one client's rules share its part fairly.
    fn make_room(&mut self, owner: &str, own: usize, size: usize, max_bytes: usize) -> bool {
        let chunk = max_bytes / EVICTION_CHUNK_DIVISOR;
        let rule_claim = own.saturating_add(size);
        loop {
            let overflow = self.bytes.saturating_add(size).saturating_sub(max_bytes);
            if overflow == 0 {
                return true;
            }
            let mut totals: HashMap<&str, usize> = HashMap::new();
            for rule in self.rules.values() {
                *totals.entry(rule.owner.as_str()).or_default() += rule.bytes;
            }
            let owner_claim = totals
                .get(owner)
                .copied()
                .unwrap_or(0)
                .saturating_add(rule_claim);
            let other = totals
                .iter()
                .filter(|(o, total)| **o != owner && **total > owner_claim)
                .max_by_key(|(_, total)| **total)
                .map(|(o, total)| (o.to_string(), *total));
            let (victim_owner, keep) = match other {
                // The other owner keeps at least what `owner` would hold.
                Some((o, total)) => (o, Some(total - owner_claim)),
                None => (owner.to_string(), None),
            };
            let Some((id, victim)) = self
                .rules
                .iter_mut()
                .filter(|(_, r)| r.owner == victim_owner)
                .max_by_key(|(_, r)| r.bytes)
            else {
                return false;
            };
            let floor = match keep {
                Some(excess) => victim.bytes.saturating_sub(excess),
                None if victim.bytes > rule_claim => rule_claim,
                None => return false,
            };
            let freed = victim.evict(overflow.max(chunk), floor);
            self.bytes = self.bytes.saturating_sub(freed);
            if victim.groups.is_empty() {
                let id = id.clone();
                self.rules.remove(&id);
            }
            if freed == 0 {
                return false;
            }
        }
    }

    /// Puts a rule's state back after [`Self::process`] took it out (if it still holds any).
    fn put_back(&mut self, rule_id: &str, rule: RuleState) {
        if !rule.groups.is_empty() {
            self.rules.insert(rule_id.to_string(), rule);
        }
    }

    /// Approximate bytes of event data held by all patterns.
    #[cfg(test)]
    pub(crate) fn bytes(&self) -> usize {
        self.bytes
    }

    /// Feeds one event to one rule's pattern. Its data is buffered only while all patterns
    /// together hold at most `max_bytes` (see `EngineConfig::max_temporal_bytes`).
    #[cfg(test)]
    pub(crate) fn process(
        &mut self,
        rule_id: &str,
        pattern: &TemporalPattern,
        event: &Event,
        now: i64,
        max_bytes: usize,
    ) -> (Vec<TemporalMatch>, Vec<AbsenceWait>) {
        self.process_owned(rule_id, "", pattern, event, now, max_bytes)
    }

    /// [`Self::process`] for a rule registered by `owner` (`""`: no owner), whose share of
    /// a full pool is counted with its owner's other rules (see `make_room`).
    pub(crate) fn process_owned(
        &mut self,
        rule_id: &str,
        owner: &str,
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
        // The rule's state leaves the map while this event is processed, so making room can
        // evict from every other rule (never from this one) while its group is borrowed.
        let mut rule = self.rules.remove(rule_id).unwrap_or_default();
        if rule.owner != owner {
            rule.owner = owner.to_string();
        }
        if !rule.groups.contains_key(&group) && rule.groups.len() >= MAX_GROUPS_PER_RULE {
            tracing::warn!(rule_id, "temporal group limit reached; event ignored");
            self.put_back(rule_id, rule);
            return (matches, waits);
        }
        let state = rule.groups.entry(group.clone()).or_default();
        let before = state.bytes();
        // Time ran out for an open sequence / a tumbling window: forget them before asking
        // for room, so the room check sees what the group really keeps.
        match pattern {
            TemporalPattern::Sequence { within, .. } => {
                let within = parse_duration_ms(within).unwrap_or(0) as i64;
                if let Some((started, _)) = &state.sequence
                    && now - started > within
                {
                    state.sequence = None;
                    state.recount_held();
                }
            }
            TemporalPattern::Count {
                window,
                sliding: false,
                ..
            } => {
                let window = parse_duration_ms(window).unwrap_or(0) as i64;
                if state.window_start.is_some_and(|s| now - s >= window) {
                    state.clear_history();
                    state.window_start = None;
                }
            }
            _ => {}
        }
        let after = state.bytes();
        rule.bytes = rule.bytes.saturating_sub(before) + after;
        self.bytes = self.bytes.saturating_sub(before) + after;
        let before = after;
        // Whether this event is to be kept (so room is made only for events that use it).
        let buffers = match pattern {
            TemporalPattern::Sequence { events, strict, .. } => {
                let starts = events.first().is_some_and(|m| matcher_matches(m, event));
                match &state.sequence {
                    Some((_, seen)) => {
                        events
                            .get(seen.len())
                            .is_some_and(|m| matcher_matches(m, event))
                            || (*strict && starts)
                    }
                    None => starts,
                }
            }
            TemporalPattern::Absence { after, .. } => {
                state.absence.is_none() && matcher_matches(after, event)
            }
            TemporalPattern::Count { .. } | TemporalPattern::Aggregate { .. } => true,
        };
        let size = approx_bytes(&event.data, max_bytes);
        let fits = !buffers || self.make_room(owner, rule.bytes, size, max_bytes);
        let mut refused_window = false;
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
            refused_window = matches!(
                pattern,
                TemporalPattern::Count { .. } | TemporalPattern::Aggregate { .. }
            );
        }
        let base = |extra: Map<String, Value>| {
            let mut m = info(pattern, &group, group_by.is_some());
            m.extend(extra);
            m
        };
        match pattern {
            // Not counted: the window stays as it was.
            _ if refused_window => {}
            TemporalPattern::Sequence { events, strict, .. } => {
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
                        group: group.clone(),
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
        let after = state.bytes();
        rule.bytes = rule.bytes.saturating_sub(before) + after;
        self.bytes = self.bytes.saturating_sub(before) + after;
        if state.is_empty() {
            rule.groups.remove(&group);
        }
        self.put_back(rule_id, rule);
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
        let rule = self.rules.get_mut(rule_id)?;
        let state = rule.groups.get_mut(group)?;
        match &state.absence {
            Some((id, _)) if *id == instance => {}
            _ => return None,
        }
        let before = state.bytes();
        let (_, after) = state.absence.take()?;
        state.recount_held();
        let now_held = state.bytes();
        rule.bytes = rule.bytes.saturating_sub(before) + now_held;
        self.bytes = self.bytes.saturating_sub(before) + now_held;
        if state.is_empty() {
            rule.groups.remove(group);
            if rule.groups.is_empty() {
                self.rules.remove(rule_id);
            }
        }
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
            source: "api".into(),
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
        let held = state.rules["r"].groups[""].history.len();
        assert!((9..=11).contains(&held), "{held} events held");
        // Another rule's sequence gets room: the rule holding the most gives way.
        let sequence = pattern(json!({"type": "sequence", "within": "1h",
            "events": [{"topic": "a"}, {"topic": "b"}]}));
        state.process("s", &sequence, &event("a", blob.clone()), 0, max);
        assert!(state.rules["s"].groups[""].sequence.is_some());
        assert!(state.rules["r"].groups[""].history.len() < held);
        assert!(state.bytes() <= max, "{}", state.bytes());
        // Forgetting a rule frees its bytes; a sliding window frees what leaves it.
        state.clear_rule("r");
        state.clear_rule("s");
        assert_eq!(state.bytes(), 0);
        let sliding = pattern(json!({"type": "count", "event": {"topic": "t"},
            "threshold": 1_000_000, "window": 10, "sliding": true}));
        state.process("w", &sliding, &event("t", blob.clone()), 0, max);
        assert!(state.bytes() > 9_000);
        state.process("w", &sliding, &event("t", json!({})), 100, max);
        assert!(state.bytes() < 1_000, "{}", state.bytes());
        state.process("s", &sequence, &event("a", blob.clone()), 0, max);
        assert!(state.rules["s"].groups[""].sequence.is_some());
        state.process("s", &sequence, &event("b", json!({})), 1, max);
        assert!(state.bytes() < 1_000, "{}", state.bytes());
    }
}

#[cfg(test)]
mod fairness_tests {
    use super::*;

    fn event(topic: &str, data: Value) -> Event {
        Event {
            id: "e".into(),
            topic: topic.into(),
            data,
            timestamp: 0,
            correlation_id: None,
            causation_id: None,
            source: "api".into(),
        }
    }

    fn pattern(value: Value) -> TemporalPattern {
        serde_json::from_value(value).expect("a valid pattern")
    }

    const MAX: usize = 100_000;

    /// A count rule that never fires, fed `events` ~9 KB events, then small ones until not
    /// even those fit (no room left for anyone's small event).
    fn flood(state: &mut TemporalState, rule: &str, events: i64) {
        let count = pattern(json!({"type": "count", "event": {"topic": "flood"},
            "threshold": 1_000_000, "window": "1h"}));
        let blob = json!({"b": "x".repeat(9_000)});
        for i in 0..events {
            state.process(rule, &count, &event("flood", blob.clone()), i, MAX);
        }
        for i in 0..1_000 {
            state.process(
                rule,
                &count,
                &event("flood", json!({"n": i})),
                events + i,
                MAX,
            );
        }
    }

    /// Fourth red-team run: twenty rules of one tenant each held their per-rule share, so
    /// the admin's one rule got a twenty-first of the pool and its count never fired.
    /// Owners share first: the admin gets half.
    #[test]
    fn one_owner_with_many_rules_does_not_starve_another_owner() {
        let mut state = TemporalState::default();
        let count = pattern(json!({"type": "count", "event": {"topic": "flood"},
            "threshold": 1_000_000, "window": "1h"}));
        let blob = json!({"b": "x".repeat(4_000)});
        for i in 0..200 {
            let rule = format!("t{}", i % 20);
            state.process_owned(
                &rule,
                "tenant",
                &count,
                &event("flood", blob.clone()),
                i,
                MAX,
            );
        }
        assert!(
            state.bytes() + 4_000 > MAX,
            "pool not full: {}",
            state.bytes()
        );
        // The admin's rule needs 8 events of ~4 KB: far over 1/21 of the pool, under 1/2.
        let alarm = pattern(json!({"type": "count", "event": {"topic": "pay.fail"},
            "threshold": 8, "window": "1h"}));
        let mut fired = 0;
        for i in 0..8 {
            let (matches, _) = state.process_owned(
                "alarm",
                "admin",
                &alarm,
                &event("pay.fail", json!({"n": i, "b": "y".repeat(4_000)})),
                300 + i,
                MAX,
            );
            fired += matches.len();
        }
        assert_eq!(fired, 1, "the admin's count fired");
        // The tenant's rules gave way, not the admin's; the totals stay exact.
        let tenant: usize = state
            .rules
            .values()
            .filter(|r| r.owner == "tenant")
            .map(|r| r.bytes)
            .sum();
        let all: usize = state.rules.values().map(|r| r.bytes).sum();
        assert_eq!(all, state.bytes());
        assert!(tenant < MAX, "{tenant}");
    }

    /// Among one owner's rules the largest gives way, as before owners existed; but the
    /// owner as a whole does not take room from an owner holding less.
    #[test]
    fn an_owner_holding_less_keeps_its_part() {
        let mut state = TemporalState::default();
        let count = pattern(json!({"type": "count", "event": {"topic": "flood"},
            "threshold": 1_000_000, "window": "1h"}));
        let blob = json!({"b": "x".repeat(4_000)});
        // The admin holds a little, then the tenant floods.
        for i in 0..3 {
            state.process_owned(
                "keep",
                "admin",
                &count,
                &event("flood", blob.clone()),
                i,
                MAX,
            );
        }
        let admin_before: usize = state.rules["keep"].bytes;
        for i in 0..200 {
            state.process_owned(
                "big",
                "tenant",
                &count,
                &event("flood", blob.clone()),
                10 + i,
                MAX,
            );
        }
        assert_eq!(
            state.rules["keep"].bytes, admin_before,
            "the admin kept its events"
        );
        assert!(state.bytes() <= MAX);
    }

    #[test]
    fn a_small_rule_still_fires_when_another_rule_filled_the_pool() {
        let mut state = TemporalState::default();
        flood(&mut state, "attacker", 100);
        assert!(
            state.bytes() + 9_000 > MAX,
            "pool not full: {}",
            state.bytes()
        );
        let victim = pattern(json!({"type": "count", "event": {"topic": "admin"},
            "threshold": 3, "window": "1h"}));
        let mut fired = 0;
        for i in 0..3 {
            let (matches, _) = state.process(
                "victim",
                &victim,
                &event("admin", json!({"n": i})),
                200 + i,
                MAX,
            );
            fired += matches.len();
        }
        assert_eq!(fired, 1, "the victim's count pattern must fire");
        assert!(state.bytes() <= MAX, "{}", state.bytes());
    }

    /// Bytes per rule recomputed from the buffered data itself; asserts each rule's and the
    /// pool's running totals match them exactly.
    fn assert_exact_totals(state: &TemporalState) -> HashMap<String, usize> {
        let size = |v: &Value| approx_bytes(v, usize::MAX);
        let mut per_rule = HashMap::new();
        for (id, rule) in &state.rules {
            let mut bytes = 0;
            for group in rule.groups.values() {
                bytes += group.history.iter().map(|(_, d, _)| size(d)).sum::<usize>();
                if let Some((_, seen)) = &group.sequence {
                    bytes += seen.iter().map(|e| size(&e.data)).sum::<usize>();
                }
                if let Some((_, e)) = &group.absence {
                    bytes += size(&e.data);
                }
            }
            assert_eq!(rule.bytes, bytes, "rule {id}");
            per_rule.insert(id.clone(), bytes);
        }
        assert_eq!(state.bytes(), per_rule.values().sum::<usize>());
        per_rule
    }

    #[test]
    fn a_rule_within_its_share_always_gets_room() {
        let mut state = TemporalState::default();
        // Three flooders take turns with big events; each is refused only once it is the
        // largest, so they end up sharing the pool.
        for i in 0..60 {
            flood_once(&mut state, &format!("flood{}", i % 3), i);
        }
        assert!(
            state.bytes() + 9_000 > MAX,
            "pool not full: {}",
            state.bytes()
        );
        // With the victim, 4 rules hold state: its events fit while it stays within MAX / 4.
        let victim = pattern(json!({"type": "count", "event": {"topic": "v"},
            "threshold": 1_000_000, "window": "1h"}));
        let data = json!({"b": "v".repeat(1_000)});
        let size = approx_bytes(&data, usize::MAX);
        let mut kept = 0;
        while state.rules.get("victim").map_or(0, |r| r.bytes) + size <= MAX / 4 {
            state.process(
                "victim",
                &victim,
                &event("v", data.clone()),
                1_000 + kept,
                MAX,
            );
            kept += 1;
            assert_eq!(state.rules["victim"].groups[""].history.len() as i64, kept);
            assert!(state.bytes() <= MAX, "{}", state.bytes());
            // The flooders keep pushing; they do not take the victim's share back.
            flood_once(&mut state, &format!("flood{}", kept % 3), 2_000 + kept);
        }
        assert!(kept >= 20, "{kept}");
        assert_exact_totals(&state);
    }

    fn flood_once(state: &mut TemporalState, rule: &str, now: i64) {
        let count = pattern(json!({"type": "count", "event": {"topic": "flood"},
            "threshold": 1_000_000, "window": "1h"}));
        let blob = json!({"b": "x".repeat(9_000)});
        state.process(rule, &count, &event("flood", blob), now, MAX);
    }

    #[test]
    fn the_largest_rule_loses_its_oldest_events_and_totals_stay_exact() {
        let mut state = TemporalState::default();
        flood(&mut state, "attacker", 100);
        let before = assert_exact_totals(&state)["attacker"];
        let kept = |state: &TemporalState| {
            let history = &state.rules["attacker"].groups[""].history;
            (history[0].0, history.back().map(|(ts, _, _)| *ts))
        };
        let (oldest, newest) = kept(&state);
        // An absence wait and a sequence of other rules, each with a big event.
        let absence = pattern(json!({"type": "absence", "after": {"topic": "a"},
            "expected": {"topic": "b"}, "within": "1h"}));
        let blob = json!({"b": "y".repeat(5_000)});
        let (_, waits) = state.process("wait", &absence, &event("a", blob.clone()), 300, MAX);
        assert_eq!(waits.len(), 1);
        let sequence = pattern(json!({"type": "sequence", "within": "1h",
            "events": [{"topic": "a"}, {"topic": "b"}]}));
        state.process("seq", &sequence, &event("a", blob.clone()), 301, MAX);
        assert!(state.rules["seq"].groups[""].sequence.is_some());
        let after = assert_exact_totals(&state);
        assert!(
            after["attacker"] < before,
            "{} !< {before}",
            after["attacker"]
        );
        assert!(after.contains_key("wait") && after.contains_key("seq"));
        // The oldest entries went first: what is left is the newest, in order.
        let (first_left, last_left) = kept(&state);
        assert!(first_left > oldest, "{first_left} > {oldest}");
        assert_eq!(last_left, newest);
        assert!(state.bytes() <= MAX, "{}", state.bytes());
    }

    #[test]
    fn an_evicted_absence_wait_never_fires() {
        let mut state = TemporalState::default();
        let absence = pattern(json!({"type": "absence", "after": {"topic": "a"},
            "expected": {"topic": "b"}, "within": "1h", "groupBy": "k"}));
        let blob = "z".repeat(9_000);
        let mut waits = Vec::new();
        for k in 0..20 {
            let data = json!({"k": k, "b": blob});
            waits.extend(
                state
                    .process("waits", &absence, &event("a", data), k, MAX)
                    .1,
            );
        }
        assert!(waits.len() >= 9, "{} waits", waits.len());
        // A count rule with a big event evicts whole groups (no window to shrink first).
        let count = pattern(json!({"type": "count", "event": {"topic": "c"},
            "threshold": 100, "window": "1h"}));
        state.process("count", &count, &event("c", json!({"b": blob})), 50, MAX);
        assert_eq!(state.rules["count"].groups[""].history.len(), 1);
        assert_exact_totals(&state);
        let fired = waits
            .iter()
            .filter_map(|w| state.absence_expired(&w.rule_id, &absence, &w.group, w.instance))
            .count();
        assert!(
            fired < waits.len(),
            "{fired} of {} waits fired",
            waits.len()
        );
        assert_eq!(state.bytes(), assert_exact_totals(&state)["count"]);
    }

    #[test]
    fn the_only_rule_holding_state_is_refused_as_before() {
        let mut state = TemporalState::default();
        flood(&mut state, "attacker", 100);
        let held = state.rules["attacker"].groups[""].history.len();
        let bytes = state.bytes();
        let refused = state.refused;
        flood(&mut state, "attacker", 3);
        assert_eq!(state.rules["attacker"].groups[""].history.len(), held);
        assert_eq!(state.bytes(), bytes);
        assert_eq!(state.refused, refused + 1_003);
        // Also when it is the largest of several: another, smaller rule does not give way.
        let small = pattern(json!({"type": "count", "event": {"topic": "s"},
            "threshold": 100, "window": "1h"}));
        state.clear_rule("attacker");
        state.process("small", &small, &event("s", json!({"n": 1})), 0, MAX);
        flood(&mut state, "attacker", 100);
        assert_eq!(state.rules["small"].groups[""].history.len(), 1);
        assert_exact_totals(&state);
    }

    #[test]
    fn clearing_a_rule_after_evictions_leaves_the_exact_remaining_sum() {
        let mut state = TemporalState::default();
        flood(&mut state, "attacker", 100);
        let victim = pattern(json!({"type": "count", "event": {"topic": "v"},
            "threshold": 1_000, "window": "1h", "groupBy": "g"}));
        for i in 0..30 {
            let data = json!({"g": i % 3, "b": "v".repeat(500)});
            state.process("victim", &victim, &event("v", data), 2_000 + i, MAX);
        }
        assert_eq!(state.rules["victim"].groups.len(), 3);
        let per_rule = assert_exact_totals(&state);
        state.clear_rule("attacker");
        assert_eq!(state.bytes(), per_rule["victim"]);
        assert_exact_totals(&state);
        state.clear_rule("victim");
        assert_eq!(state.bytes(), 0);
        assert!(state.rules.is_empty());
    }
}
