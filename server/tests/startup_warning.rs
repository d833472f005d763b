//! Binding a non-loopback address with rate limiting off logs a warning at start; loopback,
//! or rate limiting on, does not.

use std::io::Write;
use std::sync::{Arc, Mutex};

use noex_server::{RateLimitConfig, Server, ServerConfig};

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

async fn start_logged(config: ServerConfig) -> String {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let server = Server::start(config).await.unwrap();
    server.stop(std::time::Duration::ZERO).await;
    captured.text()
}

#[tokio::test(flavor = "current_thread")]
async fn a_public_bind_without_rate_limiting_warns() {
    let public = ServerConfig {
        host: "0.0.0.0".into(),
        port: 0,
        ..ServerConfig::default()
    };
    let log = start_logged(public.clone()).await;
    assert!(
        log.contains("WARN") && log.contains("rate limiting off"),
        "{log}"
    );

    let limited = ServerConfig {
        rate_limit: Some(RateLimitConfig {
            max_requests: 10,
            window_ms: 1000,
        }),
        ..public
    };
    assert!(!start_logged(limited).await.contains("rate limiting off"));

    let loopback = ServerConfig {
        host: "127.0.0.1".into(),
        port: 0,
        ..ServerConfig::default()
    };
    assert!(!start_logged(loopback).await.contains("rate limiting off"));
}
