//! The browser console (`http.console`) over real HTTP on port 0: off by default (404 on
//! every console path), and, in a binary without the `console` feature, refused at start
//! with what to build instead. With the feature (`cargo test -p noex-server --features
//! console --test console`, after `client-wasm/build-pkg`): the page, its script and style
//! and the npm package's files with their content types and the Content-Security-Policy,
//! `/console` redirected to `/console/`, `config.json` pointing at the WebSocket listener,
//! 404 and 405 around them, the admin listener, and the requests counted under
//! `endpoint="console"`. The page itself runs in headless Chromium in
//! client-wasm/js-tests/console.test.mjs.

mod common;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::process::Command;

use common::{BIN, WAIT, local_config, start};
use noex_server::{AuthConfig, ServerConfig, StartError};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// One HTTP answer: status, lower-cased headers, body bytes.
struct Answer {
    status: u16,
    headers: HashMap<String, String>,
    body: Vec<u8>,
}

impl Answer {
    fn header(&self, name: &str) -> &str {
        self.headers.get(name).map_or_else(
            || panic!("no {name} header in {:?}", self.headers),
            |v| v.as_str(),
        )
    }

    fn text(&self) -> String {
        String::from_utf8(self.body.clone()).expect("UTF-8 body")
    }
}

/// Sends `METHOD path` on a fresh connection and reads the answer until the server closes.
async fn request(addr: SocketAddr, method: &str, path: &str) -> Answer {
    let stream = TcpStream::connect(addr).await.expect("connects");
    exchange(stream, method, path).await
}

/// `GET path` from the loopback address `ip`.
#[cfg_attr(not(feature = "console"), allow(dead_code))]
async fn request_from(addr: SocketAddr, ip: [u8; 4], path: &str) -> Answer {
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket
        .bind(SocketAddr::from((ip, 0)))
        .expect("bind a loopback address");
    let stream = socket.connect(addr).await.expect("connects");
    exchange(stream, "GET", path).await
}

async fn exchange(mut stream: TcpStream, method: &str, path: &str) -> Answer {
    stream
        .write_all(format!("{method} {path} HTTP/1.1\r\nHost: test\r\n\r\n").as_bytes())
        .await
        .expect("request written");
    let mut bytes = Vec::new();
    tokio::time::timeout(WAIT, stream.read_to_end(&mut bytes))
        .await
        .expect("answer within the wait bound")
        .expect("answer read");
    let split = bytes
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a head and a body");
    let head = String::from_utf8(bytes[..split].to_vec()).expect("UTF-8 head");
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
        body: bytes[split + 4..].to_vec(),
    }
}

async fn get(addr: SocketAddr, path: &str) -> Answer {
    request(addr, "GET", path).await
}

/// Every path the console answers when it is on.
const CONSOLE_PATHS: [&str; 9] = [
    "/console",
    "/console/",
    "/console/index.html",
    "/console/console.js",
    "/console/console.css",
    "/console/config.json",
    "/console/pkg/index.js",
    "/console/pkg/wasm/noex_client_wasm.js",
    "/console/pkg/wasm/noex_client_wasm_bg.wasm",
];

/// A config with the console on and an admin token (the console needs a login).
fn console_config() -> ServerConfig {
    let mut config = local_config();
    config.http.console = true;
    config.auth = Some(
        serde_json::from_value::<AuthConfig>(serde_json::json!({
            "tokens": {"admin-token": {"userId": "ada", "roles": ["admin"]}}
        }))
        .expect("auth config"),
    );
    config
}

