//! `churn`: workers connect, subscribe, disconnect in a loop. Afterwards neither the
//! server's memory nor its `server.stats` counts (active connections, store
//! subscriptions) may have grown: leaks show up as a non-zero growth.
//!
//! A warm-up round runs first so allocator pools and caches are already grown when the
//! baseline is taken. The echo baseline has no `server.stats`; only its RSS is reported.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::{COUNT_QUERY, Config, Outcome, cpu_per_op, define_schema, per_second};
use crate::client::{Ws, connect, request};
use crate::target::Target;

/// Time the server gets to release closed connections before the "after" reading.
const SETTLE: Duration = Duration::from_secs(1);

/// `(active connections, store subscriptions)` from `server.stats`.
pub(super) async fn counts(ws: &mut Ws, id: u64) -> Option<(f64, f64)> {
    let stats: Value = request(ws, id, json!({"type": "server.stats"}))
        .await
        .ok()?;
    let c = stats.get("connections")?;
    Some((
        c.get("active")?.as_f64()?,
        c.get("totalStoreSubscriptions")?.as_f64()?,
    ))
}

/// Runs the scenario against `target`.
pub async fn run(target: &Target, cfg: &Config) -> Outcome {
    let mut out = Outcome::default();
    let mut control = match connect(target.port).await {
        Ok(ws) => ws,
        Err(e) => {
            out.notes.push(format!("control connect failed: {e}"));
            return out;
        }
    };
    define_schema(&mut control, &mut out).await;
    let failures = Arc::new(AtomicU64::new(0));
    let warmup = (cfg.churn_workers as u64 * 5).min(cfg.churn_cycles);
    cycles(target.port, cfg, warmup, cfg.duration, &failures).await;
    tokio::time::sleep(SETTLE).await;
    let rss_before = target.rss_kib();
    let stats_before = counts(&mut control, 10).await;
    failures.store(0, Ordering::Relaxed);
    let cpu_before = target.cpu_time();
    let start = Instant::now();
    let done = cycles(target.port, cfg, cfg.churn_cycles, cfg.duration, &failures).await;
    let elapsed = start.elapsed();
    tokio::time::sleep(SETTLE).await;
    // Read after the settle, so the teardown of the last closed connections is counted.
    let cpu_after = target.cpu_time();
    let rss_after = target.rss_kib();
    let stats_after = counts(&mut control, 11).await;
    out.more("cycles", done as f64);
    out.more("cycles_per_s", per_second(done, elapsed));
    cpu_per_op(
        &mut out,
        "server_cpu_us_per_cycle",
        cpu_before,
        cpu_after,
        done,
    );
    if let (Some(b), Some(a)) = (rss_before, rss_after) {
        out.less("rss_before_mib", b as f64 / 1024.0);
        out.less("rss_growth_kib", a as f64 - b as f64);
    }
    match (stats_before, stats_after) {
        (Some((ab, sb)), Some((aa, sa))) => {
            out.less("active_growth", aa - ab);
            out.less("subs_growth", sa - sb);
        }
        _ => out
            .notes
            .push("server.stats unavailable: counts not checked".into()),
    }
    let f = failures.load(Ordering::Relaxed);
    if f > 0 {
        out.degraded = true;
        out.notes
            .push(format!("{f} cycles failed to connect or subscribe"));
    }
    let _ = futures_util::SinkExt::close(&mut control).await;
    out
}

/// Runs `total` cycles over `cfg.churn_workers` workers, bounded by `limit`; returns the
/// number of completed cycles.
async fn cycles(
    port: u16,
    cfg: &Config,
    total: u64,
    limit: Duration,
    failures: &Arc<AtomicU64>,
) -> u64 {
    let budget = Arc::new(AtomicU64::new(total));
    let done = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + limit;
    let mut tasks = Vec::new();
    for _ in 0..cfg.churn_workers.max(1) {
        let (budget, done, failures) = (budget.clone(), done.clone(), failures.clone());
        tasks.push(tokio::spawn(async move {
            while Instant::now() < deadline
                && budget
                    .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |b| b.checked_sub(1))
                    .is_ok()
            {
                let Ok(mut ws) = connect(port).await else {
                    failures.fetch_add(1, Ordering::Relaxed);
                    continue;
                };
                let sub = json!({"type": "store.subscribe", "query": COUNT_QUERY});
                if request(&mut ws, 1, sub).await.is_err() {
                    failures.fetch_add(1, Ordering::Relaxed);
                }
                let _ = futures_util::SinkExt::close(&mut ws).await;
                done.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    done.load(Ordering::Relaxed)
}
