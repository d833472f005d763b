//! End-to-end: the `durable-writes` scenario against a real noex server with sync durability
//! (in this process, port 0, real WebSocket): inserts are acknowledged, the probe reads, and
//! the commit count read from `/metrics` shows inserts sharing fsyncs (echo_baseline.rs:
//! "not applicable" to echo).

use std::time::Duration;

use noex_bench::scenario::{Config, Outcome, durable};
use noex_server::{PersistenceEngine, Server, ServerConfig};

fn metric(out: &Outcome, name: &str) -> f64 {
    out.metrics
        .iter()
        .find(|m| m.name == name)
        .unwrap_or_else(|| panic!("no {name} in {out:?}"))
        .value
}

fn config(writers: usize) -> Config {
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
        accounts: 2,
        zipf: 1.0,
        durable_writers: writers,
        transfer_clients: 1,
        transfer_calls: 0,
        login_clients: 1,
        duration: Duration::from_millis(1500),
        max_samples: 10_000,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_sync_inserts_share_fsyncs_and_the_probe_reads() {
    let dir = std::env::temp_dir().join(format!("noex-bench-durable-test-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let mut cfg = ServerConfig {
        host: "127.0.0.1".into(),
        port: 0,
        ..ServerConfig::default()
    };
    cfg.persistence.engine = PersistenceEngine::Redb;
    cfg.persistence.data_dir = Some(dir.clone());
    let server = Server::start(cfg).await.expect("server starts");
    let out = durable::run_port(server.local_addr().port(), &config(16), || None).await;
    server.stop(Duration::from_secs(1)).await;
    server.store().close_persistence().expect("closes");
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);

    assert_eq!(out.not_applicable, None, "{out:?}");
    assert!(!out.degraded, "{out:?}");
    let inserts = metric(&out, "inserts");
    assert!(inserts > 0.0, "{out:?}");
    assert!(metric(&out, "probe_reads_per_s") > 0.0, "{out:?}");
    let commits = metric(&out, "commits");
    // 16 writers with one insert in flight each: commits are shared.
    assert!(commits >= 1.0 && commits < inserts, "{out:?}");
    assert!(metric(&out, "fsyncs_per_insert") < 1.0, "{out:?}");
}
