//! Permissions: the built-in role tiers (reader < writer < admin) with every operation's
//! tier, the declarative policy (`{role, allow, buckets?, topics?}` rules, first match wins,
//! then `default`), an optional Rust check hook, and the resource each operation acts on.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::auth::Session;
use noex_protocol::TransactionOp;

/// How much an operation can change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Tier {
    /// Reads.
    Read,
    /// Data mutations.
    Write,
    /// Structural changes and server introspection.
    Admin,
}

/// The tier of a known operation; `None` for `auth.*` and unknown types.
pub fn operation_tier(op_type: &str) -> Option<Tier> {
    Some(match op_type {
        "store.defineBucket"
        | "store.dropBucket"
        | "store.updateBucket"
        | "store.getBucketSchema"
        | "store.defineQuery"
        | "store.undefineQuery"
        | "store.listQueries"
        | "rules.registerRule"
        | "rules.unregisterRule"
        | "rules.updateRule"
        | "rules.enableRule"
        | "rules.disableRule"
        | "rules.getRule"
        | "rules.getRules"
        | "rules.validateRule"
        | "server.stats"
        | "server.connections" => Tier::Admin,
        "store.insert" | "store.update" | "store.delete" | "store.clear" | "store.transaction"
        | "rules.emit" | "rules.setFact" | "rules.deleteFact" => Tier::Write,
        "store.get" | "store.all" | "store.where" | "store.findOne" | "store.count"
        | "store.first" | "store.last" | "store.paginate" | "store.sum" | "store.avg"
        | "store.min" | "store.max" | "store.subscribe" | "store.unsubscribe" | "store.buckets"
        | "store.stats" | "rules.getFact" | "rules.queryFacts" | "rules.getAllFacts"
        | "rules.subscribe" | "rules.unsubscribe" | "rules.stats" => Tier::Read,
        _ => return None,
    })
}

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
    fn matches(&self, value: &str) -> bool {
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
    /// For `store.*`: only these buckets (or query / subscription ids).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub buckets: Option<Vec<String>>,
    /// For `rules.*`: only resources matching these topic patterns.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topics: Option<Vec<String>>,
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

/// `*` matches everything, `prefix.*` everything starting with `prefix.`, else exact.
pub fn match_pattern(pattern: &str, value: &str) -> bool {
    if pattern == "*" {
        return true;
    }
    match pattern.strip_suffix('*') {
        Some(prefix) if prefix.ends_with('.') => value.starts_with(prefix),
        _ => pattern == value,
    }
}

/// The resource an operation acts on, as passed to checks: the bucket (or query for
/// subscribe, subscription id for unsubscribe) for `store.*`; the topic, key or pattern for
/// `rules.*`; `*` otherwise.
pub fn extract_resource<'a>(op_type: &str, fields: &'a Map<String, Value>) -> &'a str {
    let string = |name: &str| fields.get(name).and_then(Value::as_str);
    let found = if op_type.starts_with("store.") {
        match op_type {
            "store.subscribe" => string("query"),
            "store.unsubscribe" => string("subscriptionId"),
            _ => None,
        }
        .or_else(|| string("bucket"))
    } else if op_type.starts_with("rules.") {
        string("topic")
            .or_else(|| string("key"))
            .or_else(|| string("pattern"))
    } else {
        None
    };
    found.unwrap_or("*")
}

/// Whether `session` may run `op_type` on `resource`: the tier check, then the hook, then
/// the declarative rules, then the default.
pub fn is_allowed(
    session: &Session,
    op_type: &str,
    resource: &str,
    policy: &PermissionsConfig,
    hook: Option<&dyn PermissionCheck>,
) -> bool {
    allowed(session, op_type, resource, &[resource], policy, hook)
}