#[tokio::test]
async fn the_console_is_off_by_default_and_every_path_of_it_is_404() {
    let server = start(local_config()).await;
    let addr = server.local_addr();
    for path in CONSOLE_PATHS {
        let answer = get(addr, path).await;
        assert_eq!(answer.status, 404, "{path}");
        assert_eq!(answer.header("content-type"), "application/json");
        assert_eq!(answer.text(), r#"{"error":"not found"}"#);
        assert!(!answer.headers.contains_key("content-security-policy"));
    }
    // The other endpoints are untouched.
    assert_eq!(get(addr, "/health").await.status, 200);
    server.stop(std::time::Duration::ZERO).await;
}

#[tokio::test]
async fn turning_the_console_on_needs_the_feature_and_a_login() {
    // In process.
    let result = start_and_stop(console_config()).await;
    if cfg!(feature = "console") {
        assert!(result.is_ok(), "{:?}", result.err());
    } else {
        let err = result.expect_err("refused without the console feature");
        assert!(matches!(err, StartError::Config(_)), "{err}");
        let message = err.to_string();
        assert!(
            message.contains("http.console")
                && message.contains(
                    "client-wasm/build-pkg && cargo build -p noex-server --features console"
                ),
            "{message}"
        );
    }
    // The binary's flag: refused before it binds anything, with exit code 2 — for want of
    // the feature, or (with it) for want of an `auth` section or identity.
    let output = tokio::task::spawn_blocking(|| {
        Command::new(BIN)
            .args(["--host", "127.0.0.1", "--port", "0", "--console"])
            .env_remove("RUST_LOG")
            .output()
    })
    .await
    .expect("joins")
    .expect("runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    let why = if cfg!(feature = "console") {
        "the console requires an admin login"
    } else {
        "built without the console"
    };
    assert!(stderr.contains(why), "{stderr}");
    assert!(output.stdout.is_empty(), "nothing listened");
}

/// `Server::start`, stopping the server again when it started.
async fn start_and_stop(config: ServerConfig) -> Result<(), StartError> {
    let server = noex_server::Server::start(config).await?;
    server.stop(std::time::Duration::ZERO).await;
    Ok(())
}

#[cfg(feature = "console")]
mod served {
    //! With the `console` feature: what the console's paths answer.

    use super::*;

    /// Red team round 11: 6 threads fetching the 300 KB wasm 4 400 times a second put
    /// other clients' `store.get` p99 at 64 ms. One address fetches the large files (the
    /// wasm) at most 20 times a minute; then 429 with `Retry-After`, other addresses and
    /// the small files unaffected.
    #[tokio::test]
    async fn an_address_fetches_the_large_files_a_bounded_number_of_times() {
        let server = start(console_config()).await;
        let addr = server.local_addr();
        const WASM: &str = "/console/pkg/wasm/noex_client_wasm_bg.wasm";
        for _ in 0..20 {
            assert_eq!(get(addr, WASM).await.status, 200);
        }
        let refused = get(addr, WASM).await;
        assert_eq!(refused.status, 429, "{}", refused.text());
        let wait: u64 = refused.header("retry-after").parse().expect("seconds");
        assert!((1..=60).contains(&wait), "{wait}");
        assert_eq!(
            get(addr, "/console/").await.status,
            200,
            "small files are not counted"
        );
        let other = request_from(addr, [127, 0, 0, 40], WASM).await;
        assert_eq!(other.status, 200, "another address is not affected");
    }

    const CSP: &str = "default-src 'none'; script-src 'self' 'wasm-unsafe-eval'; \
                       style-src 'self'; img-src 'self'; connect-src 'self' ws: wss:; \
                       base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

    #[tokio::test]
    async fn the_page_and_the_package_are_served_with_their_types_and_the_csp() {
        let server = start(console_config()).await;
        let addr = server.local_addr();

        let redirect = get(addr, "/console").await;
        assert_eq!(redirect.status, 301);
        assert_eq!(redirect.header("location"), "/console/");

        for (path, content_type, starts) in [
            (
                "/console/",
                "text/html; charset=utf-8",
                &b"<!doctype html>"[..],
            ),
            (
                "/console/index.html",
                "text/html; charset=utf-8",
                b"<!doctype html>",
            ),
            (
                "/console/console.js",
                "text/javascript; charset=utf-8",
                b"// The noex console",
            ),
            (
                "/console/console.css",
                "text/css; charset=utf-8",
                b"/* The noex console",
            ),
            ("/console/favicon.svg", "image/svg+xml", b"<svg"),
            (
                "/console/pkg/index.js",
                "text/javascript; charset=utf-8",
                b"// noex client",
            ),
            (
                "/console/pkg/wasm/noex_client_wasm.js",
                "text/javascript; charset=utf-8",
                b"",
            ),
            (
                "/console/pkg/wasm/noex_client_wasm_bg.wasm",
                "application/wasm",
                b"\0asm",
            ),
        ] {
            let answer = get(addr, path).await;
            assert_eq!(answer.status, 200, "{path}");
            assert_eq!(answer.header("content-type"), content_type, "{path}");
            assert_eq!(answer.header("content-security-policy"), CSP, "{path}");
            assert_eq!(answer.header("x-content-type-options"), "nosniff", "{path}");
            assert_eq!(answer.header("x-frame-options"), "DENY", "{path}");
            assert_eq!(
                answer.header("content-length"),
                answer.body.len().to_string(),
                "{path}"
            );
            assert!(
                answer.body.len() > 100,
                "{path}: {} bytes",
                answer.body.len()
            );
            assert!(answer.body.starts_with(starts), "{path}");
        }
        // The page loads its own files by relative URL (they resolve under /console/) and
        // the client from the package the server serves, not from anywhere else.
        let page = get(addr, "/console/").await.text();
        for reference in [
            "src=\"console.js\"",
            "href=\"console.css\"",
            "href=\"favicon.svg\"",
        ] {
            assert!(page.contains(reference), "{reference}");
        }
        let script = get(addr, "/console/console.js").await.text();
        assert!(script.contains("from './pkg/index.js'"));
        assert!(!script.contains("innerHTML"), "no markup from data");
        let package = get(addr, "/console/pkg/index.js").await.text();
        assert!(package.contains("from './wasm/noex_client_wasm.js'"));

        // Where the page finds the WebSocket: this listener.
        let config = get(addr, "/console/config.json").await;
        assert_eq!(config.header("content-type"), "application/json");
        let config: serde_json::Value = serde_json::from_slice(&config.body).expect("JSON");
        assert_eq!(config["wsPath"], "/");
        assert_eq!(config["wsPort"], addr.port());
        assert_eq!(config["sameListener"], true);
        assert_eq!(config["metrics"], true);
        assert_eq!(config["metricsToken"], false);
        assert_eq!(config["identity"], false);

        // Around them.
        for path in [
            "/console/nope.js",
            "/console/pkg/",
            "/console/pkg/package.json",
            "/console/../health",
            "/consoles",
        ] {
            assert_eq!(get(addr, path).await.status, 404, "{path}");
        }
        let post = request(addr, "POST", "/console/").await;
        assert_eq!(post.status, 405);
        assert_eq!(post.header("allow"), "GET, HEAD");
        let head = request(addr, "HEAD", "/console/pkg/wasm/noex_client_wasm_bg.wasm").await;
        assert_eq!(head.status, 200);
        assert!(head.body.is_empty());
        assert!(
            head.header("content-length")
                .parse::<usize>()
                .expect("a length")
                > 10_000
        );

        // Counted under their own label.
        let metrics = get(addr, "/metrics").await.text();
        let counted = metrics
            .lines()
            .find(|l| l.starts_with("noex_http_requests_total{endpoint=\"console\"}"))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse::<f64>().ok())
            .expect("the console's counter");
        // 1 redirect + 8 files + 3 reads of the page, script and package + 1 config + POST + HEAD.
        assert_eq!(counted, 15.0);
        server.stop(std::time::Duration::ZERO).await;
    }

    #[tokio::test]
    async fn with_an_admin_listener_only_it_serves_the_console() {
        let mut config = console_config();
        config.http.admin = Some("127.0.0.1:0".into());
        // The WebSocket path may be /console then: the main listener serves no console.
        config.path = "/console".into();
        let server = start(config).await;
        let main = server.local_addr();
        let admin = server.admin_addr().expect("admin listener");
        for path in CONSOLE_PATHS {
            let status = get(main, path).await.status;
            // `/console` itself is the WebSocket path on the main listener: 426.
            assert_eq!(status, if path == "/console" { 426 } else { 404 }, "{path}");
            let expected = if path == "/console" { 301 } else { 200 };
            assert_eq!(get(admin, path).await.status, expected, "{path}");
        }
        let config: serde_json::Value =
            serde_json::from_slice(&get(admin, "/console/config.json").await.body).expect("JSON");
        assert_eq!(config["wsPath"], "/console");
        assert_eq!(config["wsPort"], main.port());
        assert_eq!(config["sameListener"], false);
        server.stop(std::time::Duration::ZERO).await;
    }
}
