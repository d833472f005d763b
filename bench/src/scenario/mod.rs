//! The named scenarios. Each runs against one freshly spawned [`crate::target::Target`],
//! bounded by a count and a wall-clock deadline, and returns an [`Outcome`].

pub mod churn;
pub mod connections;
pub mod durable;
pub mod fanout;
pub mod logins;
pub mod rtt;
pub mod transfer;

use std::time::Duration;

use serde_json::json;

use crate::client::{Ws, request};

/// Sizes and limits for all scenarios.
#[derive(Debug, Clone)]
pub struct Config {
    /// request-rtt: connections.
    pub connections: usize,
    /// request-rtt: requests in flight per connection.
    pub depth: usize,
    /// request-rtt: percentage of requests that are `store.insert` (rest `store.get`).
    pub insert_pct: u32,
    /// request-rtt: total requests across all connections.
    pub requests: u64,
    /// fanout: subscriber connections.
    pub subscribers: usize,
    /// fanout: inserts per second by the writer.
    pub rate: u64,
    /// fanout: total inserts.
    pub inserts: u64,
    /// connections: idle connections to open.
    pub idle_connections: usize,
    /// connections: how many connection attempts run concurrently.
    pub open_concurrency: usize,
    /// churn: concurrent workers.
    pub churn_workers: usize,
    /// churn: total connect/subscribe/disconnect cycles.
    pub churn_cycles: u64,
    /// transfer: accounts in the `accounts` bucket (each opened with balance 100).
    pub accounts: usize,
    /// transfer: Zipf exponent of the account each side of a transfer is drawn from
    /// (0: uniform).
    pub zipf: f64,
    /// transfer: concurrent clients, one call in flight each.
    pub transfer_clients: usize,
    /// transfer: total `procedures.call` requests across all clients.
    pub transfer_calls: u64,
    /// durable-writes: connections inserting at once, one `store.insert` in flight each
    /// (beside one probe connection sending `store.get`).
    pub durable_writers: usize,
    /// logins: clients logging in at once, one `identity.login` in flight each.
    pub login_clients: usize,
    /// Wall-clock limit of each scenario's load phase.
    pub duration: Duration,
    /// Latency samples kept per scenario (reservoir past this).
    pub max_samples: usize,
}

/// One measured figure.
#[derive(Debug, Clone, PartialEq)]
pub struct Metric {
    /// Name, e.g. `req_per_s`.
    pub name: &'static str,
    /// Value.
    pub value: f64,
    /// Whether larger is better (for reading ratios).
    pub higher_is_better: bool,
}

/// What one scenario measured against one target.
#[derive(Debug, Clone, Default)]
pub struct Outcome {
    /// Figures, in display order.
    pub metrics: Vec<Metric>,
    /// Anything worth knowing (setup errors, error answers, timeouts).
    pub notes: Vec<String>,
    /// Some operations were answered with errors or failed: the figures do not measure
    /// the intended work, so no ratio is computed from them.
    pub degraded: bool,
    /// The target lacks what the scenario exercises (e.g. the echo baseline has no
    /// `procedures.*`): why. Shown as `n/a`, not as an error.
    pub not_applicable: Option<String>,
    /// A correctness check of the scenario failed (e.g. the transfer invariant): what was
    /// violated. The run prints it loudly and exits with a failure status.
    pub failure: Option<String>,
}

impl Outcome {
    /// The outcome for a target that lacks what the scenario exercises.
    pub fn not_applicable(reason: impl Into<String>) -> Self {
        Outcome {
            not_applicable: Some(reason.into()),
            ..Outcome::default()
        }
    }

    /// Adds a figure where larger is better (throughput).
    pub fn more(&mut self, name: &'static str, value: f64) {
        self.metrics.push(Metric {
            name,
            value,
            higher_is_better: true,
        });
    }

    /// Adds a figure where smaller is better (latency, memory).
    pub fn less(&mut self, name: &'static str, value: f64) {
        self.metrics.push(Metric {
            name,
            value,
            higher_is_better: false,
        });
    }
}

/// Bucket used by request-rtt and fanout.
pub const BUCKET: &str = "bench";
/// Count query over [`BUCKET`]: each push carries the number of records.
pub const COUNT_QUERY: &str = "bench-count";

/// Defines [`BUCKET`] and [`COUNT_QUERY`]; failures become notes (the echo baseline
/// answers `null`, a server without `store.*` answers errors: neither is fatal).
pub async fn define_schema(ws: &mut Ws, out: &mut Outcome) {
    let bucket = json!({"type": "store.defineBucket", "name": BUCKET, "config": {
        "key": "id",
        "schema": {"id": {"type": "string"}, "n": {"type": "number"}}}});
    if let Err(e) = request(ws, 1, bucket).await {
        out.notes.push(format!("defineBucket: {e}"));
    }
    let query = json!({"type": "store.defineQuery", "name": COUNT_QUERY,
        "config": {"bucket": BUCKET, "aggregate": {"function": "count"}}});
    if let Err(e) = request(ws, 2, query).await {
        out.notes.push(format!("defineQuery: {e}"));
    }
}

/// Adds `name`: the server's own CPU time (user + system, from `/proc/PID/stat`) between
/// the readings `before` and `after`, in microseconds per operation. Nothing is added when
/// either reading failed or no operation completed. The readings count in `USER_HZ`
/// ticks (10 ms), so a phase should use at least a second or so of server CPU to be read
/// to better than a few percent.
pub fn cpu_per_op(
    out: &mut Outcome,
    name: &'static str,
    before: Option<Duration>,
    after: Option<Duration>,
    ops: u64,
) {
    if let (Some(before), Some(after)) = (before, after)
        && ops > 0
    {
        let used = after.saturating_sub(before);
        out.less(name, used.as_secs_f64() * 1e6 / ops as f64);
    }
}

/// Requests per second, guarding against a zero elapsed time.
pub fn per_second(count: u64, elapsed: Duration) -> f64 {
    let s = elapsed.as_secs_f64();
    if s > 0.0 { count as f64 / s } else { 0.0 }
}
