//! What `GET /metrics` reports (see docs/10-production.md for the list): counters and
//! histograms kept on the request path as plain atomics in fixed tables indexed by the
//! *typed* operation, result code, close code and operation family — no lock, no
//! allocation and no label built from a client's string while serving. A scrape
//! (`endpoints`) encodes them with `prometheus-client`'s encoder, beside the gauges it
//! reads from the server's state then (connections, subscriptions, buckets, rules).
//!
//! With `http.metrics: false` nothing is counted (every `record_*` returns at once).
//! Request counters and latency histograms are sharded per thread (see `RequestShard`).

use std::cell::Cell;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use noex_protocol::ErrorCode;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;

/// Every operation the protocol knows, sorted (binary search); anything else is counted
/// as [`UNKNOWN_OPERATION`]. A unit test checks each one parses as a known operation.
pub(crate) const OPERATIONS: [&str; 88] = [
    "audit.query",
    "auth.login",
    "auth.logout",
    "auth.whoami",
    "identity.assignRole",
    "identity.changePassword",
    "identity.createRole",
    "identity.createUser",
    "identity.deleteRole",
    "identity.deleteUser",
    "identity.disableUser",
    "identity.enableUser",
    "identity.getAcl",
    "identity.getOwner",
    "identity.getUser",
    "identity.getUserRoles",
    "identity.grant",
    "identity.listRoles",
    "identity.listUsers",
    "identity.login",
    "identity.loginWithSecret",
    "identity.logout",
    "identity.myAccess",
    "identity.refreshSession",
    "identity.removeRole",
    "identity.resetPassword",
    "identity.revoke",
    "identity.transferOwner",
    "identity.updateRole",
    "identity.updateUser",
    "identity.whoami",
    "procedures.call",
    "procedures.get",
    "procedures.list",
    "procedures.register",
    "procedures.unregister",
    "procedures.update",
    "rules.deleteFact",
    "rules.disableRule",
    "rules.emit",
    "rules.enableRule",
    "rules.getAllFacts",
    "rules.getFact",
    "rules.getRule",
    "rules.getRules",
    "rules.queryFacts",
    "rules.registerRule",
    "rules.setFact",
    "rules.stats",
    "rules.subscribe",
    "rules.unregisterRule",
    "rules.unsubscribe",
    "rules.updateRule",
    "rules.validateRule",
    "server.connections",
    "server.revokeSessions",
    "server.stats",
    "store.all",
    "store.avg",
    "store.buckets",
    "store.clear",
    "store.count",
    "store.defineBucket",
    "store.defineQuery",
    "store.delete",
    "store.deleteMany",
    "store.dropBucket",
    "store.findOne",
    "store.first",
    "store.get",
    "store.getBucketSchema",
    "store.groupBy",
    "store.insert",
    "store.insertMany",
    "store.last",
    "store.listQueries",
    "store.max",
    "store.min",
    "store.paginate",
    "store.stats",
    "store.subscribe",
    "store.sum",
    "store.transaction",
    "store.undefineQuery",
    "store.unsubscribe",
    "store.update",
    "store.updateBucket",
    "store.updateMany",
];

/// The `operation` label of requests whose type is not one of [`OPERATIONS`] (and of
/// frames that are not a valid request at all).
pub(crate) const UNKNOWN_OPERATION: &str = "unknown";

/// Operation families: the `family` label of the latency histogram.
const FAMILIES: [&str; 8] = [
    "store",
    "rules",
    "auth",
    "server",
    "audit",
    "procedures",
    "identity",
    "other",
];

/// Close codes with a label of their own; any other code a client sends is `other`, and a
/// connection that ended without a close frame is `1006`.
const CLOSE_CODES: [u16; 13] = [
    1000, 1001, 1002, 1003, 1005, 1006, 1007, 1008, 1009, 1011, 4001, 4002, 4003,
];
const CLOSE_LABELS: [&str; 14] = [
    "1000", "1001", "1002", "1003", "1005", "1006", "1007", "1008", "1009", "1011", "4001", "4002",
    "4003", "other",
];

/// Upper bounds of the request latency buckets, in seconds (100 µs to 10 s).
const LATENCY_BOUNDS: [f64; 16] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0,
];

