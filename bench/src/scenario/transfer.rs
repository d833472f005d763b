//! `transfer`: C clients call the guide's `transfer` procedure (docs/11-procedures.md)
//! between accounts with random amounts, one call in flight each, for the phase's
//! duration; calls/s, call latency percentiles, server CPU per call and calls/s per server
//! core used, how many were refused (insufficient balance) and how many ended in
//! `CONFLICT` after the server's retries.
//!
//! The workload follows SpacetimeDB's "keynote" transfer benchmark: N accounts (100 000
//! by default), both accounts of a pair drawn from a Zipf distribution over the accounts
//! (exponent `s`, 1.0 by default; 0 draws uniformly), so a few accounts are hot and calls
//! touching them contend.
//!
//! Afterwards every account is read back and the invariant checked: the total is what it
//! was, no balance is negative, no account is missing. A violation is an
//! [`Outcome::failure`]: the run reports it loudly and exits with a failure status. The
//! bucket's schema deliberately has no `min: 0` on `balance`, so a lost update or a
//! non-serializable interleaving is caught by this check, not hidden by a validation error.
//!
//! A target that does not serve `procedures.*` (the echo baseline answers `null` to
//! anything, a server without procedures `UNKNOWN_OPERATION`) is reported as not applicable.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::{Config, Outcome, cpu_per_op, per_second};
use crate::client::{Reply, Ws, call, connect, request};
use crate::stats::Samples;
use crate::target::Target;

/// The bucket holding the accounts.
pub const ACCOUNTS_BUCKET: &str = "accounts";
/// The name the procedure is registered under.
pub const PROCEDURE: &str = "transfer";
/// Every account's opening balance.
pub const OPENING_BALANCE: i64 = 100;
/// Amounts are drawn from `1..=MAX_AMOUNT`: above the opening balance, so some calls are
/// refused from the start and more as balances spread.
pub const MAX_AMOUNT: u64 = 120;
/// Records per `store.insertMany` / `store.paginate` page (under `limits.maxBulkRecords`).
const PAGE: usize = 500;

/// The guide's transfer: checks both accounts and the balance, then moves `amount` with
/// two expressions, in one serializable transaction.
pub fn procedure() -> Value {
    json!({
        "name": PROCEDURE,
        "description": "Move money between two accounts",
        "transaction": true,
        "input": {
            "from": {"type": "string"},
            "to": {"type": "string"},
            "amount": {"type": "number"}
        },
        "steps": [
            {"action": "store.get", "bucket": ACCOUNTS_BUCKET, "key": "{{ input.from }}", "as": "source"},
            {"action": "store.get", "bucket": ACCOUNTS_BUCKET, "key": "{{ input.to }}", "as": "target"},
            {"action": "if",
             "condition": {"$and": [
                 {"$neq": ["$input.from", "$input.to"]},
                 {"$neq": ["$source", null]},
                 {"$neq": ["$target", null]},
                 {"$gt": ["$input.amount", 0]},
                 {"$gte": ["$source.balance", "$input.amount"]}]},
             "then": [
                 {"action": "store.update", "bucket": ACCOUNTS_BUCKET, "key": "{{ input.from }}",
                  "data": {"balance": {"$subtract": ["$source.balance", "$input.amount"]}}},
                 {"action": "store.update", "bucket": ACCOUNTS_BUCKET, "key": "{{ input.to }}",
                  "data": {"balance": {"$add": ["$target.balance", "$input.amount"]}}},
                 {"action": "return", "value": {"ok": true}}],
             "else": [{"action": "return", "value": {"ok": false, "reason": "insufficient funds"}}]}
        ]
    })
}

fn account_key(i: usize) -> String {
    format!("a{i}")
}

/// What one client saw.
struct ClientResult {
    moved: u64,
    refused: u64,
    conflicts: u64,
    /// Other error answers.
    errors: u64,
    /// Their codes, each once.
    codes: BTreeSet<String>,
    /// Why the client stopped early (connection broke, an answer timed out).
    broken: Option<String>,
    samples: Samples,
}

