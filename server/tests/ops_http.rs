//! Plain HTTP beside the WebSocket upgrade, against the real binary or server on port 0:
//! `/health`, `/ready` (503 during a graceful stop), `/metrics` scraped after real traffic
//! and read with a Prometheus text parser, the bearer token and the admin listener, bad
//! requests (404, 426, 400, 431, slow headers cut by the handshake deadline) — with a
//! WebSocket client served throughout — and JSON logs with the request span's fields.

mod common;

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{Binary, Client, WAIT, local_config, start};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// One HTTP answer: status, lower-cased headers, body.
struct Answer {
    status: u16,
    headers: HashMap<String, String>,
    body: String,
}

/// Sends `raw` on a fresh connection to `addr` and reads the answer until the server
/// closes (the server answers one request per connection).
async fn raw_http(addr: SocketAddr, raw: &[u8]) -> Answer {
    let mut stream = TcpStream::connect(addr).await.expect("connects");
    stream.write_all(raw).await.expect("request written");
    let mut bytes = Vec::new();
    tokio::time::timeout(WAIT, stream.read_to_end(&mut bytes))
        .await
        .expect("answer within the wait bound")
        .expect("answer read");
    let text = String::from_utf8(bytes).expect("UTF-8 answer");
    let (head, body) = text.split_once("\r\n\r\n").expect("a head and a body");
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("status line in {head:?}"));
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    Answer {
        status,
        headers,
        body: body.to_owned(),
    }
}

async fn get(addr: SocketAddr, path: &str) -> Answer {
    raw_http(
        addr,
        format!("GET {path} HTTP/1.1\r\nHost: test\r\n\r\n").as_bytes(),
    )
    .await
}

/// `/metrics` parsed with a Prometheus text parser.
struct Metrics(prometheus_parse::Scrape);

impl Metrics {
    async fn scrape(addr: SocketAddr, token: Option<&str>) -> Metrics {
        let auth = token.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
        let answer = raw_http(
            addr,
            format!("GET /metrics HTTP/1.1\r\nHost: test\r\n{auth}\r\n").as_bytes(),
        )
        .await;
        assert_eq!(answer.status, 200, "{}", answer.body);
        assert!(
            answer.headers["content-type"].starts_with("text/plain; version=0.0.4"),
            "{:?}",
            answer.headers
        );
        let lines = answer.body.lines().map(|l| Ok(l.to_owned()));
        Metrics(prometheus_parse::Scrape::parse(lines).expect("Prometheus text"))
    }

    /// The value of the counter or gauge `name` with exactly `labels`; 0 when absent.
    fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.0
            .samples
            .iter()
            .filter(|s| s.metric == name)
            .filter(|s| labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
            .find_map(|s| match s.value {
                prometheus_parse::Value::Counter(v)
                | prometheus_parse::Value::Gauge(v)
                | prometheus_parse::Value::Untyped(v) => Some(v),
                _ => None,
            })
            .unwrap_or(0.0)
    }

