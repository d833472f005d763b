//! Output: a readable table (one block per scenario: metric, one column per target, then
//! one ratio column noex/<target> for every other target) and an optional JSON document
//! with one object per scenario and target plus the ratios.

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
    /// The name the target is shown under (its kind's name, or `--server-name` for a
    /// `cmd` target).
    pub label: String,
    /// What was measured (or why nothing was).
    pub outcome: Outcome,
}

/// The label of our own server: every ratio is noex over another target.
const NOEX: &str = "noex";

fn find<'a>(rows: &'a [Row], scenario: &str, label: &str) -> Option<&'a Outcome> {
    rows.iter()
        .find(|r| r.scenario == scenario && r.label == label)
        .map(|r| &r.outcome)
}

fn value(o: Option<&Outcome>, metric: &str) -> Option<f64> {
    o?.metrics
        .iter()
        .find(|m| m.name == metric)
        .map(|m| m.value)
}

fn ratio(noex: Option<f64>, base: Option<f64>) -> Option<f64> {
    match (noex, base) {
        (Some(n), Some(b)) if b != 0.0 => Some(n / b),
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

/// The target labels, in the order they were run.
fn labels(rows: &[Row]) -> Vec<&str> {
    let mut labels: Vec<&str> = Vec::new();
    for r in rows {
        if !labels.contains(&r.label.as_str()) {
            labels.push(&r.label);
        }
    }
    labels
}

/// The targets noex is compared with: all others, when noex ran at all.
fn baselines<'a>(labels: &[&'a str]) -> Vec<&'a str> {
    if !labels.contains(&NOEX) {
        return Vec::new();
    }
    labels.iter().copied().filter(|l| *l != NOEX).collect()
}

