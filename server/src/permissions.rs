//! Permissions: the declarative policy (`{role, allow, buckets?, topics?}` rules, first
//! match wins, then `default`), the built-in role tiers (reader < writer < admin), an
//! optional Rust check hook, and [`Authority`]: one session's rights, which decides whether
//! a [`Need`] — an operation type on a set of resources — is allowed.
//!
//! What an operation needs is worked out from the typed operation in `access`; nothing here
//! reads request fields.

use std::borrow::Cow;

use noex_model::pattern::{NamePattern, topic_matches};
use serde::{Deserialize, Serialize};

use crate::auth_session::Session;

pub use noex_protocol::Tier;

/// The highest tier granted by the built-in roles among `roles`; `None` when the session
/// holds no built-in role (then the tier check does not apply).
fn role_tier(roles: &[String]) -> Option<Tier> {
    roles
        .iter()
        .filter_map(|r| match r.as_str() {
            "reader" => Some(Tier::Read),
            "writer" => Some(Tier::Write),
            "admin" => Some(Tier::Admin),
            _ => None,
        })
        .max()
}

/// What happens when no declarative rule matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DefaultPolicy {
    /// Allow (the default).
    #[default]
    Allow,
    /// Deny.
    Deny,
}

/// One or several operation patterns: `"*"`, `"store.*"` or an exact type.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Patterns {
    /// A single pattern.
    One(String),
    /// Several patterns; any may match.
    Many(Vec<String>),
}

impl Patterns {
    pub(crate) fn matches(&self, value: &str) -> bool {
        match self {
            Patterns::One(p) => match_pattern(p, value),
            Patterns::Many(ps) => ps.iter().any(|p| match_pattern(p, value)),
        }
    }
}

/// `{role, allow, buckets?, topics?}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PermissionRule {
    /// The role this rule applies to.
    pub role: String,
    /// Operation patterns this rule allows.
    pub allow: Patterns,
    /// Only these buckets: every bucket the operation reads or writes must be listed (`"*"`
    /// lists every bucket). A subscription is allowed when the query's name or the bucket
    /// it reads is listed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub buckets: Option<Vec<String>>,
    /// Only these topics, facts and timers: every topic the operation emits or subscribes
    /// to, every fact key it reads or writes and every timer name a rule reacts to, sets or
    /// cancels must be covered by one of these patterns (topics in the topic grammar, e.g.
    /// `order.*`; fact keys and timer names in the fact grammar, e.g. `cart:*`; `"*"` covers
    /// everything).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topics: Option<Vec<String>>,
    /// Only these procedures (by name; `"*"` lists every procedure): `procedures.*`
    /// operations on a procedure not listed are refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub procedures: Option<Vec<String>>,
}

/// `permissions: {default?, rules?}`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PermissionsConfig {
    /// Outcome when no rule matches.
    pub default: DefaultPolicy,
    /// Evaluated in order; the first match allows.
    pub rules: Vec<PermissionRule>,
}

/// What a custom permission hook decides.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Allow, skipping the declarative rules.
    Allow,
    /// Deny, skipping the declarative rules.
    Deny,
    /// No opinion: evaluate the declarative rules.
    Pass,
}

/// A Rust permission hook, consulted before the declarative rules.
///
/// ```
/// use noex_server::{Decision, PermissionCheck, Session};
/// struct OwnDataOnly;
/// impl PermissionCheck for OwnDataOnly {
///     fn check(&self, session: &Session, op: &str, resource: &str) -> Decision {
///         if op.starts_with("store.") && resource.starts_with("private-") {
///             if resource == format!("private-{}", session.user_id) { Decision::Allow } else { Decision::Deny }
///         } else {
///             Decision::Pass
///         }
///     }
/// }
/// ```
pub trait PermissionCheck: Send + Sync + 'static {
    /// Decides about `op_type` on `resource` for `session`.
    fn check(&self, session: &Session, op_type: &str, resource: &str) -> Decision;
}

impl<F> PermissionCheck for F
where
    F: Fn(&Session, &str, &str) -> Decision + Send + Sync + 'static,
{
    fn check(&self, session: &Session, op_type: &str, resource: &str) -> Decision {
        self(session, op_type, resource)
    }
}

/// Whether the operation type `value` matches the `allow` pattern `pattern`. Operation types
/// are `.`-separated names like topics, and `allow` patterns are topic patterns
/// ([`noex_model::pattern::topic_matches`]): `*` matches every operation, `namespace.*`
/// every operation of the namespace, a name without `*` itself, and any other `*` one
/// segment (`*.stats`).
pub fn match_pattern(pattern: &str, value: &str) -> bool {
    topic_matches(pattern, value)
}