    /// The `+Inf` bucket (the observation count) of histogram `name` with `labels`.
    fn histogram_count(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.0
            .samples
            .iter()
            .filter(|s| s.metric == name)
            .filter(|s| labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
            .find_map(|s| match &s.value {
                prometheus_parse::Value::Histogram(buckets) => buckets
                    .iter()
                    .find(|b| b.less_than == f64::INFINITY)
                    .map(|b| b.count),
                _ => None,
            })
            .unwrap_or_else(|| panic!("histogram {name} {labels:?}"))
    }
}

/// Polls `check` on fresh scrapes until it holds (bounded by [`WAIT`]).
async fn scrape_until(addr: SocketAddr, check: impl Fn(&Metrics) -> bool) -> Metrics {
    let deadline = Instant::now() + WAIT;
    loop {
        let metrics = Metrics::scrape(addr, None).await;
        if check(&metrics) || Instant::now() > deadline {
            return metrics;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn metrics_move_with_real_traffic() {
    let server = Binary::with_config(
        &json!({
            "store": {
                "buckets": {"items": {"key": "id", "schema": {"id": {"type": "string", "required": true}}}},
                "queries": {"all-items": {"bucket": "items"}}
            }
        }),
        &[],
    )
    .await;
    let addr = server.addr();
    let before = Metrics::scrape(addr, None).await;
    assert_eq!(before.value("noex_connections_opened_total", &[]), 0.0);
    assert_eq!(
        before.value("noex_bucket_records", &[("bucket", "items")]),
        0.0
    );

    let (mut writer, _) = Client::connect_url(&server.url).await;
    let (mut watcher, _) = Client::connect_url(&server.url).await;
    let sub = watcher
        .ok("store.subscribe", json!({"query": "all-items"}))
        .await;
    assert!(sub["subscriptionId"].is_string(), "{sub}");
    for id in ["a", "b", "c"] {
        writer
            .ok(
                "store.insert",
                json!({"bucket": "items", "data": {"id": id}}),
            )
            .await;
    }
    let (code, _, _) = writer
        .fail(
            "store.insert",
            json!({"bucket": "nope", "data": {"id": "x"}}),
        )
        .await;
    assert_eq!(code, "BUCKET_NOT_DEFINED");
    let (code, _, _) = writer.fail("store.frobnicate", json!({})).await;
    assert_eq!(code, "UNKNOWN_OPERATION");
    // The watcher sees the inserts: pushes were sent.
    let push = watcher.next_push().await;
    assert_eq!(push["type"], "push");
    writer.ws.close(None).await.expect("client close");

    // The close is counted once the server has seen it.
    let after = scrape_until(addr, |m| {
        m.value("noex_connections_closed_total", &[("code", "1005")]) >= 1.0
            && m.value("noex_connections_open", &[]) <= 1.0
    })
    .await;
    let requests = |op: &str, result: &str| {
        after.value(
            "noex_requests_total",
            &[("operation", op), ("result", result)],
        )
    };
    assert_eq!(requests("store.insert", "ok"), 3.0);
    assert_eq!(requests("store.insert", "BUCKET_NOT_DEFINED"), 1.0);
    assert_eq!(requests("store.subscribe", "ok"), 1.0);
    // A client's unknown operation is counted under one label, not its own name.
    assert_eq!(requests("unknown", "UNKNOWN_OPERATION"), 1.0);
    assert!(
        after
            .0
            .samples
            .iter()
            .all(|s| s.labels.get("operation") != Some("store.frobnicate")),
        "no label from a client's string"
    );
    // Every store request was timed: 3 inserts, 1 failed insert, 1 subscribe.
    assert_eq!(
        after.histogram_count("noex_request_duration_seconds", &[("family", "store")]),
        5.0
    );
    assert_eq!(
        after.histogram_count("noex_request_duration_seconds", &[("family", "other")]),
        1.0
    );
    assert_eq!(after.value("noex_connections_opened_total", &[]), 2.0);
    // A close frame without a code is 1005.
    assert_eq!(
        after.value("noex_connections_closed_total", &[("code", "1005")]),
        1.0
    );
    assert_eq!(after.value("noex_connections_open", &[]), 1.0);
    assert_eq!(after.value("noex_subscriptions", &[]), 1.0);
    assert!(after.value("noex_pushes_total", &[]) >= 1.0);
    assert_eq!(
        after.value("noex_bucket_records", &[("bucket", "items")]),
        3.0
    );
    assert!(after.value("noex_bucket_bytes", &[("bucket", "items")]) > 0.0);
    assert!(after.value("noex_http_requests_total", &[("endpoint", "metrics")]) >= 2.0);
    // The watcher is still served.
    watcher.ok("store.buckets", json!({})).await;
}

#[tokio::test]
async fn ready_turns_503_during_a_graceful_stop_before_clients_are_closed() {
    let mut server = Binary::spawn(&["--shutdown-grace-ms", "5000"]).await;
    let addr = server.addr();
    let ready = get(addr, "/ready").await;
    assert_eq!(
        (ready.status, ready.body.as_str()),
        (200, r#"{"status":"ready"}"#)
    );
    let (mut client, _) = Client::connect_url(&server.url).await;

    let status = Command::new("kill")
        .args(["-TERM", &server.child.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(status.success());
    // The client is told to leave; until it does, the server keeps serving it, and
    // readiness is already off.
    let notice = client.recv().await;
    assert_eq!(notice["event"], "shutdown", "{notice}");
    let ready = get(addr, "/ready").await;
    assert_eq!(ready.status, 503, "{}", ready.body);
    let body: Value = serde_json::from_str(&ready.body).expect("JSON body");
    assert_eq!(body["status"], "shutting_down");
    assert!(body["reason"].is_string());
    // Liveness is still fine, and the client is still served.
    assert_eq!(get(addr, "/health").await.status, 200);
    client.ok("store.buckets", json!({})).await;
    client.ws.close(None).await.expect("client leaves");
    let exit = server.child.wait().expect("reaped");
    assert!(exit.success(), "{exit:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_answers_while_1000_websocket_clients_are_connected() {
    let started = Instant::now();
    let server = Binary::spawn_with_fd_limit(4096, &["--max-connections-per-ip", "2000"]).await;
    let addr = server.addr();
    let mut clients = Vec::with_capacity(1000);
    // In batches below `limits.maxPendingHandshakesPerIp` (32): every test client shares
    // one address.
    for _ in 0..50 {
        let batch: Vec<_> = (0..20)
            .map(|_| tokio_tungstenite::connect_async(server.url.clone()))
            .collect();
        for result in futures_util::future::join_all(batch).await {
            clients.push(result.expect("connects").0);
        }
    }
    let metrics = scrape_until(addr, |m| m.value("noex_connections_open", &[]) >= 1000.0).await;
    assert_eq!(metrics.value("noex_connections_open", &[]), 1000.0);
    let asked = Instant::now();
    let health = get(addr, "/health").await;
    assert_eq!(health.status, 200);
    let body: Value = serde_json::from_str(&health.body).expect("JSON body");
    assert_eq!(body["status"], "ok");
    assert!(
        asked.elapsed() < Duration::from_secs(2),
        "{:?}",
        asked.elapsed()
    );
    drop(clients);
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn bad_http_requests_get_their_status_and_websocket_clients_stay_served() {
    let mut config = local_config();
    config.limits.handshake_timeout_ms = 300;
    let server = start(config).await;
    let addr = server.local_addr();
    let (mut client, _) = Client::connect(&server).await;

    assert_eq!(get(addr, "/nope").await.status, 404);
    let plain = get(addr, "/").await;
    assert_eq!(plain.status, 426);
    assert_eq!(plain.headers["upgrade"], "websocket");
    let post = raw_http(addr, b"POST /health HTTP/1.1\r\nContent-Length: 0\r\n\r\n").await;
    assert_eq!(
        (post.status, post.headers["allow"].as_str()),
        (405, "GET, HEAD")
    );
    let head = raw_http(addr, b"HEAD /health HTTP/1.1\r\n\r\n").await;
    assert_eq!((head.status, head.body.as_str()), (200, ""));
    assert_eq!(
        raw_http(addr, b"\x16\x03\x01garbage\r\n\r\n").await.status,
        400
    );
    let oversized = format!(
        "GET /health HTTP/1.1\r\nX-Big: {}\r\n\r\n",
        "a".repeat(20 * 1024)
    );
    assert_eq!(raw_http(addr, oversized.as_bytes()).await.status, 431);
    client.ok("store.buckets", json!({})).await;

    // Slow headers: the handshake deadline drops the connection without an answer.
    let mut slow = TcpStream::connect(addr).await.expect("connects");
    slow.write_all(b"GET /health HTTP/1.1\r\n")
        .await
        .expect("partial head");
    let started = Instant::now();
    let mut buf = Vec::new();
    let read = tokio::time::timeout(WAIT, slow.read_to_end(&mut buf))
        .await
        .expect("dropped within the wait bound");
    assert!(
        buf.is_empty(),
        "no answer: {:?}",
        String::from_utf8_lossy(&buf)
    );
    assert!(read.is_err() || read.is_ok_and(|n| n == 0));
    assert!(
        started.elapsed() >= Duration::from_millis(250),
        "{:?}",
        started.elapsed()
    );
    client.ok("store.buckets", json!({})).await;
    server.stop(Duration::ZERO).await;
}

#[tokio::test]
async fn the_admin_listener_serves_the_endpoints_and_the_token_guards_metrics() {
    let mut config = local_config();
    config.http.admin = Some("127.0.0.1:0".into());
    config.http.metrics_token = Some("s3cret".into());
    let server = start(config).await;
    let main = server.local_addr();
    let admin = server.admin_addr().expect("admin listener");
    assert_ne!(main, admin);
    let (mut client, _) = Client::connect(&server).await;

    // The main listener no longer serves them.
    for path in ["/health", "/ready", "/metrics"] {
        assert_eq!(
            get(main, path).await.status,
            404,
            "{path} on the main listener"
        );
    }
    assert_eq!(get(admin, "/health").await.status, 200);
    assert_eq!(get(admin, "/ready").await.status, 200);
    // ...nor does the admin listener take WebSocket upgrades.
    assert_eq!(get(admin, "/").await.status, 404);
    let missing = get(admin, "/metrics").await;
    assert_eq!(missing.status, 401);
    assert_eq!(missing.headers["www-authenticate"], "Bearer");
    let wrong = raw_http(
        admin,
        b"GET /metrics HTTP/1.1\r\nAuthorization: Bearer s3creT\r\n\r\n",
    )
    .await;
    assert_eq!(wrong.status, 401);
    let metrics = Metrics::scrape(admin, Some("s3cret")).await;
    assert_eq!(metrics.value("noex_connections_open", &[]), 1.0);
    client.ok("store.buckets", json!({})).await;
    server.stop(Duration::ZERO).await;
}

#[tokio::test]
async fn metrics_and_health_can_be_turned_off() {
    let mut config = local_config();
    config.http.metrics = false;
    config.http.health = false;
    let server = start(config).await;
    for path in ["/health", "/ready", "/metrics"] {
        assert_eq!(get(server.local_addr(), path).await.status, 404, "{path}");
    }
    server.stop(Duration::ZERO).await;
}

#[tokio::test]
async fn json_logs_carry_the_request_span_fields() {
    let config = std::env::temp_dir().join(format!("noex-json-logs-{}.json", std::process::id()));
    std::fs::write(
        &config,
        json!({"auth": {"tokens": {"t-ada": {"userId": "ada"}}}}).to_string(),
    )
    .expect("config file");
    let mut child = Command::new(common::BIN)
        .args(["--port", "0", "--host", "127.0.0.1", "--log-format", "json"])
        .args(["--log", "noex_server=debug", "--config"])
        .arg(&config)
        .env_remove("RUST_LOG")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawns");
    let stdout = child.stdout.take().expect("stdout");
    let mut line = String::new();
    BufReader::new(stdout)
        .read_line(&mut line)
        .expect("the address line");
    let url = line
        .trim()
        .strip_prefix("noex-server listening on ")
        .expect("listening line")
        .to_owned();
    let (mut client, _) = Client::connect_url(&url).await;
    client.ok("auth.login", json!({"token": "t-ada"})).await;
    client.ok("store.buckets", json!({})).await;
    client.ws.close(None).await.expect("close");
    let _ = child.kill();
    let output = child.wait_with_output().expect("stderr");
    let _ = std::fs::remove_file(&config);
    let stderr = String::from_utf8_lossy(&output.stderr);
    let lines: Vec<Value> = stderr
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let answered = lines
        .iter()
        .find(|l| l["span"]["operation"] == "store.buckets")
        .unwrap_or_else(|| panic!("a line in the store.buckets span: {stderr}"));
    assert_eq!(answered["span"]["name"], "request");
    assert_eq!(answered["span"]["user"], "ada");
    assert!(
        answered["span"]["connection"]
            .as_str()
            .is_some_and(|c| c.starts_with("conn-")),
        "{answered}"
    );
    assert_eq!(answered["fields"]["result"], "ok");
    assert_eq!(answered["level"], "DEBUG");
}

#[tokio::test]
async fn durable_commits_are_timed() {
    let dir = std::env::temp_dir().join(format!("noex-commit-metrics-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let mut config = local_config();
    config.persistence.engine = noex_server::PersistenceEngine::Redb;
    config.persistence.data_dir = Some(dir.clone());
    config.store = serde_json::from_value(json!({
        "buckets": {"items": {"key": "id", "schema": {"id": {"type": "string", "required": true}}}}
    }))
    .expect("store section");
    let server = start(config).await;
    let before = Metrics::scrape(server.local_addr(), None).await;
    let (mut client, _) = Client::connect(&server).await;
    for id in ["a", "b"] {
        client
            .ok(
                "store.insert",
                json!({"bucket": "items", "data": {"id": id}}),
            )
            .await;
    }
    let after = Metrics::scrape(server.local_addr(), None).await;
    let name = "noex_persistence_commit_duration_seconds";
    // Sync durability: each acknowledged insert was committed (possibly grouped).
    assert!(
        after.histogram_count(name, &[]) > before.histogram_count(name, &[]),
        "{} -> {}",
        before.histogram_count(name, &[]),
        after.histogram_count(name, &[])
    );
    server.stop(Duration::ZERO).await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn the_binarys_flags_set_the_token_and_turn_metrics_off() {
    let guarded = Binary::spawn(&["--metrics-token", "tok-1"]).await;
    assert_eq!(get(guarded.addr(), "/metrics").await.status, 401);
    let metrics = Metrics::scrape(guarded.addr(), Some("tok-1")).await;
    assert_eq!(metrics.value("noex_connections_open", &[]), 0.0);
    let off = Binary::spawn(&["--no-metrics", "--no-health"]).await;
    for path in ["/metrics", "/health", "/ready"] {
        assert_eq!(get(off.addr(), path).await.status, 404, "{path}");
    }
    // A WebSocket client is served as ever.
    let (mut client, _) = Client::connect_url(&off.url).await;
    client.ok("store.buckets", json!({})).await;
}

/// Start-up: while the gate of `ready_after` is open, `/ready` answers 503 `starting`,
/// `/health` 200, and a WebSocket client is closed with 1013; once it closes, `/ready` is
/// 200 and clients are served.
#[tokio::test]
async fn ready_is_503_while_starting_and_flips_once_the_server_is_ready() {
    let (open, opened) = tokio::sync::oneshot::channel::<()>();
    let server = noex_server::Server::builder(local_config())
        .ready_after(async move {
            let _ = opened.await;
        })
        .start()
        .await
        .expect("server starts");
    let addr = server.local_addr();
    let ready = get(addr, "/ready").await;
    assert_eq!(ready.status, 503, "{}", ready.body);
    let body: Value = serde_json::from_str(&ready.body).expect("JSON body");
    assert_eq!(body["status"], "starting");
    assert!(body["reason"].is_string());
    assert_eq!(get(addr, "/health").await.status, 200);
    let (mut early, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/"))
        .await
        .expect("upgrade");
    use futures_util::StreamExt;
    let closed = tokio::time::timeout(WAIT, early.next())
        .await
        .expect("closed in time");
    match closed {
        Some(Ok(tokio_tungstenite::tungstenite::Message::Close(Some(frame)))) => {
            assert_eq!(u16::from(frame.code), 1013);
            assert_eq!(frame.reason.as_str(), "server_starting");
        }
        other => panic!("expected a close frame, got {other:?}"),
    }

    open.send(()).expect("the gate waits");
    let deadline = Instant::now() + WAIT;
    loop {
        let ready = get(addr, "/ready").await;
        if ready.status == 200 {
            assert_eq!(ready.body, r#"{"status":"ready"}"#);
            break;
        }
        assert_eq!(ready.status, 503);
        assert!(Instant::now() < deadline, "/ready never flipped");
        tokio::task::yield_now().await;
    }
    let (mut client, welcome) = Client::connect(&server).await;
    assert_eq!(welcome["type"], "welcome");
    client.ok("store.buckets", json!({})).await;
}
