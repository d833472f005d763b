//! The `rules.*` operations: each typed [`RulesOp`] becomes one call on the embedded
//! [`RuleEngine`] (its errors become protocol errors in `crate::error`); rule changes are
//! written to the durable store (`crate::rule_persistence`); `rules.subscribe` connects an
//! engine subscription to the connection's outbound queue (channel `event`).

use std::borrow::Cow;
use std::sync::Arc;

use noex_model::pattern::NamePattern;
use noex_protocol::payloads::{
    FactDeleted, RuleEnabled, RuleList, RuleRegistered, RuleUnregistered, RuleUpdated,
    RulesSubscribeResult, Unsubscribed,
};
use noex_protocol::{ErrorCode, Operation, PushChannel, PushFrame, RulesOp, Tier};
use noex_rules::{EmitOptions, Event, Rule, RuleEngine};
use noex_store::Store;
use serde_json::{Value, json};

use crate::access::{self, Resolver};
use crate::error::ServerError;
use crate::ops::{Subscriptions, to_json};
use crate::outbound::PushKind;
use crate::permissions::{Authority, Item, Need};
use crate::rule_events::{EventJson, millis, wire_event, wire_stats};
use crate::rule_persistence::persist_rule;
use crate::session::BucketReadFilter;
use crate::store_bridge::{RESERVED_TOPIC_ROOT, STORE_SOURCE};
use crate::subscriptions::SubKind;

/// What the `rules.*` operations need: the engine, the store its rules persist to, the
/// result bound, who asks, and the connection's subscriptions.
pub(crate) struct RulesContext<'a> {
    /// The rule engine.
    pub(crate) engine: &'a RuleEngine,
    /// The store whose side table keeps the rules (when durable).
    pub(crate) store: &'a Store,
    /// `limits.maxResultBytes`.
    pub(crate) max_result_bytes: usize,
    /// What permission checks know of the store and the engine.
    pub(crate) resolver: Resolver<'a>,
    /// The session's rights (`None`: everything is visible).
    pub(crate) authority: Option<&'a Authority<'a>>,
    /// The last event pushed, serialized once for every subscriber.
    pub(crate) event_json: &'a Arc<EventJson>,
    /// Whether the connection's session may read a bucket, when its change event arrives.
    pub(crate) bucket_reader: BucketReadFilter,
    /// The connection's subscriptions.
    pub(crate) subscriptions: Subscriptions<'a>,
}

/// Refuses a result over `limits.maxResultBytes` bytes of JSON (counted without building
/// it), with the `VALIDATION_ERROR` and `details.limit` of the store reads.
fn bounded_result(limit: usize, value: &impl serde::Serialize) -> Result<(), ServerError> {
    match noex_store::json_size_within(value, limit) {
        Some(_) => Ok(()),
        None => Err(ServerError::new(
            ErrorCode::ValidationError,
            format!("Result exceeds {limit} bytes; narrow it with rules.queryFacts"),
        )
        .with_details(json!({ "limit": limit }))),
    }
}

