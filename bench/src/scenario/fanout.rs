//! `fanout`: S subscribers on one count query, one writer inserting at a fixed rate.
//! Each push carries the record count, i.e. the sequence number of the insert that caused
//! it, so latency = push received − that insert sent (one shared monotonic clock).
//!
//! Against the echo baseline the subscribe is answered with `null` and every insert is
//! broadcast by the echo server itself (see [`crate::echo`]).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

use super::{BUCKET, COUNT_QUERY, Config, Outcome, cpu_per_op, define_schema, per_second};
use crate::client::{Frame, Ws, classify, connect, pong, request};
use crate::stats::Samples;
use crate::target::Target;

/// Send times of inserts, nanoseconds since `base` (+1, so 0 means "not sent").
struct SendLog {
    base: Instant,
    sent: Vec<AtomicU64>,
}

impl SendLog {
    fn latency(&self, seq: u64, now: Instant) -> Option<Duration> {
        let i = usize::try_from(seq).ok()?;
        let t = self.sent.get(i)?.load(Ordering::Acquire);
        if t == 0 {
            return None;
        }
        let recv = u64::try_from(now.duration_since(self.base).as_nanos()).ok()?;
        Some(Duration::from_nanos(recv.saturating_sub(t - 1)))
    }
}

/// Runs the scenario against `target`.
pub async fn run(target: &Target, cfg: &Config) -> Outcome {
    let mut out = Outcome::default();
    let mut writer = match connect(target.port).await {
        Ok(ws) => ws,
        Err(e) => {
            out.notes.push(format!("writer connect failed: {e}"));
            return out;
        }
    };
    define_schema(&mut writer, &mut out).await;
    let mut subs = Vec::with_capacity(cfg.subscribers);
    let mut sub_errors = 0u64;
    for _ in 0..cfg.subscribers {
        let Ok(mut ws) = connect(target.port).await else {
            sub_errors += 1;
            continue;
        };
        let sub = json!({"type": "store.subscribe", "query": COUNT_QUERY});
        if request(&mut ws, 1, sub).await.is_err() {
            sub_errors += 1;
        }
        subs.push(ws);
    }
    if sub_errors > 0 {
        out.degraded = true;
        out.notes
            .push(format!("{sub_errors} subscribers failed to subscribe"));
    }
    let inserts = cfg.inserts.max(1);
    let log = Arc::new(SendLog {
        base: Instant::now(),
        sent: (0..=inserts).map(|_| AtomicU64::new(0)).collect(),
    });
    let cpu_before = target.cpu_time();
    let start = Instant::now();
    let deadline = start + cfg.duration;
    // Subscribers listen until the last push arrives or the deadline (plus a short tail).
    let listen_until = tokio::time::Instant::from_std(deadline + Duration::from_secs(2));
    let cap = cfg.max_samples / subs.len().max(1);
    let last_recv = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for ws in subs {
        let log = log.clone();
        let last = last_recv.clone();
        tasks.push(tokio::spawn(subscriber(
            ws,
            log,
            inserts,
            listen_until,
            cap,
            last,
        )));
    }
    let sent = write(&mut writer, &log, inserts, cfg.rate.max(1), deadline).await;
    let mut sets = Vec::new();
    for t in tasks {
        if let Ok(s) = t.await {
            sets.push(s);
        }
    }
    let cpu_after = target.cpu_time();
    let _ = writer.close(None).await;
    let pushes: u64 = sets.iter().map(Samples::seen).sum();
    let span = Duration::from_nanos(last_recv.load(Ordering::Relaxed));
    let sum = Samples::summarize(&sets);
    out.more("pushes_per_s", per_second(pushes, span));
    out.less("p50_us", sum.p50_us);
    out.less("p99_us", sum.p99_us);
    out.more("pushes", pushes as f64);
    out.more("inserts", sent as f64);
    // All of the server's CPU over the phase (the inserts, the query re-evaluations, the
    // pushes) per push delivered.
    cpu_per_op(
        &mut out,
        "server_cpu_us_per_push",
        cpu_before,
        cpu_after,
        pushes,
    );
    let expected = sent.saturating_mul(cfg.subscribers as u64);
    if pushes < expected {
        out.notes.push(format!(
            "{pushes} pushes for {sent} inserts x {} subscribers (coalesced or lost)",
            cfg.subscribers
        ));
    }
    out
}

/// Inserts `1..=inserts` at `rate` per second; returns how many were sent.
async fn write(ws: &mut Ws, log: &SendLog, inserts: u64, rate: u64, deadline: Instant) -> u64 {
    let (mut sink, mut source) = ws.split();
    let period = Duration::from_nanos(1_000_000_000 / rate);
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut sent = 0;
    for seq in 1..=inserts {
        // Drain answers (and answer pings) while waiting for the next tick.
        loop {
            tokio::select! {
                _ = tick.tick() => break,
                m = source.next() => match m {
                    Some(Ok(m)) => if let Frame::Ping { timestamp } = classify(&m) {
                        let _ = sink.send(pong(&timestamp)).await;
                    },
                    _ => return sent,
                },
            }
        }
        if Instant::now() >= deadline {
            break;
        }
        let body = json!({"id": 100 + seq, "type": "store.insert", "bucket": BUCKET,
            "data": {"id": format!("w-{seq}"), "n": seq}});
        let now = u64::try_from(log.base.elapsed().as_nanos()).unwrap_or(u64::MAX - 1);
        if let Some(slot) = usize::try_from(seq).ok().and_then(|i| log.sent.get(i)) {
            slot.store(now + 1, Ordering::Release);
        }
        if sink.send(Message::text(body.to_string())).await.is_err() {
            break;
        }
        sent = seq;
    }
    sent
}

async fn subscriber(
    mut ws: Ws,
    log: Arc<SendLog>,
    inserts: u64,
    until: tokio::time::Instant,
    cap: usize,
    last_recv: Arc<AtomicU64>,
) -> Samples {
    let mut samples = Samples::new(cap);
    loop {
        let msg = match tokio::time::timeout_at(until, ws.next()).await {
            Ok(Some(Ok(m))) => m,
            _ => break,
        };
        match classify(&msg) {
            Frame::Push { data } => {
                let now = Instant::now();
                let Some(seq) = push_seq(&data) else { continue };
                if let Some(d) = log.latency(seq, now) {
                    samples.push(d);
                    let at = u64::try_from(now.duration_since(log.base).as_nanos()).unwrap_or(0);
                    last_recv.fetch_max(at, Ordering::Relaxed);
                }
                if seq >= inserts {
                    break;
                }
            }
            Frame::Ping { timestamp } => {
                let _ = ws.send(pong(&timestamp)).await;
            }
            _ => {}
        }
    }
    let _ = ws.close(None).await;
    samples
}

/// The insert sequence number a push stands for: a count (scalar) result.
fn push_seq(data: &Value) -> Option<u64> {
    data.as_u64().or_else(|| data.as_f64().map(|f| f as u64))
}
