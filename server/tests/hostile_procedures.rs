//! Hostile use of procedures over the wire (the eighth red-team run): step results that
//! multiply memory, definitions that are small in JSON and large in memory, an overflowing
//! division, and procedures or rules reaching the audit log's bucket.

mod common;

use common::{Client, local_config, start};
use serde_json::{Value, json};

/// A server with rules and the store bridge on, and the audit log kept in `_audit`.
fn config() -> noex_server::ServerConfig {
    let mut config = local_config();
    config.rules.enabled = Some(true);
    config.rules.store_bridge = true;
    config.heartbeat.interval_ms = 600_000;
    config.audit = serde_json::from_value(json!({"tiers": ["admin", "write"], "bucket": "_audit"}))
        .expect("audit section");
    config
}

async fn fails(c: &mut Client, op: &str, fields: Value) -> (String, String) {
    let (code, message, _) = c.fail(op, fields).await;
    (code, message)
}

/// `store.where` of 1 000 records, then a `transform` map adding the input's 900 KB note
/// to each: one call held 1.7 GB. The step results of a call are bounded (4 × the result
/// limit), item by item inside a transform.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn step_results_of_one_call_are_bounded_in_memory() {
    let server = start(config()).await;
    let (mut c, _) = Client::connect(&server).await;
    c.ok(
        "store.defineBucket",
        json!({"name": "tasks", "config": {"key": "id", "schema": {"id": {"type": "number"}}}}),
    )
    .await;
    let tasks: Vec<Value> = (0..1000)
        .map(|i| json!({"id": i, "owner": "wes"}))
        .collect();
    c.ok(
        "store.insertMany",
        json!({"bucket": "tasks", "data": tasks}),
    )
    .await;
    c.ok("procedures.register", json!({"procedure": {"name": "preview", "input": {"note": {"type": "string"}}, "steps": [
        {"action": "store.where", "bucket": "tasks", "filter": {"owner": "wes"}, "as": "mine"},
        {"action": "transform", "source": "mine", "operation": "map", "args": {"note": "{{ input.note }}"}, "as": "labelled"},
        {"action": "return", "value": "{{ labelled.length }}"}]}}))
        .await;
    let small = c
        .ok(
            "procedures.call",
            json!({"name": "preview", "input": {"note": "hello"}}),
        )
        .await;
    assert_eq!(small["result"], json!(1000));
    let before = peak_rss_kib();
    let (code, message) = fails(
        &mut c,
        "procedures.call",
        json!({"name": "preview", "input": {"note": "n".repeat(900_000)}}),
    )
    .await;
    let grew_mib = (peak_rss_kib() - before) / 1024;
    assert_eq!(code, "VALIDATION_ERROR");
    assert!(
        message.contains("steps[1]") && message.contains("take more than"),
        "{message}"
    );
    // Before: 1.7 GB. The bound is 32 MiB of results plus the input and the answer.
    assert!(
        grew_mib < 300,
        "the call grew the peak RSS by {grew_mib} MiB"
    );

    // Doubling a 100 KB string step after step stops at the bound too.
    let mut steps = vec![
        json!({"action": "store.where", "bucket": "tasks", "filter": {"id": 0}, "as": "d0"}),
        json!({"action": "transform", "source": "d0", "operation": "map", "args": {"s": "{{ input.s }}"}, "as": "d1"}),
    ];
    for k in 2..=14 {
        steps.push(
            json!({"action": "transform", "source": format!("d{}", k - 1), "operation": "map",
            "args": {"s": {"$concat": ["$item.s", "$item.s"]}}, "as": format!("d{k}")}),
        );
    }
    c.ok("procedures.register", json!({"procedure": {"name": "doubling", "input": {"s": {"type": "string"}}, "steps": steps}}))
        .await;
    let (code, message) = fails(
        &mut c,
        "procedures.call",
        json!({"name": "doubling", "input": {"s": "x".repeat(100_000)}}),
    )
    .await;
    assert_eq!(code, "VALIDATION_ERROR", "{message}");
    assert!(
        message.contains("take more than") || message.contains("operands take more than"),
        "{message}"
    );
}

/// The peak RSS of this process (the server runs in it), in KiB.
fn peak_rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM")
}

/// `{"name":"pN","steps":[{"action":"return","value":[0 × 32000]}]}` is 64 001 bytes of
/// JSON and ~4.4 MB in memory: 679 of them held 3 GB. Definitions are measured in memory
/// too, as rules are.
#[tokio::test]
async fn procedure_definitions_are_measured_in_memory() {
    let server = start(config()).await;
    let (mut c, _) = Client::connect(&server).await;
    let zeros = vec![0; 32_000];
    let (code, message) = fails(
        &mut c,
        "procedures.register",
        json!({"procedure": {"name": "p1", "steps": [{"action": "return", "value": zeros}]}}),
    )
    .await;
    assert_eq!(code, "VALIDATION_ERROR");
    assert!(message.contains("limits.maxProcedureBytes"), "{message}");
}

