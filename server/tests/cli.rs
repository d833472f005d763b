//! The `noex-server` binary: help text, config file errors (exit code 2), start-up on port 0
//! with the address printed, a WebSocket welcome, and a graceful exit on SIGTERM.

mod common;

use std::process::Command;

use common::{BIN, Client, spawn};

fn write_config(name: &str, text: &str) -> std::path::PathBuf {
    let path = std::env::temp_dir().join(format!("noex-cli-{}-{name}.json", std::process::id()));
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn help_documents_every_option() {
    let out = Command::new(BIN).arg("--help").output().unwrap();
    assert!(out.status.success());
    let help = String::from_utf8(out.stdout).unwrap();
    for flag in [
        "--config",
        "--port",
        "--host",
        "--path",
        "--name",
        "--max-payload-bytes",
        "--heartbeat-interval-ms",
        "--heartbeat-timeout-ms",
        "--max-buffered-bytes",
        "--high-water-mark",
        "--max-subscriptions-per-connection",
        "--max-total-subscriptions",
        "--max-connections-per-ip",
        "--rate-limit-max-requests",
        "--rate-limit-window-ms",
        "--allowed-origin",
        "--hide-error-details",
        "--shutdown-grace-ms",
        "--no-rules",
        "--persistence",
        "--data-dir",
        "--db",
        "--durability",
        "--log",
    ] {
        assert!(help.contains(flag), "--help lacks {flag}");
    }
}

#[test]
fn bad_config_files_exit_2_naming_the_field() {
    let cases = [
        ("unknown", r#"{"prot": 1}"#, "prot"),
        ("type", r#"{"port": "eighty"}"#, "port"),
        (
            "nested",
            r#"{"heartbeat": {"intervalMs": -1}}"#,
            "heartbeat.intervalMs",
        ),
        (
            "range",
            r#"{"backpressure": {"highWaterMark": 2}}"#,
            "backpressure.highWaterMark",
        ),
        ("json", r#"{"port": "#, "noex-cli"),
        (
            "bucket-shape",
            r#"{"store": {"buckets": {"users": {"schema": {}}}}}"#,
            "store.buckets.users",
        ),
        (
            "bucket-schema",
            r#"{"port": 0, "store": {"buckets": {"users": {"key": "id", "schema": {"id": {"type": "strng"}}}}}}"#,
            "bucket \"users\"",
        ),
    ];
    for (name, text, needle) in cases {
        let path = write_config(name, text);
        let out = Command::new(BIN)
            .arg("--config")
            .arg(&path)
            .output()
            .unwrap();
        let _ = std::fs::remove_file(&path);
        assert_eq!(out.status.code(), Some(2), "{name}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(needle), "{name}: {stderr}");
    }
    let out = Command::new(BIN)
        .args(["--config", "/nonexistent/noex.json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/noex.json"));
}

#[tokio::test]
async fn serves_prints_its_address_and_stops_on_sigterm() {
    let config = write_config("ok", r#"{"port": 1, "path": "/live", "name": "from-file"}"#);
    // Flags override the file: port 1 would not be bindable in tests.
    let (mut child, url) = spawn(&[
        "--config",
        config.to_str().unwrap(),
        "--port",
        "0",
        "--host",
        "127.0.0.1",
        "--shutdown-grace-ms",
        "100",
    ])
    .await;
    let _ = std::fs::remove_file(&config);
    assert!(
        url.starts_with("ws://127.0.0.1:") && url.ends_with("/live"),
        "{url}"
    );
    let (_client, welcome) = Client::connect_url(&url).await;
    assert_eq!(welcome["type"], "welcome");

    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let exit = tokio::task::spawn_blocking(move || child.wait().unwrap())
        .await
        .unwrap();
    assert!(exit.success(), "graceful exit, got {exit:?}");
}

#[tokio::test]
async fn the_rule_engine_is_on_unless_no_rules() {
    for (args, expected) in [
        (&["--port", "0", "--host", "127.0.0.1"][..], "result"),
        (
            &["--port", "0", "--host", "127.0.0.1", "--no-rules"][..],
            "error",
        ),
    ] {
        let (mut child, url) = spawn(args).await;
        let (mut client, _) = Client::connect_url(&url).await;
        let answer = client
            .call("rules.emit", serde_json::json!({"topic": "cli.check"}))
            .await;
        assert_eq!(answer["type"], expected, "{args:?}: {answer}");
        if expected == "error" {
            assert_eq!(answer["code"], "RULES_NOT_AVAILABLE");
        }
        child.kill().unwrap();
        child.wait().unwrap();
    }
}
