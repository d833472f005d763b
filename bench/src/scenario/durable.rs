//! `durable-writes`: W connections insert back to back (one `store.insert` in flight each)
//! into a server started with `--persistence redb --durability sync`, while one probe
//! connection sends `store.get` of an existing record every [`PROBE_INTERVAL`] (paced, so
//! that it measures a reader's latency without taking CPU from the writers). A sync write is
//! acknowledged only once it is on disk, so every insert waits for an fsync; concurrent
//! inserts should share them (group commit) and the reads of the probe, which never touch
//! the disk, should keep their latency.
//!
//! Figures: inserts/s, insert and probe latency percentiles, engine commits (fsyncs) per
//! insert read from the server's `/metrics` (`noex_persistence_commit_duration_seconds`
//! count) and server CPU per insert. The runner starts our server with persistence for
//! this scenario (see [`server_args`]); a target without `store.*` is not applicable.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::{Config, Outcome, cpu_per_op, per_second};
use crate::client::{Reply, Ws, call, connect, request};
use crate::stats::Samples;
use crate::target::Target;

/// The bucket written to.
pub const BUCKET: &str = "durable";
/// The key of the record the probe reads.
const PROBE_KEY: &str = "probe";
/// Time between two reads of the probe (when the previous answer came in time).
pub const PROBE_INTERVAL: Duration = Duration::from_millis(1);
/// The commit-count line of the server's `/metrics`.
const COMMITS_METRIC: &str = "noex_persistence_commit_duration_seconds_count";
/// The line of the server's `/metrics` with the seconds spent in those commits.
const COMMIT_SECONDS_METRIC: &str = "noex_persistence_commit_duration_seconds_sum";

/// The extra flags our server gets for this scenario: durable storage in `dir` (a fresh
/// directory, which must be on a real disk for fsyncs to cost what they do), every write
/// acknowledged after its fsync.
pub fn server_args(dir: &Path) -> Vec<String> {
    vec![
        "--persistence".into(),
        "redb".into(),
        "--durability".into(),
        "sync".into(),
        "--data-dir".into(),
        dir.display().to_string(),
    ]
}

/// A fresh directory for one run's database (removed by the caller afterwards).
pub fn data_dir() -> PathBuf {
    std::env::temp_dir().join(format!("noex-bench-durable-{}", std::process::id()))
}

/// Runs the scenario against `target`.
pub async fn run(target: &Target, cfg: &Config) -> Outcome {
    run_port(target.port, cfg, || target.cpu_time()).await
}

/// Runs the scenario against the server listening on `127.0.0.1:port` (started with sync
/// durability); `cpu_time` reads the server's CPU time so far (`|| None` when it is not a
/// separate process).
pub async fn run_port(port: u16, cfg: &Config, cpu_time: impl Fn() -> Option<Duration>) -> Outcome {
    let mut out = Outcome::default();
    let mut control = match connect(port).await {
        Ok(ws) => ws,
        Err(e) => {
            out.notes.push(format!("control connect failed: {e}"));
            out.degraded = true;
            return out;
        }
    };
    let define = json!({"type": "store.defineBucket", "name": BUCKET, "config": {
        "key": "id", "schema": {"id": {"type": "string"}, "n": {"type": "number"}}}});
    match request(&mut control, 1, define).await {
        Ok(v) if v.get("created") == Some(&Value::Bool(true)) => {}
        Ok(v) => return Outcome::not_applicable(format!("no store.* (defineBucket answered {v})")),
        Err(code) => return Outcome::not_applicable(format!("no store.* ({code})")),
    }
    let probe =
        json!({"type": "store.insert", "bucket": BUCKET, "data": {"id": PROBE_KEY, "n": 0}});
    if let Err(e) = request(&mut control, 2, probe).await {
        out.notes.push(format!("probe record: {e}"));
        out.degraded = true;
        return out;
    }

    let writers = cfg.durable_writers.max(1);
    let mut sockets = Vec::with_capacity(writers);
    for _ in 0..writers {
        match connect(port).await {
            Ok(ws) => sockets.push(ws),
            Err(e) => {
                out.notes.push(format!("connect failed: {e}"));
                out.degraded = true;
                break;
            }
        }
    }
    let cap = cfg.max_samples / (sockets.len() + 1);
    let commits_before = commit_count(port).await;
    let cpu_before = cpu_time();
    let start = Instant::now();
    let deadline = start + cfg.duration;
    let mut tasks = Vec::new();
    for (i, ws) in sockets.into_iter().enumerate() {
        tasks.push(tokio::spawn(writer(ws, i, deadline, cap)));
    }
    let probe = tokio::spawn(prober(control, deadline, cap));
    let mut results = Vec::new();
    for t in tasks {
        match t.await {
            Ok(r) => results.push(r),
            Err(e) => out.notes.push(format!("writer task failed: {e}")),
        }
    }
    let probed = probe.await;
    let elapsed = start.elapsed();
    let cpu_after = cpu_time();
    let commits_after = commit_count(port).await;

    let inserted: u64 = results.iter().map(|r| r.ok).sum();
    let errors: u64 = results.iter().map(|r| r.errors).sum();
    for r in &results {
        if let Some(why) = &r.broken {
            out.notes.push(format!("a writer stopped early: {why}"));
            out.degraded = true;
        }
    }
    if errors > 0 {
        out.notes.push(format!("{errors} inserts answered errors"));
        out.degraded = true;
    }
    let sets: Vec<Samples> = results.into_iter().map(|r| r.samples).collect();
    let writes = Samples::summarize(&sets);
    out.more("inserts_per_s", per_second(inserted, elapsed));
    out.less("insert_p50_us", writes.p50_us);
    out.less("insert_p99_us", writes.p99_us);
    match probed {
        Ok(p) => {
            if let Some(why) = &p.broken {
                out.notes.push(format!("the probe stopped early: {why}"));
                out.degraded = true;
            }
            let reads = Samples::summarize(&[p.samples]);
            out.more("probe_reads_per_s", per_second(p.ok, elapsed));
            out.less("probe_p50_us", reads.p50_us);
            out.less("probe_p99_us", reads.p99_us);
            out.less("probe_p999_us", reads.p999_us);
        }
        Err(e) => out.notes.push(format!("probe task failed: {e}")),
    }
    out.more("inserts", inserted as f64);
    match (commits_before, commits_after) {
        (Ok((before, before_s)), Ok((after, after_s))) if inserted > 0 => {
            let commits = after.saturating_sub(before);
            out.less("commits", commits as f64);
            out.less("fsyncs_per_insert", commits as f64 / inserted as f64);
            if commits > 0 {
                // The disk's share of an insert's latency: one commit (write + fsync).
                out.less("commit_ms", (after_s - before_s) * 1e3 / commits as f64);
            }
        }
        (Err(e), _) | (_, Err(e)) => out.notes.push(format!("commit count: {e}")),
        _ => {}
    }
    cpu_per_op(
        &mut out,
        "server_cpu_us_per_insert",
        cpu_before,
        cpu_after,
        inserted,
    );
    out
}