/// `{"$divide": [-9223372036854775808, -1]}` panicked (remainder overflow) in a return, a
/// filter, a setFact value and a transactional update.
#[tokio::test]
async fn an_overflowing_division_is_a_number_not_a_panic() {
    let server = start(config()).await;
    let (mut c, _) = Client::connect(&server).await;
    c.ok(
        "procedures.register",
        json!({"procedure": {"name": "div", "steps": [
        {"action": "return", "value": {"$divide": [i64::MIN, -1]}}]}}),
    )
    .await;
    let answer = c
        .ok("procedures.call", json!({"name": "div", "input": {}}))
        .await;
    // Not an i64: computed in floating point, as the original's numbers are.
    assert_eq!(
        answer["result"].as_f64(),
        Some(9.223_372_036_854_776e18),
        "{answer}"
    );
}

/// A procedure read, rewrote and deleted the audit log's entries (`store.*` refuses that
/// bucket to everyone), and `rules.subscribe` on `bucket._audit.*` received every entry.
#[tokio::test]
async fn neither_procedures_nor_rules_reach_the_audit_bucket() {
    let server = start(config()).await;
    let (mut c, _) = Client::connect(&server).await;
    let (mut watcher, _) = Client::connect(&server).await;
    // The red team's frames.
    let (code, message) = fails(&mut c, "procedures.register", json!({"procedure": {"name": "tamper", "input": {"u": {"type": "string"}}, "steps": [
        {"action": "store.where", "bucket": "_audit", "filter": {"entry.userId": "{{ input.u }}"}, "as": "mine"}]}}))
        .await;
    assert_eq!(code, "VALIDATION_ERROR");
    assert!(message.contains("\"_audit\""), "{message}");
    let (code, _) = fails(
        &mut c,
        "procedures.register",
        json!({"procedure": {"name": "wipe", "steps": [
        {"action": "store.delete", "bucket": "_audit", "key": 1}]}}),
    )
    .await;
    assert_eq!(code, "VALIDATION_ERROR");
    // A subscription to the audit bucket's change events sees nothing of it.
    watcher
        .ok("rules.subscribe", json!({"pattern": "bucket.*"}))
        .await;
    // An audited admin operation appends an entry...
    c.ok(
        "store.defineBucket",
        json!({"name": "payroll", "config": {"key": "id", "schema": {"id": {"type": "string"}}}}),
    )
    .await;
    // ...and a write to an ordinary bucket is forwarded.
    c.ok(
        "store.insert",
        json!({"bucket": "payroll", "data": {"id": "x"}}),
    )
    .await;
    let push = watcher.next_push().await;
    assert_eq!(
        push["data"]["topic"],
        json!("bucket.payroll.inserted"),
        "{push}"
    );
    let entries = c
        .ok("audit.query", json!({"operation": "store.defineBucket"}))
        .await;
    assert_eq!(
        entries["entries"].as_array().map(Vec::len),
        Some(1),
        "{entries}"
    );
}

/// A server with procedure `slow`: a count over 2 000 records with a 999-clause filter, far
/// longer than the call's `timeoutMs` of [`SLOW_TIMEOUT_MS`], so every call runs until its
/// deadline stops it.
async fn slow_procedure_server(mut config: noex_server::ServerConfig) -> noex_server::ServerHandle {
    // Room for a definition with a 999-clause filter.
    config.limits.max_procedure_bytes = 1024 * 1024;
    let server = start(config).await;
    let (mut c, _) = Client::connect(&server).await;
    c.ok(
        "store.defineBucket",
        json!({"name": "small", "config": {"key": "id", "schema": {"id": {"type": "number"}, "a": {"type": "number"}}}}),
    )
    .await;
    let records: Vec<Value> = (0..1000).map(|i| json!({"id": i, "a": i})).collect();
    c.ok(
        "store.insertMany",
        json!({"bucket": "small", "data": records.clone()}),
    )
    .await;
    let more: Vec<Value> = (1000..2000).map(|i| json!({"id": i, "a": i})).collect();
    c.ok("store.insertMany", json!({"bucket": "small", "data": more}))
        .await;
    // 2 000 records x 999 clauses: far longer than the call's 300 ms, so every call runs
    // until its deadline stops it.
    let long_or = json!({"$or": vec![json!({"a": -1}); 999]});
    c.ok(
        "procedures.register",
        json!({"procedure": {"name": "slow", "timeoutMs": SLOW_TIMEOUT_MS, "steps": [
            {"action": "store.count", "bucket": "small", "filter": long_or, "as": "n"},
            {"action": "return", "value": "{{ n }}"}]}}),
    )
    .await;
    server
}

const SLOW_TIMEOUT_MS: u64 = 300;

/// Asserts `frame` is the timeout answer of procedure `slow`.
fn timed_out(frame: &Value) {
    assert_eq!(frame["code"], "INTERNAL_ERROR", "{frame}");
    assert!(
        frame["message"]
            .as_str()
            .is_some_and(|m| m.contains("timed out after 300ms")),
        "{frame}"
    );
}

