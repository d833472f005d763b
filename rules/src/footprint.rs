//! What a rule reads and writes — the topics it reacts to or emits, the facts it reads, sets
//! or deletes, the timers it reacts to, sets or cancels — as [`NamePattern`]s, so that a permission check can require rights on all of
//! them before the rule is registered (a rule runs with the server's authority later).
//!
//! Templates (`order:${event.id}:vip`) are conservative: from the first templated segment
//! on, any content is possible, because an interpolated value may contain separators.

use serde_json::Value;

use crate::error::Result;
use crate::model::{Action, ConditionSource, RuleInput, TemporalPattern, Trigger};
use crate::pattern::NamePattern;
use crate::validate::{merge_update, parse_rule};

/// The resources a rule touches. Build it with [`rule_footprint`] (from JSON) or
/// [`RuleFootprint::of`] (from a parsed rule).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RuleFootprint {
    /// Topics of the events it reacts to (event triggers, temporal pattern matchers).
    pub reads_topics: Vec<NamePattern>,
    /// Facts it reacts to or reads (fact triggers, fact conditions, `fact.` references).
    pub reads_facts: Vec<NamePattern>,
    /// Topics it emits (`emit_event`, the `onExpire` event of its timers).
    pub writes_topics: Vec<NamePattern>,
    /// Facts it sets or deletes.
    pub writes_facts: Vec<NamePattern>,
    /// Timers whose expiry it reacts to (timer triggers), in the fact-key grammar that
    /// timer names follow (`:` segments, `*` one segment).
    pub reads_timers: Vec<NamePattern>,
    /// Timers it sets (replacing one of the same name) or cancels (`set_timer`,
    /// `cancel_timer`; templated names as for fact keys).
    pub writes_timers: Vec<NamePattern>,
}

/// Validates a rule given as JSON and returns what it touches; the validation errors of
/// `rules.registerRule` when it is not a valid rule.
///
/// ```
/// use noex_rules::rule_footprint;
/// use noex_rules::pattern::NamePattern;
/// use serde_json::json;
///
/// let footprint = rule_footprint(&json!({
///     "id": "copy", "name": "copy",
///     "trigger": {"type": "event", "topic": "bucket.secret.inserted"},
///     "actions": [{"type": "emit_event", "topic": "order.leak", "data": {"r": {"ref": "event.record"}}}]
/// })).unwrap();
/// assert_eq!(footprint.reads_topics, [NamePattern::topic("bucket.secret.inserted")]);
/// assert_eq!(footprint.writes_topics, [NamePattern::topic("order.leak")]);
/// ```
pub fn rule_footprint(rule: &Value) -> Result<RuleFootprint> {
    let input = parse_rule(rule)?;
    Ok(RuleFootprint::of(&input, rule))
}

/// The footprint of `current` as `rules.updateRule` with `updates` would leave it; the
/// validation errors of that update when it would fail.
pub fn updated_rule_footprint(current: &RuleInput, updates: &Value) -> Result<RuleFootprint> {
    let merged = merge_update(current, updates)?;
    let input = parse_rule(&merged)?;
    Ok(RuleFootprint::of(&input, &merged))
}

impl RuleFootprint {
    /// The footprint of a parsed rule; `raw` is its JSON (scanned for `fact.` references).
    pub fn of(input: &RuleInput, raw: &Value) -> RuleFootprint {
        let mut out = RuleFootprint::default();
        match &input.trigger {
            Trigger::Event { topic } => out.reads_topics.push(NamePattern::topic(topic)),
            Trigger::Fact { pattern } => out.reads_facts.push(NamePattern::fact(pattern)),
            // A timer's expiry carries the data of whoever set it.
            Trigger::Timer { name } => out.reads_timers.push(NamePattern::fact(name)),
            Trigger::Temporal { pattern } => out.temporal(pattern),
        }
        for condition in &input.conditions {
            out.source(&condition.source);
        }
        out.actions(&input.actions);
        scan_fact_references(raw, &mut out.reads_facts);
        out
    }

    fn temporal(&mut self, pattern: &TemporalPattern) {
        let matchers = match pattern {
            TemporalPattern::Sequence { events, .. } => events.iter().collect(),
            TemporalPattern::Absence {
                after, expected, ..
            } => vec![after, expected],
            TemporalPattern::Count { event, .. } | TemporalPattern::Aggregate { event, .. } => {
                vec![event]
            }
        };
        self.reads_topics
            .extend(matchers.into_iter().map(|m| NamePattern::topic(&m.topic)));
    }

    fn source(&mut self, source: &ConditionSource) {
        if let ConditionSource::Fact { pattern } = source {
            self.reads_facts.push(NamePattern::fact_template(pattern));
        }
    }

