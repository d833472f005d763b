//! Durable storage through the server: what clients wrote comes back after a restart (and
//! after `kill -9` of the binary in `sync` mode); the config's buckets meet the persisted
//! ones; a damaged file stops start-up naming it.

mod common;

use std::path::PathBuf;
use std::process::{Command, Stdio};

use common::{Client, local_config};
use noex_server::{PersistenceEngine, Server, ServerConfig};
use serde_json::{Value, json};

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

/// The binary with `--persistence redb --durability sync`: every acknowledged insert is
/// there after `kill -9` and a restart.
#[tokio::test]
async fn acknowledged_writes_survive_kill_9_of_the_binary() {
    let dir = temp_dir("kill9");
    let spawn = || {
        let mut child = Command::new(env!("CARGO_BIN_EXE_noex-server"))
            .args([
                "--port",
                "0",
                "--host",
                "127.0.0.1",
                "--persistence",
                "redb",
            ])
            .arg("--data-dir")
            .arg(&dir)
            .args(["--durability", "sync", "--no-rules"])
            .env_remove("RUST_LOG")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawns");
        let mut line = String::new();
        std::io::BufRead::read_line(
            &mut std::io::BufReader::new(child.stdout.take().expect("stdout")),
            &mut line,
        )
        .expect("address line");
        let url = line
            .trim()
            .strip_prefix("noex-server listening on ")
            .expect("address")
            .to_owned();
        (child, url)
    };

    let (mut child, url) = spawn();
    let (mut c, _) = Client::connect_url(&url).await;
    c.ok(
        "store.defineBucket",
        json!({"name": "log", "config": {"key": "n", "schema": {"n": {"type": "number"}}}}),
    )
    .await;
    for n in 0..50 {
        c.ok("store.insert", json!({"bucket": "log", "data": {"n": n}}))
            .await;
    }
    child.kill().expect("SIGKILL");
    child.wait().expect("reaped");

    let (mut child, url) = spawn();
    let (mut c, _) = Client::connect_url(&url).await;
    let count: Value = c.ok("store.count", json!({"bucket": "log"})).await;
    assert_eq!(count, 50, "every acknowledged insert survived kill -9");
    child.kill().expect("kill");
    child.wait().expect("reaped");
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
    drop(c);
    first.stop(std::time::Duration::ZERO).await;
    first.store().close_persistence().expect("closes");
    drop(first);

    let second = Server::start(config()).await.expect("restarts");
    let (mut c, _) = Client::connect(&second).await;
    assert_eq!(
        c.ok("rules.getAllFacts", json!({})).await,
        json!([{"key": "tier:u1", "value": "gold"}, {"key": "visits:u1", "value": 2}])
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
