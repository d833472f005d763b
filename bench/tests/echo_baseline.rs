//! End-to-end: a tiny `request-rtt`, `fanout` and `connections` run against the echo
//! baseline (the floor) produces sane figures (non-zero throughput, ordered percentiles,
//! every push delivered, server CPU per operation, RSS per connection),
//! and `transfer` and `durable-writes`, which need `procedures.*` and `store.*`, are cleanly
//! "not applicable" to it.

use std::process::Command;

use serde_json::Value;

fn metric(doc: &Value, scenario: &str, name: &str) -> f64 {
    let results = doc["results"].as_array().cloned().unwrap_or_default();
    let row = results
        .iter()
        .find(|r| r["scenario"] == scenario && r["target"] == "echo")
        .unwrap_or_else(|| panic!("no {scenario} row in {doc}"));
    row["metrics"][name]
        .as_f64()
        .unwrap_or_else(|| panic!("no {name} in {row}"))
}

#[test]
fn tiny_run_against_echo_baseline() {
    let json = std::env::temp_dir().join(format!("noex-bench-test-{}.json", std::process::id()));
    let out = Command::new(env!("CARGO_BIN_EXE_noex-bench"))
        .args([
            "run",
            "--targets",
            "echo",
            "--scenarios",
            "request-rtt,fanout,connections,transfer,durable-writes",
            "--subscribers",
            "5",
            "--inserts",
            "20",
            "--rate",
            "200",
            "--connections",
            "4",
            "--depth",
            "4",
            "--requests",
            "2000",
            "--idle-connections",
            "50",
            "--duration-secs",
            "10",
            "--json",
        ])
        .arg(&json)
        .output()
        .expect("run noex-bench");
    assert!(
        out.status.success(),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(table.contains("req_per_s"), "table: {table}");

    let text = std::fs::read_to_string(&json).expect("json written");
    let _ = std::fs::remove_file(&json);
    let doc: Value = serde_json::from_str(&text).expect("valid json");

    assert!(metric(&doc, "request-rtt", "req_per_s") > 0.0);
    assert_eq!(metric(&doc, "request-rtt", "answered"), 2000.0);
    let (p50, p99, p999) = (
        metric(&doc, "request-rtt", "p50_us"),
        metric(&doc, "request-rtt", "p99_us"),
        metric(&doc, "request-rtt", "p999_us"),
    );
    assert!(p50 > 0.0 && p50 <= p99 && p99 <= p999, "{p50} {p99} {p999}");

    assert!(metric(&doc, "request-rtt", "server_cpu_us_per_req") >= 0.0);

    // Every insert reaches every subscriber once (the writer itself did not subscribe).
    assert_eq!(metric(&doc, "fanout", "inserts"), 20.0);
    assert_eq!(metric(&doc, "fanout", "pushes"), 100.0);
    assert!(metric(&doc, "fanout", "server_cpu_us_per_push") >= 0.0);

    assert_eq!(metric(&doc, "connections", "opened"), 50.0);
    assert!(metric(&doc, "connections", "conns_per_s") > 0.0);
    assert!(metric(&doc, "connections", "rss_kib_per_conn") >= 0.0);
    assert!(metric(&doc, "connections", "server_cpu_us_per_conn") >= 0.0);

    let results = doc["results"].as_array().cloned().unwrap_or_default();
    let transfer = results
        .iter()
        .find(|r| r["scenario"] == "transfer")
        .unwrap_or_else(|| panic!("no transfer row in {doc}"));
    assert!(
        transfer["not_applicable"]
            .as_str()
            .is_some_and(|why| why.contains("procedures")),
        "{transfer}"
    );
    assert_eq!(transfer["degraded"], false, "{transfer}");
    assert_eq!(transfer["failure"], Value::Null, "{transfer}");
    assert!(
        table.contains("transfer       not applicable (echo)"),
        "table: {table}"
    );
    let durable = results
        .iter()
        .find(|r| r["scenario"] == "durable-writes")
        .unwrap_or_else(|| panic!("no durable-writes row in {doc}"));
    assert!(
        durable["not_applicable"]
            .as_str()
            .is_some_and(|why| why.contains("store")),
        "{durable}"
    );
}