/// The permission check of one request, with `fields` as received. `Err((op, resource))`
/// names what was refused, for `No permission for OP on RESOURCE`.
///
/// A `store.transaction` has the resource `*` (as the protocol says, and as the hook sees
/// it), but a rule limited to `buckets` sees the buckets its operations name and allows it
/// only when all of them are listed. Then every operation inside is checked as the single
/// operation it stands for, so a transaction can do nothing its operations could not do
/// one by one. Malformed entries are left to validation, which rejects the request.
pub(crate) fn check_request<'a>(
    session: &Session,
    op_type: &'a str,
    fields: &'a Map<String, Value>,
    policy: &PermissionsConfig,
    hook: Option<&dyn PermissionCheck>,
) -> Result<(), (&'a str, &'a str)> {
    let resource = extract_resource(op_type, fields);
    let inner: Vec<(&'static str, &str)> = if op_type == "store.transaction" {
        fields
            .get("operations")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|op| {
                let single = TransactionOp::single_op_type(op.get("op")?.as_str()?)?;
                Some((single, op.get("bucket")?.as_str()?))
            })
            .collect()
    } else {
        Vec::new()
    };
    let mut scope: Vec<&str> = inner.iter().map(|(_, bucket)| *bucket).collect();
    scope.sort_unstable();
    scope.dedup();
    if scope.is_empty() {
        scope.push(resource);
    }
    if !allowed(session, op_type, resource, &scope, policy, hook) {
        return Err((op_type, resource));
    }
    match inner
        .into_iter()
        .find(|(op, bucket)| !allowed(session, op, bucket, &[bucket], policy, hook))
    {
        Some(refused) => Err(refused),
        None => Ok(()),
    }
}

/// The tier check, the hook (which sees `resource`), then the declarative rules (which
/// see `scope`: every resource the request touches), then the default.
fn allowed(
    session: &Session,
    op_type: &str,
    resource: &str,
    scope: &[&str],
    policy: &PermissionsConfig,
    hook: Option<&dyn PermissionCheck>,
) -> bool {
    if let (Some(required), Some(granted)) = (operation_tier(op_type), role_tier(&session.roles)) {
        if granted < required {
            return false;
        }
    }
    if let Some(hook) = hook {
        match hook.check(session, op_type, resource) {
            Decision::Allow => return true,
            Decision::Deny => return false,
            Decision::Pass => {}
        }
    }
    let matched = policy.rules.iter().any(|rule| {
        session.roles.contains(&rule.role)
            && rule.allow.matches(op_type)
            && resource_allowed(rule, op_type, scope)
    });
    matched || policy.default == DefaultPolicy::Allow
}

