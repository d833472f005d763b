//! Pattern matching shared by facts, topics and event filters, plus the duration and
//! dot-path helpers every other module uses.
//!
//! Fact keys are `:`-separated; in a fact pattern `*` is exactly one segment. Topics are
//! `.`-separated; a topic pattern follows the protocol's grammar (docs/reference/rules.md) (see [`topic_matches`]).

use serde_json::Value;

/// Whether `topic` matches the topic `pattern`:
/// a pattern without `*` matches itself; a pattern ending in `.*` matches every topic that
/// starts with the part before it followed by `.` (any depth); the bare `*` matches every
/// topic; any other `*` stands for exactly one segment.
pub fn topic_matches(pattern: &str, topic: &str) -> bool {
    if pattern == topic || pattern == "*" {
        return true;
    }
    if let Some(prefix) = pattern.strip_suffix(".*") {
        if !prefix.contains('*') {
            return topic.len() > prefix.len() + 1
                && topic.starts_with(prefix)
                && topic.as_bytes()[prefix.len()] == b'.';
        }
        // A prefix that itself has wildcards: each of its segments matches one segment,
        // then at least one more segment at any depth.
        let p: Vec<&str> = prefix.split('.').collect();
        let t: Vec<&str> = topic.split('.').collect();
        return t.len() > p.len() && segments_match(&p, &t[..p.len()]);
    }
    if !pattern.contains('*') {
        return false;
    }
    let p: Vec<&str> = pattern.split('.').collect();
    let t: Vec<&str> = topic.split('.').collect();
    p.len() == t.len() && segments_match(&p, &t)
}

/// Whether fact `key` matches the fact `pattern` (`*` = exactly one `:` segment).
pub fn fact_matches(pattern: &str, key: &str) -> bool {
    if pattern == key {
        return true;
    }
    if !pattern.contains('*') {
        return false;
    }
    let p: Vec<&str> = pattern.split(':').collect();
    let k: Vec<&str> = key.split(':').collect();
    p.len() == k.len() && segments_match(&p, &k)
}

fn segments_match(pattern: &[&str], actual: &[&str]) -> bool {
    pattern
        .iter()
        .zip(actual)
        .all(|(p, a)| (*p == "*" && !a.is_empty()) || p == a)
}

/// Checks that a topic pattern is usable: non-empty, no empty segment, `*` only as a whole segment.
pub fn check_topic_pattern(pattern: &str) -> Result<(), String> {
    check_segments(pattern, '.', "topic")
}

/// Checks that a fact key or pattern is usable: non-empty, no empty segment, `*` only as a whole segment.
pub fn check_fact_pattern(pattern: &str) -> Result<(), String> {
    check_segments(pattern, ':', "fact pattern")
}

fn check_segments(pattern: &str, sep: char, what: &str) -> Result<(), String> {
    if pattern.is_empty() {
        return Err(format!("{what} must not be empty"));
    }
    for seg in pattern.split(sep) {
        if seg.is_empty() {
            return Err(format!("{what} has an empty segment"));
        }
        if seg.contains('*') && seg != "*" {
            return Err(format!("`*` must be a whole segment in a {what}"));
        }
    }
    Ok(())
}

