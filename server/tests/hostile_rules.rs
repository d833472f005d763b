//! Hostile use of the rule engine over the wire: a rule whose `for_each` re-emits its own
//! trigger (one `rules.emit` used to take the binary past 24 GB) stays within a small
//! memory and time bound while other clients are served, and the rule limits of the
//! config's `limits` section reach the engine (`maxFacts` answers `RATE_LIMITED`, the work
//! bound cuts a cascade).

mod common;

use std::time::{Duration, Instant};

/// No heartbeat pings during a test: on a loaded machine a long flood can outlast the
/// default 30 s interval, and an unexpected ping frame would fail the test.
const QUIET: &[&str] = &["--heartbeat-interval-ms", "600000"];

use common::{Binary, Client, local_config, start};
use serde_json::{Value, json};

/// On `t`: for every item of `event.items`, emit `t` with the same items.
fn re_emit_rule() -> Value {
    json!({
        "id": "echo",
        "name": "re-emits its own trigger once per item",
        "trigger": {"type": "event", "topic": "t"},
        "actions": [{
            "type": "for_each",
            "collection": {"ref": "event.items"},
            "as": "item",
            "actions": [{"type": "emit_event", "topic": "t", "data": {"items": {"ref": "event.items"}}}]
        }]
    })
}

/// Peak RSS the binary may reach over the whole attack (it starts near 20 MB; before the
/// bounds, the first emit alone passed 1.8 GB).
const RSS_BOUND: u64 = 150 * 1024 * 1024;
/// How long the emit and a bystander's round trip may take. Generous for a debug build on
/// a busy machine; the unbounded cascade never answered before it was killed.
const PROMPT: Duration = Duration::from_secs(5);

#[tokio::test]
async fn a_for_each_re_emitting_its_trigger_is_bounded_in_memory_and_time() {
    let binary = Binary::spawn(QUIET).await;
    let (mut attacker, _) = Client::connect_url(&binary.url).await;
    let (mut bystander, _) = Client::connect_url(&binary.url).await;
    attacker
        .ok("rules.registerRule", json!({"rule": re_emit_rule()}))
        .await;
    bystander
        .ok("rules.setFact", json!({"key": "probe", "value": 1}))
        .await;

    for n in [100u32, 1_000] {
        let items: Vec<u32> = (0..n).collect();
        let emit = tokio::spawn(async move {
            let started = Instant::now();
            let answer = attacker
                .call(
                    "rules.emit",
                    json!({"topic": "t", "data": {"items": items}}),
                )
                .await;
            (attacker, answer, started.elapsed())
        });
        // Round trips of another client for as long as the emit is in flight (at least
        // one): the engine is locked while a cascade runs, so each waits at most for the
        // rest of it (before the bounds: until the server was killed).
        let mut bystander_took = Duration::ZERO;
        loop {
            let started = Instant::now();
            assert_eq!(
                bystander.ok("rules.getFact", json!({"key": "probe"})).await,
                json!(1)
            );
            bystander.ok("store.buckets", json!({})).await;
            bystander_took = bystander_took.max(started.elapsed());
            if emit.is_finished() {
                break;
            }
        }

        let (back, answer, took) = emit.await.expect("emit task");
        attacker = back;
        assert_eq!(answer["type"], "result", "{n} items: {answer}");
        assert_eq!(answer["data"]["topic"], "t");
        assert_eq!(
            answer["data"]["data"]["items"].as_array().map(Vec::len),
            Some(n as usize)
        );
        assert!(took < PROMPT, "{n} items: the emit took {took:?}");
        assert!(
            bystander_took < PROMPT,
            "{n} items: the bystander waited {bystander_took:?}"
        );
        let peak = binary.peak_rss_kib() * 1024;
        eprintln!(
            "{n} items: emit answered in {took:?}, slowest bystander round trip \
             {bystander_took:?}, peak RSS {} MiB",
            peak / (1024 * 1024)
        );
        assert!(peak < RSS_BOUND, "{n} items: peak RSS {peak} bytes");
    }

    // The engine is still serving, and it did run part of each cascade.
    let stats = attacker.ok("rules.stats", json!({})).await;
    let processed = stats["eventsProcessed"].as_u64().unwrap_or(0);
    assert!(
        (4..=20_000).contains(&processed),
        "events processed: {stats}"
    );
    assert_eq!(stats["actionErrors"], 0);
}

fn write_config(name: &str, text: &str) -> std::path::PathBuf {
    let path = std::env::temp_dir().join(format!(
        "noex-hostile-rules-{}-{name}.json",
        std::process::id()
    ));
    std::fs::write(&path, text).expect("config file written");
    path
}

