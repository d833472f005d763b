//! `request-rtt`: every connection sends `store.get` / `store.insert` back to back with
//! `depth` requests in flight; throughput and round-trip latency percentiles.
//!
//! Error answers (e.g. `UNKNOWN_OPERATION` from a server without `store.*`) still complete
//! a round trip; they are counted separately and reported as a note.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;

use super::{BUCKET, Config, Outcome, cpu_per_op, define_schema, per_second};
use crate::client::{Frame, Ws, classify, connect, pong};
use crate::stats::Samples;
use crate::target::Target;

/// Per-connection result.
struct ConnResult {
    ok: u64,
    errors: u64,
    samples: Samples,
}

/// Runs the scenario against `target`.
pub async fn run(target: &Target, cfg: &Config) -> Outcome {
    let mut out = Outcome::default();
    let conns = cfg.connections.max(1);
    let mut sockets = Vec::with_capacity(conns);
    for _ in 0..conns {
        match connect(target.port).await {
            Ok(ws) => sockets.push(ws),
            Err(e) => {
                out.notes.push(format!("connect failed: {e}"));
                break;
            }
        }
    }
    if let Some(ws) = sockets.first_mut() {
        define_schema(ws, &mut out).await;
    }
    let budget = Arc::new(AtomicU64::new(cfg.requests));
    let cpu_before = target.cpu_time();
    let start = Instant::now();
    let deadline = start + cfg.duration;
    let per_conn_cap = cfg.max_samples / sockets.len().max(1);
    let mut tasks = Vec::new();
    for (i, ws) in sockets.into_iter().enumerate() {
        let budget = budget.clone();
        let c = cfg.clone();
        tasks.push(tokio::spawn(connection(
            ws,
            i,
            c,
            budget,
            deadline,
            per_conn_cap,
        )));
    }
    let mut results = Vec::new();
    for t in tasks {
        if let Ok(r) = t.await {
            results.push(r);
        }
    }
    let elapsed = start.elapsed();
    let cpu_after = target.cpu_time();
    let ok: u64 = results.iter().map(|r| r.ok).sum();
    let errors: u64 = results.iter().map(|r| r.errors).sum();
    let sets: Vec<Samples> = results.into_iter().map(|r| r.samples).collect();
    let sum = Samples::summarize(&sets);
    out.more("req_per_s", per_second(ok + errors, elapsed));
    out.less("p50_us", sum.p50_us);
    out.less("p99_us", sum.p99_us);
    out.less("p999_us", sum.p999_us);
    out.more("answered", (ok + errors) as f64);
    cpu_per_op(
        &mut out,
        "server_cpu_us_per_req",
        cpu_before,
        cpu_after,
        ok + errors,
    );
    if errors > 0 {
        out.degraded = true;
        out.notes
            .push(format!("{errors} of {} answers were errors", ok + errors));
    }
    out
}

fn take(budget: &AtomicU64) -> bool {
    budget
        .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |b| b.checked_sub(1))
        .is_ok()
}

fn frame(conn: usize, id: u64, insert_pct: u32, last_insert: &mut u64) -> Message {
    let body = if (id % 100) < u64::from(insert_pct) {
        *last_insert = id;
        json!({"id": id, "type": "store.insert", "bucket": BUCKET,
            "data": {"id": format!("c{conn}-{id}"), "n": id}})
    } else {
        json!({"id": id, "type": "store.get", "bucket": BUCKET,
            "key": format!("c{conn}-{last_insert}")})
    };
    Message::text(body.to_string())
}

async fn connection(
    mut ws: Ws,
    conn: usize,
    cfg: Config,
    budget: Arc<AtomicU64>,
    deadline: Instant,
    cap: usize,
) -> ConnResult {
    let mut r = ConnResult {
        ok: 0,
        errors: 0,
        samples: Samples::new(cap),
    };
    let mut inflight: HashMap<u64, Instant> = HashMap::with_capacity(cfg.depth);
    let mut next_id = 100u64; // ids below 100 are left for setup requests
    let mut last_insert = 0u64;
    // Answers still outstanding at the deadline get this long before we give up on them.
    let hard_stop = tokio::time::Instant::from_std(deadline + Duration::from_secs(2));
    for _ in 0..cfg.depth.max(1) {
        if !take(&budget) {
            break;
        }
        let m = frame(conn, next_id, cfg.insert_pct, &mut last_insert);
        inflight.insert(next_id, Instant::now());
        next_id += 1;
        if ws.send(m).await.is_err() {
            return r;
        }
    }
    while !inflight.is_empty() {
        let msg = match tokio::time::timeout_at(hard_stop, ws.next()).await {
            Ok(Some(Ok(m))) => m,
            _ => break,
        };
        let (id, ok) = match classify(&msg) {
            Frame::Result { id, .. } => (id, true),
            Frame::Error { id, .. } => (id, false),
            Frame::Ping { timestamp } => {
                let _ = ws.send(pong(&timestamp)).await;
                continue;
            }
            _ => continue,
        };
        let Some(sent) = inflight.remove(&id) else {
            continue;
        };
        r.samples.push(sent.elapsed());
        if ok {
            r.ok += 1
        } else {
            r.errors += 1
        }
        if Instant::now() < deadline && take(&budget) {
            let m = frame(conn, next_id, cfg.insert_pct, &mut last_insert);
            inflight.insert(next_id, Instant::now());
            next_id += 1;
            if ws.send(m).await.is_err() {
                break;
            }
        }
    }
    let _ = ws.close(None).await;
    r
}
