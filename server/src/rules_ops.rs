//! The `rules.*` operations over the wire: each typed [`RulesOp`] becomes one call on the
//! embedded [`RuleEngine`], each [`RulesError`] one protocol error, and `rules.subscribe`
//! connects an engine subscription to the connection's outbound queue (channel `event`).
//! Also the optional bridge that turns committed store changes into engine events, and the
//! persistence of facts and rules in the store's side table (when the store is durable).

use std::sync::Arc;

use noex_protocol::payloads::{
    EventPush, FactDeleted, RuleEnabled, RuleEvent, RuleList, RuleRegistered, RuleUnregistered,
    RuleUpdated, RulesStats, RulesSubscribeResult, Unsubscribed,
};
use std::borrow::Cow;

use noex_model::pattern::NamePattern;
use noex_protocol::{ErrorCode, Operation, PushChannel, PushFrame, RulesOp, Tier};
use noex_rules::{
    EmitOptions, EngineConfig, EngineStats, Event, Fact, FactChange, FactObserver, Rule,
    RuleEngine, RulesError,
};
use noex_store::Store;
use serde_json::{Value, json};

use crate::access::{self, BUCKET_READ, Resolver};
use crate::config::LimitsConfig;
use crate::connection::Connection;
use crate::error::ServerError;
use crate::outbound::PushKind;
use crate::permissions::{Authority, Item, Need};
use crate::router::to_json;
use crate::subscriptions::SubKind;

impl From<RulesError> for ServerError {
    fn from(err: RulesError) -> Self {
        match err {
            RulesError::NotFound { kind, id } => {
                let mut kind = kind.to_owned();
                if let Some(first) = kind.get_mut(..1) {
                    first.make_ascii_uppercase();
                }
                ServerError::new(ErrorCode::NotFound, format!("{kind} \"{id}\" not found"))
            }
            RulesError::AlreadyExists(id) => ServerError::new(
                ErrorCode::AlreadyExists,
                format!("Rule \"{id}\" already exists"),
            ),
            RulesError::Validation(errors) => {
                let message = RulesError::Validation(errors.clone()).to_string();
                ServerError::new(ErrorCode::ValidationError, message).with_details(json!(errors))
            }
            err @ (RulesError::InvalidPattern { .. } | RulesError::TooLarge(_)) => {
                ServerError::new(ErrorCode::ValidationError, err.to_string())
            }
            err @ RulesError::LimitExceeded(_) => {
                ServerError::new(ErrorCode::RateLimited, err.to_string())
            }
        }
    }
}

/// Refuses a result over `limits.maxResultBytes` bytes of JSON (counted without building
/// it), with the `VALIDATION_ERROR` and `details.limit` of the store reads.
fn bounded_result(
    connection: &Connection,
    value: &impl serde::Serialize,
) -> Result<(), ServerError> {
    let limit = connection.shared.config.limits.max_result_bytes;
    match noex_store::json_size_within(value, limit) {
        Some(_) => Ok(()),
        None => Err(ServerError::new(
            ErrorCode::ValidationError,
            format!("Result exceeds {limit} bytes; narrow it with rules.queryFacts"),
        )
        .with_details(json!({ "limit": limit }))),
    }
}

/// The first topic segment of the store change events (`bucket.<name>.<change>`): only the
/// store bridge emits under it, so `rules.emit` and rules cannot forge store changes.
pub(crate) const RESERVED_TOPIC_ROOT: &str = "bucket";

/// The configuration of the engine the server creates: the rule bounds of the config's
/// `limits` section (facts, rules, timers, and per input work, chain depth and produced
/// bytes), and a fact persister when the store is durable. An engine supplied with
/// [`crate::ServerBuilder::rule_engine`] keeps its own configuration.
pub(crate) fn engine_config(limits: &LimitsConfig, store: &Store) -> EngineConfig {
    EngineConfig {
        max_facts: limits.max_facts,
        max_fact_bytes: limits.max_fact_bytes,
        max_facts_bytes: limits.max_facts_bytes,
        max_rules: limits.max_rules,
        max_timers: limits.max_timers,
        min_timer_interval_ms: limits.min_timer_interval_ms,
        max_rule_logs_per_second: limits.max_rule_logs_per_second,
        max_work_per_input: limits.max_rule_work_per_input,
        max_chain_depth: limits.max_rule_chain_depth,
        max_queued_bytes_per_input: limits.max_rule_queued_bytes,
        max_temporal_bytes: limits.max_rule_temporal_bytes,
        reserved_topic_root: Some(RESERVED_TOPIC_ROOT.to_string()),
        fact_observer: fact_persister(store),
        ..EngineConfig::default()
    }
}

