//! `connections`: open C idle (unauthenticated) connections, measure the time to open them
//! and the server's RSS growth per connection (VmRSS from `/proc/PID/status`).

use std::time::{Duration, Instant};

use futures_util::StreamExt;
use futures_util::stream;

use super::{Config, Outcome, cpu_per_op, per_second};
use crate::client::connect;
use crate::target::Target;

/// Time given to the server to settle before reading RSS.
const SETTLE: Duration = Duration::from_millis(500);

/// Runs the scenario against `target`.
pub async fn run(target: &Target, cfg: &Config) -> Outcome {
    let mut out = Outcome::default();
    tokio::time::sleep(SETTLE).await;
    let before = target.rss_kib();
    let cpu_before = target.cpu_time();
    let start = Instant::now();
    let deadline = tokio::time::Instant::from_std(start + cfg.duration);
    let port = target.port;
    let attempts = stream::iter(0..cfg.idle_connections)
        .map(|_| async move { tokio::time::timeout_at(deadline, connect(port)).await })
        .buffer_unordered(cfg.open_concurrency.max(1));
    let results: Vec<_> = attempts.collect().await;
    let elapsed = start.elapsed();
    let mut open = Vec::with_capacity(results.len());
    let mut failed = 0u64;
    let mut first_error = None;
    for r in results {
        match r {
            Ok(Ok(ws)) => open.push(ws),
            Ok(Err(e)) => {
                failed += 1;
                first_error.get_or_insert(e);
            }
            Err(_) => {
                failed += 1;
                first_error.get_or_insert_with(|| "deadline".to_owned());
            }
        }
    }
    tokio::time::sleep(SETTLE).await;
    let after = target.rss_kib();
    let cpu_after = target.cpu_time();
    let opened = open.len() as u64;
    out.more("opened", opened as f64);
    out.less("open_ms", elapsed.as_secs_f64() * 1000.0);
    out.more("conns_per_s", per_second(opened, elapsed));
    // TCP accept, the WebSocket handshake and whatever a session costs to set up.
    cpu_per_op(
        &mut out,
        "server_cpu_us_per_conn",
        cpu_before,
        cpu_after,
        opened,
    );
    match (before, after) {
        (Some(b), Some(a)) if opened > 0 => {
            out.less("rss_before_mib", b as f64 / 1024.0);
            out.less("rss_after_mib", a as f64 / 1024.0);
            out.less(
                "rss_kib_per_conn",
                a.saturating_sub(b) as f64 / opened as f64,
            );
        }
        _ => out.notes.push("RSS not readable".into()),
    }
    if failed > 0 {
        out.notes.push(format!(
            "{failed} connections failed (first: {})",
            first_error.unwrap_or_default()
        ));
    }
    // A server that closes connections after the handshake (a per-address cap) must not
    // pass for one holding them: ask it how many are open (the echo baseline cannot say).
    if let Some(ws) = open.last_mut()
        && let Some((active, _)) = super::churn::counts(ws, 1).await
        && active < opened as f64
    {
        out.degraded = true;
        out.notes.push(format!(
            "the server holds {active} connections of the {opened} opened"
        ));
    }
    drop(open);
    out
}