/// One client's calls run at most `procedures.maxConcurrentCallsPerClient` at once, from
/// however many connections (each call may run for its whole `timeoutMs`: before, a client
/// with many connections ran as many at once); another client's call does not wait for
/// them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clients_calls_run_a_bounded_number_at_once_and_others_do_not_wait() {
    const TIMEOUT_MS: u64 = SLOW_TIMEOUT_MS;
    let mut config = config();
    config.procedures.max_concurrent_calls_per_client = 1;
    // Slots for everyone: this test is about one client's calls.
    config.procedures.max_concurrent_calls = Some(8);
    let server = slow_procedure_server(config).await;
    let mut attacker = Vec::new();
    for _ in 0..3 {
        attacker.push(Client::connect_from(&server, [127, 0, 0, 1]).await);
    }
    let mut other = Client::connect_from(&server, [127, 0, 0, 2]).await;
    let started = std::time::Instant::now();
    for a in &mut attacker {
        a.send(json!({"id": 1, "type": "procedures.call", "name": "slow"}))
            .await;
    }
    other
        .send(json!({"id": 1, "type": "procedures.call", "name": "slow"}))
        .await;
    let answer = other.recv().await;
    timed_out(&answer);
    let other_done = started.elapsed();
    let mut last = std::time::Duration::ZERO;
    for a in &mut attacker {
        let answer = a.recv().await;
        timed_out(&answer);
        last = last.max(started.elapsed());
    }
    eprintln!(
        "the other client was answered after {other_done:?}, the attacker's last call after {last:?}"
    );
    // One at a time: three deadlines one after the other.
    assert!(
        last >= std::time::Duration::from_millis(3 * TIMEOUT_MS),
        "the attacker's three calls ended after {last:?}"
    );
    assert!(
        other_done < last,
        "the other client waited for the attacker: {other_done:?} vs {last:?}"
    );
}

/// All clients together run at most `procedures.maxConcurrentCalls` calls at once (red team
/// 9: calls from 40 addresses, each bounded on its own, held 2.4 GB and put others' get
/// p99 at 1 s); the others wait for a slot.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn all_clients_together_run_a_bounded_number_of_calls_at_once() {
    let mut config = config();
    config.procedures.max_concurrent_calls = Some(1);
    let server = slow_procedure_server(config).await;
    let mut clients = Vec::new();
    for last in 1..=3 {
        clients.push(Client::connect_from(&server, [127, 0, 0, last]).await);
    }
    let started = std::time::Instant::now();
    for c in &mut clients {
        c.send(json!({"id": 1, "type": "procedures.call", "name": "slow"}))
            .await;
    }
    let mut last = std::time::Duration::ZERO;
    for c in &mut clients {
        timed_out(&c.recv().await);
        last = last.max(started.elapsed());
    }
    eprintln!("three clients' calls ended after {last:?}");
    assert!(
        last >= std::time::Duration::from_millis(3 * SLOW_TIMEOUT_MS),
        "three calls ran at once: all ended after {last:?}"
    );
}

/// The records one call writes without `transaction` are bounded together like a
/// transaction's (red team 9: one call of 87 inserts of a 1 MB input wrote 87 MB in
/// 135 ms, eight calls 696 MB): the write after `limits.maxTransactionBytes` is passed
/// fails, naming its step; what the earlier steps wrote stays, as for any failed call
/// without `transaction`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_records_one_call_writes_are_bounded_without_a_transaction_too() {
    let mut config = config();
    config.limits.max_transaction_bytes = 2 * 1024 * 1024;
    let server = start(config).await;
    let (mut c, _) = Client::connect(&server).await;
    c.ok(
        "store.defineBucket",
        json!({"name": "fat", "config": {"key": "id", "schema": {"id": {"type": "string"}, "p": {"type": "string"}}}}),
    )
    .await;
    let steps: Vec<Value> = (0..5)
        .map(|i| json!({"action": "store.insert", "bucket": "fat", "data": {"id": format!("{{{{ input.k }}}}-{i}"), "p": "{{ input.s }}"}}))
        .collect();
    c.ok(
        "procedures.register",
        json!({"procedure": {"name": "fill", "input": {"k": {"type": "string"}, "s": {"type": "string"}}, "steps": steps}}),
    )
    .await;
    let (code, message) = fails(
        &mut c,
        "procedures.call",
        json!({"name": "fill", "input": {"k": "a", "s": "x".repeat(600 * 1024)}}),
    )
    .await;
    assert_eq!(code, "VALIDATION_ERROR", "{message}");
    assert!(
        message.contains("steps[4]") && message.contains("limits.maxTransactionBytes"),
        "{message}"
    );
    // 4 x 600 KB: the fourth passed 2 MiB, the fifth was refused.
    assert_eq!(c.ok("store.count", json!({"bucket": "fat"})).await, 4);
    // Small writes are not affected.
    c.ok(
        "procedures.call",
        json!({"name": "fill", "input": {"k": "b", "s": "small"}}),
    )
    .await;
    assert_eq!(c.ok("store.count", json!({"bucket": "fat"})).await, 9);
}