/// Index of an operation type in [`OPERATIONS`], or `OPERATIONS.len()` (unknown).
pub(crate) fn operation_index(op_type: &str) -> usize {
    OPERATIONS
        .binary_search(&op_type)
        .unwrap_or(OPERATIONS.len())
}

/// The `operation` label of an index from [`operation_index`].
pub(crate) fn operation_name(index: usize) -> &'static str {
    operation_label(index)
}

fn operation_label(index: usize) -> &'static str {
    OPERATIONS.get(index).copied().unwrap_or(UNKNOWN_OPERATION)
}

fn family_index(operation: usize) -> usize {
    let namespace = OPERATIONS
        .get(operation)
        .and_then(|op| op.split_once('.'))
        .map_or("", |(ns, _)| ns);
    FAMILIES
        .iter()
        .position(|f| *f == namespace)
        .unwrap_or(FAMILIES.len() - 1)
}

/// Results: `ok`, then every error code in [`ErrorCode::ALL`] order.
const RESULTS: usize = 1 + ErrorCode::ALL.len();

fn result_index(result: Result<(), ErrorCode>) -> usize {
    match result {
        Ok(()) => 0,
        Err(code) => 1 + ErrorCode::ALL.iter().position(|c| *c == code).unwrap_or(0),
    }
}

fn result_label(index: usize) -> &'static str {
    match index.checked_sub(1) {
        None => "ok",
        Some(i) => ErrorCode::ALL
            .get(i)
            .map_or("INTERNAL_ERROR", |c| c.as_str()),
    }
}

fn close_index(code: Option<u16>) -> usize {
    let code = code.unwrap_or(1006);
    CLOSE_CODES
        .iter()
        .position(|c| *c == code)
        .unwrap_or(CLOSE_CODES.len())
}

/// A histogram of durations over fixed bounds, updated with two relaxed atomic adds (its
/// count is the sum of its buckets).
#[derive(Debug)]
struct DurationHistogram {
    /// Per-bucket (not cumulative) counts; the last is the `+Inf` overflow.
    buckets: Vec<AtomicU64>,
    bounds: &'static [f64],
    sum_ns: AtomicU64,
}

impl DurationHistogram {
    fn new(bounds: &'static [f64]) -> Self {
        DurationHistogram {
            buckets: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            bounds,
            sum_ns: AtomicU64::new(0),
        }
    }

    fn observe(&self, elapsed: Duration) {
        let secs = elapsed.as_secs_f64();
        let index = self.bounds.partition_point(|bound| *bound < secs);
        if let Some(bucket) = self.buckets.get(index) {
            bucket.fetch_add(1, Ordering::Relaxed);
        }
        let ns = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
        self.sum_ns.fetch_add(ns, Ordering::Relaxed);
    }

    fn encode(&self, encoder: &mut prometheus_client::encoding::MetricEncoder<'_>) -> fmt::Result {
        encode_merged(self.bounds, &[self], encoder)
    }
}

/// Encodes the sum of `histograms` (all over `bounds`).
fn encode_merged(
    bounds: &'static [f64],
    histograms: &[&DurationHistogram],
    encoder: &mut prometheus_client::encoding::MetricEncoder<'_>,
) -> fmt::Result {
    let mut buckets: Vec<(f64, u64)> = bounds
        .iter()
        .copied()
        .chain(std::iter::once(f64::INFINITY))
        .map(|bound| (bound, 0))
        .collect();
    let mut sum_ns = 0u64;
    for histogram in histograms {
        for ((_, total), bucket) in buckets.iter_mut().zip(&histogram.buckets) {
            *total += bucket.load(Ordering::Relaxed);
        }
        sum_ns = sum_ns.saturating_add(histogram.sum_ns.load(Ordering::Relaxed));
    }
    // The count is the sum of the buckets read, so that the exposition is consistent even
    // while requests are being counted.
    let count = buckets.iter().map(|(_, n)| n).sum();
    encoder.encode_histogram::<NoLabelSet>(sum_ns as f64 / 1e9, count, &buckets, None)
}