/// One resource a [`Need`] touches, as the declarative rules' resource lists see it:
/// bucket-like items are constrained by `buckets`, topic- and fact-like items by `topics`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Item<'a> {
    /// A bucket, by name.
    Bucket(Cow<'a, str>),
    /// Every bucket, including ones defined later: only a rule without a `buckets` list
    /// (or one listing `"*"`) grants it.
    AllBuckets,
    /// A query: the `buckets` list must name it (a grant of that one query, which reads what
    /// its definition says) or the bucket it reads (`None` when unknown: programmatic or not
    /// defined).
    Query {
        /// The query's name.
        name: Cow<'a, str>,
        /// The bucket a declarative query reads.
        bucket: Option<Cow<'a, str>>,
    },
    /// Event topics (a topic, a pattern, or what a template can produce).
    Topic(NamePattern),
    /// Fact keys (a key, a pattern, or what a template can produce).
    Fact(NamePattern),
    /// Timer names (a name, a timer trigger's pattern, or what a template can produce), in
    /// the fact grammar: covered by the `topics` list like fact keys.
    Timer(NamePattern),
    /// A procedure, by name: constrained by `procedures`.
    Procedure(Cow<'a, str>),
    /// Something no resource list can describe (a rule that does not exist): only a rule
    /// without a `topics` list (or one listing `"*"`) grants it.
    Opaque,
}

/// One permission requirement: `op` on every item of `items`, which needs `tier`. The hook
/// sees `op` and `resource`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Need<'a> {
    /// The operation type checked against `allow` patterns (for a transaction's entries and
    /// derived reads, the single operation they stand for).
    pub(crate) op: &'a str,
    /// The tier the built-in roles must grant.
    pub(crate) tier: Tier,
    /// The resource named to the hook and in a refusal's message (`*` for none).
    pub(crate) resource: Cow<'a, str>,
    /// Everything the declarative rule's resource lists must cover.
    pub(crate) items: Vec<Item<'a>>,
}

/// Rights a session holds besides the declarative policy: the built-in identity's grants
/// (superadmin, ACL entries and ownership, which allow a need outright) and the permission
/// rules of the session user's roles as they are now (evaluated like the config's rules).
pub(crate) trait Grants: Send + Sync {
    /// Whether grants allow `need` for `session` outright.
    fn allows(&self, session: &Session, need: &Need<'_>) -> bool;
    /// The permission rules of `session`'s user's roles now, each with `role` set.
    fn role_rules(&self, session: &Session) -> Vec<PermissionRule>;
}

/// One session's rights: its roles, the declarative policy, the optional hook and the
/// built-in identity's grants.
#[derive(Clone, Copy)]
pub(crate) struct Authority<'a> {
    pub(crate) session: &'a Session,
    pub(crate) policy: &'a PermissionsConfig,
    pub(crate) hook: Option<&'a dyn PermissionCheck>,
    pub(crate) grants: Option<&'a dyn Grants>,
}

/// Why [`Authority::decide`] refuses a need: the messages differ, as in the original.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Denial {
    /// The session's built-in roles grant a lower tier than the need's, which is named
    /// (`Role level insufficient for <op> (requires <tier>)`).
    Tier(Tier),
    /// The hook or the declarative rules refuse (`No permission for <op> on <resource>`).
    Policy,
}

impl Denial {
    /// The `FORBIDDEN` message refusing `need` for this reason.
    pub(crate) fn message(self, need: &Need<'_>) -> String {
        match self {
            Denial::Tier(tier) => format!(
                "Role level insufficient for {} (requires {})",
                need.op,
                tier.name()
            ),
            Denial::Policy => format!("No permission for {} on {}", need.op, need.resource),
        }
    }
}

