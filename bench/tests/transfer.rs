//! End-to-end: the `transfer` scenario against a real noex server (in this process, port 0,
//! real WebSocket) completes calls and checks the invariant over every account; against a
//! target without `procedures.*` it is "not applicable" (see echo_baseline.rs for echo).

use std::time::Duration;

use noex_bench::scenario::{Config, Outcome, transfer};
use noex_server::{Server, ServerConfig};

fn metric(out: &Outcome, name: &str) -> f64 {
    out.metrics
        .iter()
        .find(|m| m.name == name)
        .unwrap_or_else(|| panic!("no {name} in {out:?}"))
        .value
}

fn config(accounts: usize) -> Config {
    Config {
        connections: 1,
        depth: 1,
        insert_pct: 0,
        requests: 0,
        subscribers: 0,
        rate: 1,
        inserts: 0,
        idle_connections: 0,
        open_concurrency: 1,
        churn_workers: 1,
        churn_cycles: 0,
        accounts,
        transfer_clients: 8,
        transfer_calls: 1500,
        duration: Duration::from_secs(10),
        max_samples: 10_000,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transfers_against_the_real_server_keep_the_invariant() {
    let server = Server::start(ServerConfig {
        host: "127.0.0.1".into(),
        port: 0,
        ..ServerConfig::default()
    })
    .await
    .expect("server starts");
    // 600 accounts: setup inserts and the check reads back in two pages of 500.
    let out = transfer::run_port(server.local_addr().port(), &config(600)).await;
    server.stop(Duration::from_secs(1)).await;

    assert_eq!(out.failure, None, "{out:?}");
    assert_eq!(out.not_applicable, None, "{out:?}");
    assert!(!out.degraded, "{out:?}");
    // The call budget ends the phase well before the 10 s deadline.
    assert_eq!(metric(&out, "calls"), 1500.0, "{out:?}");
    assert!(metric(&out, "moved") > 0.0, "{out:?}");
    assert_eq!(
        metric(&out, "moved") + metric(&out, "refused") + metric(&out, "conflicts"),
        1500.0
    );
    assert!(metric(&out, "calls_per_s") > 0.0);
    let (p50, p99) = (metric(&out, "p50_us"), metric(&out, "p99_us"));
    assert!(p50 > 0.0 && p50 <= p99, "{p50} {p99}");
    // The invariant was checked over every account, not skipped.
    assert_eq!(metric(&out, "accounts_checked"), 600.0);
    assert_eq!(metric(&out, "total_drift"), 0.0);
    assert_eq!(metric(&out, "negative_accounts"), 0.0);
}
