//! Memory of a grouping whose key paths all lead into one large value (the sixth red-team
//! run: a `groupBy` of 32 nested paths copied a 900 KB value up to 32 times per group,
//! ~800 MB per evaluation before the result limit stopped it). Measured as the growth of
//! the process's peak resident size (`VmHWM`), so this binary holds this one test only.
#![cfg(target_os = "linux")]

mod common;

use common::{define, o};
use noex_store::{QueryDefinition, StoreError};
use serde_json::{Value, json};

/// The process's peak resident set size so far, in bytes.
fn peak_rss() -> usize {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    let kib: usize = line
        .split_whitespace()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap();
    kib * 1024
}

#[tokio::test]
async fn grouping_by_nested_paths_into_one_large_value_copies_nothing_large() {
    let s = common::store();
    define(
        &s,
        "docs",
        json!({"key": "id", "schema": {"id": {"type": "number"}}}),
    );
    const DEPTH: usize = 31;
    const TEXT: usize = 256 * 1024;
    // `a.n.n....n.t` holds a 256 KB text: every path `a`, `a.n`, ... leads into it.
    for id in 0..8 {
        let mut v = json!({"t": format!("{id}{}", "x".repeat(TEXT))});
        for _ in 0..DEPTH {
            v = json!({"n": v});
        }
        s.bucket("docs")
            .insert(o(json!({"id": id, "a": v})))
            .unwrap();
    }
    let paths: Vec<String> = (0..=DEPTH)
        .map(|d| {
            std::iter::once("a")
                .chain(std::iter::repeat_n("n", d))
                .collect::<Vec<_>>()
                .join(".")
        })
        .collect();
    assert_eq!(paths.len(), 32);
    s.define_query(
        "byPaths",
        QueryDefinition::from_json(
            json!({"bucket": "docs", "aggregate": {"function": "count", "groupBy": paths}}),
        )
        .unwrap(),
    )
    .unwrap();
    let before = peak_rss();
    let result = s.run_query("byPaths", &json!({}));
    let grew = peak_rss().saturating_sub(before);
    // One group's key is 32 copies of the text (8 MB of JSON): past the 8 MiB result limit.
    assert!(
        matches!(result, Err(StoreError::ResultTooLarge { .. })),
        "{result:?}"
    );
    // Before: 8 groups × 32 paths × 256 KB of key text, plus one group's key copied (≈ 72 MB).
    assert!(grew < 16 * 1024 * 1024, "the grouping took {grew} bytes");

    // A grouping of the same shape that fits still answers one group per record.
    let small: Vec<Value> = (0..4).map(|d| json!(format!("k.{d}"))).collect();
    for id in 0..8 {
        s.bucket("docs")
            .update(
                &json!(id),
                o(json!({"k": {"0": id % 2, "1": 1, "2": 2, "3": 3}})),
            )
            .unwrap();
    }
    s.define_query(
        "bySmall",
        QueryDefinition::from_json(
            json!({"bucket": "docs", "aggregate": {"function": "count", "groupBy": small}}),
        )
        .unwrap(),
    )
    .unwrap();
    assert_eq!(
        s.run_query("bySmall", &json!({})).unwrap(),
        json!([
            {"key": {"k.0": 0, "k.1": 1, "k.2": 2, "k.3": 3}, "value": 4},
            {"key": {"k.0": 1, "k.1": 1, "k.2": 2, "k.3": 3}, "value": 4}
        ])
    );
}