impl Authority<'_> {
    /// Whether [`Authority::decide`] allows `need`.
    pub(crate) fn allows(&self, need: &Need<'_>) -> bool {
        self.decide(need).is_ok()
    }

    /// The built-in identity's grants (allow outright), then the tier check (built-in roles),
    /// then the hook, then the declarative rules (the first rule of one of the session's
    /// roles whose `allow` matches `need.op` and whose resource lists cover every item — the
    /// config's, then those of the identity user's roles), then the default.
    pub(crate) fn decide(&self, need: &Need<'_>) -> Result<(), Denial> {
        if self
            .grants
            .is_some_and(|grants| grants.allows(self.session, need))
        {
            return Ok(());
        }
        if role_tier(&self.session.roles).is_some_and(|granted| granted < need.tier) {
            return Err(Denial::Tier(need.tier));
        }
        if let Some(hook) = self.hook {
            match hook.check(self.session, need.op, &need.resource) {
                Decision::Allow => return Ok(()),
                Decision::Deny => return Err(Denial::Policy),
                Decision::Pass => {}
            }
        }
        let rule_allows = |rule: &PermissionRule| {
            rule.allow.matches(need.op) && need.items.iter().all(|item| rule.covers(item))
        };
        let matched = self
            .policy
            .rules
            .iter()
            .any(|rule| self.session.roles.contains(&rule.role) && rule_allows(rule))
            || self
                .grants
                .is_some_and(|grants| grants.role_rules(self.session).iter().any(rule_allows));
        if matched || self.policy.default == DefaultPolicy::Allow {
            Ok(())
        } else {
            Err(Denial::Policy)
        }
    }
}