/// Runs the scenario against `target`.
pub async fn run(target: &Target, cfg: &Config) -> Outcome {
    run_port(target.port, cfg, || target.cpu_time()).await
}

/// Runs the scenario against the server listening on `127.0.0.1:port`; `cpu_time` reads
/// the server's CPU time so far (`|| None` when it is not a separate process).
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
    // Feature probe: a server with procedures lists them.
    match request(&mut control, 1, json!({"type": "procedures.list"})).await {
        Ok(v) if v.get("procedures").is_some_and(Value::is_array) => {}
        Ok(v) => {
            return Outcome::not_applicable(format!(
                "no procedures.* (procedures.list answered {v})"
            ));
        }
        Err(code) if code == "UNKNOWN_OPERATION" => {
            return Outcome::not_applicable("no procedures.* (UNKNOWN_OPERATION)");
        }
        Err(e) => {
            out.notes.push(format!("procedures.list: {e}"));
            out.degraded = true;
            return out;
        }
    }
    let accounts = cfg.accounts.max(2);
    let zipf = Arc::new(Zipf::new(accounts, cfg.zipf));
    if let Err(e) = setup(&mut control, accounts).await {
        out.notes.push(format!("setup: {e}"));
        out.degraded = true;
        return out;
    }

    let clients = cfg.transfer_clients.max(1);
    let mut sockets = Vec::with_capacity(clients);
    for _ in 0..clients {
        match connect(port).await {
            Ok(ws) => sockets.push(ws),
            Err(e) => {
                out.notes.push(format!("connect failed: {e}"));
                out.degraded = true;
                break;
            }
        }
    }
    let budget = Arc::new(AtomicU64::new(cfg.transfer_calls));
    let cap = cfg.max_samples / sockets.len().max(1);
    let cpu_before = cpu_time();
    let start = Instant::now();
    let deadline = start + cfg.duration;
    let mut tasks = Vec::new();
    for (i, ws) in sockets.into_iter().enumerate() {
        let budget = budget.clone();
        let zipf = zipf.clone();
        tasks.push(tokio::spawn(client(ws, i, zipf, budget, deadline, cap)));
    }
    let mut results = Vec::new();
    for t in tasks {
        match t.await {
            Ok(r) => results.push(r),
            Err(e) => out.notes.push(format!("client task failed: {e}")),
        }
    }
    let elapsed = start.elapsed();
    let cpu_after = cpu_time();

    let moved: u64 = results.iter().map(|r| r.moved).sum();
    let refused: u64 = results.iter().map(|r| r.refused).sum();
    let conflicts: u64 = results.iter().map(|r| r.conflicts).sum();
    let errors: u64 = results.iter().map(|r| r.errors).sum();
    let calls = moved + refused + conflicts + errors;
    for r in &results {
        if let Some(why) = &r.broken {
            out.notes.push(format!("a client stopped early: {why}"));
            out.degraded = true;
        }
    }
    if errors > 0 {
        let codes: BTreeSet<&str> = results
            .iter()
            .flat_map(|r| r.codes.iter().map(String::as_str))
            .collect();
        let codes: Vec<&str> = codes.into_iter().collect();
        out.notes.push(format!(
            "{errors} of {calls} calls answered other errors ({})",
            codes.join(", ")
        ));
        out.degraded = true;
    }
    let sets: Vec<Samples> = results.into_iter().map(|r| r.samples).collect();
    let sum = Samples::summarize(&sets);
    out.more("calls_per_s", per_second(calls, elapsed));
    out.less("p50_us", sum.p50_us);
    out.less("p99_us", sum.p99_us);
    out.less("p999_us", sum.p999_us);
    out.more("calls", calls as f64);
    out.more("moved", moved as f64);
    out.less("refused", refused as f64);
    out.less("conflicts", conflicts as f64);
    cpu_per_op(
        &mut out,
        "server_cpu_us_per_call",
        cpu_before,
        cpu_after,
        calls,
    );
    if let (Some(before), Some(after)) = (cpu_before, cpu_after) {
        // Cores the server kept busy on average: its CPU seconds over the wall seconds.
        let cores = after.saturating_sub(before).as_secs_f64() / elapsed.as_secs_f64().max(1e-9);
        out.less("server_cores", cores);
        if cores > 0.0 {
            out.more("calls_per_s_per_core", per_second(calls, elapsed) / cores);
        }
    }

    match verify(&mut control, accounts).await {
        Ok(check) => {
            let expected = OPENING_BALANCE * accounts as i64;
            out.more("accounts_checked", check.count as f64);
            out.less("total_drift", (check.total - expected) as f64);
            out.less("negative_accounts", check.negative as f64);
            let violated = violations(&check, accounts);
            if !violated.is_empty() {
                out.failure = Some(format!(
                    "transfer invariant violated after {moved} transfers: {}",
                    violated.join("; ")
                ));
            }
        }
        Err(e) => {
            // Not being able to check is not a pass.
            out.failure = Some(format!("transfer invariant not checked: {e}"));
        }
    }
    let _ = futures_util::SinkExt::close(&mut control).await;
    out
}

