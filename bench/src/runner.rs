//! Runs the selected scenarios against the selected targets, one fresh server per
//! (scenario, target) pair, in the order given (echo first by default), so each noex
//! figure has its baselines from the same run.

use crate::report::Row;
use crate::scenario::{self, Config};
use crate::target::{Binaries, Target, TargetKind};

/// All scenario names, in run order.
pub const SCENARIOS: [&str; 7] = [
    "request-rtt",
    "fanout",
    "connections",
    "churn",
    "transfer",
    "logins",
    "durable-writes",
];

/// Runs every `scenarios` x `targets` pair and returns the rows. A target that fails to
/// start yields a row with a note instead of aborting the run.
pub async fn run(
    scenarios: &[&'static str],
    targets: &[TargetKind],
    bins: &Binaries,
    cfg: &Config,
) -> Vec<Row> {
    let mut rows = Vec::new();
    for &name in scenarios {
        for &kind in targets {
            let label = bins.label(kind);
            eprintln!("running {name} against {label}");
            // durable-writes: our server writes to a fresh database with sync durability.
            let durable = (name == "durable-writes").then(scenario::durable::data_dir);
            let extra = durable
                .as_deref()
                .map(scenario::durable::server_args)
                .unwrap_or_default();
            let outcome = match Target::spawn_with(kind, bins, name == "logins", &extra) {
                Ok(target) => match name {
                    "request-rtt" => scenario::rtt::run(&target, cfg).await,
                    "fanout" => scenario::fanout::run(&target, cfg).await,
                    "connections" => scenario::connections::run(&target, cfg).await,
                    "transfer" => scenario::transfer::run(&target, cfg).await,
                    "logins" => scenario::logins::run(&target, cfg).await,
                    "durable-writes" => scenario::durable::run(&target, cfg).await,
                    _ => scenario::churn::run(&target, cfg).await,
                },
                Err(e) => scenario::Outcome {
                    notes: vec![e],
                    degraded: true,
                    ..scenario::Outcome::default()
                },
            };
            if let Some(dir) = durable {
                // The target (and its file lock) is gone by now.
                let _ = std::fs::remove_dir_all(dir);
            }
            if let Some(failure) = &outcome.failure {
                eprintln!("FAILED: {name} against {label}: {failure}");
            }
            rows.push(Row {
                scenario: name,
                target: kind,
                label,
                outcome,
            });
        }
    }
    rows
}