/// The request counters and latency histograms written by the threads that map to it
/// (see [`shard_index`]): each runtime worker writes cache lines of its own, so counting a
/// request never waits for a line held by another core. (With one shared set, `request-rtt`
/// on 2 cores measured about 5 % more server CPU per request than with metrics off.)
#[derive(Debug)]
#[repr(align(128))]
struct RequestShard {
    /// `(OPERATIONS.len() + 1) × RESULTS` request counters.
    counts: Vec<AtomicU64>,
    /// One latency histogram per family.
    latency: Vec<DurationHistogram>,
}

impl RequestShard {
    fn new() -> Self {
        RequestShard {
            counts: (0..(OPERATIONS.len() + 1) * RESULTS)
                .map(|_| AtomicU64::new(0))
                .collect(),
            latency: FAMILIES
                .iter()
                .map(|_| DurationHistogram::new(&LATENCY_BOUNDS))
                .collect(),
        }
    }
}

/// The most request shards (one per core up to this).
const MAX_SHARDS: usize = 16;

/// This thread's shard among `shards`: threads are numbered on first use.
fn shard_index(shards: usize) -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static THREAD: Cell<usize> = const { Cell::new(usize::MAX) };
    }
    let number = THREAD.with(|n| {
        if n.get() == usize::MAX {
            n.set(NEXT.fetch_add(1, Ordering::Relaxed));
        }
        n.get()
    });
    number % shards.max(1)
}

/// The counters and histograms kept while serving (see the module documentation).
#[derive(Debug)]
pub(crate) struct Metrics {
    enabled: bool,
    connections_opened: AtomicU64,
    connections_closed: [AtomicU64; CLOSE_LABELS.len()],
    /// Request counters and latency, sharded by thread.
    shards: Vec<RequestShard>,
    rate_limited: AtomicU64,
    login_limited: AtomicU64,
    heartbeat_timeouts: AtomicU64,
    write_deadline_drops: AtomicU64,
    http_requests: [AtomicU64; HTTP_LABELS.len()],
    /// Persistence commit durations, fed by the store's commit observer.
    commits: Arc<DurationHistogram>,
}

/// The `endpoint` label of HTTP requests answered by the server itself.
pub(crate) const HTTP_LABELS: [&str; 6] =
    ["health", "ready", "metrics", "other", "refused", "console"];

/// Which HTTP endpoint a plain HTTP request was for.
#[derive(Debug, Clone, Copy)]
pub(crate) enum HttpEndpoint {
    /// `/health`.
    Health = 0,
    /// `/ready`.
    Ready = 1,
    /// `/metrics`.
    Metrics = 2,
    /// Anything else with a well-formed head (404, 405, 426).
    Other = 3,
    /// A malformed or oversized head (400, 431).
    Refused = 4,
    /// `/console`, its files and its `config.json` (with `http.console`).
    Console = 5,
}

/// Upper bounds of the commit latency buckets, in seconds (50 µs to 5 s).
const COMMIT_BOUNDS: [f64; 14] = [
    0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1.0, 5.0,
];

impl Metrics {
    /// Metrics that count (`enabled`) or stay at zero.
    pub(crate) fn new(enabled: bool) -> Self {
        Metrics {
            enabled,
            connections_opened: AtomicU64::new(0),
            connections_closed: Default::default(),
            // Without metrics nothing is counted: no memory for the tables either.
            shards: (0..if enabled {
                std::thread::available_parallelism().map_or(1, |n| n.get().min(MAX_SHARDS))
            } else {
                0
            })
                .map(|_| RequestShard::new())
                .collect(),
            rate_limited: AtomicU64::new(0),
            login_limited: AtomicU64::new(0),
            heartbeat_timeouts: AtomicU64::new(0),
            write_deadline_drops: AtomicU64::new(0),
            http_requests: Default::default(),
            commits: Arc::new(DurationHistogram::new(&COMMIT_BOUNDS)),
        }
    }

    /// Whether metrics are counted.
    pub(crate) fn enabled(&self) -> bool {
        self.enabled
    }

