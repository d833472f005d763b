//! `logins`: what built-in identity logins cost, and whether other clients notice them.
//! `login_clients` clients (one user each, so no username's turn serializes them) send
//! `identity.login` with the right password back to back, one in flight each, for the
//! phase's duration; logins/s, login latency percentiles and the server's CPU per login.
//! Meanwhile a probe connection sends `store.get` back to back, one in flight; its p99 is
//! reported during the logins and, measured just before them in the same run, alone —
//! the figure behind "the server stays responsive while 50 logins run at once".
//!
//! The server is started with identity on and [`ADMIN_SECRET`] (see
//! [`crate::target::Target::spawn`]); a target without `identity.*` (the echo baseline)
//! is reported as not applicable.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::{Config, Outcome, per_second};
use crate::client::{Reply, Ws, call, connect, request};
use crate::stats::Samples;
use crate::target::Target;

/// The admin secret of the server the scenario runs against.
pub const ADMIN_SECRET: &str = "noex-bench-admin-secret-0123456789";
/// Every bench user's password.
const PASSWORD: &str = "bench-password-1";
/// The probe's bucket and its one record.
const PROBE_BUCKET: &str = "bench-probe";

/// What one login client saw.
struct ClientResult {
    logins: u64,
    errors: u64,
    codes: Vec<String>,
    samples: Samples,
}

/// Runs the scenario against `target`.
pub async fn run(target: &Target, cfg: &Config) -> Outcome {
    run_port(target.port, cfg, || target.cpu_time()).await
}

/// Runs the scenario against the server listening on `127.0.0.1:port`; `cpu_time` reads
/// the server's CPU time so far (`None`: not measured).
pub async fn run_port(port: u16, cfg: &Config, cpu_time: impl Fn() -> Option<Duration>) -> Outcome {
    let mut out = Outcome::default();
    let mut admin = match connect(port).await {
        Ok(ws) => ws,
        Err(e) => {
            out.notes.push(format!("control connect failed: {e}"));
            out.degraded = true;
            return out;
        }
    };
    match request(
        &mut admin,
        1,
        json!({"type": "identity.loginWithSecret", "secret": ADMIN_SECRET}),
    )
    .await
    {
        Ok(v) if v.get("token").is_some() => {}
        Ok(v) => return Outcome::not_applicable(format!("no identity.* (answered {v})")),
        Err(code) => return Outcome::not_applicable(format!("no identity.* ({code})")),
    }
    if let Err(e) = setup(&mut admin, cfg.login_clients).await {
        out.notes.push(e);
        out.degraded = true;
        return out;
    }
    // The probe alone, for the baseline of this run.
    let probe_phase = (cfg.duration / 4).max(Duration::from_secs(1));
    let (idle, idle_errors) =
        probe(&mut admin, Instant::now() + probe_phase, cfg.max_samples).await;
    let mut clients = Vec::with_capacity(cfg.login_clients);
    for _ in 0..cfg.login_clients {
        match connect(port).await {
            Ok(ws) => clients.push(ws),
            Err(e) => {
                out.notes.push(format!("connect failed: {e}"));
                out.degraded = true;
                return out;
            }
        }
    }
    let cpu_before = cpu_time();
    let start = Instant::now();
    let deadline = start + cfg.duration;
    let cap = cfg.max_samples / cfg.login_clients.max(1);
    let tasks: Vec<_> = clients
        .into_iter()
        .enumerate()
        .map(|(i, ws)| tokio::spawn(client(ws, i, deadline, cap)))
        .collect();
    let (busy, busy_errors) = probe(&mut admin, deadline, cfg.max_samples).await;
    let mut results = Vec::new();
    for t in tasks {
        if let Ok(r) = t.await {
            results.push(r);
        }
    }
    let elapsed = start.elapsed();
    let cpu_used = cpu_time()
        .zip(cpu_before)
        .map(|(after, before)| after.saturating_sub(before));
    let logins: u64 = results.iter().map(|r| r.logins).sum();
    let errors: u64 = results.iter().map(|r| r.errors).sum();
    let sets: Vec<Samples> = results.iter().map(|r| r.samples.clone()).collect();
    let sum = Samples::summarize(&sets);
    let idle = Samples::summarize(&[idle]);
    let busy = Samples::summarize(&[busy]);
    out.more("logins_per_s", per_second(logins, elapsed));
    out.less("login_p50_us", sum.p50_us);
    out.less("login_p99_us", sum.p99_us);
    out.less("probe_get_p99_alone_us", idle.p99_us);
    out.less("probe_get_p50_us", busy.p50_us);
    out.less("probe_get_p99_us", busy.p99_us);
    if let Some(cpu) = cpu_used.filter(|_| logins > 0) {
        out.less(
            "server_cpu_us_per_login",
            cpu.as_secs_f64() * 1e6 / logins as f64,
        );
    }
    if errors + idle_errors + busy_errors > 0 {
        let mut codes: Vec<String> = results.into_iter().flat_map(|r| r.codes).collect();
        codes.sort();
        codes.dedup();
        out.degraded = true;
        out.notes.push(format!(
            "{errors} logins and {} probe reads failed ({})",
            idle_errors + busy_errors,
            codes.join(", ")
        ));
    }
    out
}