/// What is wrong with the accounts read back after the load (empty: the invariant holds):
/// the total must be `accounts * OPENING_BALANCE`, no balance negative, every account
/// present with an integer balance.
fn violations(check: &Check, accounts: usize) -> Vec<String> {
    let expected = OPENING_BALANCE * accounts as i64;
    let mut violated = Vec::new();
    if check.total != expected {
        violated.push(format!(
            "sum of balances is {} (expected {expected})",
            check.total
        ));
    }
    if check.negative > 0 {
        violated.push(format!(
            "{} accounts have a negative balance (lowest {})",
            check.negative, check.lowest
        ));
    }
    if check.count != accounts {
        violated.push(format!("{} accounts (expected {accounts})", check.count));
    }
    if let Some(first) = check.malformed.first() {
        violated.push(format!(
            "{} accounts without an integer balance (first {first})",
            check.malformed.len()
        ));
    }
    violated
}

/// Defines the bucket, opens the accounts and registers the procedure.
async fn setup(ws: &mut Ws, accounts: usize) -> Result<(), String> {
    let bucket = json!({"type": "store.defineBucket", "name": ACCOUNTS_BUCKET, "config": {
        "key": "id",
        "schema": {"id": {"type": "string"}, "balance": {"type": "number"}}}});
    request(ws, 2, bucket)
        .await
        .map_err(|e| format!("defineBucket: {e}"))?;
    for (id, first) in (10..).zip((0..accounts).step_by(PAGE)) {
        let data: Vec<Value> = (first..(first + PAGE).min(accounts))
            .map(|i| json!({"id": account_key(i), "balance": OPENING_BALANCE}))
            .collect();
        let insert = json!({"type": "store.insertMany", "bucket": ACCOUNTS_BUCKET, "data": data});
        request(ws, id, insert)
            .await
            .map_err(|e| format!("insertMany: {e}"))?;
    }
    let register = json!({"type": "procedures.register", "procedure": procedure()});
    request(ws, 3, register)
        .await
        .map_err(|e| format!("procedures.register: {e}"))?;
    Ok(())
}

/// What the read-back found.
struct Check {
    count: usize,
    total: i64,
    negative: usize,
    lowest: i64,
    /// Keys of accounts whose balance is not an integer.
    malformed: Vec<String>,
}