/// Answers one `rules.*` request. Listings
/// (`rules.queryFacts`, `rules.getAllFacts`, `rules.getRules`) hold only what `authority`
/// may see (everything without one).
///
/// What runs a cascade (`rules.emit`, `rules.setFact`, `rules.deleteFact`) or copies many
/// facts runs through [`RuleEngine::run_input`]: not on the runtime worker that serves
/// this and other connections, so a long cascade delays only its own client.
pub(crate) async fn handle(ctx: RulesContext<'_>, op: RulesOp) -> Result<Value, ServerError> {
    let engine = ctx.engine;
    let authority = ctx.authority;
    match op {
        RulesOp::Emit {
            topic,
            data,
            correlation_id,
            causation_id,
        } => {
            if topic.split('.').next() == Some(RESERVED_TOPIC_ROOT) {
                return Err(ServerError::new(
                    ErrorCode::ValidationError,
                    format!(
                        "topics under \"{RESERVED_TOPIC_ROOT}.\" are reserved for store change events"
                    ),
                ));
            }
            // Source `api`, as the original's `engine.emit`.
            let options = EmitOptions {
                source: Some(noex_rules::API_SOURCE.to_owned()),
                correlation_id,
                causation_id,
            };
            let event = engine
                .run_input(|e| e.emit_with(&topic, Value::Object(data), options))
                .await?;
            to_json(wire_event(&event))
        }
        RulesOp::SetFact { key, value } => {
            to_json(engine.run_input(|e| e.set_fact(&key, value)).await?)
        }
        RulesOp::GetFact { key } => Ok(engine.get_fact(&key).unwrap_or(Value::Null)),
        RulesOp::DeleteFact { key } => to_json(FactDeleted {
            deleted: engine.run_input(|e| e.delete_fact(&key)).await,
        }),
        RulesOp::QueryFacts { pattern } => {
            let mut facts = engine.run_input(|e| e.query_facts(&pattern)).await?;
            facts.retain(|f| sees_fact(authority, "rules.queryFacts", &f.key));
            bounded_result(ctx.max_result_bytes, &facts)?;
            to_json(facts)
        }
        RulesOp::GetAllFacts => {
            let mut facts = engine.run_input(RuleEngine::get_all_facts).await;
            facts.retain(|f| sees_fact(authority, "rules.getAllFacts", &f.key));
            bounded_result(ctx.max_result_bytes, &facts)?;
            to_json(facts)
        }
        RulesOp::Subscribe { pattern } => subscribe(ctx, &pattern),
        RulesOp::Unsubscribe { subscription_id } => {
            let subs = ctx.subscriptions;
            subs.subscriptions
                .remove(&subscription_id, SubKind::Rules, subs.registration)?;
            to_json(Unsubscribed { unsubscribed: true })
        }
        RulesOp::Stats => to_json(wire_stats(engine.stats())),
        RulesOp::RegisterRule { rule } => {
            // Owned by the session's user: a full temporal pool is shared by owner.
            let owner = ctx.authority.map(|a| a.session.user_id.as_str());
            let rule = engine.register_rule_as(&Value::Object(rule), owner)?;
            persist_rule(ctx.store, engine, &rule.input.id)?;
            to_json(RuleRegistered {
                id: rule.input.id.clone(),
                name: rule.input.name.clone(),
                version: rule.version,
                created_at: millis(rule.created_at),
                updated_at: millis(rule.updated_at),
            })
        }
        RulesOp::UnregisterRule { rule_id } => {
            engine.unregister_rule(&rule_id)?;
            persist_rule(ctx.store, engine, &rule_id)?;
            to_json(RuleUnregistered {
                rule_id,
                unregistered: true,
            })
        }
        RulesOp::UpdateRule { rule_id, updates } => {
            let rule = engine.update_rule(&rule_id, &Value::Object(updates))?;
            persist_rule(ctx.store, engine, &rule_id)?;
            to_json(RuleUpdated {
                id: rule.input.id.clone(),
                version: rule.version,
                updated_at: millis(rule.updated_at),
            })
        }
        RulesOp::EnableRule { rule_id } => {
            let rule = engine.enable_rule(&rule_id)?;
            persist_rule(ctx.store, engine, &rule_id)?;
            enabled(rule)
        }
        RulesOp::DisableRule { rule_id } => {
            let rule = engine.disable_rule(&rule_id)?;
            persist_rule(ctx.store, engine, &rule_id)?;
            enabled(rule)
        }
        RulesOp::GetRule { rule_id } => to_json(engine.get_rule(&rule_id)?),
        RulesOp::GetRules => to_json(RuleList {
            rules: engine
                .get_rules()
                .into_iter()
                .filter(|r| sees_rule(authority, ctx.resolver, &r.id))
                .map(|r| noex_protocol::payloads::RuleSummary {
                    id: r.id,
                    name: r.name,
                    enabled: r.enabled,
                    priority: r.priority,
                    version: r.version,
                    tags: r.tags,
                    group: r.group,
                })
                .collect(),
        }),
        RulesOp::ValidateRule { rule } => to_json(engine.validate_rule(&Value::Object(rule))),
    }
}