/// Answers one `rules.*` request on `connection` with `engine`. Listings
/// (`rules.queryFacts`, `rules.getAllFacts`, `rules.getRules`) hold only what `authority`
/// may see (everything without one).
///
/// What runs a cascade (`rules.emit`, `rules.setFact`, `rules.deleteFact`) or copies many
/// facts runs through [`RuleEngine::run_input`]: not on the runtime worker that serves
/// this and other connections, so a long cascade delays only its own client.
pub(crate) async fn handle(
    connection: &mut Connection,
    engine: &RuleEngine,
    op: RulesOp,
    authority: Option<&Authority<'_>>,
) -> Result<Value, ServerError> {
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
            let options = EmitOptions {
                source: None,
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
            bounded_result(connection, &facts)?;
            to_json(facts)
        }
        RulesOp::GetAllFacts => {
            let mut facts = engine.run_input(RuleEngine::get_all_facts).await;
            facts.retain(|f| sees_fact(authority, "rules.getAllFacts", &f.key));
            bounded_result(connection, &facts)?;
            to_json(facts)
        }
        RulesOp::Subscribe { pattern } => subscribe(connection, engine, &pattern),
        RulesOp::Unsubscribe { subscription_id } => {
            let Connection {
                subscriptions,
                registration,
                ..
            } = connection;
            subscriptions.remove(&subscription_id, SubKind::Rules, registration)?;
            to_json(Unsubscribed { unsubscribed: true })
        }
        RulesOp::Stats => to_json(wire_stats(engine.stats())),
        RulesOp::RegisterRule { rule } => {
            let rule = engine.register_rule(&Value::Object(rule))?;
            persist_rule(&connection.shared.store, engine, &rule.input.id)?;
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
            persist_rule(&connection.shared.store, engine, &rule_id)?;
            to_json(RuleUnregistered {
                rule_id,
                unregistered: true,
            })
        }
        RulesOp::UpdateRule { rule_id, updates } => {
            let rule = engine.update_rule(&rule_id, &Value::Object(updates))?;
            persist_rule(&connection.shared.store, engine, &rule_id)?;
            to_json(RuleUpdated {
                id: rule.input.id.clone(),
                version: rule.version,
                updated_at: millis(rule.updated_at),
            })
        }
        RulesOp::EnableRule { rule_id } => {
            let rule = engine.enable_rule(&rule_id)?;
            persist_rule(&connection.shared.store, engine, &rule_id)?;
            enabled(rule)
        }
        RulesOp::DisableRule { rule_id } => {
            let rule = engine.disable_rule(&rule_id)?;
            persist_rule(&connection.shared.store, engine, &rule_id)?;
            enabled(rule)
        }
        RulesOp::GetRule { rule_id } => to_json(engine.get_rule(&rule_id)?),
        RulesOp::GetRules => to_json(RuleList {
            rules: engine
                .get_rules()
                .into_iter()
                .filter(|r| sees_rule(authority, connection.shared.resolver(), &r.id))
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

/// Engine timestamps are signed; the wire's are not (a pre-1970 clock reads as 0).
fn millis(ms: i64) -> u64 {
    u64::try_from(ms).unwrap_or(0)
}

/// The `{topic, event}` JSON of the event being delivered, kept for the next subscriber:
/// the engine calls every matching subscriber of one event back to back, so an event that
/// N connections receive is serialized once, not N times (only the envelope is built per
/// subscription, as for store pushes).
#[derive(Default)]
pub(crate) struct EventJson(parking_lot::Mutex<Option<(String, Arc<str>)>>);

impl EventJson {
    /// The push data of `event` (`None` if it does not serialize, which is logged).
    fn of(&self, event: &Event) -> Option<Arc<str>> {
        let mut last = self.0.lock();
        if let Some((id, json)) = last.as_ref()
            && *id == event.id
        {
            return Some(Arc::clone(json));
        }
        let push = EventPush {
            topic: event.topic.clone(),
            event: wire_event(event),
        };
        match serde_json::to_string(&push) {
            Ok(json) => {
                let json: Arc<str> = json.into();
                *last = Some((event.id.clone(), Arc::clone(&json)));
                Some(json)
            }
            Err(err) => {
                tracing::error!(%err, "cannot serialize an event push");
                None
            }
        }
    }
}

/// An engine event in its wire shape.
pub(crate) fn wire_event(event: &Event) -> RuleEvent {
    RuleEvent {
        id: event.id.clone(),
        topic: event.topic.clone(),
        data: event.data.clone(),
        timestamp: millis(event.timestamp),
        correlation_id: event.correlation_id.clone(),
        causation_id: event.causation_id.clone(),
        source: event.source.clone(),
    }
}

/// The engine's statistics on the wire: the answer of `rules.stats` and the `rules` part of
/// `server.stats` (one shape for both).
pub(crate) fn wire_stats(stats: EngineStats) -> RulesStats {
    RulesStats {
        rules_count: stats.rules_count as u64,
        facts_count: stats.facts_count as u64,
        timers_count: stats.timers_count as u64,
        events_processed: stats.events_processed,
        rules_executed: stats.rules_executed,
        action_errors: stats.action_errors,
        subscriptions_count: stats.subscriptions_count as u64,
        avg_processing_time_ms: stats.avg_processing_time_ms,
    }
}

/// `rules.subscribe`: reserves an id within the connection's (store + rules) limits and
/// forwards every matching event as a push `{topic, event}` on channel `event`.
///
/// A bucket's change events (source `store`) carry its records, so each is delivered only
/// when the connection's session — as it is when the event arrives — may read that bucket
/// (`store.all`).
fn subscribe(
    connection: &mut Connection,
    engine: &RuleEngine,
    pattern: &str,
) -> Result<Value, ServerError> {
    let id = connection.subscriptions.reserve()?;
    connection.queue.mark_pending(&id);
    let queue = Arc::clone(&connection.queue);
    let push_id = id.clone();
    let event_json = Arc::clone(&connection.shared.event_json);
    let outbound = Arc::clone(&connection.shared.outbound);
    let reader = BucketReadFilter {
        shared: Arc::downgrade(&connection.shared),
        session: connection.session.view(),
    };
    let subscribed = engine.subscribe(pattern, move |event: &Event| {
        if !reader.may_see(event) {
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
            connection.subscriptions.release();
            connection.queue.remove(&id);
            return Err(err.into());
        }
    };
    let cancel_engine = engine.clone();
    let cancel_queue = Arc::clone(&connection.queue);
    let cancel_id = id.clone();
    connection.subscriptions.insert(
        id.clone(),
        SubKind::Rules,
        Operation::Rules(RulesOp::Subscribe {
            pattern: pattern.to_owned(),
        }),
        Box::new(move || {
            cancel_engine.unsubscribe(engine_id);
            cancel_queue.remove(&cancel_id);
        }),
        &connection.registration,
    );
    connection.activate_after_reply.push(id.clone());
    to_json(RulesSubscribeResult {
        subscription_id: id,
    })
}

/// Keeps a bucket's change events from a subscriber whose session may not read the bucket.
struct BucketReadFilter {
    shared: std::sync::Weak<crate::server::Shared>,
    session: Arc<crate::session::SessionView>,
}

impl BucketReadFilter {
    fn may_see(&self, event: &Event) -> bool {
        if event.source.as_deref() != Some(STORE_SOURCE) {
            return true;
        }
        let Some(bucket) = event.data.get("bucket").and_then(Value::as_str) else {
            return true;
        };
        let Some(shared) = self.shared.upgrade() else {
            return false;
        };
        let (Some(auth), Some(session)) = (&shared.auth, self.session.get()) else {
            // No auth, or an anonymous client that may do everything.
            return shared.auth.as_ref().is_none_or(|auth| !auth.required);
        };
        auth.authority(&session).allows(&Need {
            op: BUCKET_READ,
            tier: Tier::Read,
            resource: Cow::Borrowed(bucket),
            items: vec![Item::Bucket(Cow::Borrowed(bucket))],
        })
    }
}

/// The `source` of the events the store bridge emits.
const STORE_SOURCE: &str = "store";

/// Forwards every committed store change to `engine` as the event
/// `bucket.<name>.inserted|updated|deleted` (source `store`) carrying the change
/// `{type, bucket, key, record | oldRecord + newRecord, version}`. Returns the store
/// handler id.
pub(crate) fn bridge_store(store: &Store, engine: &RuleEngine) -> u64 {
    let engine = engine.clone();
    store.on_change("bucket.*.*", move |change| {
        let data = match serde_json::to_value(change) {
            Ok(data) => data,
            Err(err) => {
                tracing::error!(%err, "cannot forward a store change to the rule engine");
                return;
            }
        };
        let options = EmitOptions {
            source: Some(STORE_SOURCE.to_owned()),
            ..EmitOptions::default()
        };
        if let Err(err) = engine.emit_with(&change.topic(), data, options) {
            tracing::warn!(%err, "store change not forwarded to the rule engine");
        }
    })
}

/// Emits a connection lifecycle event (`connection.<what>`) into the engine when the
/// config's `rules.connectionEvents` is on; a no-op otherwise (`data` is not even built).
pub(crate) fn connection_event(
    shared: &crate::server::Shared,
    what: &str,
    data: impl FnOnce() -> Value,
) {
    if !shared.config.rules.connection_events {
        return;
    }
    let Some(engine) = &shared.rules else { return };
    let data = data();
    let options = EmitOptions {
        source: Some("server".to_owned()),
        ..EmitOptions::default()
    };
    // Off the runtime worker: a rule on connection events may run a long cascade.
    let topic = format!("connection.{what}");
    if let Err(err) = engine.run_input_blocking(|e| e.emit_with(&topic, data, options)) {
        tracing::warn!(%err, what, "connection event not emitted to the rule engine");
    }
}

/// Side-table namespace of persisted facts (key: fact key, value: the fact).
const FACTS: &str = "rules.facts";
/// Side-table namespace of persisted rules (key: rule id, value: the rule).
const RULES: &str = "rules.rules";
/// Fields the engine adds to a registered rule; not part of what `register_rule` takes.
const RULE_METADATA: [&str; 3] = ["version", "createdAt", "updatedAt"];

/// A fact observer that writes every fact change to the store's side table, or `None`
/// when the store is not durable.
pub(crate) fn fact_persister(store: &Store) -> Option<FactObserver> {
    store.persistence_path()?;
    let store = store.clone();
    Some(Arc::new(move |changes: &[FactChange]| {
        // One commit for the whole batch the engine reports (one fsync in sync mode).
        let entries = changes
            .iter()
            .filter_map(|change| {
                match change.fact.as_ref().map(serde_json::to_value).transpose() {
                    Ok(value) => Some((change.key.clone(), value)),
                    Err(err) => {
                        // Skipped, never written as a removal.
                        tracing::error!(%err, key = %change.key, "fact not serializable; not persisted");
                        None
                    }
                }
            })
            .collect();
        // The engine's observer cannot fail a request: the failure is logged, and a failed
        // writer makes the store refuse every later write.
        if let Err(err) = store.persist_aux_many(FACTS, entries) {
            tracing::error!(%err, "facts not persisted");
        }
    }))
}

/// Writes rule `id` as it now is (or its removal, when it is no longer registered) to the
/// store's side table; a no-op when the store is not durable. The caller reports a
/// failure: the rule change is applied in the engine but not on disk.
pub(crate) fn persist_rule(
    store: &Store,
    engine: &RuleEngine,
    id: &str,
) -> Result<(), noex_store::StoreError> {
    let value = match engine.get_rule(id) {
        Ok(rule) => {
            Some(
                serde_json::to_value(rule).map_err(|e| noex_store::StoreError::Internal {
                    message: format!("rule {id:?} does not serialize: {e}"),
                })?,
            )
        }
        Err(_) => None,
    };
    store.persist_aux(RULES, id, value)
}

/// Loads persisted facts and rules into `engine` (nothing when the store is not durable).
/// A rule that no longer registers is skipped with an error in the log rather than
/// stopping the server.
pub(crate) fn restore(store: &Store, engine: &RuleEngine) {
    let facts = store
        .load_aux(FACTS)
        .into_iter()
        .filter_map(|(key, value)| match serde_json::from_value::<Fact>(value) {
            Ok(fact) => Some(fact),
            Err(err) => {
                tracing::error!(%err, %key, "persisted fact unreadable; skipped");
                None
            }
        });
    engine.restore_facts(facts);
    for (id, mut rule) in store.load_aux(RULES) {
        if let Some(map) = rule.as_object_mut() {
            for field in RULE_METADATA {
                map.remove(field);
            }
        }
        if let Err(err) = engine.register_rule(&rule) {
            tracing::error!(%err, rule = %id, "persisted rule no longer registers; skipped");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(id: &str) -> Event {
        Event {
            id: id.into(),
            topic: "order.placed".into(),
            data: json!({"orderId": "o-1"}),
            timestamp: 5,
            correlation_id: None,
            causation_id: None,
            source: None,
        }
    }

    #[test]
    fn an_event_is_serialized_once_for_all_its_subscribers() {
        let cache = EventJson::default();
        let first = cache.of(&event("e-1")).expect("serializes");
        let again = cache.of(&event("e-1")).expect("serializes");
        assert!(
            Arc::ptr_eq(&first, &again),
            "the second subscriber reuses the text"
        );
        let parsed: Value = serde_json::from_str(&first).expect("JSON");
        assert_eq!(parsed["topic"], "order.placed");
        assert_eq!(parsed["event"]["data"]["orderId"], "o-1");
        let next = cache.of(&event("e-2")).expect("serializes");
        assert!(!Arc::ptr_eq(&first, &next));
        assert!(next.contains("\"e-2\""));
    }
}
