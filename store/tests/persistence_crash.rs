//! Crash safety of `DurabilityMode::Sync`: a child process (this test binary re-executed
//! with `NOEX_CRASH_CHILD` set) writes single inserts and multi-bucket transactions from
//! two threads and prints an acknowledgement after each write returns; the parent reads
//! acknowledgements, kills the child with SIGKILL mid-stream, restarts a store on the
//! file and checks that every acknowledged write is there, that nothing beyond the
//! writes in flight at the kill is there, and that no transaction is torn. Repeated on
//! the same file so each round also recovers from the previous crash.
//!
//! The same harness checks `DurabilityMode::Batched` with one writer: acknowledged
//! writes may be lost (by design), but what survives is a prefix of the writes, again
//! without torn transactions.

mod common;

use common::{define, o};
use noex_store::{DurabilityMode, PersistenceConfig, Store, StoreConfig, StoreError};
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

const CHILD_ENV: &str = "NOEX_CRASH_CHILD";
const ROUND_ENV: &str = "NOEX_CRASH_ROUND";
const WRITERS_ENV: &str = "NOEX_CRASH_WRITERS";
const BATCHED_ENV: &str = "NOEX_CRASH_BATCHED";
const ROUNDS: usize = 8;

fn config(path: &Path, durability: DurabilityMode) -> StoreConfig {
    StoreConfig {
        persistence: Some(PersistenceConfig::new(path, durability)),
        ttl_check_interval: Duration::ZERO,
        ..StoreConfig::default()
    }
}

