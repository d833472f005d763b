//! What an operation needs to be allowed, worked out from its typed declaration
//! ([`Operation::tier`], [`Operation::resource`]) and what the server knows: the bucket a
//! query reads, what a rule reads and writes, and which buckets' change events
//! (`bucket.<name>.inserted|updated|deleted`, which carry whole records) a topic pattern
//! can see. [`check`] turns the needs into one allow-or-`FORBIDDEN` decision.

use std::borrow::Cow;

use noex_model::pattern::NamePattern;
use noex_protocol::{ErrorCode, Operation, Resource, Tier};
use noex_rules::{RuleEngine, RuleFootprint, rule_footprint, updated_rule_footprint};
use noex_store::{QueryDefinition, Store};
use serde_json::Value;

use crate::error::ServerError;
use crate::permissions::{Authority, Item, Need};

/// The operation whose permission covers reading a bucket's change events: they carry
/// every record of the bucket, as `store.all` does.
pub(crate) const BUCKET_READ: &str = "store.all";

/// What the server knows that an operation's declaration does not say.
#[derive(Clone, Copy)]
pub(crate) struct Resolver<'a> {
    pub(crate) store: &'a Store,
    pub(crate) rules: Option<&'a RuleEngine>,
}

impl Resolver<'_> {
    /// The item a query stands for: its name and, when it is declarative, its bucket.
    pub(crate) fn query_item<'n>(&self, name: &'n str) -> Item<'n> {
        Item::Query {
            name: Cow::Borrowed(name),
            bucket: self.store.query_bucket(name).flatten().map(Cow::Owned),
        }
    }
}

/// Whether `session` may perform `op` under `policy` (and the optional Rust `hook`), decided
/// exactly as the server decides it for a request: from the typed operation, the bucket a
/// query reads in `store` and what a rule in `rules` reads and writes. `Ok(())` allows; the
/// error is the `FORBIDDEN` answer the client would get (or the `VALIDATION_ERROR` of a
/// definition that does not parse).
pub fn authorize(
    session: &crate::Session,
    policy: &crate::PermissionsConfig,
    hook: Option<&dyn crate::PermissionCheck>,
    op: &Operation,
    store: &Store,
    rules: Option<&RuleEngine>,
) -> Result<(), ServerError> {
    let authority = Authority {
        session,
        policy,
        hook,
        grants: None,
    };
    check(&authority, op, Resolver { store, rules })
}

/// Allows `op` for `authority` or answers `FORBIDDEN` naming the first refused need; a
/// definition that does not parse answers as its operation would (`VALIDATION_ERROR`).
pub(crate) fn check(
    authority: &Authority<'_>,
    op: &Operation,
    resolver: Resolver<'_>,
) -> Result<(), ServerError> {
    for need in needs(op, resolver)? {
        if let Err(denial) = authority.decide(&need) {
            return Err(ServerError::new(
                ErrorCode::Forbidden,
                denial.message(&need),
            ));
        }
    }
    Ok(())
}

/// Every need of `op`: the operation itself on what it touches, then what that implies
/// (a transaction's entries, the bucket reads of a rule's triggers).
pub(crate) fn needs<'a>(
    op: &'a Operation,
    resolver: Resolver<'_>,
) -> Result<Vec<Need<'a>>, ServerError> {
    let Some(tier) = op.tier() else {
        return Ok(Vec::new());
    };
    let op_type = op.op_type();
    let need = |resource: Cow<'a, str>, items: Vec<Item<'a>>| Need {
        op: op_type,
        tier,
        resource,
        items,
    };
    Ok(match op.resource() {
        Resource::None | Resource::Listing(_) => vec![need(Cow::Borrowed("*"), Vec::new())],
        Resource::Bucket(bucket) => {
            vec![need(bucket.into(), vec![Item::Bucket(bucket.into())])]
        }
        Resource::Query(name) => vec![need(name.into(), vec![resolver.query_item(name)])],
        Resource::QueryDefinition { config, .. } => {
            let def = QueryDefinition::from_json(Value::Object(config.clone()))?;
            let item = Item::Bucket(Cow::Owned(def.bucket.clone()));
            vec![need(Cow::Owned(def.bucket), vec![item])]
        }
        Resource::Transaction(operations) => {
            let mut buckets: Vec<&str> = operations.iter().map(|o| o.bucket()).collect();
            buckets.sort_unstable();
            buckets.dedup();
            let whole = need(
                Cow::Borrowed("*"),
                buckets
                    .into_iter()
                    .map(|b| Item::Bucket(b.into()))
                    .collect(),
            );
            let entries = operations.iter().map(|entry| Need {
                op: entry.op_type(),
                tier: entry.tier(),
                resource: entry.bucket().into(),
                items: vec![Item::Bucket(entry.bucket().into())],
            });
            std::iter::once(whole).chain(entries).collect()
        }
        Resource::Topic(topic) | Resource::TopicPattern(topic) => vec![need(
            topic.into(),
            vec![Item::Topic(NamePattern::topic(topic))],
        )],
        Resource::Fact(key) => vec![need(key.into(), vec![Item::Fact(NamePattern::fact(key))])],
        Resource::Procedure(name) => {
            vec![need(name.into(), vec![Item::Procedure(name.into())])]
        }
        Resource::Rule(id) => {
            let items = match existing_footprint(resolver, id) {
                Some(footprint) => footprint_items(&footprint),
                None => vec![Item::Opaque],
            };
            vec![need(id.into(), items)]
        }
        Resource::RuleDefinition(rule) => {
            let rule = Value::Object(rule.clone());
            let footprint = rule_footprint(&rule)?;
            let id = rule
                .get("id")
                .and_then(Value::as_str)
                .unwrap_or("*")
                .to_owned();
            let mut out = vec![need(Cow::Owned(id), footprint_items(&footprint))];
            out.extend(bucket_reads(&footprint));
            out
        }
        Resource::RuleUpdate { id, updates } => {
            let Some(current) = resolver.rules.and_then(|engine| engine.get_rule(id).ok()) else {
                // Unknown: the engine answers NOT_FOUND, unless the session may not even
                // ask.
                return Ok(vec![need(id.into(), vec![Item::Opaque])]);
            };
            let updated = updated_rule_footprint(&current.input, &Value::Object(updates.clone()))?;
            let mut items = footprint_items(&footprint_of(&current.input));
            items.extend(footprint_items(&updated));
            let mut out = vec![need(id.into(), items)];
            out.extend(bucket_reads(&updated));
            out
        }
    })
}