impl PermissionRule {
    /// Whether this rule's resource lists cover `item` (a list that is absent covers
    /// everything of its kind).
    pub(crate) fn covers(&self, item: &Item<'_>) -> bool {
        let bucket_listed = |name: &str| {
            self.buckets
                .as_ref()
                .is_none_or(|list| list.iter().any(|b| b == "*" || b == name))
        };
        let topic_covered = |wanted: &NamePattern, parse: fn(&str) -> NamePattern| {
            self.topics
                .as_ref()
                .is_none_or(|list| list.iter().any(|t| parse(t).covers(wanted)))
        };
        match item {
            Item::Bucket(name) => bucket_listed(name),
            Item::Query { name, bucket } => {
                bucket_listed(name) || bucket.as_deref().is_some_and(bucket_listed)
            }
            Item::AllBuckets => bucket_listed("*"),
            Item::Topic(pattern) => topic_covered(pattern, NamePattern::topic),
            Item::Fact(pattern) | Item::Timer(pattern) => {
                topic_covered(pattern, NamePattern::fact_permission)
            }
            Item::Procedure(name) => self
                .procedures
                .as_ref()
                .is_none_or(|list| list.iter().any(|p| p == "*" || p == name)),
            Item::Opaque => self
                .topics
                .as_ref()
                .is_none_or(|list| list.iter().any(|t| t == "*")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn session(roles: &[&str]) -> Session {
        Session {
            user_id: "u".into(),
            roles: roles.iter().map(|r| r.to_string()).collect(),
            expires_at: None,
            identity: false,
        }
    }

    fn need<'a>(op: &'a str, tier: Tier, items: Vec<Item<'a>>) -> Need<'a> {
        Need {
            op,
            tier,
            resource: Cow::Borrowed("r"),
            items,
        }
    }

    fn bucket(name: &str) -> Item<'_> {
        Item::Bucket(Cow::Borrowed(name))
    }

    fn allows(
        roles: &[&str],
        policy: &PermissionsConfig,
        hook: Option<&dyn PermissionCheck>,
        need: &Need<'_>,
    ) -> bool {
        let session = session(roles);
        Authority {
            grants: None,
            session: &session,
            policy,
            hook,
        }
        .allows(need)
    }

    #[test]
    fn tiers_follow_the_role_hierarchy() {
        let open = PermissionsConfig::default();
        let cases = [
            (&["reader"][..], Tier::Read, true),
            (&["reader"], Tier::Write, false),
            (&["reader"], Tier::Admin, false),
            (&["writer"], Tier::Write, true),
            (&["writer"], Tier::Admin, false),
            (&["admin"], Tier::Admin, true),
            (&["admin"], Tier::Read, true),
            (&["reader", "admin"], Tier::Admin, true),
            // No built-in role: the tier check does not apply.
            (&["customer"], Tier::Admin, true),
        ];
        for (roles, tier, expected) in cases {
            assert_eq!(
                allows(roles, &open, None, &need("x.y", tier, vec![])),
                expected,
                "{roles:?} {tier:?}"
            );
        }
    }

    #[test]
    fn declarative_rules_first_match_then_default() {
        let policy: PermissionsConfig = serde_json::from_value(json!({
            "default": "deny",
            "rules": [
                {"role": "agent", "allow": ["store.insert", "store.update"], "buckets": ["metrics"]},
                {"role": "viewer", "allow": "store.*"},
                {"role": "ops", "allow": "rules.*", "topics": ["order.*", "cart:*"]}
            ]
        }))
        .unwrap();
        let check = |roles: &[&str], op: &str, items: Vec<Item<'_>>| {
            allows(roles, &policy, None, &need(op, Tier::Read, items))
        };
        assert!(check(&["agent"], "store.insert", vec![bucket("metrics")]));
        assert!(!check(&["agent"], "store.insert", vec![bucket("users")]));
        assert!(!check(&["agent"], "store.get", vec![bucket("metrics")]));
        // Every item must be listed.
        assert!(!check(
            &["agent"],
            "store.insert",
            vec![bucket("metrics"), bucket("x")]
        ));
        assert!(!check(&["agent"], "store.insert", vec![Item::AllBuckets]));
        assert!(check(&["viewer"], "store.where", vec![bucket("anything")]));
        assert!(check(&["viewer"], "store.where", vec![Item::AllBuckets]));
        assert!(!check(&["viewer"], "rules.emit", vec![]));
        let topic = |p: &str| Item::Topic(NamePattern::topic(p));
        let fact = |k: &str| Item::Fact(NamePattern::fact(k));
        assert!(check(&["ops"], "rules.emit", vec![topic("order.created")]));
        assert!(!check(&["ops"], "rules.emit", vec![topic("user.created")]));
        assert!(check(&["ops"], "rules.subscribe", vec![topic("order.*")]));
        assert!(!check(&["ops"], "rules.subscribe", vec![topic("*")]));
        assert!(!check(&["ops"], "rules.subscribe", vec![topic("bucket.*")]));
        assert!(check(&["ops"], "rules.getFact", vec![fact("cart:1")]));
        // A topic pattern never covers a fact key: `order.*` does not allow `admin:flag`.
        assert!(!check(&["ops"], "rules.getFact", vec![fact("admin:flag")]));
        assert!(!check(&["ops"], "rules.getRule", vec![Item::Opaque]));
        assert!(!check(&["nobody"], "store.get", vec![bucket("x")]));
    }

    #[test]
    fn a_query_is_granted_by_its_name_or_its_bucket() {
        let policy: PermissionsConfig = serde_json::from_value(json!({
            "default": "deny",
            "rules": [{"role": "c", "allow": "store.subscribe", "buckets": ["mine", "public"]}]
        }))
        .unwrap();
        let query = |name: &'static str, bucket: Option<&'static str>| Item::Query {
            name: Cow::Borrowed(name),
            bucket: bucket.map(Cow::Borrowed),
        };
        let check = |item| {
            allows(
                &["c"],
                &policy,
                None,
                &need("store.subscribe", Tier::Read, vec![item]),
            )
        };
        assert!(
            check(query("mine", Some("secret"))),
            "named by the operator"
        );
        assert!(
            check(query("anything", Some("public"))),
            "over a listed bucket"
        );
        assert!(!check(query("anything", Some("secret"))));
        assert!(!check(query("programmatic", None)));
    }

    #[test]
    fn the_hook_decides_before_the_rules() {
        let policy = PermissionsConfig {
            default: DefaultPolicy::Deny,
            rules: vec![],
        };
        let hook = |s: &Session, op: &str, _r: &str| match op {
            "store.get" => Decision::Allow,
            "store.all" if s.user_id == "u" => Decision::Deny,
            _ => Decision::Pass,
        };
        let check = |op| allows(&["x"], &policy, Some(&hook), &need(op, Tier::Read, vec![]));
        assert!(check("store.get"));
        assert!(!check("store.all"));
        assert!(!check("store.where"));
        // The tier check comes first: the hook cannot lift a reader to writer.
        let writer_op = need("store.get", Tier::Write, vec![]);
        assert!(!allows(&["reader"], &policy, Some(&hook), &writer_op));
    }

    #[test]
    fn operation_patterns() {
        assert!(match_pattern("*", "store.get"));
        assert!(match_pattern("store.*", "store.get"));
        assert!(!match_pattern("store.*", "rules.emit"));
        assert!(match_pattern("store.get", "store.get"));
        assert!(!match_pattern("store.get", "store.getX"));
        // The topic grammar: `*` elsewhere is one segment; a partial `*` is a literal.
        assert!(match_pattern("*.stats", "store.stats"));
        assert!(match_pattern("*.stats", "rules.stats"));
        assert!(!match_pattern("*.stats", "store.get"));
        assert!(!match_pattern("store.g*", "store.get"));
        assert!(!match_pattern("store.*", "store"));
    }
}