/// Whether `authority` may see fact `key` in the listing `op`.
fn sees_fact(authority: Option<&Authority<'_>>, op: &str, key: &str) -> bool {
    authority.is_none_or(|a| {
        a.allows(&Need {
            op,
            tier: Tier::Read,
            resource: Cow::Borrowed(key),
            items: vec![Item::Fact(NamePattern::fact(key))],
        })
    })
}

/// Whether `authority` may see rule `id` in `rules.getRules`: it needs rights on everything
/// the rule reads and writes.
fn sees_rule(authority: Option<&Authority<'_>>, resolver: Resolver<'_>, id: &str) -> bool {
    authority.is_none_or(|a| {
        let items = access::existing_footprint(resolver, id)
            .map_or_else(|| vec![Item::Opaque], |f| access::footprint_items(&f));
        a.allows(&Need {
            op: "rules.getRules",
            tier: Tier::Admin,
            resource: Cow::Borrowed(id),
            items,
        })
    })
}

fn enabled(rule: Rule) -> Result<Value, ServerError> {
    to_json(RuleEnabled {
        rule_id: rule.input.id,
        enabled: rule.input.enabled,
    })
}

/// `rules.subscribe`: reserves an id within the connection's (store + rules) limits and
/// forwards every matching event as a push `{topic, event}` on channel `event`.
///
/// A bucket's change events (source `store`) carry its records, so each is delivered only
/// when the connection's session — as it is when the event arrives — may read that bucket
/// (`store.all`).
fn subscribe(ctx: RulesContext<'_>, pattern: &str) -> Result<Value, ServerError> {
    let engine = ctx.engine;
    let subs = ctx.subscriptions;
    let id = subs.subscriptions.reserve()?;
    subs.queue.mark_pending(&id);
    let queue = Arc::clone(subs.queue);
    let push_id = id.clone();
    let event_json = Arc::clone(ctx.event_json);
    let outbound = Arc::clone(subs.outbound);
    let reader = ctx.bucket_reader;
    let subscribed = engine.subscribe(pattern, move |event: &Event| {
        if !may_see(&reader, event) {
            return;
        }
        if let Some(data) = event_json.of(event) {
            // Shared by every subscriber's queue; only the envelope is per subscription.
            let data = outbound.share(data);
            let head = PushFrame::encode_head(PushChannel::Event, &push_id);
            queue.push(&push_id, PushKind::Event, head, data, PushFrame::TAIL);
        }
    });
    let engine_id = match subscribed {
        Ok(engine_id) => engine_id,
        Err(err) => {
            subs.subscriptions.release();
            subs.queue.remove(&id);
            return Err(err.into());
        }
    };
    let cancel_engine = engine.clone();
    let cancel_queue = Arc::clone(subs.queue);
    let cancel_id = id.clone();
    subs.subscriptions.insert(
        id.clone(),
        SubKind::Rules,
        Operation::Rules(RulesOp::Subscribe {
            pattern: pattern.to_owned(),
        }),
        Box::new(move || {
            cancel_engine.unsubscribe(engine_id);
            cancel_queue.remove(&cancel_id);
        }),
        subs.registration,
    );
    subs.activate_after_reply.push(id.clone());
    to_json(RulesSubscribeResult {
        subscription_id: id,
    })
}

/// Whether a subscriber passing `reader` receives `event`: a bucket's change event (source
/// `store`) only if the session may read that bucket; every other event.
fn may_see(reader: &BucketReadFilter, event: &Event) -> bool {
    if event.source != STORE_SOURCE {
        return true;
    }
    match event.data.get("bucket").and_then(Value::as_str) {
        Some(bucket) => reader.may_read(bucket),
        None => true,
    }
}