/// Reads every account page by page (after all clients have stopped) and sums up.
async fn verify(ws: &mut Ws, accounts: usize) -> Result<Check, String> {
    let mut check = Check {
        count: 0,
        total: 0,
        negative: 0,
        lowest: OPENING_BALANCE,
        malformed: Vec::new(),
    };
    let mut after: Option<Value> = None;
    // Bounded: one page more than the accounts need, in case the server returns extra.
    for page in 0..=(accounts / PAGE + 1) {
        let mut body = json!({"type": "store.paginate", "bucket": ACCOUNTS_BUCKET, "limit": PAGE});
        if let Some(cursor) = &after {
            body["after"] = cursor.clone();
        }
        let data = request(ws, 1000 + page as u64, body)
            .await
            .map_err(|e| format!("store.paginate: {e}"))?;
        let records = data
            .get("records")
            .and_then(Value::as_array)
            .ok_or_else(|| format!("store.paginate answered {data}"))?;
        for r in records {
            check.count += 1;
            match r.get("balance").and_then(Value::as_i64) {
                Some(b) => {
                    check.total += b;
                    check.lowest = check.lowest.min(b);
                    if b < 0 {
                        check.negative += 1;
                    }
                }
                None => check.malformed.push(
                    r.get("id")
                        .map_or_else(|| "?".to_owned(), |id| id.to_string()),
                ),
            }
        }
        if data.get("hasMore") != Some(&Value::Bool(true)) {
            return Ok(check);
        }
        after = data.get("nextCursor").cloned();
    }
    Err(format!(
        "store.paginate still had more after {} records",
        check.count
    ))
}

/// One client: transfers back to back until the deadline or the budget runs out.
async fn client(
    mut ws: Ws,
    index: usize,
    zipf: Arc<Zipf>,
    budget: Arc<AtomicU64>,
    deadline: Instant,
    cap: usize,
) -> ClientResult {
    let mut r = ClientResult {
        moved: 0,
        refused: 0,
        conflicts: 0,
        errors: 0,
        codes: BTreeSet::new(),
        broken: None,
        samples: Samples::new(cap),
    };
    // xorshift64 seeded per client: pairs and amounts vary, runs are reproducible.
    let mut x = 0x9E37_79B9_7F4A_7C15_u64.wrapping_mul(index as u64 + 1) | 1;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let mut id = 100u64;
    while Instant::now() < deadline
        && budget
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |b| b.checked_sub(1))
            .is_ok()
    {
        // Two distinct accounts, so a refusal always means insufficient balance.
        let (from, to) = zipf.pair(&mut next);
        let amount = next() % MAX_AMOUNT + 1;
        let body = json!({"type": "procedures.call", "name": PROCEDURE, "input": {
            "from": format!("a{from}"), "to": format!("a{to}"), "amount": amount}});
        let sent = Instant::now();
        let reply = call(&mut ws, id, body).await;
        id += 1;
        match reply {
            Ok(Reply::Result(data)) => {
                r.samples.push(sent.elapsed());
                if data["result"]["ok"] == true {
                    r.moved += 1;
                } else {
                    r.refused += 1;
                }
            }
            Ok(Reply::Error(code)) => {
                r.samples.push(sent.elapsed());
                if code == "CONFLICT" {
                    r.conflicts += 1;
                } else {
                    r.errors += 1;
                    r.codes.insert(code);
                }
            }
            Err(e) => {
                r.broken = Some(e);
                break;
            }
        }
    }
    let _ = tokio::time::timeout(
        Duration::from_secs(1),
        futures_util::SinkExt::close(&mut ws),
    )
    .await;
    r
}

/// A Zipf distribution over account indexes `0..n`: index `i` is drawn with probability
/// proportional to `1 / (i + 1)^s` (index 0 hottest). Sampled by inverting a precomputed
/// cumulative distribution with a binary search (n floats, shared by all clients).
pub struct Zipf {
    /// `cdf[i]`: probability of drawing an index `<= i`; the last entry is 1.
    cdf: Vec<f64>,
}

impl Zipf {
    /// The distribution over `0..n` (at least one index) with exponent `s` (`0`: uniform;
    /// a negative or non-finite `s` is taken as 0).
    pub fn new(n: usize, s: f64) -> Self {
        let s = if s.is_finite() && s > 0.0 { s } else { 0.0 };
        let mut cdf = Vec::with_capacity(n.max(1));
        let mut total = 0.0;
        for i in 0..n.max(1) {
            total += 1.0 / ((i + 1) as f64).powf(s);
            cdf.push(total);
        }
        for c in &mut cdf {
            *c /= total;
        }
        Zipf { cdf }
    }

