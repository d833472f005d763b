//! Topic and fact-key patterns: the protocol's one grammar for names made of segments, with
//! one matching engine for both.
//!
//! - **Fact keys** are `:`-separated; in a fact pattern `*` is exactly one segment
//!   (`user:*:name` matches `user:1:name`, not `user:1` nor `user:1:name:x`).
//! - **Event topics** are `.`-separated. A topic pattern without `*` matches itself; one
//!   ending in `.*` matches every topic that starts with the part before it, at any depth
//!   (`order.*` matches `order.created` and `order.item.added`); the bare `*` matches every
//!   topic; any other `*` is exactly one segment (`*.created`, `order.*.done`).
//!
//! The same grammar serves the store's change feed (`bucket.<name>.<type>` topics), the rule
//! engine (triggers, subscriptions, fact queries) and the server's permission lists.
//! [`NamePattern`] compares two patterns (whether one covers the other), for permissions.

/// Whether `topic` matches the topic `pattern`:
/// a pattern without `*` matches itself; a pattern ending in `.*` matches every topic that
/// starts with the part before it followed by `.` and at least one more character (any
/// depth); the bare `*` matches every topic; any other `*` stands for exactly one
/// (non-empty) segment.
///
/// ```
/// use noex_model::pattern::topic_matches;
/// assert!(topic_matches("order.*", "order.item.added"));
/// assert!(topic_matches("*.created", "order.created"));
/// assert!(!topic_matches("*.created", "order.item.created"));
/// assert!(topic_matches("*", "anything.at.all"));
/// ```
pub fn topic_matches(pattern: &str, topic: &str) -> bool {
    if pattern == topic || pattern == "*" {
        return true;
    }
    let (fixed, open_tail) = match pattern.strip_suffix(".*") {
        Some(prefix) => (prefix, true),
        None => (pattern, false),
    };
    match_segments(pattern_segments(fixed, '.'), topic, '.', open_tail)
}

/// Whether fact `key` matches the fact `pattern` (`*` = exactly one non-empty `:` segment;
/// no trailing or bare wildcard rule: `user:*` matches `user:1` only).
///
/// ```
/// use noex_model::pattern::fact_matches;
/// assert!(fact_matches("user:*:name", "user:1:name"));
/// assert!(!fact_matches("user:*:name", "user:1:name:x"));
/// assert!(!fact_matches("user:*", "user:1:name"));
/// ```
pub fn fact_matches(pattern: &str, key: &str) -> bool {
    pattern == key || match_segments(pattern_segments(pattern, ':'), key, ':', false)
}

/// The segments of a textual pattern: `None` for a `*` segment, else the literal.
fn pattern_segments(pattern: &str, sep: char) -> impl Iterator<Item = Option<&str>> {
    pattern
        .split(sep)
        .map(|s| if s == "*" { None } else { Some(s) })
}

/// The one matching engine: `name`'s leading segments must match `pattern` one for one
/// (`None` = any non-empty segment, `Some(l)` = exactly `l`); then, with `open_tail`, a
/// non-empty rest must follow (at least one more segment, any depth), else nothing may.
fn match_segments<'a>(
    pattern: impl Iterator<Item = Option<&'a str>>,
    name: &str,
    sep: char,
    open_tail: bool,
) -> bool {
    let mut rest = Some(name);
    for wanted in pattern {
        let Some(left) = rest else { return false };
        let (segment, after) = match left.split_once(sep) {
            Some((segment, after)) => (segment, Some(after)),
            None => (left, None),
        };
        let ok = match wanted {
            None => !segment.is_empty(),
            Some(literal) => literal == segment,
        };
        if !ok {
            return false;
        }
        rest = after;
    }
    match rest {
        None => !open_tail,
        Some(left) => open_tail && !left.is_empty(),
    }
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
        match_segments(
            self.segments.iter().map(|s| match s {
                Segment::One => None,
                Segment::Literal(l) => Some(l.as_str()),
            }),
            name,
            self.sep,
            self.any_tail,
        )
    }

    /// Whether every name `other` matches is matched by `self` (conservative: `false` when
    /// in doubt). Patterns over different separators never cover each other, except that
    /// "everything" covers everything.
    ///
    /// ```
    /// use noex_model::pattern::NamePattern;
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

    /// A specification of the grammar written independently of the engine: whole vectors
    /// of segments compared by length and position.
    fn reference_topic(pattern: &str, topic: &str) -> bool {
        let t: Vec<&str> = topic.split('.').collect();
        let one = |p: &str, s: &str| (p == "*" && !s.is_empty()) || p == s;
        if pattern == "*" || pattern == topic {
            return true;
        }
        if let Some(prefix) = pattern.strip_suffix(".*") {
            let p: Vec<&str> = prefix.split('.').collect();
            return t.len() > p.len() && p.iter().zip(&t).all(|(p, s)| one(p, s));
        }
        let p: Vec<&str> = pattern.split('.').collect();
        p.len() == t.len() && p.iter().zip(&t).all(|(p, s)| one(p, s))
    }

    fn key_strategy() -> impl proptest::strategy::Strategy<Value = String> {
        use proptest::prelude::*;
        prop::collection::vec(prop_oneof![Just("a"), Just("b"), Just("cc")], 1..5)
            .prop_map(|segs| segs.join(":"))
    }

    fn fact_pattern_strategy() -> impl proptest::strategy::Strategy<Value = String> {
        use proptest::prelude::*;
        prop::collection::vec(prop_oneof![Just("a"), Just("b"), Just("*")], 1..5)
            .prop_map(|segs| segs.join(":"))
    }

    proptest::proptest! {
        /// The engine agrees with the written-out grammar on every topic.
        #[test]
        fn topic_matching_follows_the_grammar(p in pattern_strategy(), t in name_strategy()) {
            proptest::prop_assert_eq!(topic_matches(&p, &t), reference_topic(&p, &t));
        }

        /// `prefix.*` matches the prefix followed by any non-empty tail, at any depth, and
        /// never the prefix alone.
        #[test]
        fn a_trailing_star_matches_any_depth(prefix in name_strategy(), tail in name_strategy()) {
            let pattern = format!("{prefix}.*");
            let deeper = format!("{prefix}.{tail}");
            proptest::prop_assert!(topic_matches(&pattern, &deeper));
            proptest::prop_assert!(!topic_matches(&pattern, &prefix));
            proptest::prop_assert!(topic_matches("*", &prefix));
        }

        /// A fact pattern matches exactly the keys of its length whose segments agree, a
        /// `*` standing for one segment: replacing each `*` by a segment always matches,
        /// adding or removing a segment never does.
        #[test]
        fn fact_stars_are_exactly_one_segment(p in fact_pattern_strategy(), k in key_strategy(), fill in "[a-z]{1,3}") {
            let filled = p.split(':').map(|s| if s == "*" { fill.as_str() } else { s })
                .collect::<Vec<_>>().join(":");
            proptest::prop_assert!(fact_matches(&p, &filled));
            let longer = format!("{filled}:{fill}");
            proptest::prop_assert!(!fact_matches(&p, &longer));
            let (pk, kk): (Vec<&str>, Vec<&str>) = (p.split(':').collect(), k.split(':').collect());
            let expected = pk.len() == kk.len() && pk.iter().zip(&kk).all(|(a, b)| *a == "*" || a == b);
            proptest::prop_assert_eq!(fact_matches(&p, &k), expected);
            proptest::prop_assert_eq!(NamePattern::fact(&p).matches(&k), expected);
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