#[tokio::test]
async fn set_fact_beyond_limits_max_facts_is_rate_limited() {
    let config = write_config("facts", r#"{"limits": {"maxFacts": 3}}"#);
    let binary = Binary::spawn(&["--config", config.to_str().expect("UTF-8 path")]).await;
    let _ = std::fs::remove_file(&config);
    let (mut c, _) = Client::connect_url(&binary.url).await;
    for key in ["a", "b", "c"] {
        c.ok("rules.setFact", json!({"key": key, "value": true}))
            .await;
    }
    let (code, message, _) = c
        .fail("rules.setFact", json!({"key": "d", "value": true}))
        .await;
    assert_eq!(code, "RATE_LIMITED");
    assert!(message.contains("fact limit (3)"), "{message}");
    assert_eq!(
        c.ok("rules.getFact", json!({"key": "d"})).await,
        Value::Null
    );
    // Existing facts still change; a deletion makes room.
    let fact = c
        .ok("rules.setFact", json!({"key": "a", "value": false}))
        .await;
    assert_eq!(fact["version"], 2);
    c.ok("rules.deleteFact", json!({"key": "b"})).await;
    c.ok("rules.setFact", json!({"key": "d", "value": true}))
        .await;

    // A rule setting a new fact beyond the limit fails as an action, not the request.
    c.ok(
        "rules.registerRule",
        json!({"rule": {"id": "more", "name": "more", "trigger": {"type": "event", "topic": "more"},
                        "actions": [{"type": "set_fact", "key": "e", "value": true}]}}),
    )
    .await;
    c.ok("rules.emit", json!({"topic": "more"})).await;
    let stats = c.ok("rules.stats", json!({})).await;
    assert_eq!(stats["factsCount"], 3);
    assert_eq!(stats["actionErrors"], 1);
}

#[tokio::test]
async fn the_rule_work_bound_of_the_config_reaches_the_engine() {
    let mut config = local_config();
    config.rules.enabled = Some(true);
    config.limits.max_rule_work_per_input = 100;
    let server = start(config).await;
    let (mut c, _) = Client::connect(&server).await;
    c.ok(
        "rules.registerRule",
        json!({"rule": {"id": "fan", "name": "fan", "trigger": {"type": "event", "topic": "f"},
                        "actions": [{"type": "emit_event", "topic": "f"},
                                    {"type": "emit_event", "topic": "f"}]}}),
    )
    .await;
    c.ok("rules.emit", json!({"topic": "f"})).await;
    // Per event: a rule run and two (action + queued event) = 5 units after the input's
    // one, so the 20th event's second emit is refused (the default bound of 10 000 would
    // stop at depth 10 instead: 2^11 - 1 events).
    let stats = c.ok("rules.stats", json!({})).await;
    assert_eq!(stats["eventsProcessed"], 20, "{stats}");
    assert_eq!(stats["rulesExecuted"], 20);
    assert_eq!(stats["actionErrors"], 0);
}

/// Round trips of `client` (`store.buckets`) for `window`; their durations, sorted.
async fn round_trips(client: &mut Client, window: Duration) -> Vec<Duration> {
    let started = Instant::now();
    let mut took = Vec::new();
    while started.elapsed() < window {
        let one = Instant::now();
        client.ok("store.buckets", json!({})).await;
        took.push(one.elapsed());
    }
    took.sort();
    took
}

fn p99(sorted: &[Duration]) -> Duration {
    sorted[(sorted.len() * 99 / 100).min(sorted.len() - 1)]
}

/// Red-team rerun: a repeating timer with a 1 ms interval, or a 0 ms timer re-armed by its
/// own expiry, flooded the engine and froze the server. Literal intervals below
/// `limits.minTimerIntervalMs` are refused; computed ones (here 0 ms and 1 ms for 200
/// timers) are raised to it, so the timers fire at most 10 times a second each and a
/// bystander is served promptly meanwhile.
#[tokio::test]
async fn timer_storms_are_refused_or_slowed_to_the_minimum_interval() {
    let binary = Binary::spawn(QUIET).await;
    let (mut attacker, _) = Client::connect_url(&binary.url).await;
    let (mut bystander, _) = Client::connect_url(&binary.url).await;
    let timer_rule = |id: &str, duration: Value, interval: Option<Value>| {
        let mut timer = json!({"name": "storm:${context.i}", "duration": duration,
                               "onExpire": {"topic": "storm.tick"}});
        if let Some(interval) = interval {
            timer["repeat"] = json!({"interval": interval});
        }
        json!({"rule": {"id": id, "name": id, "trigger": {"type": "event", "topic": "storm.go"},
            "actions": [{"type": "for_each", "collection": {"ref": "event.items"}, "as": "i",
                         "actions": [{"type": "set_timer", "timer": timer}]}]}})
    };
    // Literal: refused.
    for (rule, path) in [
        (
            timer_rule("ms1", json!(1), Some(json!(1))),
            "timer.duration",
        ),
        (
            timer_rule("rep1", json!("1s"), Some(json!("1ms"))),
            "timer.repeat.interval",
        ),
    ] {
        let (code, message, details) = attacker.fail("rules.registerRule", rule).await;
        assert_eq!(code, "VALIDATION_ERROR");
        assert!(message.contains("at least 100 ms"), "{message}");
        assert_eq!(details[0]["path"], format!("actions[0].actions[0].{path}"));
    }
    let (code, _, _) = attacker
        .fail(
            "rules.registerRule",
            json!({"rule": {"id": "loop", "name": "loop", "trigger": {"type": "event", "topic": "l"},
                "actions": [{"type": "set_timer", "timer": {"name": "l", "duration": 0,
                             "onExpire": {"topic": "l"}}}]}}),
        )
        .await;
    assert_eq!(code, "VALIDATION_ERROR");

    // Computed: 200 timers of 0 ms, repeating every 1 ms, raised to 100 ms.
    attacker
        .ok(
            "rules.registerRule",
            timer_rule(
                "computed",
                json!({"ref": "event.ms"}),
                Some(json!("${event.ms}")),
            ),
        )
        .await;
    let items: Vec<u32> = (0..200).collect();
    let before = attacker.ok("rules.stats", json!({})).await["eventsProcessed"]
        .as_u64()
        .unwrap_or(0);
    let started = Instant::now();
    attacker
        .ok(
            "rules.emit",
            json!({"topic": "storm.go", "data": {"items": items, "ms": 1}}),
        )
        .await;
    let took = round_trips(&mut bystander, Duration::from_secs(1)).await;
    let stats = attacker.ok("rules.stats", json!({})).await;
    let elapsed = started.elapsed();
    let ticks = stats["eventsProcessed"].as_u64().unwrap_or(0) - before - 1;
    assert_eq!(stats["timersCount"], 200, "{stats}");
    // At most one expiry per timer and 100 ms (at 1 ms: 1 000 per timer and second).
    let bound = 200 * (elapsed.as_millis() as u64 / 100 + 1);
    assert!(
        ticks <= bound,
        "{ticks} expiries in {elapsed:?} (bound {bound})"
    );
    assert!(ticks >= 200, "the timers fire: {ticks}");
    let (p99, max) = (p99(&took), took[took.len() - 1]);
    eprintln!(
        "timer storm: {ticks} expiries in {elapsed:?}; bystander: {} round trips, p99 {p99:?}, max {max:?}",
        took.len()
    );
    assert!(max < Duration::from_millis(250), "bystander waited {max:?}");
}

/// Red-team rerun: a rule doing `for_each` over a large collection (within the work
/// bound) ran its cascade on the runtime worker of the emitting connection, and other
/// clients' `store.get` p99 went to hundreds of ms. Cascades run off the runtime workers:
/// a bystander's store round trips stay prompt while an attacker emits one after another.
#[tokio::test]
async fn a_long_cascade_does_not_delay_other_clients_store_requests() {
    let binary = Binary::spawn(QUIET).await;
    let (mut bystander, _) = Client::connect_url(&binary.url).await;
    bystander
        .ok(
            "store.defineBucket",
            json!({"name": "items", "config": {"key": "id", "schema": {"id": {"type": "string"}}}}),
        )
        .await;
    bystander
        .ok(
            "store.insert",
            json!({"bucket": "items", "data": {"id": "a"}}),
        )
        .await;
    bystander
        .ok("rules.registerRule", json!({"rule": re_emit_rule()}))
        .await;
    // Several attacking connections: one runs a cascade, the others wait for the engine.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut attackers = Vec::new();
    for _ in 0..4 {
        let (mut attacker, _) = Client::connect_url(&binary.url).await;
        let flag = std::sync::Arc::clone(&stop);
        attackers.push(tokio::spawn(async move {
            let items: Vec<u32> = (0..1_000).collect();
            let mut emits = 0u32;
            while !flag.load(std::sync::atomic::Ordering::Relaxed) {
                attacker
                    .ok(
                        "rules.emit",
                        json!({"topic": "t", "data": {"items": items}}),
                    )
                    .await;
                emits += 1;
            }
            emits
        }));
    }
    let started = Instant::now();
    let mut took = Vec::new();
    while started.elapsed() < Duration::from_secs(2) {
        let one = Instant::now();
        let got = bystander
            .ok("store.get", json!({"bucket": "items", "key": "a"}))
            .await;
        took.push(one.elapsed());
        assert_eq!(got["id"], "a");
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut emits = 0;
    for attacker in attackers {
        emits += attacker.await.expect("attacker");
    }
    took.sort();
    let (p99, max) = (p99(&took), took[took.len() - 1]);
    eprintln!(
        "cascades: {emits} emits of 1 000 items; bystander store.get: {} round trips, p99 {p99:?}, max {max:?}",
        took.len()
    );
    assert!(emits >= 2, "the attack ran: {emits}");
    assert!(
        max < Duration::from_millis(250),
        "bystander waited {max:?} (p99 {p99:?})"
    );
}

/// Red-team rerun: `rules.setFact` with huge values, repeated up to `maxFacts`, grew the
/// binary's memory until it died. One value is bounded by `limits.maxFactBytes`
/// (`VALIDATION_ERROR`), all facts by `limits.maxFactsBytes` (`RATE_LIMITED`, as for
/// `maxFacts`), and the attack stays under an RSS bound.
#[tokio::test]
async fn huge_fact_values_are_refused_and_all_facts_stay_within_their_byte_bound() {
    let binary = Binary::with_config(
        &json!({"limits": {"maxFactsBytes": 8 * 1024 * 1024}}),
        QUIET,
    )
    .await;
    let (mut c, _) = Client::connect_url(&binary.url).await;
    let baseline = binary.status_kib("VmRSS") * 1024;

    // One value of 900 KB (under maxPayloadBytes): over maxFactBytes (64 KiB).
    let (code, message, _) = c
        .fail(
            "rules.setFact",
            json!({"key": "huge", "value": "x".repeat(900_000)}),
        )
        .await;
    assert_eq!(code, "VALIDATION_ERROR");
    assert!(
        message.contains("fact size limit (65536 bytes)"),
        "{message}"
    );

    // 60 KB values under ever new keys: 600 of them are 36 MB; the 8 MiB bound stops them
    // after about 140.
    let blob = "y".repeat(60_000);
    let mut stored = 0;
    let mut refused = None;
    for i in 0..600 {
        let answer = c
            .call(
                "rules.setFact",
                json!({"key": format!("blob:{i}"), "value": blob}),
            )
            .await;
        if answer["type"] == "result" {
            stored += 1;
        } else {
            refused.get_or_insert_with(|| answer.clone());
            assert_eq!(answer["code"], "RATE_LIMITED", "{answer}");
        }
    }
    let refused = refused.expect("the byte bound was reached");
    assert!(
        refused["message"]
            .as_str()
            .is_some_and(|m| m.contains("fact storage limit (8388608 bytes")),
        "{refused}"
    );
    assert!((130..=140).contains(&stored), "{stored} facts stored");
    let stats = c.ok("rules.stats", json!({})).await;
    assert_eq!(stats["factsCount"], stored);
    // A deletion makes room again.
    c.ok("rules.deleteFact", json!({"key": "blob:0"})).await;
    c.ok("rules.setFact", json!({"key": "blob:again", "value": blob}))
        .await;

    let peak = binary.peak_rss_kib() * 1024;
    eprintln!(
        "fact flood: {stored} facts of 60 KB stored, RSS {} MiB at start, peak {} MiB",
        baseline / (1024 * 1024),
        peak / (1024 * 1024)
    );
    // Without the bound all 600 were kept (36 MB of values alone).
    assert!(peak < baseline + 30 * 1024 * 1024, "peak RSS {peak} bytes");
}

/// The 32 700-zero array of the red-team rerun: 65 KB of JSON (under the 64 KiB
/// `maxFactBytes` as JSON), about 2.3 MB once parsed.
fn zeros_array() -> Value {
    serde_json::from_str(&format!("[{}0]", "0,".repeat(32_699))).expect("valid JSON")
}

/// Red-team rerun: 500 `rules.setFact` of a 32 700-zero array (32.7 MB of JSON) took the
/// binary from 6 to 1150 MB, because the fact bounds counted JSON bytes and a parsed
/// value takes up to ~35x that. The bounds now count the larger of the JSON and an
/// estimate of the memory: with the default `maxFactBytes` one such value is refused, and
/// with a large one the 64 MiB `maxFactsBytes` stops the flood after about 28.
#[tokio::test]
async fn fact_bounds_count_memory_not_json_bytes() {
    let binary =
        Binary::with_config(&json!({"limits": {"maxFactBytes": 4 * 1024 * 1024}}), QUIET).await;
    let (mut c, _) = Client::connect_url(&binary.url).await;
    let baseline = binary.status_kib("VmRSS") * 1024;
    let zeros = zeros_array();
    let mut stored = 0;
    let mut refused = None;
    for i in 0..500 {
        let answer = c
            .call(
                "rules.setFact",
                json!({"key": format!("z:{i}"), "value": zeros}),
            )
            .await;
        if answer["type"] == "result" {
            stored += 1;
        } else {
            refused.get_or_insert_with(|| answer.clone());
            assert_eq!(answer["code"], "RATE_LIMITED", "{answer}");
        }
    }
    assert!(refused.is_some(), "the byte bound was never reached");
    // About 2.3 MB each in memory (a 72-byte node per zero): 64 MiB hold about 28.
    assert!((20..=40).contains(&stored), "{stored} facts stored");
    let peak = binary.peak_rss_kib() * 1024;
    eprintln!(
        "zeros flood: {stored} of 500 stored, RSS {} MiB at start, peak {} MiB",
        baseline / (1024 * 1024),
        peak / (1024 * 1024)
    );
    assert!(peak < baseline + 300 * 1024 * 1024, "peak RSS {peak} bytes");
}

/// The same value under the default `maxFactBytes` (64 KiB) is over it in memory.
#[tokio::test]
async fn a_small_json_value_large_in_memory_is_over_max_fact_bytes() {
    let mut config = local_config();
    config.rules.enabled = Some(true);
    let server = start(config).await;
    let (mut c, _) = Client::connect(&server).await;
    let (code, message, _) = c
        .fail("rules.setFact", json!({"key": "z", "value": zeros_array()}))
        .await;
    assert_eq!(code, "VALIDATION_ERROR");
    assert!(message.contains("fact size limit"), "{message}");
}

/// Red-team rerun: a count pattern (`window` 1h, `threshold` 1e6) kept every matching
/// event: 600 emits of 900 KB took the binary from 7 to 537 MB. All temporal patterns
/// together now keep at most `limits.maxRuleTemporalBytes` of event data; further events
/// are not buffered.
#[tokio::test]
async fn temporal_pattern_buffers_stay_within_their_byte_bound() {
    let binary = Binary::with_config(
        &json!({"limits": {"maxRuleTemporalBytes": 8 * 1024 * 1024}}),
        QUIET,
    )
    .await;
    let (mut c, _) = Client::connect_url(&binary.url).await;
    c.ok(
        "rules.registerRule",
        json!({"rule": {"id": "hoard", "name": "hoard",
            "trigger": {"type": "temporal", "pattern": {"type": "count",
                "event": {"topic": "order.c"}, "threshold": 1_000_000, "window": "1h"}},
            "actions": [{"type": "log", "level": "info", "message": "never"}]}}),
    )
    .await;
    let baseline = binary.status_kib("VmRSS") * 1024;
    let blob = "x".repeat(900_000);
    for n in 0..200 {
        c.ok(
            "rules.emit",
            json!({"topic": "order.c", "data": {"n": n, "b": blob}}),
        )
        .await;
    }
    let peak = binary.peak_rss_kib() * 1024;
    eprintln!(
        "count pattern flood: 200 events of 900 KB, RSS {} MiB at start, peak {} MiB",
        baseline / (1024 * 1024),
        peak / (1024 * 1024)
    );
    // Without the bound all 200 were kept (180 MB of data alone).
    assert!(peak < baseline + 80 * 1024 * 1024, "peak RSS {peak} bytes");
}

/// Fourth red-team run: a `set_timer` named from an event field (`order:${event.b}`) with a
/// 400 KB `b` kept 400 KB of name per timer, three times over, uncounted: 1 000 emits took
/// the server from 8 to 1 166 MB. A timer's name and topic now count with its data, per
/// timer (`maxFactBytes`) and for all timers together (`maxFactsBytes`).
#[tokio::test]
async fn timer_names_count_against_the_timer_memory_bounds() {
    let binary =
        Binary::with_config(&json!({"limits": {"maxFactsBytes": 1024 * 1024}}), QUIET).await;
    let (mut c, _) = Client::connect_url(&binary.url).await;
    c.ok(
        "rules.registerRule",
        json!({"rule": {"id": "park", "name": "park",
            "trigger": {"type": "event", "topic": "order.t"},
            "actions": [{"type": "set_timer", "timer": {"name": "order:${event.b}",
                "duration": "1h", "onExpire": {"topic": "order.x"}}}]}}),
    )
    .await;
    // Names of 400 KB: each timer alone is over `maxFactBytes` (64 KiB).
    for n in 0..5 {
        c.ok(
            "rules.emit",
            json!({"topic": "order.t", "data": {"b": format!("{n}{}", "y".repeat(400_000))}}),
        )
        .await;
    }
    let stats = c.ok("rules.stats", json!({})).await;
    assert_eq!(stats["timersCount"], 0, "{stats}");
    assert_eq!(stats["actionErrors"], 5, "{stats}");
    // Names of 20 KB (60 KB counted each): all of them together stop at 1 MiB.
    for n in 0..40 {
        c.ok(
            "rules.emit",
            json!({"topic": "order.t", "data": {"b": format!("{n:02}{}", "y".repeat(20_000))}}),
        )
        .await;
    }
    let stats = c.ok("rules.stats", json!({})).await;
    let kept = stats["timersCount"].as_u64().unwrap_or(0);
    assert!((10..=17).contains(&kept), "{stats}");
    assert_eq!(
        stats["actionErrors"].as_u64(),
        Some(5 + 40 - kept),
        "{stats}"
    );
}

/// Fourth red-team run: all temporal patterns share `limits.maxRuleTemporalBytes`, so one
/// client's count pattern that filled it (the `hoard` above) made an administrator's small
/// count pattern stop firing. A full pool now takes room from the rule holding the most.
#[tokio::test]
async fn a_rule_that_filled_the_temporal_pool_does_not_starve_a_small_pattern() {
    let binary = Binary::with_config(
        &json!({"limits": {"maxRuleTemporalBytes": 4 * 1024 * 1024}}),
        QUIET,
    )
    .await;
    let (mut c, _) = Client::connect_url(&binary.url).await;
    c.ok(
        "rules.registerRule",
        json!({"rule": {"id": "hoard", "name": "hoard",
            "trigger": {"type": "temporal", "pattern": {"type": "count",
                "event": {"topic": "order.c"}, "threshold": 1_000_000, "window": "1h"}},
            "actions": [{"type": "log", "level": "info", "message": "never"}]}}),
    )
    .await;
    // Large events, then smaller and smaller ones: the pool ends up full to within a
    // few bytes.
    for size in [900_000, 200_000, 50_000, 10_000, 2_000, 500, 100, 10] {
        let blob = "x".repeat(size);
        for n in 0..5 {
            c.ok(
                "rules.emit",
                json!({"topic": "order.c", "data": {"n": n, "b": blob}}),
            )
            .await;
        }
    }
    c.ok(
        "rules.registerRule",
        json!({"rule": {"id": "alarm", "name": "alarm",
            "trigger": {"type": "temporal", "pattern": {"type": "count",
                "event": {"topic": "admin.login_failed"}, "threshold": 3, "window": "1h"}},
            "actions": [{"type": "set_fact", "key": "admin:alarm", "value": true}]}}),
    )
    .await;
    for n in 0..3 {
        c.ok(
            "rules.emit",
            json!({"topic": "admin.login_failed", "data": {"n": n, "who": "y".repeat(1_000)}}),
        )
        .await;
    }
    let fact = c.ok("rules.getFact", json!({"key": "admin:alarm"})).await;
    assert_eq!(fact, json!(true), "the small count pattern fired");
}

/// Red-team rerun: 500 timers with 900 KB of `onExpire.data` each took 452 MB (about 9 GB
/// at `maxTimers`). One timer's data is now bounded by `limits.maxFactBytes`: setting a
/// larger one is an action error and no timer is kept.
#[tokio::test]
async fn timer_data_over_max_fact_bytes_is_an_action_error() {
    let mut config = local_config();
    config.rules.enabled = Some(true);
    let server = start(config).await;
    let (mut c, _) = Client::connect(&server).await;
    c.ok(
        "rules.registerRule",
        json!({"rule": {"id": "park", "name": "park",
            "trigger": {"type": "event", "topic": "order.t"},
            "actions": [{"type": "set_timer", "timer": {"name": "order:t:${event.n}",
                "duration": "1h", "onExpire": {"topic": "order.x", "data": {"ref": "event.b"}}}}]}}),
    )
    .await;
    c.ok(
        "rules.emit",
        json!({"topic": "order.t", "data": {"n": 0, "b": "small"}}),
    )
    .await;
    for n in 1..=20 {
        c.ok(
            "rules.emit",
            json!({"topic": "order.t", "data": {"n": n, "b": "x".repeat(900_000)}}),
        )
        .await;
    }
    let stats = c.ok("rules.stats", json!({})).await;
    assert_eq!(stats["timersCount"], 1, "{stats}");
    assert_eq!(stats["actionErrors"], 20, "{stats}");
}

/// Red-team rerun: a client allowed `rules.*` but not to read bucket `secret` emitted
/// `bucket.secret.inserted` with a forged record; it reached `bucket.secret.*` subscribers
/// and triggered rules on that topic. The `bucket.` namespace is now reserved for the
/// store bridge: `rules.emit` under it and rules emitting under it are refused
/// (`VALIDATION_ERROR`), and a computed topic under it is an action error.
#[tokio::test]
async fn store_change_events_cannot_be_forged() {
    let mut config = local_config();
    config.rules.enabled = Some(true);
    config.rules.store_bridge = true;
    config.store = serde_json::from_value(json!({
        "buckets": {"secret": {"key": "id", "schema": {"id": {"type": "number"}}}}
    }))
    .expect("store");
    let server = start(config).await;
    let (mut c, _) = Client::connect(&server).await;
    let sub = c
        .ok("rules.subscribe", json!({"pattern": "bucket.secret.*"}))
        .await;
    let (code, message, _) = c
        .fail(
            "rules.emit",
            json!({"type": "rules.emit", "topic": "bucket.secret.inserted",
                   "data": {"record": {"id": 1, "forged": true}}}),
        )
        .await;
    assert_eq!(code, "VALIDATION_ERROR");
    assert!(message.contains("reserved"), "{message}");
    for topic in ["bucket.secret.inserted", "bucket.${event.b}.inserted"] {
        let (code, message, _) = c
            .fail(
                "rules.registerRule",
                json!({"rule": {"id": "forge", "name": "forge",
                    "trigger": {"type": "event", "topic": "order.f"},
                    "actions": [{"type": "emit_event", "topic": topic, "data": {}}]}}),
            )
            .await;
        assert_eq!(code, "VALIDATION_ERROR", "{topic}");
        assert!(
            message.contains("reserved") || message.contains("Validation"),
            "{message}"
        );
    }
    // A topic computed entirely from the event: an action error when it lands under `bucket.`.
    c.ok(
        "rules.registerRule",
        json!({"rule": {"id": "relay", "name": "relay",
            "trigger": {"type": "event", "topic": "order.f"},
            "actions": [{"type": "emit_event", "topic": "${event.t}", "data": {"forged": true}}]}}),
    )
    .await;
    c.ok(
        "rules.emit",
        json!({"topic": "order.f", "data": {"t": "bucket.secret.inserted"}}),
    )
    .await;
    let stats = c.ok("rules.stats", json!({})).await;
    assert_eq!(stats["actionErrors"], 1, "{stats}");
    // The first push the subscriber sees is the real store change.
    c.ok(
        "store.insert",
        json!({"bucket": "secret", "data": {"id": 7}}),
    )
    .await;
    let push = c.next_push().await;
    assert_eq!(push["subscriptionId"], sub["subscriptionId"]);
    assert_eq!(push["data"]["event"]["source"], "store", "{push}");
    assert_eq!(push["data"]["event"]["data"]["record"]["id"], 7, "{push}");
}

/// Red-team rerun: `rules.getAllFacts` answered 65 MB (1000 facts of 65 KB), ignoring
/// `limits.maxResultBytes`; two clients calling it three times took RSS from 71 to 503 MB.
/// `rules.getAllFacts` and `rules.queryFacts` now answer `VALIDATION_ERROR` with
/// `details.limit` past it, as the store reads do.
#[tokio::test]
async fn fact_listings_are_bounded_by_max_result_bytes() {
    let mut config = local_config();
    config.rules.enabled = Some(true);
    config.limits.max_result_bytes = 1024 * 1024;
    let server = start(config).await;
    let (mut c, _) = Client::connect(&server).await;
    let blob = "y".repeat(60_000);
    for i in 0..40 {
        c.ok(
            "rules.setFact",
            json!({"key": format!("blob:{i}"), "value": blob}),
        )
        .await;
    }
    c.ok("rules.setFact", json!({"key": "small:1", "value": 1}))
        .await;
    for (op, fields) in [
        ("rules.getAllFacts", json!({})),
        ("rules.queryFacts", json!({"pattern": "blob:*"})),
    ] {
        let (code, message, details) = c.fail(op, fields).await;
        assert_eq!(code, "VALIDATION_ERROR", "{op}");
        assert!(
            message.contains("Result exceeds 1048576 bytes"),
            "{message}"
        );
        assert_eq!(details["limit"], 1024 * 1024);
    }
    let small = c
        .ok("rules.queryFacts", json!({"pattern": "small:*"}))
        .await;
    assert_eq!(small.as_array().map(Vec::len), Some(1), "{small}");
}

/// Third red-team run: 10 000 timers with 60 KB of `onExpire.data` each (each within
/// `maxFactBytes`) took 600 MB. All active timers' data together may take at most
/// `maxFactsBytes` (approximate memory); a `set_timer` past it is an action error, and
/// cancelling a timer frees its room.
#[tokio::test]
async fn all_timers_data_together_is_bounded_by_max_facts_bytes() {
    let mut config = local_config();
    config.rules.enabled = Some(true);
    config.limits.max_facts_bytes = 1_000_000;
    let server = start(config).await;
    let (mut c, _) = Client::connect(&server).await;
    c.ok(
        "rules.registerRule",
        json!({"rule": {"id": "park", "name": "park",
            "trigger": {"type": "event", "topic": "order.t"},
            "actions": [{"type": "set_timer", "timer": {"name": "order:t:${event.n}",
                "duration": "1h", "onExpire": {"topic": "order.x", "data": {"ref": "event.b"}}}}]}}),
    )
    .await;
    c.ok(
        "rules.registerRule",
        json!({"rule": {"id": "unpark", "name": "unpark",
            "trigger": {"type": "event", "topic": "order.c"},
            "actions": [{"type": "cancel_timer", "name": "order:t:${event.n}"}]}}),
    )
    .await;
    for n in 0..40 {
        c.ok(
            "rules.emit",
            json!({"topic": "order.t", "data": {"n": n, "b": "x".repeat(60_000)}}),
        )
        .await;
    }
    let stats = c.ok("rules.stats", json!({})).await;
    let kept = stats["timersCount"].as_u64().expect("timersCount");
    assert!((10..=16).contains(&kept), "{stats}");
    assert_eq!(stats["actionErrors"], 40 - kept, "{stats}");
    // Cancelling one makes room for one more.
    c.ok("rules.emit", json!({"topic": "order.c", "data": {"n": 0}}))
        .await;
    c.ok(
        "rules.emit",
        json!({"topic": "order.t", "data": {"n": 100, "b": "x".repeat(60_000)}}),
    )
    .await;
    let stats = c.ok("rules.stats", json!({})).await;
    assert_eq!(stats["timersCount"], kept, "{stats}");
    assert_eq!(stats["actionErrors"], 40 - kept, "{stats}");
}

/// A rule of `count` conditions `not_contains "zz<i>"` on `event.text` of topic `t`.
fn not_contains_rule(id: &str, count: usize) -> Value {
    let conditions: Vec<Value> = (0..count)
        .map(|i| {
            json!({"source": {"type": "event", "field": "text"},
                        "operator": "not_contains", "value": format!("zz{i}")})
        })
        .collect();
    json!({"id": id, "name": id, "trigger": {"type": "event", "topic": "t"},
           "conditions": conditions,
           "actions": [{"type": "emit_event", "topic": "ok", "data": {}}]})
}

/// Red-team rerun: a 616 KB rule of 7 000 `not_contains` over a 900 KB event field cost
/// ~250 ms per evaluation (release build; tens of seconds in a debug build) as one work
/// unit, and emitting such events in a loop made another client's `rules.getFact` wait
/// 16.5 s. What conditions look at is charged to `limits.maxRuleScanBytes` (16 MiB) before
/// they compare: each emit stops after ~18 conditions, the bystander is served promptly
/// and the truncations are counted. (The rule itself is over the default
/// `limits.maxRuleBytes`; the limit is raised so that the scan bound is what is tested.)
///
/// In process (not the binary) so that the engine's statistics, which count the truncated
/// cascades, can be read (`rules.stats` does not carry them).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conditions_over_a_large_field_are_bounded_by_the_scanned_bytes() {
    let mut config = local_config();
    config.rules.enabled = Some(true);
    config.heartbeat.interval_ms = 600_000;
    config.limits.max_rule_bytes = 8 * 1024 * 1024;
    let server = start(config).await;
    let (mut attacker, _) = Client::connect(&server).await;
    let (mut bystander, _) = Client::connect(&server).await;
    attacker
        .ok(
            "rules.registerRule",
            json!({"rule": not_contains_rule("scan", 7_000)}),
        )
        .await;
    bystander
        .ok("rules.setFact", json!({"key": "probe", "value": 1}))
        .await;

    const EMITS: usize = 5;
    let emits = tokio::spawn(async move {
        let text = "x".repeat(900_000);
        let mut took = Vec::new();
        for _ in 0..EMITS {
            let started = Instant::now();
            let answer = attacker
                .call("rules.emit", json!({"topic": "t", "data": {"text": text}}))
                .await;
            took.push(started.elapsed());
            assert_eq!(answer["type"], "result", "{answer}");
        }
        (attacker, took)
    });
    // Each `rules.getFact` waits at most for the condition scan of one emit (before the
    // bound: for all 7 000 conditions over 900 KB).
    let mut waited = Vec::new();
    loop {
        let started = Instant::now();
        let answer = tokio::time::timeout(
            PROMPT,
            bystander.ok("rules.getFact", json!({"key": "probe"})),
        )
        .await
        .expect("rules.getFact answered within 5 s");
        waited.push(started.elapsed());
        assert_eq!(answer, json!(1));
        if emits.is_finished() {
            break;
        }
    }
    let (mut attacker, took) = emits.await.expect("emit task");
    let slowest = waited.iter().max().copied().unwrap_or_default();
    eprintln!(
        "7 000 not_contains over 900 KB: emits took {took:?}; bystander rules.getFact: {} \
         round trips, slowest {slowest:?}",
        waited.len()
    );
    // Generous for a debug build on a busy machine (the scan of the bound's 16 MiB takes
    // ~100 ms there, ~1 ms in a release build); before the bound one emit held the engine
    // for more than 10 s in a debug build (~300 ms in a release build).
    assert!(
        slowest < Duration::from_secs(1),
        "bystander waited {slowest:?}"
    );
    let engine = server.rules().expect("rules enabled");
    let stats = engine.stats();
    assert_eq!(stats.cascades_truncated, EMITS as u64, "{stats:?}");
    assert_eq!((stats.rules_executed, stats.action_errors), (0, 0));
    // The same rule over a short text runs.
    attacker
        .ok(
            "rules.emit",
            json!({"topic": "t", "data": {"text": "hello"}}),
        )
        .await;
    let stats = engine.stats();
    assert_eq!(
        (stats.cascades_truncated, stats.rules_executed),
        (EMITS as u64, 1)
    );
}

/// Red-team rerun: 400 rules of 616 KB were accepted (512 MB held) and `rules.getRules`
/// took 11.8 s. One rule is bounded by `limits.maxRuleBytes` (`VALIDATION_ERROR`), all
/// rules by `limits.maxRulesBytes` (`RATE_LIMITED`); unregistering frees room.
#[tokio::test]
async fn rule_definitions_are_bounded_in_bytes() {
    let binary =
        Binary::with_config(&json!({"limits": {"maxRulesBytes": 256 * 1024}}), QUIET).await;
    let (mut c, _) = Client::connect_url(&binary.url).await;
    let (code, message, _) = c
        .fail(
            "rules.registerRule",
            json!({"rule": not_contains_rule("huge", 7_000)}),
        )
        .await;
    assert_eq!(code, "VALIDATION_ERROR");
    assert!(
        message.contains("rule \"huge\": definition of")
            && message.contains("exceeds the rule size limit (65536 bytes)"),
        "{message}"
    );

    // Rules of 60 conditions (~42 KB counted): the 256 KiB total holds 6.
    for i in 0..6 {
        c.ok(
            "rules.registerRule",
            json!({"rule": not_contains_rule(&format!("r{i}"), 60)}),
        )
        .await;
    }
    let (code, message, _) = c
        .fail(
            "rules.registerRule",
            json!({"rule": not_contains_rule("r6", 60)}),
        )
        .await;
    assert_eq!(code, "RATE_LIMITED");
    assert!(
        message.contains("rule storage limit (262144 bytes of all rules) reached"),
        "{message}"
    );
    c.ok("rules.unregisterRule", json!({"ruleId": "r0"})).await;
    c.ok(
        "rules.registerRule",
        json!({"rule": not_contains_rule("r6", 60)}),
    )
    .await;
    let stats = c.ok("rules.stats", json!({})).await;
    assert_eq!(stats["rulesCount"], 6, "{stats}");
}

/// Seventh red-team run: a `matches` condition whose pattern comes from the event
/// (`{"ref": "event.p"}`) compiled the pattern on every evaluation, each compile up to the
/// 1 MiB regex size limit (~44 ms): 100 rules × 40 such conditions made one 60-byte
/// `rules.emit` take 4.4 s and another client's `rules.getFact` wait as long. Patterns are
/// now compiled within 256 KiB and a compile not cached costs a quarter of the input's
/// scanned-bytes bound, so one input compiles at most four.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn regexes_taken_from_event_data_are_bounded_per_input() {
    let mut config = local_config();
    config.rules.enabled = Some(true);
    config.heartbeat.interval_ms = 600_000;
    let server = start(config).await;
    let (mut attacker, _) = Client::connect(&server).await;
    let (mut bystander, _) = Client::connect(&server).await;
    let condition = json!({"source": {"type": "event", "field": "s"}, "operator": "matches", "value": {"ref": "event.p"}});
    for i in 0..100 {
        let rule = json!({
            "id": format!("rx{i}"), "name": "regex from the event",
            "trigger": {"type": "event", "topic": "rx.*"},
            "conditions": vec![condition.clone(); 40],
            "actions": [{"type": "log", "level": "info", "message": "matched"}]
        });
        attacker
            .ok("rules.registerRule", json!({"rule": rule}))
            .await;
    }
    bystander
        .ok("rules.setFact", json!({"key": "probe", "value": 1}))
        .await;
    let emits = tokio::spawn(async move {
        let mut took = Vec::new();
        for i in 0..3 {
            // The red team's frame; each emit a new pattern, so none is cached.
            let pattern = format!("(?:\\w{{40}}){{{}}}", 40 + i);
            let started = Instant::now();
            let answer = attacker
                .call(
                    "rules.emit",
                    json!({"topic": "rx.a", "data": {"s": "zz", "p": pattern}}),
                )
                .await;
            took.push(started.elapsed());
            assert_eq!(answer["type"], "result", "{answer}");
        }
        took
    });
    let mut waited = Vec::new();
    loop {
        let started = Instant::now();
        let answer = tokio::time::timeout(
            PROMPT,
            bystander.ok("rules.getFact", json!({"key": "probe"})),
        )
        .await
        .expect("rules.getFact answered within 5 s");
        waited.push(started.elapsed());
        assert_eq!(answer, json!(1));
        if emits.is_finished() {
            break;
        }
    }
    let took = emits.await.expect("emit task");
    let slowest = waited.iter().max().copied().unwrap_or_default();
    eprintln!(
        "100 rules x 40 matches on event patterns: emits took {took:?}; bystander slowest {slowest:?} of {}",
        waited.len()
    );
    // Before: more than 4 s per emit in a release build. Now at most four failing
    // compiles per emit (a few ms each in release, tens in a debug build).
    for t in &took {
        assert!(*t < Duration::from_secs(2), "an emit took {t:?}");
    }
    assert!(
        slowest < Duration::from_secs(1),
        "bystander waited {slowest:?}"
    );
    let stats = server.rules().expect("rules enabled").stats();
    assert_eq!(stats.cascades_truncated, 3, "{stats:?}");
}