/// What a registered rule reads and writes; `None` when there is no such rule.
pub(crate) fn existing_footprint(resolver: Resolver<'_>, id: &str) -> Option<RuleFootprint> {
    let rule = resolver.rules?.get_rule(id).ok()?;
    Some(footprint_of(&rule.input))
}

fn footprint_of(input: &noex_rules::RuleInput) -> RuleFootprint {
    let raw = serde_json::to_value(input).unwrap_or(Value::Null);
    RuleFootprint::of(input, &raw)
}

/// The topic, fact and timer items of a rule's footprint.
pub(crate) fn footprint_items(footprint: &RuleFootprint) -> Vec<Item<'static>> {
    footprint
        .topics()
        .map(|p| Item::Topic(p.clone()))
        .chain(footprint.facts().map(|p| Item::Fact(p.clone())))
        .chain(footprint.timers().map(|p| Item::Timer(p.clone())))
        .collect()
}

/// A rule reacting to change events of a bucket sees its records: it needs
/// [`BUCKET_READ`] on every bucket its triggers can see.
fn bucket_reads(footprint: &RuleFootprint) -> Vec<Need<'static>> {
    let mut out = Vec::new();
    for pattern in &footprint.reads_topics {
        match bucket_scope(pattern) {
            BucketScope::None => {}
            BucketScope::All => out.push(read_need(Cow::Borrowed("*"), Item::AllBuckets)),
            BucketScope::Named(name) => {
                out.push(read_need(Cow::Owned(name.clone()), bucket_item(name)))
            }
        }
    }
    out
}

fn bucket_item(name: String) -> Item<'static> {
    Item::Bucket(Cow::Owned(name))
}

fn read_need(resource: Cow<'static, str>, item: Item<'static>) -> Need<'static> {
    Need {
        op: BUCKET_READ,
        tier: Tier::Read,
        resource,
        items: vec![item],
    }
}

/// Which buckets' change events a topic pattern can match.
#[derive(Debug, PartialEq, Eq)]
enum BucketScope {
    /// None: the pattern cannot match `bucket.<name>.<kind>`.
    None,
    /// Exactly this bucket.
    Named(String),
    /// Any bucket, including ones defined later.
    All,
}

/// Change-event topics are `bucket.<name>.<kind>`: three segments, since a bucket name
/// holds neither `.` nor `*` (the store refuses such names), so the name is the second.
fn bucket_scope(pattern: &NamePattern) -> BucketScope {
    let Some((segments, any_tail)) = pattern.parts() else {
        return BucketScope::All;
    };
    // Three segments exactly, or fewer followed by "any more".
    let fits = if any_tail {
        segments.len() < 3
    } else {
        segments.len() == 3
    };
    if !fits
        || segments
            .first()
            .is_some_and(|s| s.is_some_and(|s| s != "bucket"))
    {
        return BucketScope::None;
    }
    match segments.get(1) {
        Some(Some(name)) => BucketScope::Named((*name).to_owned()),
        _ => BucketScope::All,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn change_event_patterns_name_the_buckets_they_see() {
        let scope = |p: &str| bucket_scope(&NamePattern::topic(p));
        assert_eq!(scope("order.*"), BucketScope::None);
        assert_eq!(
            scope("bucket.users.inserted"),
            BucketScope::Named("users".into())
        );
        assert_eq!(scope("bucket.a.b.deleted"), BucketScope::None);
        assert_eq!(scope("bucket.users.*"), BucketScope::Named("users".into()));
        assert_eq!(scope("bucket.*"), BucketScope::All);
        assert_eq!(scope("bucket.*.inserted"), BucketScope::All);
        assert_eq!(scope("*"), BucketScope::All);
        assert_eq!(
            scope("*.users.inserted"),
            BucketScope::Named("users".into())
        );
        assert_eq!(scope("bucket.users"), BucketScope::None);
        assert_eq!(
            bucket_scope(&NamePattern::topic_template("bucket.${event.b}.inserted")),
            BucketScope::All
        );
    }
}