/// Creates one user per client and the probe's record.
async fn setup(admin: &mut Ws, users: usize) -> Result<(), String> {
    let mut id = 10;
    for i in 0..users {
        id += 1;
        request(
            admin,
            id,
            json!({"type": "identity.createUser", "username": user(i), "password": PASSWORD}),
        )
        .await
        .map_err(|e| format!("createUser: {e}"))?;
    }
    request(
        admin,
        id + 1,
        json!({"type": "store.defineBucket", "name": PROBE_BUCKET,
            "config": {"key": "id", "schema": {"id": {"type": "string"}, "n": {"type": "number"}}}}),
    )
    .await
    .map_err(|e| format!("defineBucket: {e}"))?;
    request(
        admin,
        id + 2,
        json!({"type": "store.insert", "bucket": PROBE_BUCKET, "data": {"id": "p", "n": 1}}),
    )
    .await
    .map_err(|e| format!("insert: {e}"))?;
    Ok(())
}

fn user(i: usize) -> String {
    format!("bench-user-{i}")
}

/// `store.get` back to back until `deadline`: the latencies and the count of failures.
async fn probe(ws: &mut Ws, deadline: Instant, cap: usize) -> (Samples, u64) {
    let mut samples = Samples::new(cap);
    let mut errors = 0;
    let mut id = 1_000u64;
    while Instant::now() < deadline {
        id += 1;
        let sent = Instant::now();
        let body = json!({"type": "store.get", "bucket": PROBE_BUCKET, "key": "p"});
        match call(ws, id, body).await {
            Ok(Reply::Result(v)) if v.get("n").is_some() => samples.push(sent.elapsed()),
            Ok(_) => errors += 1,
            Err(_) => {
                errors += 1;
                break;
            }
        }
    }
    (samples, errors)
}

async fn client(mut ws: Ws, i: usize, deadline: Instant, cap: usize) -> ClientResult {
    let mut r = ClientResult {
        logins: 0,
        errors: 0,
        codes: Vec::new(),
        samples: Samples::new(cap),
    };
    let mut id = 0u64;
    while Instant::now() < deadline {
        id += 1;
        let sent = Instant::now();
        let body = json!({"type": "identity.login", "username": user(i), "password": PASSWORD});
        match call(&mut ws, id, body).await {
            Ok(Reply::Result(v)) if v.get("token").is_some_and(Value::is_string) => {
                r.samples.push(sent.elapsed());
                r.logins += 1;
            }
            Ok(Reply::Result(v)) => {
                r.errors += 1;
                r.codes.push(format!("result {v}"));
            }
            Ok(Reply::Error(code)) => {
                r.errors += 1;
                r.codes.push(code);
            }
            Err(e) => {
                r.errors += 1;
                r.codes.push(e);
                break;
            }
        }
    }
    r
}