    /// One request answered: its operation (an index from [`operation_index`]), its result,
    /// and how long it took.
    pub(crate) fn record_request(
        &self,
        operation: usize,
        result: Result<(), ErrorCode>,
        elapsed: Duration,
    ) {
        if !self.enabled {
            return;
        }
        let Some(shard) = self.shards.get(shard_index(self.shards.len())) else {
            return;
        };
        let operation = operation.min(OPERATIONS.len());
        if let Some(counter) = shard.counts.get(operation * RESULTS + result_index(result)) {
            counter.fetch_add(1, Ordering::Relaxed);
        }
        if let Some(histogram) = shard.latency.get(family_index(operation)) {
            histogram.observe(elapsed);
        }
    }

    /// A frame that is not a valid request, answered with `code`.
    pub(crate) fn record_invalid_frame(&self, code: ErrorCode) {
        if !self.enabled {
            return;
        }
        let Some(shard) = self.shards.get(shard_index(self.shards.len())) else {
            return;
        };
        if let Some(counter) = shard
            .counts
            .get(OPERATIONS.len() * RESULTS + result_index(Err(code)))
        {
            counter.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// A WebSocket connection opened (its handshake completed).
    pub(crate) fn record_opened(&self) {
        if self.enabled {
            self.connections_opened.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// A WebSocket connection closed with `code` (`None`: no close frame, counted as 1006).
    pub(crate) fn record_closed(&self, code: Option<u16>) {
        if !self.enabled {
            return;
        }
        if let Some(counter) = self.connections_closed.get(close_index(code)) {
            counter.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// A request refused by the rate limiter.
    pub(crate) fn record_rate_limited(&self) {
        if self.enabled {
            self.rate_limited.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// A login refused by the failed-login limits.
    pub(crate) fn record_login_limited(&self) {
        if self.enabled {
            self.login_limited.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// A connection closed because its client answered no ping.
    pub(crate) fn record_heartbeat_timeout(&self) {
        if self.enabled {
            self.heartbeat_timeouts.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// A connection dropped because its socket accepted no bytes within the write deadline.
    pub(crate) fn record_write_deadline_drop(&self) {
        if self.enabled {
            self.write_deadline_drops.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// A plain HTTP request answered.
    pub(crate) fn record_http(&self, endpoint: HttpEndpoint) {
        if !self.enabled {
            return;
        }
        if let Some(counter) = self.http_requests.get(endpoint as usize) {
            counter.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The observer to give the store: records each persistence commit's duration.
    pub(crate) fn commit_observer(&self) -> Option<noex_store::CommitObserver> {
        if !self.enabled {
            return None;
        }
        let commits = Arc::clone(&self.commits);
        Some(Arc::new(move |elapsed| commits.observe(elapsed)))
    }
}

impl Metrics {
    /// Encodes the counters and histograms kept while serving (the scrape-time gauges are
    /// the caller's: see `endpoints`).
    pub(crate) fn encode(&self, encoder: &mut DescriptorEncoder<'_>) -> fmt::Result {
        let m = self;
        let counter = MetricType::Counter;
        let e = encoder.encode_descriptor(
            "noex_connections_opened",
            "WebSocket connections opened (handshake completed)",
            None,
            counter,
        )?;
        load(&m.connections_opened).encode(e)?;
        let mut e = encoder.encode_descriptor(
            "noex_connections_closed",
            "WebSocket connections closed, by close code (1006: no close frame)",
            None,
            counter,
        )?;
        for (label, value) in CLOSE_LABELS.iter().zip(&m.connections_closed) {
            let v = value.load(Ordering::Relaxed);
            if v > 0 {
                ConstCounter::new(v).encode(e.encode_family(&[("code", *label)])?)?;
            }
        }
        let mut e = encoder.encode_descriptor(
            "noex_requests",
            "Requests answered, by operation and result (ok or the error code)",
            None,
            counter,
        )?;
        for index in 0..(OPERATIONS.len() + 1) * RESULTS {
            let v: u64 = m
                .shards
                .iter()
                .filter_map(|shard| shard.counts.get(index))
                .map(|c| c.load(Ordering::Relaxed))
                .sum();
            if v > 0 {
                let labels = [
                    ("operation", operation_label(index / RESULTS)),
                    ("result", result_label(index % RESULTS)),
                ];
                ConstCounter::new(v).encode(e.encode_family(&labels)?)?;
            }
        }
        let mut e = encoder.encode_descriptor(
            "noex_request_duration_seconds",
            "Time to handle a request, from its frame parsed to its answer built, by operation family",
            None,
            MetricType::Histogram,
        )?;
        for (index, family) in FAMILIES.iter().enumerate() {
            let histograms: Vec<&DurationHistogram> = m
                .shards
                .iter()
                .filter_map(|shard| shard.latency.get(index))
                .collect();
            encode_merged(
                &LATENCY_BOUNDS,
                &histograms,
                &mut e.encode_family(&[("family", *family)])?,
            )?;
        }
        let mut e = encoder.encode_descriptor(
            "noex_persistence_commit_duration_seconds",
            "Time to write and commit one group of store changes to disk (durable storage only)",
            None,
            MetricType::Histogram,
        )?;
        m.commits.encode(&mut e)?;
        for (name, help, value) in [
            (
                "noex_rate_limited",
                "Requests refused by the rate limiter (RATE_LIMITED)",
                &m.rate_limited,
            ),
            (
                "noex_login_limited",
                "Logins refused by the failed-login limits (limits.login)",
                &m.login_limited,
            ),
            (
                "noex_heartbeat_timeouts",
                "Connections closed with 4001 because the client answered no ping",
                &m.heartbeat_timeouts,
            ),
            (
                "noex_write_deadline_drops",
                "Connections dropped because their socket accepted no bytes within the \
                 write deadline (heartbeat.timeoutMs)",
                &m.write_deadline_drops,
            ),
        ] {
            let e = encoder.encode_descriptor(name, help, None, counter)?;
            load(value).encode(e)?;
        }
        let mut e = encoder.encode_descriptor(
            "noex_http_requests",
            "Plain HTTP requests answered by the server, by endpoint",
            None,
            counter,
        )?;
        for (label, value) in HTTP_LABELS.iter().zip(&m.http_requests) {
            load(value).encode(e.encode_family(&[("endpoint", *label)])?)?;
        }
        Ok(())
    }
}

/// A counter's current value, for encoding.
fn load(counter: &AtomicU64) -> ConstCounter {
    ConstCounter::new(counter.load(Ordering::Relaxed))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operations_are_sorted_and_all_known() {
        let mut sorted = OPERATIONS;
        sorted.sort_unstable();
        assert_eq!(sorted, OPERATIONS, "binary search needs them sorted");
        for op in OPERATIONS {
            let parsed = noex_protocol::Operation::parse(op, &serde_json::Map::new());
            assert!(
                !matches!(
                    parsed,
                    Err(noex_protocol::OperationError::Unknown(_))
                        | Ok(noex_protocol::Operation::Unknown(_))
                ),
                "{op} is not an operation"
            );
        }
        assert_eq!(operation_index("store.nope"), OPERATIONS.len());
        assert_eq!(operation_label(operation_index("store.nope")), "unknown");
        assert_eq!(operation_label(operation_index("store.get")), "store.get");
    }

    #[test]
    fn labels_are_bounded() {
        assert_eq!(result_label(result_index(Ok(()))), "ok");
        for code in ErrorCode::ALL {
            assert_eq!(result_label(result_index(Err(code))), code.as_str());
        }
        assert_eq!(CLOSE_LABELS[close_index(Some(4999))], "other");
        assert_eq!(CLOSE_LABELS[close_index(None)], "1006");
        assert_eq!(CLOSE_LABELS[close_index(Some(4001))], "4001");
        assert_eq!(
            FAMILIES[family_index(operation_index("auth.login"))],
            "auth"
        );
        assert_eq!(FAMILIES[family_index(OPERATIONS.len())], "other");
    }

    #[test]
    fn histogram_buckets_by_upper_bound() {
        let h = DurationHistogram::new(&LATENCY_BOUNDS);
        h.observe(Duration::from_micros(50)); // <= 0.0001
        h.observe(Duration::from_micros(100)); // == 0.0001: le is inclusive
        h.observe(Duration::from_secs(20)); // +Inf
        assert_eq!(h.buckets[0].load(Ordering::Relaxed), 2);
        assert_eq!(h.buckets[LATENCY_BOUNDS.len()].load(Ordering::Relaxed), 1);
        assert_eq!(h.sum_ns.load(Ordering::Relaxed), 20_000_150_000);
    }
}
