//! End-to-end: the `transfer` scenario against a real noex server (in this process, port 0,
//! real WebSocket) completes calls and checks the invariant over every account; against a
//! server that loses money the scenario fails (echo_baseline.rs: "not applicable" to echo).

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::Message;

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
        zipf: 1.0,
        durable_writers: 1,
        transfer_clients: 8,
        transfer_calls: 1500,
        login_clients: 1,
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
    // 600 accounts: setup inserts and the check reads back in two pages of 500. The CPU
    // reading is this process's (server and clients together): enough to show the
    // per-core figures are computed.
    let own_cpu = || noex_bench::target::cpu_time(std::process::id());
    let out = transfer::run_port(server.local_addr().port(), &config(600), own_cpu).await;
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
    assert!(metric(&out, "server_cores") > 0.0, "{out:?}");
    assert!(metric(&out, "calls_per_s_per_core") > 0.0, "{out:?}");
    assert_eq!(metric(&out, "accounts_checked"), 600.0);
    assert_eq!(metric(&out, "total_drift"), 0.0);
    assert_eq!(metric(&out, "negative_accounts"), 0.0);
}

/// A fake server that accepts every request and answers `store.paginate` with accounts
/// whose balances no longer add up (70, -5, 105 and 100 for the rest: 130 went missing).
async fn leaky_server(accounts: usize) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let Ok(mut ws) = tokio_tungstenite::accept_async(stream).await else {
                    return;
                };
                while let Some(Ok(Message::Text(text))) = ws.next().await {
                    let req: Value = serde_json::from_str(text.as_str()).unwrap_or_default();
                    let data = match req["type"].as_str() {
                        Some("procedures.list") => json!({"procedures": []}),
                        Some("procedures.call") => json!({"success": true, "result": {"ok": true}}),
                        Some("store.paginate") => {
                            let records: Vec<Value> = (0..accounts)
                                .map(|i| {
                                    let balance = match i {
                                        0 => 70,
                                        1 => -5,
                                        2 => 105,
                                        _ => 100,
                                    };
                                    json!({"id": format!("a{i}"), "balance": balance})
                                })
                                .collect();
                            json!({"records": records, "hasMore": false})
                        }
                        _ => json!({}),
                    };
                    let answer = json!({"id": req["id"], "type": "result", "data": data});
                    if ws.send(Message::text(answer.to_string())).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    port
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_invariant_fails_the_scenario() {
    let port = leaky_server(10).await;
    let out = transfer::run_port(port, &config(10), || None).await;
    let failure = out.failure.clone().unwrap_or_else(|| panic!("{out:?}"));
    assert!(
        failure.contains("sum of balances is 870 (expected 1000)"),
        "{failure}"
    );
    assert!(
        failure.contains("1 accounts have a negative balance (lowest -5)"),
        "{failure}"
    );
    assert_eq!(metric(&out, "total_drift"), -130.0);
    assert_eq!(metric(&out, "negative_accounts"), 1.0);
}