    fn actions(&mut self, actions: &[Action]) {
        for action in actions {
            match action {
                Action::SetFact { key, .. } | Action::DeleteFact { key } => {
                    self.writes_facts.push(NamePattern::fact_template(key));
                }
                Action::EmitEvent { topic, .. } => {
                    self.writes_topics.push(NamePattern::topic_template(topic));
                }
                Action::SetTimer { timer } => {
                    self.writes_timers
                        .push(NamePattern::fact_template(&timer.name));
                    self.writes_topics
                        .push(NamePattern::topic_template(&timer.on_expire.topic));
                }
                Action::CancelTimer { name } => {
                    self.writes_timers.push(NamePattern::fact_template(name));
                }
                Action::Log { .. } => {}
                Action::Conditional {
                    conditions,
                    then,
                    else_,
                } => {
                    for condition in conditions {
                        self.source(&condition.source);
                    }
                    self.actions(then);
                    self.actions(else_.as_deref().unwrap_or_default());
                }
                Action::ForEach { actions, .. } => self.actions(actions),
                Action::TryCatch {
                    r#try,
                    catch,
                    finally,
                } => {
                    self.actions(r#try);
                    if let Some(catch) = catch {
                        self.actions(&catch.actions);
                    }
                    self.actions(finally.as_deref().unwrap_or_default());
                }
            }
        }
    }

    /// Every topic pattern, read or written.
    pub fn topics(&self) -> impl Iterator<Item = &NamePattern> {
        self.reads_topics.iter().chain(&self.writes_topics)
    }

    /// Every fact pattern, read or written.
    pub fn facts(&self) -> impl Iterator<Item = &NamePattern> {
        self.reads_facts.iter().chain(&self.writes_facts)
    }

    /// Every timer-name pattern, read or written.
    pub fn timers(&self) -> impl Iterator<Item = &NamePattern> {
        self.reads_timers.iter().chain(&self.writes_timers)
    }
}

/// Adds the fact keys read through `{"ref": "fact.KEY"}` values and `${fact.KEY}`
/// interpolations anywhere in the rule.
fn scan_fact_references(value: &Value, out: &mut Vec<NamePattern>) {
    match value {
        Value::String(text) => {
            let mut rest = text.as_str();
            while let Some(at) = rest.find("${") {
                let inner = &rest[at + 2..];
                let Some(end) = inner.find('}') else { break };
                if let Some(key) = inner[..end].trim().strip_prefix("fact.") {
                    out.push(NamePattern::fact_template(key));
                }
                rest = &inner[end..];
            }
        }
        Value::Object(map) => {
            if let Some(key) = map
                .get("ref")
                .and_then(Value::as_str)
                .and_then(|r| r.trim().strip_prefix("fact."))
            {
                out.push(NamePattern::fact_template(key));
            }
            for v in map.values() {
                scan_fact_references(v, out);
            }
        }
        Value::Array(items) => {
            for v in items {
                scan_fact_references(v, out);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn every_part_of_a_rule_is_in_its_footprint() {
        let f = rule_footprint(&json!({
            "id": "r", "name": "r",
            "trigger": {"type": "temporal", "pattern": {"type": "absence",
                "after": {"topic": "order.placed"}, "expected": {"topic": "payment.*"}, "within": "5m"}},
            "conditions": [{"source": {"type": "fact", "pattern": "customer:${event.id}:tier"}, "operator": "exists"}],
            "actions": [
                {"type": "set_fact", "key": "order:${event.id}:late", "value": {"ref": "fact.config:limit"}},
                {"type": "conditional", "conditions": [], "then": [{"type": "delete_fact", "key": "x:1"}],
                 "else": [{"type": "emit_event", "topic": "order.late", "data": {"m": "${fact.motd}"}}]},
                {"type": "for_each", "collection": [1], "as": "i", "actions": [
                    {"type": "set_timer", "timer": {"name": "t", "duration": 5, "onExpire": {"topic": "timer.${context.i}"}}}
                ]}
            ]
        }))
        .unwrap();
        assert_eq!(
            f.reads_topics,
            [
                NamePattern::topic("order.placed"),
                NamePattern::topic("payment.*")
            ]
        );
        assert!(
            f.reads_facts
                .contains(&NamePattern::fact_template("customer:${event.id}:tier"))
        );
        assert!(f.reads_facts.contains(&NamePattern::fact("config:limit")));
        assert!(f.reads_facts.contains(&NamePattern::fact("motd")));
        assert_eq!(
            f.writes_facts,
            [
                NamePattern::fact_template("order:${event.id}:late"),
                NamePattern::fact("x:1")
            ]
        );
        assert_eq!(
            f.writes_topics,
            [
                NamePattern::topic("order.late"),
                NamePattern::topic_template("timer.${context.i}")
            ]
        );
    }

    #[test]
    fn timers_a_rule_reacts_to_sets_or_cancels_are_in_its_footprint() {
        let f = rule_footprint(&json!({
            "id": "r", "name": "r",
            "trigger": {"type": "timer", "name": "payment:*"},
            "actions": [
                {"type": "cancel_timer", "name": "payment:${event.id}"},
                {"type": "try_catch", "try": [
                    {"type": "set_timer", "timer": {"name": "order:timeout", "duration": "5m",
                        "onExpire": {"topic": "order.timeout"}}}
                ]}
            ]
        }))
        .unwrap();
        assert_eq!(f.reads_timers, [NamePattern::fact("payment:*")]);
        assert_eq!(
            f.writes_timers,
            [
                NamePattern::fact_template("payment:${event.id}"),
                NamePattern::fact("order:timeout")
            ]
        );
        assert_eq!(f.timers().count(), 3);
        assert!(NamePattern::fact("payment:*").matches("payment:42"));
        assert!(!NamePattern::fact("order:*").covers(&f.writes_timers[0]));
    }

    #[test]
    fn an_invalid_rule_has_no_footprint() {
        assert!(rule_footprint(&json!({"id": "r"})).is_err());
    }
}