fn resource_allowed(rule: &PermissionRule, op_type: &str, scope: &[&str]) -> bool {
    if let (Some(buckets), true) = (&rule.buckets, op_type.starts_with("store.")) {
        return scope.iter().all(|r| buckets.iter().any(|b| b == r));
    }
    if let (Some(topics), true) = (&rule.topics, op_type.starts_with("rules.")) {
        return scope
            .iter()
            .all(|r| topics.iter().any(|t| match_pattern(t, r)));
    }
    true
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
        }
    }

    #[test]
    fn tiers_follow_the_role_hierarchy() {
        let open = PermissionsConfig::default();
        let cases = [
            (&["reader"][..], "store.get", true),
            (&["reader"], "store.insert", false),
            (&["reader"], "store.defineBucket", false),
            (&["writer"], "store.insert", true),
            (&["writer"], "rules.emit", true),
            (&["writer"], "server.stats", false),
            (&["admin"], "server.stats", true),
            (&["admin"], "store.get", true),
            (&["reader", "admin"], "store.dropBucket", true),
            // No built-in role: the tier check does not apply.
            (&["customer"], "store.dropBucket", true),
        ];
        for (roles, op, expected) in cases {
            assert_eq!(
                is_allowed(&session(roles), op, "*", &open, None),
                expected,
                "{roles:?} {op}"
            );
        }
    }

    #[test]
    fn every_spec_operation_has_a_tier() {
        for op in [
            "store.transaction",
            "rules.validateRule",
            "server.connections",
            "store.stats",
            "rules.unsubscribe",
        ] {
            assert!(operation_tier(op).is_some(), "{op}");
        }
        assert_eq!(operation_tier("auth.login"), None);
        assert_eq!(operation_tier("nope.x"), None);
    }

    #[test]
    fn declarative_rules_first_match_then_default() {
        let policy: PermissionsConfig = serde_json::from_value(json!({
            "default": "deny",
            "rules": [
                {"role": "agent", "allow": ["store.insert", "store.update"], "buckets": ["metrics"]},
                {"role": "viewer", "allow": "store.*"},
                {"role": "ops", "allow": "rules.*", "topics": ["order.*"]}
            ]
        }))
        .unwrap();
        let agent = session(&["agent"]);
        assert!(is_allowed(&agent, "store.insert", "metrics", &policy, None));
        assert!(!is_allowed(&agent, "store.insert", "users", &policy, None));
        assert!(!is_allowed(&agent, "store.get", "metrics", &policy, None));
        let viewer = session(&["viewer"]);
        assert!(is_allowed(
            &viewer,
            "store.where",
            "anything",
            &policy,
            None
        ));
        assert!(!is_allowed(&viewer, "rules.emit", "x", &policy, None));
        let ops = session(&["ops"]);
        assert!(is_allowed(
            &ops,
            "rules.emit",
            "order.created",
            &policy,
            None
        ));
        assert!(!is_allowed(
            &ops,
            "rules.emit",
            "user.created",
            &policy,
            None
        ));
        assert!(!is_allowed(
            &session(&["nobody"]),
            "store.get",
            "x",
            &policy,
            None
        ));
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
        let s = session(&["x"]);
        assert!(is_allowed(&s, "store.get", "b", &policy, Some(&hook)));
        assert!(!is_allowed(&s, "store.all", "b", &policy, Some(&hook)));
        assert!(!is_allowed(&s, "store.where", "b", &policy, Some(&hook)));
    }

    #[test]
    fn resources_are_extracted_as_specified() {
        let f = |v: Value| v.as_object().unwrap().clone();
        assert_eq!(
            extract_resource("store.insert", &f(json!({"bucket": "users"}))),
            "users"
        );
        assert_eq!(
            extract_resource("store.subscribe", &f(json!({"query": "q", "bucket": "b"}))),
            "q"
        );
        assert_eq!(
            extract_resource("store.unsubscribe", &f(json!({"subscriptionId": "sub-1"}))),
            "sub-1"
        );
        assert_eq!(extract_resource("store.buckets", &f(json!({}))), "*");
        assert_eq!(
            extract_resource("rules.emit", &f(json!({"topic": "a.b"}))),
            "a.b"
        );
        assert_eq!(
            extract_resource("rules.setFact", &f(json!({"key": "k:1"}))),
            "k:1"
        );
        assert_eq!(
            extract_resource("rules.subscribe", &f(json!({"pattern": "a.*"}))),
            "a.*"
        );
        assert_eq!(
            extract_resource("server.stats", &f(json!({"bucket": "x"}))),
            "*"
        );
    }

    #[test]
    fn patterns() {
        assert!(match_pattern("*", "store.get"));
        assert!(match_pattern("store.*", "store.get"));
        assert!(!match_pattern("store.*", "rules.emit"));
        assert!(match_pattern("store.get", "store.get"));
        assert!(!match_pattern("store.get", "store.getX"));
    }

    #[test]
    fn a_transaction_is_checked_on_its_buckets_and_on_each_operation() {
        let policy: PermissionsConfig = serde_json::from_value(json!({
            "default": "deny",
            "rules": [
                {"role": "agent", "allow": ["store.transaction", "store.insert"], "buckets": ["metrics", "events"]},
                {"role": "agent", "allow": "store.get", "buckets": ["users"]},
                {"role": "ops", "allow": "store.transaction"}
            ]
        }))
        .expect("policy");
        let tx = |ops: Value| {
            json!({"operations": ops})
                .as_object()
                .cloned()
                .unwrap_or_default()
        };
        let check = |roles: &[&str], fields: &Map<String, Value>| {
            check_request(&session(roles), "store.transaction", fields, &policy, None)
                .map_err(|(op, r)| format!("{op} on {r}"))
        };
        let both = tx(
            json!([{"op": "insert", "bucket": "metrics"}, {"op": "insert", "bucket": "events"}]),
        );
        assert_eq!(check(&["agent"], &both), Ok(()));
        // One bucket outside the rule's list: the transaction itself is refused (on *).
        let outside =
            tx(json!([{"op": "insert", "bucket": "metrics"}, {"op": "get", "bucket": "users"}]));
        assert_eq!(
            check(&["agent"], &outside),
            Err("store.transaction on *".into())
        );
        // Transactions allowed everywhere, but the operation inside is not.
        let write = tx(json!([{"op": "update", "bucket": "users", "key": 1, "data": {}}]));
        assert_eq!(check(&["ops"], &write), Err("store.update on users".into()));
        // Malformed entries are left to validation.
        let odd = tx(json!([{"op": "nonsense", "bucket": "x"}, {"bucket": 3}]));
        assert_eq!(check(&["ops"], &odd), Ok(()));
    }
}
