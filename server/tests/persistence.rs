//! Durable storage through the server: what clients wrote comes back after a restart (and
//! after `kill -9` of the binary in `sync` mode, also repeatedly while clients write); the
//! config's buckets meet the persisted ones; a damaged file stops start-up naming it.

mod common;

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::path::{Path, PathBuf};

use common::{Binary, Client, WAIT, local_config};
use futures_util::{SinkExt, StreamExt};
use noex_server::{PersistenceEngine, Server, ServerConfig};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("noex-persist-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn durable(dir: &std::path::Path) -> ServerConfig {
    let mut config = local_config();
    config.persistence.engine = PersistenceEngine::Redb;
    config.persistence.data_dir = Some(dir.to_owned());
    config.store = serde_json::from_value(json!({
        "buckets": {"notes": {"key": "id", "schema": {"id": {"type": "number", "generated": "autoincrement"}, "text": {"type": "string"}}}},
        "queries": {"all-notes": {"bucket": "notes"}}
    }))
    .expect("store section");
    config
}

#[tokio::test]
async fn data_written_over_the_wire_survives_a_restart() {
    let dir = temp_dir("restart");
    let first = Server::start(durable(&dir)).await.expect("starts");
    let (mut c, _) = Client::connect(&first).await;
    c.ok(
        "store.defineBucket",
        json!({"name": "extra", "config": {"key": "k", "schema": {"k": {"type": "string"}}}}),
    )
    .await;
    c.ok(
        "store.defineQuery",
        json!({"name": "extra-count", "config": {"bucket": "extra", "aggregate": {"function": "count"}}}),
    )
    .await;
    for text in ["a", "b", "c"] {
        c.ok(
            "store.insert",
            json!({"bucket": "notes", "data": {"text": text}}),
        )
        .await;
    }
    c.ok(
        "store.update",
        json!({"bucket": "notes", "key": 2, "data": {"text": "b2"}}),
    )
    .await;
    c.ok("store.delete", json!({"bucket": "notes", "key": 3}))
        .await;
    c.ok(
        "store.insert",
        json!({"bucket": "extra", "data": {"k": "x"}}),
    )
    .await;
    let stats = c.ok("store.stats", json!({})).await;
    assert_eq!(stats["persistence"]["enabled"], true);
    drop(c);
    first.stop(std::time::Duration::ZERO).await;
    first.store().close_persistence().expect("closes");
    drop(first);

    let second = Server::start(durable(&dir)).await.expect("restarts");
    let (mut c, _) = Client::connect(&second).await;
    let notes = c.ok("store.all", json!({"bucket": "notes"})).await;
    let notes = notes.as_array().expect("records");
    assert_eq!(notes.len(), 2);
    assert_eq!(notes[1]["text"], "b2");
    assert_eq!(notes[1]["_version"], 2, "versions come back");
    let next = c
        .ok(
            "store.insert",
            json!({"bucket": "notes", "data": {"text": "d"}}),
        )
        .await;
    assert_eq!(next["id"], 4, "the autoincrement counter comes back");
    assert_eq!(
        c.ok("store.subscribe", json!({"query": "extra-count"}))
            .await["data"],
        1,
        "a query defined over the wire comes back with its bucket"
    );
    second.stop(std::time::Duration::ZERO).await;
    second.store().close_persistence().expect("closes");
    drop(second);

    // The config may not silently change a persisted bucket.
    let mut changed = durable(&dir);
    changed.store.buckets.insert(
        "notes".into(),
        serde_json::from_value(json!({"key": "id", "schema": {"id": {"type": "string"}}}))
            .expect("def"),
    );
    let err = Server::start(changed).await.err().expect("refused");
    assert!(err.to_string().contains("bucket \"notes\""), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// 64 connections inserting at once with `sync` durability share fsyncs (group commit):
/// fewer engine commits than inserts, and every acknowledged insert is there after a
/// restart. On this test's current-thread runtime a connection waiting for its fsync must
/// not hold the one thread: if it did, each insert would be written by a commit of its
/// own (64 commits), and no other connection's request would be read meanwhile.
#[tokio::test]
async fn concurrent_sync_inserts_share_fsyncs_without_blocking_the_runtime() {
    let dir = temp_dir("group-commit");
    let server = Server::start(durable(&dir)).await.expect("starts");
    let mut clients = Vec::new();
    for _ in 0..64 {
        clients.push(Client::connect(&server).await.0);
    }
    let before = server
        .store()
        .persistence_commits()
        .expect("persistence on");
    for (i, c) in clients.iter_mut().enumerate() {
        c.send(json!({"id": 1, "type": "store.insert", "bucket": "notes", "data": {"text": format!("n{i}")}}))
            .await;
    }
    for c in &mut clients {
        let answer = c.recv().await;
        assert_eq!(answer["type"], "result", "{answer}");
    }
    let commits = server
        .store()
        .persistence_commits()
        .expect("persistence on")
        - before;
    assert!(
        (1..64).contains(&commits),
        "{commits} engine commits for 64 concurrent inserts"
    );
    drop(clients);
    server.stop(std::time::Duration::ZERO).await;
    server.store().close_persistence().expect("closes");
    drop(server);

    let again = Server::start(durable(&dir)).await.expect("restarts");
    let (mut c, _) = Client::connect(&again).await;
    let notes = c.ok("store.all", json!({"bucket": "notes"})).await;
    let texts: BTreeSet<&str> = notes
        .as_array()
        .expect("records")
        .iter()
        .filter_map(|n| n["text"].as_str())
        .collect();
    assert_eq!(texts.len(), 64, "every acknowledged insert survived");
    again.stop(std::time::Duration::ZERO).await;
    again.store().close_persistence().expect("closes");
    drop(again);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn a_damaged_database_stops_start_up_naming_the_file() {
    let dir = temp_dir("damaged");
    std::fs::create_dir_all(&dir).expect("dir");
    let file = dir.join(noex_store::DEFAULT_FILE_NAME);
    std::fs::write(&file, b"definitely not a redb file").expect("write");
    let err = Server::start(durable(&dir)).await.err().expect("refused");
    assert!(
        err.to_string().contains(&file.display().to_string()),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// The `noex-server` binary on `dir` with `--persistence redb --durability sync`.
async fn durable_binary(dir: &Path) -> Binary {
    Binary::spawn(&[
        "--persistence",
        "redb",
        "--data-dir",
        dir.to_str().expect("UTF-8 data dir"),
        "--durability",
        "sync",
        "--no-rules",
    ])
    .await
}

/// The binary with `--persistence redb --durability sync`: every acknowledged insert is
/// there after `kill -9` and a restart.
#[tokio::test]
async fn acknowledged_writes_survive_kill_9_of_the_binary() {
    let dir = temp_dir("kill9");
    let mut binary = durable_binary(&dir).await;
    let (mut c, _) = Client::connect_url(&binary.url).await;
    c.ok(
        "store.defineBucket",
        json!({"name": "log", "config": {"key": "n", "schema": {"n": {"type": "number"}}}}),
    )
    .await;
    for n in 0..50 {
        c.ok("store.insert", json!({"bucket": "log", "data": {"n": n}}))
            .await;
    }
    binary.sigkill();

    let binary = durable_binary(&dir).await;
    let (mut c, _) = Client::connect_url(&binary.url).await;
    let count: Value = c.ok("store.count", json!({"bucket": "log"})).await;
    assert_eq!(count, 50, "every acknowledged insert survived kill -9");
    drop(binary);
    let _ = std::fs::remove_dir_all(&dir);
}

const CRASH_ROUNDS: usize = 4;
const CRASH_CLIENTS: usize = 2;
/// Requests each crash-test client keeps unanswered at once.
const CRASH_DEPTH: usize = 4;

/// One write of a crash-test client: `s-…` is a single insert into `a`; `t-…` is a
/// transaction that inserts the key into `a` and `b` and updates the `tally` record.
fn crash_write(key: &str) -> Value {
    if key.starts_with("t-") {
        json!({"type": "store.transaction", "operations": [
            {"op": "get", "bucket": "tally", "key": "tx"},
            {"op": "insert", "bucket": "a", "data": {"id": key}},
            {"op": "insert", "bucket": "b", "data": {"id": key}},
            {"op": "update", "bucket": "tally", "key": "tx", "data": {"last": key}}
        ]})
    } else {
        json!({"type": "store.insert", "bucket": "a", "data": {"id": key}})
    }
}

/// Writes `s-{round}-{w}-{i}`, `t-{round}-{w}-{i}` for i = 0, 1, … with up to
/// [`CRASH_DEPTH`] requests pipelined, and reports each key on `acks` once its `result`
/// frame arrived. A transaction answered with `CONFLICT` was not applied and is sent
/// again. Returns when the connection breaks (the binary was killed).
async fn crash_writer(
    mut c: Client,
    round: usize,
    w: usize,
    acks: tokio::sync::mpsc::UnboundedSender<String>,
) {
    let mut in_flight: HashMap<u64, String> = HashMap::new();
    let mut retry: VecDeque<String> = VecDeque::new();
    let (mut next_id, mut next_write) = (0u64, 0u64);
    loop {
        while in_flight.len() < CRASH_DEPTH {
            let key = retry.pop_front().unwrap_or_else(|| {
                let i = next_write / 2;
                let kind = if next_write % 2 == 0 { "s" } else { "t" };
                next_write += 1;
                format!("{kind}-{round}-{w}-{i}")
            });
            next_id += 1;
            let mut request = crash_write(&key);
            request["id"] = json!(next_id);
            if c.ws
                .send(Message::Text(request.to_string().into()))
                .await
                .is_err()
            {
                return;
            }
            in_flight.insert(next_id, key);
        }
        let frame = match tokio::time::timeout(WAIT, c.ws.next()).await {
            Err(_) => panic!("writer {w} of round {round}: no answer within the wait bound"),
            Ok(Some(Ok(Message::Text(text)))) => {
                serde_json::from_str::<Value>(text.as_str()).expect("JSON frame")
            }
            Ok(Some(Ok(Message::Ping(_) | Message::Pong(_)))) => continue,
            // Closed or reset: the binary is gone.
            Ok(_) => return,
        };
        let key = frame["id"]
            .as_u64()
            .and_then(|id| in_flight.remove(&id))
            .unwrap_or_else(|| panic!("answer to no request in flight: {frame}"));
        match frame["type"].as_str() {
            Some("result") => {
                let _ = acks.send(key);
            }
            Some("error") if frame["code"] == "CONFLICT" && key.starts_with("t-") => {
                retry.push_back(key);
            }
            _ => panic!("{key}: unexpected answer {frame}"),
        }
    }
}

/// Keys of the records of `bucket` (field `id`), over the wire.
async fn crash_ids(c: &mut Client, bucket: &str) -> BTreeSet<String> {
    c.ok("store.all", json!({"bucket": bucket}))
        .await
        .as_array()
        .expect("records")
        .iter()
        .map(|r| r["id"].as_str().expect("string id").to_owned())
        .collect()
}

/// Issue 9 through the binary: two clients write single inserts and multi-bucket
/// transactions, pipelined, while the binary is killed with SIGKILL at a different point
/// each round, on the same file. After each restart every acknowledged write is there, no
/// transaction is torn, the tally counts exactly the committed transactions, and nothing
/// else is there but at most the writes in flight at the kill, all of that round.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_in_a_loop_while_clients_write_keeps_exactly_the_acknowledged_writes() {
    let dir = temp_dir("kill9-loop");
    let mut binary = durable_binary(&dir).await;
    {
        let (mut c, _) = Client::connect_url(&binary.url).await;
        for name in ["a", "b"] {
            c.ok(
                "store.defineBucket",
                json!({"name": name, "config": {"key": "id", "schema": {"id": {"type": "string"}}}}),
            )
            .await;
        }
        c.ok(
            "store.defineBucket",
            json!({"name": "tally", "config": {"key": "id", "schema": {"id": {"type": "string"}, "last": {"type": "string"}}}}),
        )
        .await;
        c.ok(
            "store.insert",
            json!({"bucket": "tally", "data": {"id": "tx", "last": ""}}),
        )
        .await;
    }
    let mut acked: BTreeSet<String> = BTreeSet::new();
    let mut targets = 0;
    for round in 0..CRASH_ROUNDS {
        let (acks, mut acks_rx) = tokio::sync::mpsc::unbounded_channel();
        let mut writers = Vec::new();
        for w in 0..CRASH_CLIENTS {
            // Connected before any write, so the kill never races a connect.
            let (c, _) = Client::connect_url(&binary.url).await;
            writers.push(tokio::spawn(crash_writer(c, round, w, acks.clone())));
        }
        drop(acks);
        // Kill at a different point each round.
        let target = 20 + 15 * round;
        targets += target;
        for _ in 0..target {
            let key = tokio::time::timeout(WAIT, acks_rx.recv())
                .await
                .unwrap_or_else(|_| {
                    panic!("round {round}: no acknowledgement within the wait bound")
                })
                .expect("writers write until the kill");
            acked.insert(key);
        }
        binary.sigkill();
        for writer in writers {
            tokio::time::timeout(WAIT, writer)
                .await
                .expect("writer stops once the binary is gone")
                .expect("writer");
        }
        // Answers read after the kill were sent before it: acknowledged writes too.
        while let Some(key) = acks_rx.recv().await {
            acked.insert(key);
        }

        binary = durable_binary(&dir).await;
        let (mut c, _) = Client::connect_url(&binary.url).await;
        let a = crash_ids(&mut c, "a").await;
        let b = crash_ids(&mut c, "b").await;
        let tally = c
            .ok("store.get", json!({"bucket": "tally", "key": "tx"}))
            .await;
        for key in &acked {
            assert!(a.contains(key), "round {round}: acknowledged {key} lost");
            if key.starts_with("t-") {
                assert!(
                    b.contains(key),
                    "round {round}: acknowledged {key} lost in b"
                );
            }
        }
        // No torn transaction: its writes to a, b and the tally are all there or none is.
        let a_tx: BTreeSet<&String> = a.iter().filter(|k| k.starts_with("t-")).collect();
        let b_tx: BTreeSet<&String> = b.iter().collect();
        assert_eq!(a_tx, b_tx, "round {round}: torn transaction");
        // Inserted at version 1, and each committed transaction updates it once.
        assert_eq!(
            tally["_version"],
            json!(1 + b.len()),
            "round {round}: tally out of step with the transactions: {tally}"
        );
        if !b.is_empty() {
            let last = tally["last"].as_str().unwrap_or_default().to_owned();
            assert!(b.contains(&last), "round {round}: tally names {last}");
        }
        // Nothing else but the writes in flight at the kill, all of this round.
        let unacked: Vec<&String> = a.iter().filter(|k| !acked.contains(*k)).collect();
        assert!(
            unacked.len() <= CRASH_CLIENTS * CRASH_DEPTH,
            "round {round}: unacknowledged writes {unacked:?}"
        );
        let prefix = format!("-{round}-");
        assert!(
            unacked.iter().all(|k| k[1..].starts_with(&prefix)),
            "round {round}: unacknowledged writes of an earlier round {unacked:?}"
        );
        // Writes in flight that made it must stay from now on.
        let unacked: Vec<String> = unacked.into_iter().cloned().collect();
        acked.extend(unacked);
    }
    assert!(acked.len() >= targets);
    drop(binary);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn facts_and_rules_survive_a_restart() {
    let dir = temp_dir("rules");
    let config = || {
        let mut config = durable(&dir);
        config.rules.enabled = Some(true);
        config
    };
    let first = Server::start(config()).await.expect("starts");
    let (mut c, _) = Client::connect(&first).await;
    c.ok(
        "rules.registerRule",
        json!({"rule": {
            "id": "tier", "name": "Tier from purchases",
            "trigger": {"type": "event", "topic": "purchase.made"},
            "actions": [{"type": "set_fact", "key": "tier:${event.user}", "value": "gold"}]
        }}),
    )
    .await;
    c.ok(
        "rules.registerRule",
        json!({"rule": {"id": "gone", "name": "Gone", "trigger": {"type": "event", "topic": "x"}, "actions": []}}),
    )
    .await;
    c.ok("rules.unregisterRule", json!({"ruleId": "gone"}))
        .await;
    c.ok("rules.setFact", json!({"key": "visits:u1", "value": 1}))
        .await;
    c.ok("rules.setFact", json!({"key": "visits:u1", "value": 2}))
        .await;
    c.ok("rules.setFact", json!({"key": "temp", "value": true}))
        .await;
    c.ok("rules.deleteFact", json!({"key": "temp"})).await;
    // A fact set by a rule action is persisted too.
    c.ok(
        "rules.emit",
        json!({"topic": "purchase.made", "data": {"user": "u1"}}),
    )
    .await;
    c.ok("rules.disableRule", json!({"ruleId": "tier"})).await;
    let before = c.ok("rules.getAllFacts", json!({})).await;
    assert_eq!(before[0]["source"], "rule");
    assert_eq!(before[1]["source"], "api");
    // A fact as servers before the wire-compatible sources wrote it (source `rule:ID`).
    first
        .store()
        .persist_aux(
            "rules.facts",
            "legacy:1",
            Some(
                json!({"key": "legacy:1", "value": 7, "timestamp": 1_700_000_000_000_i64,
                "source": "rule:tier", "version": 3}),
            ),
        )
        .expect("written");
    drop(c);
    first.stop(std::time::Duration::ZERO).await;
    first.store().close_persistence().expect("closes");
    drop(first);

    let second = Server::start(config()).await.expect("restarts");
    let (mut c, _) = Client::connect(&second).await;
    // Facts come back whole: value, timestamp, source and version.
    let legacy = json!({"key": "legacy:1", "value": 7, "timestamp": 1_700_000_000_000_i64,
        "source": "rule:tier", "version": 3});
    let mut expected = vec![legacy.clone()];
    expected.extend(before.as_array().expect("facts").iter().cloned());
    assert_eq!(c.ok("rules.getAllFacts", json!({})).await, json!(expected));
    assert_eq!(
        c.ok("rules.queryFacts", json!({"pattern": "legacy:*"}))
            .await,
        json!([legacy])
    );
    let rules = c.ok("rules.getRules", json!({})).await;
    let rules = rules["rules"].as_array().expect("rules");
    assert_eq!(rules.len(), 1, "the unregistered rule stays gone");
    assert_eq!(rules[0]["id"], "tier");
    assert_eq!(rules[0]["enabled"], false, "its state comes back");
    let fact = second
        .rules()
        .expect("engine")
        .get_fact_record("visits:u1")
        .expect("fact");
    assert_eq!(fact.version, 2, "versions come back");
    second.stop(std::time::Duration::ZERO).await;
    second.store().close_persistence().expect("closes");
    let _ = std::fs::remove_dir_all(&dir);
}