/// Follows a dot path (`a.b.0.c`) into a JSON value; array elements by index.
/// Returns `None` when any step is missing.
pub fn get_path<'a>(value: &'a Value, path: &str) -> Option<&'a Value> {
    if path.is_empty() {
        return Some(value);
    }
    let mut current = value;
    for part in path.split('.') {
        current = match current {
            Value::Object(map) => map.get(part)?,
            Value::Array(items) => items.get(part.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    Some(current)
}

/// Durations are parsed by the one parser the store's TTLs use (`noex_model::ttl`): a number
/// is milliseconds, a string is `<digits><unit>?` with unit `ms`, `s`, `m`, `h`, `d`, `w` or
/// `y`, digits alone being milliseconds.
pub use noex_model::ttl::{MAX_DURATION_MS, parse_duration_ms};

/// Renders a JSON value the way string interpolation shows it (strings bare, null empty).
pub fn display_value(value: &Value) -> String {
    match value {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// A topic or fact pattern in a form that can be compared with another pattern: whether
/// every name one matches is also matched by the other ([`NamePattern::covers`]). Permission
/// checks use it to decide whether an allowed pattern covers what a request (or a rule)
/// reads or writes.
///
/// Besides the protocol's grammars it can express "this prefix, then any number (at least
/// one) of segments", which is what a `${...}` template becomes: an interpolated value may
/// contain separators, so from the first templated segment on, nothing is known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamePattern {
    sep: char,
    /// Every name (the bare `*` of a topic pattern or a permission list).
    everything: bool,
    segments: Vec<Segment>,
    /// After `segments`, at least one more segment of any content (a trailing `.*` of a
    /// topic pattern, or the tail of a template).
    any_tail: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Literal(String),
    /// `*`: exactly one (non-empty) segment.
    One,
}

impl NamePattern {
    /// A topic pattern in the protocol's grammar: `*` matches every topic, a trailing `.*`
    /// any depth (at least one segment), any other `*` exactly one segment.
    pub fn topic(pattern: &str) -> NamePattern {
        if pattern == "*" {
            return NamePattern::everything('.');
        }
        match pattern.strip_suffix(".*") {
            Some(prefix) => NamePattern {
                any_tail: true,
                ..NamePattern::segments_of(prefix, '.')
            },
            None => NamePattern::segments_of(pattern, '.'),
        }
    }

    /// A fact key or pattern in the protocol's grammar: `*` is exactly one `:` segment.
    pub fn fact(pattern: &str) -> NamePattern {
        NamePattern::segments_of(pattern, ':')
    }

    /// A permission pattern over facts: the fact grammar, except that a bare `*` allows
    /// every key.
    pub fn fact_permission(pattern: &str) -> NamePattern {
        if pattern == "*" {
            NamePattern::everything(':')
        } else {
            NamePattern::fact(pattern)
        }
    }

    /// What a topic template (`order.${event.id}.done`) can produce: its segments up to the
    /// first one containing `${`, then anything. A template without `${` is a topic pattern.
    pub fn topic_template(template: &str) -> NamePattern {
        NamePattern::template(template, '.').unwrap_or_else(|| NamePattern::topic(template))
    }

    /// What a fact-key template (`order:${event.id}:vip`) can produce (see
    /// [`NamePattern::topic_template`]). A template without `${` is a fact pattern.
    pub fn fact_template(template: &str) -> NamePattern {
        NamePattern::template(template, ':').unwrap_or_else(|| NamePattern::fact(template))
    }

    fn template(template: &str, sep: char) -> Option<NamePattern> {
        let at = template.find("${")?;
        // Whole segments before the one holding the first `${`.
        let fixed = match template[..at].rfind(sep) {
            Some(end) => &template[..end],
            None => "",
        };
        if fixed.is_empty() {
            return Some(NamePattern::everything(sep));
        }
        Some(NamePattern {
            any_tail: true,
            ..NamePattern::segments_of(fixed, sep)
        })
    }

    fn everything(sep: char) -> NamePattern {
        NamePattern {
            sep,
            everything: true,
            segments: Vec::new(),
            any_tail: false,
        }
    }

    fn segments_of(pattern: &str, sep: char) -> NamePattern {
        NamePattern {
            sep,
            everything: false,
            segments: pattern
                .split(sep)
                .map(|s| match s {
                    "*" => Segment::One,
                    literal => Segment::Literal(literal.to_owned()),
                })
                .collect(),
            any_tail: false,
        }
    }

    /// Whether `name` is matched.
    pub fn matches(&self, name: &str) -> bool {
        if self.everything {
            return true;
        }
        let parts: Vec<&str> = name.split(self.sep).collect();
        let fixed = self.segments.len();
        let length_ok = if self.any_tail {
            parts.len() > fixed
        } else {
            parts.len() == fixed
        };
        length_ok
            && self.segments.iter().zip(&parts).all(|(s, p)| match s {
                Segment::One => !p.is_empty(),
                Segment::Literal(l) => l == p,
            })
    }

    /// Whether every name `other` matches is matched by `self` (conservative: `false` when
    /// in doubt). Patterns over different separators never cover each other, except that
    /// "everything" covers everything.
    ///
    /// ```
    /// use noex_rules::pattern::NamePattern;
    /// let allowed = NamePattern::topic("order.*");
    /// assert!(allowed.covers(&NamePattern::topic("order.created")));
    /// assert!(allowed.covers(&NamePattern::topic("order.*.done")));
    /// assert!(!allowed.covers(&NamePattern::topic("*")));
    /// assert!(!allowed.covers(&NamePattern::topic("bucket.*")));
    /// assert!(!allowed.covers(&NamePattern::topic_template("${event.kind}.created")));
    /// ```
    pub fn covers(&self, other: &NamePattern) -> bool {
        if self.everything {
            return true;
        }
        if other.everything || self.sep != other.sep {
            return false;
        }
        let (mine, theirs) = (self.segments.len(), other.segments.len());
        // Lengths of the names each side matches: exactly n, or more than n with a tail.
        let lengths_ok = match (self.any_tail, other.any_tail) {
            (false, false) => mine == theirs,
            (false, true) => false,
            (true, false) => theirs > mine,
            (true, true) => theirs >= mine,
        };
        lengths_ok
            && self
                .segments
                .iter()
                .zip(&other.segments)
                .all(|(a, b)| match (a, b) {
                    (Segment::One, _) => true,
                    (Segment::Literal(x), Segment::Literal(y)) => x == y,
                    (Segment::Literal(_), Segment::One) => false,
                })
    }

    /// The pattern's structure: `None` for "every name", else its segments (`None` for a
    /// `*` segment) and whether at least one more segment of any content follows them.
    pub fn parts(&self) -> Option<(Vec<Option<&str>>, bool)> {
        if self.everything {
            return None;
        }
        let segments = self
            .segments
            .iter()
            .map(|s| match s {
                Segment::Literal(l) => Some(l.as_str()),
                Segment::One => None,
            })
            .collect();
        Some((segments, self.any_tail))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn fact_patterns_follow_the_protocol_examples() {
        assert!(fact_matches("user:*:name", "user:1:name"));
        assert!(!fact_matches("user:*:name", "user:1"));
        assert!(!fact_matches("user:*:name", "user:1:name:x"));
        assert!(fact_matches("user:*", "user:1"));
        assert!(!fact_matches("user:*", "user:1:name"));
        assert!(fact_matches("customer:42:tier", "customer:42:tier"));
        assert!(!fact_matches("customer:42:tier", "customer:43:tier"));
    }

    #[test]
    fn topic_patterns_follow_the_protocol_examples() {
        assert!(topic_matches("order.created", "order.created"));
        assert!(!topic_matches("order.created", "order.updated"));
        assert!(topic_matches("order.*", "order.created"));
        assert!(topic_matches("order.*", "order.item.added"));
        assert!(!topic_matches("order.*", "order"));
        assert!(!topic_matches("order.*", "orders.created"));
        assert!(topic_matches("*", "anything.at.all"));
        assert!(topic_matches("*.created", "order.created"));
        assert!(!topic_matches("*.created", "order.item.created"));
        assert!(topic_matches("order.*.done", "order.1.done"));
        assert!(!topic_matches("order.*.done", "order.1.2.done"));
        assert!(!topic_matches("order.*.done", "order.1.failed"));
    }

    #[test]
    fn durations_accept_ms_and_units() {
        assert_eq!(parse_duration_ms(&json!(250)), Ok(250));
        assert_eq!(parse_duration_ms(&json!("30s")), Ok(30_000));
        assert_eq!(parse_duration_ms(&json!("15m")), Ok(900_000));
        assert_eq!(parse_duration_ms(&json!("1h")), Ok(3_600_000));
        assert_eq!(parse_duration_ms(&json!("7d")), Ok(604_800_000));
        assert_eq!(parse_duration_ms(&json!("500ms")), Ok(500));
        assert!(parse_duration_ms(&json!("abc")).is_err());
        assert!(parse_duration_ms(&json!("5x")).is_err());
        assert!(parse_duration_ms(&json!(-1)).is_err());
        assert!(parse_duration_ms(&json!(true)).is_err());
    }

    #[test]
    fn paths_walk_objects_and_arrays() {
        let v = json!({"a": {"b": [10, {"c": "x"}]}});
        assert_eq!(get_path(&v, "a.b.0"), Some(&json!(10)));
        assert_eq!(get_path(&v, "a.b.1.c"), Some(&json!("x")));
        assert_eq!(get_path(&v, "a.z"), None);
        assert_eq!(get_path(&v, "a.b.9"), None);
    }

    #[test]
    fn coverage_of_topic_patterns() {
        let t = NamePattern::topic;
        assert!(t("*").covers(&t("a.b")));
        assert!(t("order.*").covers(&t("order.created")));
        assert!(t("order.*").covers(&t("order.*")));
        assert!(t("order.*").covers(&t("order.*.done")));
        assert!(t("order.*").covers(&t("order.x.*")));
        assert!(!t("order.*").covers(&t("order")));
        assert!(!t("order.*").covers(&t("*")));
        assert!(!t("order.*").covers(&t("*.created")));
        assert!(!t("order.*").covers(&t("bucket.*")));
        assert!(t("*.created").covers(&t("order.created")));
        assert!(t("*.created").covers(&t("*.created")));
        assert!(!t("*.created").covers(&t("order.*")));
        assert!(!t("order.created").covers(&t("order.*")));
        assert!(t("order.*.done").covers(&t("order.1.done")));
        assert!(!t("order.*.done").covers(&t("order.*")));
    }

    #[test]
    fn templates_become_open_tails() {
        let allowed = NamePattern::topic("order.*");
        assert!(allowed.covers(&NamePattern::topic_template("order.${event.id}.done")));
        assert!(allowed.covers(&NamePattern::topic_template("order.x${event.id}")));
        assert!(!allowed.covers(&NamePattern::topic_template("${event.t}")));
        assert!(!allowed.covers(&NamePattern::topic_template("or${x}.created")));
        let facts = NamePattern::fact_permission("order:*");
        assert!(facts.covers(&NamePattern::fact("order:1")));
        assert!(!facts.covers(&NamePattern::fact("admin:flag")));
        // An interpolated segment may hold `:`: only "everything" covers it.
        assert!(!facts.covers(&NamePattern::fact_template("order:${event.id}")));
        assert!(
            NamePattern::fact_permission("*")
                .covers(&NamePattern::fact_template("order:${event.id}"))
        );
        // Separators differ: a topic pattern never covers a fact key.
        assert!(!NamePattern::topic("order.*").covers(&NamePattern::fact("order:1")));
    }

    fn name_strategy() -> impl proptest::strategy::Strategy<Value = String> {
        use proptest::prelude::*;
        prop::collection::vec(prop_oneof![Just("a"), Just("b"), Just("c")], 1..5)
            .prop_map(|segs| segs.join("."))
    }

    fn pattern_strategy() -> impl proptest::strategy::Strategy<Value = String> {
        use proptest::prelude::*;
        prop_oneof![
            Just("*".to_owned()),
            prop::collection::vec(prop_oneof![Just("a"), Just("b"), Just("*")], 1..4)
                .prop_map(|segs| segs.join(".")),
        ]
    }

    proptest::proptest! {
        /// Coverage is sound: if A covers B, every topic B matches, A matches too. And the
        /// pattern type agrees with `topic_matches` on plain topic patterns.
        #[test]
        fn coverage_is_sound(a in pattern_strategy(), b in pattern_strategy(), name in name_strategy()) {
            let (pa, pb) = (NamePattern::topic(&a), NamePattern::topic(&b));
            proptest::prop_assert_eq!(pa.matches(&name), topic_matches(&a, &name));
            if pa.covers(&pb) && pb.matches(&name) {
                proptest::prop_assert!(pa.matches(&name), "{} covers {} but not {}", a, b, name);
            }
        }

        #[test]
        fn template_patterns_match_every_expansion(
            prefix in name_strategy(), value in "[a-c.]{0,6}", suffix in name_strategy()
        ) {
            let template = format!("{prefix}.${{event.x}}.{suffix}");
            let expanded = format!("{prefix}.{value}.{suffix}");
            if !expanded.split('.').any(str::is_empty) {
                proptest::prop_assert!(NamePattern::topic_template(&template).matches(&expanded));
            }
        }
    }

    #[test]
    fn pattern_checks_reject_malformed_patterns() {
        assert!(check_topic_pattern("order.*").is_ok());
        assert!(check_topic_pattern("").is_err());
        assert!(check_topic_pattern("order..x").is_err());
        assert!(check_topic_pattern("ord*").is_err());
        assert!(check_fact_pattern("user:*:name").is_ok());
        assert!(check_fact_pattern("user::name").is_err());
    }
}
