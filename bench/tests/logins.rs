//! End-to-end: the `logins` scenario against a real noex server with built-in identity (in
//! this process, port 0, real WebSocket) logs its users in and measures the probe; against
//! a server without identity it is not applicable.

use std::time::Duration;

use noex_bench::scenario::{Config, Outcome, logins};
use noex_server::{IdentitySection, Server, ServerConfig};

fn metric(out: &Outcome, name: &str) -> f64 {
    out.metrics
        .iter()
        .find(|m| m.name == name)
        .unwrap_or_else(|| panic!("no {name} in {out:?}"))
        .value
}

fn config() -> Config {
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
        durable_writers: 1,
        transfer_clients: 1,
        transfer_calls: 0,
        login_clients: 4,
        duration: Duration::from_secs(2),
        max_samples: 10_000,
    }
}

async fn server(identity: bool) -> noex_server::ServerHandle {
    Server::start(ServerConfig {
        host: "127.0.0.1".into(),
        port: 0,
        identity: IdentitySection {
            enabled: identity,
            admin_secret: identity.then(|| logins::ADMIN_SECRET.to_owned()),
            ..IdentitySection::default()
        },
        ..ServerConfig::default()
    })
    .await
    .expect("server starts")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logins_against_the_real_server_are_counted_and_the_probe_measured() {
    let server = server(true).await;
    let out = logins::run_port(server.local_addr().port(), &config(), || None).await;
    server.stop(Duration::from_secs(1)).await;
    assert_eq!(out.not_applicable, None, "{out:?}");
    assert!(!out.degraded, "{out:?}");
    assert!(metric(&out, "logins_per_s") > 0.0, "{out:?}");
    let (p50, p99) = (metric(&out, "login_p50_us"), metric(&out, "login_p99_us"));
    assert!(p50 > 0.0 && p50 <= p99, "{p50} {p99}");
    assert!(metric(&out, "probe_get_p99_us") > 0.0);
    assert!(metric(&out, "probe_get_p99_alone_us") > 0.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_without_identity_is_not_applicable() {
    let server = server(false).await;
    let out = logins::run_port(server.local_addr().port(), &config(), || None).await;
    server.stop(Duration::from_secs(1)).await;
    assert!(out.not_applicable.is_some(), "{out:?}");
}