/// The child's workload; returns at once unless re-executed by [`sigkill_loses_no_acknowledged_write`].
#[test]
fn crash_child() {
    let Ok(path) = std::env::var(CHILD_ENV) else {
        return;
    };
    let round = std::env::var(ROUND_ENV).unwrap_or_default();
    let writers: usize = std::env::var(WRITERS_ENV)
        .ok()
        .and_then(|w| w.parse().ok())
        .unwrap_or(1);
    let durability = if std::env::var(BATCHED_ENV).is_ok_and(|v| v == "1") {
        DurabilityMode::Batched {
            window: Duration::from_millis(5),
        }
    } else {
        DurabilityMode::Sync
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let store = rt.block_on(async { Store::start(config(Path::new(&path), durability)) });
    let store = store.expect("child store starts");
    if store.bucket_names().is_empty() {
        for name in ["a", "b"] {
            define(
                &store,
                name,
                json!({"key": "id", "schema": {"id": {"type": "string"}}}),
            );
        }
        define(
            &store,
            "tally",
            json!({"key": "id", "schema": {"id": {"type": "string"}, "n": {"type": "number"}}}),
        );
        store
            .bucket("tally")
            .insert(o(json!({"id": "tx", "n": 0})))
            .expect("tally");
        // The set-up must survive the first kill in batched mode too: batched writes
        // (definitions included) are durable only once their window closes or on flush.
        store.flush().expect("flush set-up");
        println!("READY");
    }
    let writers: Vec<_> = (0..writers)
        .map(|w| {
            let store = store.clone();
            let round = round.clone();
            std::thread::spawn(move || {
                for i in 0u64.. {
                    let key = format!("s-{round}-{w}-{i}");
                    store
                        .bucket("a")
                        .insert(o(json!({"id": key})))
                        .expect("single insert");
                    println!("ACK {key}");
                    let key = format!("t-{round}-{w}-{i}");
                    loop {
                        let result = store.transaction(|tx| {
                            tx.bucket("a")?.insert(o(json!({"id": key})))?;
                            tx.bucket("b")?.insert(o(json!({"id": key})))?;
                            let n = tx
                                .bucket("tally")?
                                .get(&json!("tx"))?
                                .map_or(0, |r| r["n"].as_u64().unwrap_or(0));
                            tx.bucket("tally")?
                                .update(&json!("tx"), o(json!({"n": n + 1})))?;
                            Ok(())
                        });
                        match result {
                            Ok(()) => break,
                            // The other writer updated the tally first: nothing of this
                            // transaction was applied; run it again.
                            Err(StoreError::Conflict { .. }) => continue,
                            Err(e) => panic!("transaction: {e}"),
                        }
                    }
                    println!("ACK {key}");
                }
            })
        })
        .collect();
    for w in writers {
        let _ = w.join();
    }
}

fn ids(store: &Store, bucket: &str) -> BTreeSet<String> {
    store
        .bucket(bucket)
        .all()
        .expect("all")
        .iter()
        .filter_map(|r| r["id"].as_str().map(str::to_owned))
        .collect()
}

/// `s-3-1-17` → round "3".
fn round_of(key: &str) -> &str {
    key.split('-').nth(1).unwrap_or_default()
}

#[test]
fn sigkill_loses_no_acknowledged_write() {
    crash_rounds("sync", 2, None);
}

#[test]
fn sigkill_in_batched_mode_keeps_a_prefix_without_torn_transactions() {
    crash_rounds("batched", 1, Some(()));
}

/// Index of a key in its writer's sequence: `s-r-w-i` is write 2i, `t-r-w-i` is 2i + 1.
fn position(key: &str) -> Option<u64> {
    let i: u64 = key.rsplit('-').next()?.parse().ok()?;
    Some(if key.starts_with("s-") {
        2 * i
    } else {
        2 * i + 1
    })
}

/// Runs [`ROUNDS`] child runs killed with SIGKILL on one file. `batched`: the child
/// writes in batched mode, and instead of "every acknowledged write survives" the check
/// is "the surviving writes of a round are a prefix of its writes".
fn crash_rounds(name: &str, writers: usize, batched: Option<()>) {
    let dir = std::env::temp_dir().join(format!("noex-crash-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path: PathBuf = dir.join("store.redb");
    let exe = std::env::current_exe().expect("test binary");
    let mut acked: BTreeSet<String> = BTreeSet::new();
    for round in 0..ROUNDS {
        let stderr_path = dir.join(format!("child-{round}.stderr"));
        let mut child = Command::new(&exe)
            .args(["--exact", "crash_child", "--nocapture", "--test-threads=1"])
            .env(CHILD_ENV, &path)
            .env(ROUND_ENV, round.to_string())
            .env(WRITERS_ENV, writers.to_string())
            .env(BATCHED_ENV, if batched.is_some() { "1" } else { "" })
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&stderr_path).expect("stderr file"))
            .spawn()
            .expect("spawn child");
        let stdout = child.stdout.take().expect("child stdout");
        let mut lines = BufReader::new(stdout).lines();
        // Kill at a different point each round.
        let target = 30 + 23 * round;
        let mut seen = 0;
        while seen < target {
            match lines.next() {
                Some(Ok(line)) => {
                    if let Some(key) = line.strip_prefix("ACK ") {
                        acked.insert(key.to_owned());
                        seen += 1;
                    }
                }
                _ => {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!(
                        "child ended early in round {round}: {}",
                        std::fs::read_to_string(&stderr_path).unwrap_or_default()
                    );
                }
            }
        }
        child.kill().expect("SIGKILL"); // `Child::kill` is SIGKILL on Unix
        let status = child.wait().expect("wait");
        assert!(!status.success(), "the child was killed, not finished");
        // Acknowledgements already in the pipe were printed after their write returned:
        // they are acknowledged writes too.
        for line in lines.map_while(Result::ok) {
            if let Some(key) = line.strip_prefix("ACK ") {
                acked.insert(key.to_owned());
            }
        }

        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async {
            let store =
                Store::start(config(&path, DurabilityMode::Sync)).expect("restart after SIGKILL");
            let a = ids(&store, "a");
            let b = ids(&store, "b");
            let tally = store
                .bucket("tally")
                .get(&json!("tx"))
                .expect("get")
                .expect("tally record");
            store.close_persistence().expect("close");

            if batched.is_some() {
                check_prefix(round, &a, &b, &tally, &acked);
                return;
            }
            // Every acknowledged write survived.
            for key in &acked {
                assert!(a.contains(key), "round {round}: acknowledged {key} lost");
                if key.starts_with("t-") {
                    assert!(
                        b.contains(key),
                        "round {round}: acknowledged {key} lost in b"
                    );
                }
            }
            // No torn transaction: its three writes are all there or none is.
            let a_tx: BTreeSet<&String> = a.iter().filter(|k| k.starts_with("t-")).collect();
            let b_tx: BTreeSet<&String> = b.iter().collect();
            assert_eq!(a_tx, b_tx, "round {round}: torn transaction");
            assert_eq!(
                tally["n"],
                Value::from(b_tx.len()),
                "round {round}: tally out of step with the transactions"
            );
            // Nothing beyond what was acknowledged, except the writes in flight when the
            // child was killed (at most one per writer thread, all from this round).
            let unacked: Vec<&String> = a.iter().filter(|k| !acked.contains(*k)).collect();
            assert!(
                unacked.len() <= writers,
                "round {round}: unacknowledged writes {unacked:?}"
            );
            let mut per_round: BTreeMap<&str, usize> = BTreeMap::new();
            for k in &unacked {
                *per_round.entry(round_of(k)).or_default() += 1;
            }
            assert!(
                per_round.keys().all(|r| *r == round.to_string()),
                "round {round}: unacknowledged writes of an earlier round {unacked:?}"
            );
            // Writes in flight that made it are acknowledged from now on (the next round
            // must keep them too).
            acked.extend(unacked.into_iter().cloned());
        });
    }
    assert!(acked.len() >= (30..).step_by(23).take(ROUNDS).sum::<usize>());
    let _ = std::fs::remove_dir_all(&dir);
}

/// Batched mode, one writer: no torn transaction, and the writes of `round` that
/// survived are exactly its first m writes for some m.
fn check_prefix(
    round: usize,
    a: &BTreeSet<String>,
    b: &BTreeSet<String>,
    tally: &noex_store::Record,
    acked: &BTreeSet<String>,
) {
    let a_tx: BTreeSet<&String> = a.iter().filter(|k| k.starts_with("t-")).collect();
    let b_tx: BTreeSet<&String> = b.iter().collect();
    assert_eq!(a_tx, b_tx, "round {round}: torn transaction");
    assert_eq!(tally["n"], Value::from(b_tx.len()), "round {round}: tally");
    let this_round = round.to_string();
    let mut positions: Vec<u64> = a
        .iter()
        .filter(|k| round_of(k) == this_round)
        .filter_map(|k| position(k))
        .collect();
    positions.sort_unstable();
    let expected: Vec<u64> = (0..positions.len() as u64).collect();
    assert_eq!(
        positions, expected,
        "round {round}: survivors are not a prefix"
    );
    let acked_this_round = acked.iter().filter(|k| round_of(k) == this_round).count();
    eprintln!(
        "batched round {round}: {acked_this_round} acknowledged, {} survived",
        positions.len()
    );
}