    /// The index whose cumulative probability first reaches `u` (in `[0, 1)`).
    pub fn index(&self, u: f64) -> usize {
        self.cdf.partition_point(|&c| c < u).min(self.cdf.len() - 1)
    }

    /// One index drawn with `next` (a source of uniform 64-bit values).
    pub fn sample(&self, next: &mut impl FnMut() -> u64) -> usize {
        // The top 53 bits as a float in [0, 1).
        self.index((next() >> 11) as f64 / (1u64 << 53) as f64)
    }

    /// Two distinct indexes, each drawn from the distribution (the second redrawn while it
    /// equals the first; after 64 equal draws, the first's neighbour). Needs `n >= 2`.
    pub fn pair(&self, next: &mut impl FnMut() -> u64) -> (usize, usize) {
        let n = self.cdf.len();
        let from = self.sample(next);
        for _ in 0..64 {
            let to = self.sample(next);
            if to != from {
                return (from, to);
            }
        }
        (from, (from + 1) % n.max(2))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn xorshift(seed: u64) -> impl FnMut() -> u64 {
        let mut x = seed | 1;
        move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        }
    }

    #[test]
    fn zipf_frequencies_follow_the_exponent() {
        let zipf = Zipf::new(1000, 1.0);
        let mut next = xorshift(7);
        let mut counts = vec![0u32; 1000];
        let draws = 200_000;
        for _ in 0..draws {
            counts[zipf.sample(&mut next)] += 1;
        }
        // P(0) = 1 / H(1000) ≈ 0.1336; P(1) = P(0) / 2; P(9) = P(0) / 10.
        let p0 = f64::from(counts[0]) / f64::from(draws);
        assert!((p0 - 0.1336).abs() < 0.005, "{p0}");
        let ratio = f64::from(counts[0]) / f64::from(counts[1]);
        assert!((ratio - 2.0).abs() < 0.1, "{ratio}");
        let ratio = f64::from(counts[0]) / f64::from(counts[9]);
        assert!((ratio - 10.0).abs() < 1.0, "{ratio}");
    }

    #[test]
    fn zipf_zero_is_uniform_and_pairs_are_distinct() {
        let zipf = Zipf::new(4, 0.0);
        assert_eq!(zipf.index(0.0), 0);
        assert_eq!(zipf.index(0.3), 1);
        assert_eq!(zipf.index(0.99), 3);
        assert_eq!(zipf.index(1.0), 3);
        let two = Zipf::new(2, 3.0);
        let mut next = xorshift(3);
        for _ in 0..1000 {
            let (a, b) = two.pair(&mut next);
            assert_ne!(a, b);
            assert!(a < 2 && b < 2);
        }
    }

    fn check(count: usize, total: i64, balances: &[i64]) -> Check {
        Check {
            count,
            total,
            negative: balances.iter().filter(|b| **b < 0).count(),
            lowest: balances.iter().copied().min().unwrap_or(OPENING_BALANCE),
            malformed: Vec::new(),
        }
    }

    #[test]
    fn a_kept_invariant_has_no_violation() {
        assert!(violations(&check(2, 200, &[0, 200]), 2).is_empty());
    }

    #[test]
    fn every_broken_part_is_named() {
        let v = violations(&check(2, 190, &[-10, 200]), 2);
        assert_eq!(v.len(), 2, "{v:?}");
        assert!(v[0].contains("sum of balances is 190 (expected 200)"));
        assert!(v[1].contains("1 accounts have a negative balance (lowest -10)"));
        let mut missing = check(1, 200, &[200]);
        missing.malformed.push("\"a1\"".into());
        let v = violations(&missing, 2);
        assert!(
            v.iter().any(|m| m.contains("1 accounts (expected 2)")),
            "{v:?}"
        );
        assert!(
            v.iter().any(|m| m.contains("without an integer balance")),
            "{v:?}"
        );
    }
}