/// What one connection saw.
struct ConnResult {
    ok: u64,
    errors: u64,
    broken: Option<String>,
    samples: Samples,
}

/// One writer: inserts a new record after the previous one was acknowledged, until the
/// deadline.
async fn writer(mut ws: Ws, index: usize, deadline: Instant, cap: usize) -> ConnResult {
    let mut r = ConnResult {
        ok: 0,
        errors: 0,
        broken: None,
        samples: Samples::new(cap),
    };
    let mut id = 100u64;
    while Instant::now() < deadline {
        let body = json!({"type": "store.insert", "bucket": BUCKET,
            "data": {"id": format!("w{index}-{id}"), "n": id}});
        let sent = Instant::now();
        match call(&mut ws, id, body).await {
            Ok(reply) => {
                r.samples.push(sent.elapsed());
                match reply {
                    Reply::Result(_) => r.ok += 1,
                    Reply::Error(_) => r.errors += 1,
                }
            }
            Err(e) => {
                r.broken = Some(e);
                break;
            }
        }
        id += 1;
    }
    close(ws).await;
    r
}

/// The probe: reads the probe record every [`PROBE_INTERVAL`] until the deadline.
async fn prober(mut ws: Ws, deadline: Instant, cap: usize) -> ConnResult {
    let mut r = ConnResult {
        ok: 0,
        errors: 0,
        broken: None,
        samples: Samples::new(cap),
    };
    let mut id = 100u64;
    let mut ticks = tokio::time::interval(PROBE_INTERVAL);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    while Instant::now() < deadline {
        ticks.tick().await;
        let body = json!({"type": "store.get", "bucket": BUCKET, "key": PROBE_KEY});
        let sent = Instant::now();
        match call(&mut ws, id, body).await {
            Ok(Reply::Result(_)) => {
                r.samples.push(sent.elapsed());
                r.ok += 1;
            }
            Ok(Reply::Error(_)) => r.errors += 1,
            Err(e) => {
                r.broken = Some(e);
                break;
            }
        }
        id += 1;
    }
    close(ws).await;
    r
}

async fn close(mut ws: Ws) {
    let _ = tokio::time::timeout(
        Duration::from_secs(1),
        futures_util::SinkExt::close(&mut ws),
    )
    .await;
}

/// The server's engine commit count so far and the seconds they took, from
/// `GET /metrics` on its port.
pub async fn commit_count(port: u16) -> Result<(u64, f64), String> {
    let fetch = async {
        let mut tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .map_err(|e| e.to_string())?;
        tcp.write_all(b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
            .await
            .map_err(|e| e.to_string())?;
        let mut body = Vec::new();
        tcp.read_to_end(&mut body)
            .await
            .map_err(|e| e.to_string())?;
        Ok::<_, String>(String::from_utf8_lossy(&body).into_owned())
    };
    let text = tokio::time::timeout(Duration::from_secs(5), fetch)
        .await
        .map_err(|_| "GET /metrics timed out".to_owned())??;
    let count = metric(&text, COMMITS_METRIC)
        .ok_or_else(|| format!("no {COMMITS_METRIC} in GET /metrics"))?;
    Ok((
        count as u64,
        metric(&text, COMMIT_SECONDS_METRIC).unwrap_or(0.0),
    ))
}

/// The value of the line of metric `name` in a Prometheus text body.
fn metric(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(name))
        .and_then(|rest| rest.split_whitespace().last())
        .and_then(|v| v.parse::<f64>().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_commit_lines() {
        let text = "# HELP x\nnoex_persistence_commit_duration_seconds_sum 0.5\n\
                    noex_persistence_commit_duration_seconds_count 42\n";
        assert_eq!(metric(text, COMMITS_METRIC), Some(42.0));
        assert_eq!(metric(text, COMMIT_SECONDS_METRIC), Some(0.5));
        assert_eq!(metric("nothing here\n", COMMITS_METRIC), None);
    }
}
