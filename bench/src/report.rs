//! Output: a readable table (one block per scenario: metric, echo, noex, noex/echo) and
//! an optional JSON document with one object per scenario and target plus the ratios.

use std::fmt::Write as _;

use serde_json::{Value, json};

use crate::scenario::Outcome;
use crate::target::TargetKind;

/// One scenario run against one target.
#[derive(Debug, Clone)]
pub struct Row {
    /// Scenario name, e.g. `request-rtt`.
    pub scenario: &'static str,
    /// The target it ran against.
    pub target: TargetKind,
    /// What was measured (or why nothing was).
    pub outcome: Outcome,
}

fn find<'a>(rows: &'a [Row], scenario: &str, target: TargetKind) -> Option<&'a Outcome> {
    rows.iter()
        .find(|r| r.scenario == scenario && r.target == target)
        .map(|r| &r.outcome)
}

fn value(o: Option<&Outcome>, metric: &str) -> Option<f64> {
    o?.metrics
        .iter()
        .find(|m| m.name == metric)
        .map(|m| m.value)
}

fn ratio(noex: Option<f64>, echo: Option<f64>) -> Option<f64> {
    match (noex, echo) {
        (Some(n), Some(e)) if e != 0.0 => Some(n / e),
        _ => None,
    }
}

fn scenarios(rows: &[Row]) -> Vec<&'static str> {
    let mut names: Vec<&'static str> = Vec::new();
    for r in rows {
        if !names.contains(&r.scenario) {
            names.push(r.scenario);
        }
    }
    names
}

/// A cell: `n/a` for a target the scenario does not apply to.
fn cell(o: Option<&Outcome>, metric: &str) -> String {
    match o {
        Some(o) if o.not_applicable.is_some() => "n/a".into(),
        _ => fmt(value(o, metric)),
    }
}

fn fmt(v: Option<f64>) -> String {
    match v {
        None => "-".into(),
        Some(x) if x.abs() >= 100.0 => format!("{x:.0}"),
        Some(x) => format!("{x:.2}"),
    }
}

/// Renders all rows as a plain-text table.
pub fn table(rows: &[Row]) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{:<14} {:<24} {:>12} {:>12} {:>10}",
        "scenario", "metric", "echo", "noex", "noex/echo"
    );
    for name in scenarios(rows) {
        let echo = find(rows, name, TargetKind::Echo);
        let noex = find(rows, name, TargetKind::Noex);
        let mut metrics: Vec<&'static str> = Vec::new();
        for o in [echo, noex].into_iter().flatten() {
            for m in &o.metrics {
                if !metrics.contains(&m.name) {
                    metrics.push(m.name);
                }
            }
        }
        let degraded = [echo, noex].into_iter().flatten().any(|o| o.degraded);
        for m in metrics {
            let (e, n) = (value(echo, m), value(noex, m));
            let r = match ratio(n, e) {
                _ if degraded => "errors".to_owned(),
                Some(r) => format!("{r:.2}x"),
                None => "-".to_owned(),
            };
            let _ = writeln!(
                s,
                "{name:<14} {m:<24} {:>12} {:>12} {r:>10}",
                cell(echo, m),
                cell(noex, m)
            );
        }
        for (t, o) in [("echo", echo), ("noex", noex)] {
            if let Some(why) = o.and_then(|o| o.not_applicable.as_deref()) {
                let _ = writeln!(s, "{name:<14} not applicable ({t}): {why}");
            }
            if let Some(failure) = o.and_then(|o| o.failure.as_deref()) {
                let _ = writeln!(s, "{name:<14} FAILED ({t}): {failure}");
            }
            for note in o.map(|o| o.notes.as_slice()).unwrap_or_default() {
                let _ = writeln!(s, "{name:<14} note ({t}): {note}");
            }
        }
    }
    s.push_str(
        "(\"errors\": some operations were answered with errors; see the notes, no ratio)\n",
    );
    s
}

/// Renders all rows, the ratios and the run parameters as JSON.
pub fn json(rows: &[Row], params: Value) -> Value {
    let results: Vec<Value> = rows
        .iter()
        .map(|r| {
            let metrics: serde_json::Map<String, Value> = r
                .outcome
                .metrics
                .iter()
                .map(|m| (m.name.to_owned(), json!(m.value)))
                .collect();
            json!({"scenario": r.scenario, "target": r.target.name(),
                "metrics": metrics, "notes": r.outcome.notes, "degraded": r.outcome.degraded,
                "not_applicable": r.outcome.not_applicable, "failure": r.outcome.failure})
        })
        .collect();
    let mut ratios = Vec::new();
    for name in scenarios(rows) {
        let echo = find(rows, name, TargetKind::Echo);
        let Some(noex) = find(rows, name, TargetKind::Noex) else {
            continue;
        };
        if noex.degraded || noex.failure.is_some() || echo.is_some_and(|e| e.degraded) {
            // Error answers measure error handling, not the scenario: no ratio.
            continue;
        }
        for m in &noex.metrics {
            if let Some(r) = ratio(Some(m.value), value(echo, m.name)) {
                ratios.push(json!({"scenario": name, "metric": m.name,
                    "noex_over_echo": r, "higher_is_better": m.higher_is_better}));
            }
        }
    }
    json!({"params": params, "results": results, "ratios": ratios})
}
