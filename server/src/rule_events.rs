//! The rule engine's events and statistics in their wire shapes, and the cache that
//! serializes an event once for all the `rules.subscribe` subscribers it reaches.

use std::sync::Arc;

use noex_protocol::payloads::{EventPush, RuleEvent, RulesStats};
use noex_rules::{EngineStats, Event};

/// Engine timestamps are signed; the wire's are not (a pre-1970 clock reads as 0).
pub(crate) fn millis(ms: i64) -> u64 {
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
    pub(crate) fn of(&self, event: &Event) -> Option<Arc<str>> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn event(id: &str) -> Event {
        Event {
            id: id.into(),
            topic: "order.placed".into(),
            data: json!({"orderId": "o-1"}),
            timestamp: 5,
            correlation_id: None,
            causation_id: None,
            source: "api".into(),
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