/// Error answers measure error handling, not the scenario: no ratio between these two.
fn comparable(noex: Option<&Outcome>, base: Option<&Outcome>) -> bool {
    [noex, base]
        .into_iter()
        .flatten()
        .all(|o| !o.degraded && o.failure.is_none())
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
    let labels = labels(rows);
    let bases = baselines(&labels);
    let ratio_heads: Vec<String> = bases.iter().map(|b| format!("{NOEX}/{b}")).collect();
    let width = |s: &str| s.len().max(12);
    let mut s = String::new();
    let _ = write!(s, "{:<14} {:<24}", "scenario", "metric");
    for l in &labels {
        let _ = write!(s, " {l:>w$}", w = width(l));
    }
    for h in &ratio_heads {
        let _ = write!(s, " {h:>w$}", w = width(h));
    }
    s.push('\n');
    for name in scenarios(rows) {
        let outcomes: Vec<Option<&Outcome>> = labels.iter().map(|l| find(rows, name, l)).collect();
        let noex = find(rows, name, NOEX);
        let mut metrics: Vec<&'static str> = Vec::new();
        for o in outcomes.iter().flatten() {
            for m in &o.metrics {
                if !metrics.contains(&m.name) {
                    metrics.push(m.name);
                }
            }
        }
        for m in metrics {
            let _ = write!(s, "{name:<14} {m:<24}");
            for (l, o) in labels.iter().zip(&outcomes) {
                let _ = write!(s, " {:>w$}", cell(*o, m), w = width(l));
            }
            for (b, h) in bases.iter().zip(&ratio_heads) {
                let base = find(rows, name, b);
                let r = match ratio(value(noex, m), value(base, m)) {
                    _ if !comparable(noex, base) => "errors".to_owned(),
                    Some(r) => format!("{r:.2}x"),
                    None => "-".to_owned(),
                };
                let _ = write!(s, " {r:>w$}", w = width(h));
            }
            s.push('\n');
        }
        for (t, o) in labels.iter().zip(&outcomes) {
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
    // The legend only when a ratio was withheld (it read as a failure on clean runs).
    if rows.iter().any(|r| r.outcome.degraded) {
        s.push_str(
            "(\"errors\": some operations were answered with errors; see the notes, no ratio)\n",
        );
    }
    s
}

/// Renders all rows, the ratios (noex over every other target) and the run parameters as
/// JSON.
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
            json!({"scenario": r.scenario, "target": r.label, "kind": r.target.name(),
                "metrics": metrics, "notes": r.outcome.notes, "degraded": r.outcome.degraded,
                "not_applicable": r.outcome.not_applicable, "failure": r.outcome.failure})
        })
        .collect();
    let labels = labels(rows);
    let mut ratios = Vec::new();
    for name in scenarios(rows) {
        let Some(noex) = find(rows, name, NOEX) else {
            continue;
        };
        for b in baselines(&labels) {
            let base = find(rows, name, b);
            if !comparable(Some(noex), base) {
                continue;
            }
            for m in &noex.metrics {
                if let Some(r) = ratio(Some(m.value), value(base, m.name)) {
                    ratios.push(json!({"scenario": name, "metric": m.name, "baseline": b,
                        "noex_over_baseline": r, "higher_is_better": m.higher_is_better}));
                }
            }
        }
    }
    json!({"params": params, "results": results, "ratios": ratios})
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(label: &str, kind: TargetKind, cpu: f64, degraded: bool) -> Row {
        let mut outcome = Outcome::default();
        outcome.more("req_per_s", 1000.0);
        outcome.less("server_cpu_us_per_req", cpu);
        outcome.degraded = degraded;
        Row {
            scenario: "request-rtt",
            target: kind,
            label: label.to_owned(),
            outcome,
        }
    }

    #[test]
    fn noex_is_compared_with_every_other_target_on_cpu() {
        let rows = [
            row("echo", TargetKind::Echo, 2.0, false),
            row("noex", TargetKind::Noex, 6.0, false),
            row("ts", TargetKind::Cmd, 24.0, false),
        ];
        let t = table(&rows);
        let head = t.lines().next().unwrap_or_default();
        for col in ["echo", "noex", "ts", "noex/echo", "noex/ts"] {
            assert!(head.split_whitespace().any(|w| w == col), "{head}");
        }
        let cpu = t
            .lines()
            .find(|l| l.contains("server_cpu_us_per_req"))
            .unwrap_or_default();
        assert!(cpu.ends_with("3.00x        0.25x"), "{cpu}");

        let doc = json(&rows, json!({}));
        let ratios = doc["ratios"].as_array().cloned().unwrap_or_default();
        let cpu_over = |b: &str| {
            ratios
                .iter()
                .find(|r| r["metric"] == "server_cpu_us_per_req" && r["baseline"] == b)
        };
        let over_ts = cpu_over("ts").cloned().unwrap_or_default();
        assert_eq!(over_ts["noex_over_baseline"], 0.25);
        assert_eq!(over_ts["higher_is_better"], false);
        assert_eq!(
            cpu_over("echo").map(|r| r["noex_over_baseline"].clone()),
            Some(json!(3.0))
        );
        assert_eq!(doc["results"][2]["target"], "ts");
        assert_eq!(doc["results"][2]["kind"], "cmd");
    }

    #[test]
    fn a_degraded_target_gets_no_ratio_but_the_others_do() {
        let rows = [
            row("echo", TargetKind::Echo, 2.0, true),
            row("noex", TargetKind::Noex, 6.0, false),
            row("other", TargetKind::Cmd, 12.0, false),
        ];
        let cpu = table(&rows)
            .lines()
            .find(|l| l.contains("server_cpu_us_per_req"))
            .map(str::to_owned)
            .unwrap_or_default();
        assert!(cpu.ends_with("errors        0.50x"), "{cpu}");
        let doc = json(&rows, json!({}));
        let ratios = doc["ratios"].as_array().cloned().unwrap_or_default();
        assert!(
            ratios.iter().all(|r| r["baseline"] == "other"),
            "{ratios:?}"
        );
        assert_eq!(ratios.len(), 2);
    }
}
