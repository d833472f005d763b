//! The `noex-server` binary: command-line flags over an optional JSON config file, logging,
//! and a graceful stop on SIGINT / SIGTERM.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use noex_server::{RateLimitConfig, Server, ServerConfig, StartError};

/// noex real-time data server: a schema-validated reactive store over one WebSocket.
///
/// With no arguments it serves on 0.0.0.0:8080 with an in-memory store. Flags override
/// the values of the config file.
#[derive(Debug, Parser)]
#[command(name = "noex-server", version)]
struct Cli {
    /// JSON config file (fields as in the README's "Configuration" section).
    #[arg(long, short = 'c', value_name = "FILE", env = "NOEX_CONFIG")]
    config: Option<PathBuf>,
    /// Port to listen on (0 picks a free port) [default: 8080].
    #[arg(long, short = 'p', env = "NOEX_PORT")]
    port: Option<u16>,
    /// Address to bind [default: 0.0.0.0].
    #[arg(long, env = "NOEX_HOST")]
    host: Option<String>,
    /// WebSocket endpoint path [default: /].
    #[arg(long)]
    path: Option<String>,
    /// Server name reported by server.stats [default: noex-server].
    #[arg(long)]
    name: Option<String>,
    /// Largest accepted incoming frame in bytes [default: 1048576].
    #[arg(long, value_name = "BYTES")]
    max_payload_bytes: Option<usize>,
    /// Heartbeat ping interval in ms [default: 30000].
    #[arg(long, value_name = "MS")]
    heartbeat_interval_ms: Option<u64>,
    /// Heartbeat pong timeout in ms [default: 10000].
    #[arg(long, value_name = "MS")]
    heartbeat_timeout_ms: Option<u64>,
    /// Outbound bytes buffered per connection [default: 1048576].
    #[arg(long, value_name = "BYTES")]
    max_buffered_bytes: Option<usize>,
    /// Fraction of the buffer at which pushes are held back [default: 0.8].
    #[arg(long, value_name = "FRACTION")]
    high_water_mark: Option<f64>,
    /// Subscriptions per connection [default: 100].
    #[arg(long, value_name = "N")]
    max_subscriptions_per_connection: Option<u32>,
    /// Subscriptions over all connections [default: unlimited].
    #[arg(long, value_name = "N")]
    max_total_subscriptions: Option<u64>,
    /// Connections per client IP [default: 256].
    #[arg(long, value_name = "N")]
    max_connections_per_ip: Option<u32>,
    /// Enable rate limiting: requests per window and client.
    #[arg(long, value_name = "N", requires = "rate_limit_window_ms")]
    rate_limit_max_requests: Option<u32>,
    /// Rate-limit window in ms.
    #[arg(long, value_name = "MS", requires = "rate_limit_max_requests")]
    rate_limit_window_ms: Option<u64>,
    /// Accept browser connections only from this Origin (repeatable) [default: any].
    #[arg(long = "allowed-origin", value_name = "ORIGIN")]
    allowed_origins: Vec<String>,
    /// Trust `X-Forwarded-For` from this reverse proxy: an address or a network such as
    /// 10.0.0.0/8 (repeatable) [default: none].
    #[arg(long = "trusted-proxy", value_name = "ADDRESS")]
    trusted_proxies: Vec<String>,
    /// Never send structured `details` in error frames.
    #[arg(long)]
    hide_error_details: bool,
    /// Storage: `memory` (default; nothing survives a restart) or `redb` (durable file).
    #[arg(long, value_name = "ENGINE")]
    persistence: Option<noex_server::PersistenceEngine>,
    /// Directory of the database file with --persistence redb [default: ./data].
    #[arg(long, value_name = "DIR", conflicts_with = "db")]
    data_dir: Option<PathBuf>,
    /// The database file itself with --persistence redb (instead of --data-dir).
    #[arg(long, value_name = "FILE")]
    db: Option<PathBuf>,
    /// When a write is acknowledged with --persistence redb: `sync` (on disk, survives
    /// kill -9), `batched` or `batched:<window>` such as `batched:20ms` [default: sync].
    #[arg(long, value_name = "MODE")]
    durability: Option<String>,
    /// Run without the rule engine: every rules.* request answers RULES_NOT_AVAILABLE
    /// (the engine is on by default unless the config file sets rules.enabled).
    #[arg(long)]
    no_rules: bool,
    /// Grace period for clients to leave on SIGINT / SIGTERM, in ms.
    #[arg(long, value_name = "MS", default_value_t = 5000)]
    shutdown_grace_ms: u64,
    /// Serve /health, /ready and /metrics on this separate IP:PORT instead of the main
    /// listener (which then answers them 404).
    #[arg(long, value_name = "ADDR")]
    http_admin: Option<String>,
    /// Require `Authorization: Bearer TOKEN` on /metrics (also NOEX_METRICS_TOKEN).
    #[arg(long, value_name = "TOKEN", env = "NOEX_METRICS_TOKEN")]
    metrics_token: Option<String>,
    /// Neither serve /metrics nor count what it reports.
    #[arg(long)]
    no_metrics: bool,
    /// Do not serve /health and /ready.
    #[arg(long)]
    no_health: bool,
    /// Serve the browser console under /console/ (beside /health and /metrics; needs a
    /// binary built with `--features console`, and an `auth` section or identity).
    #[arg(long)]
    console: bool,
    /// Log line format: `text` (default) or `json` (one JSON object a line).
    #[arg(long, value_name = "FORMAT")]
    log_format: Option<noex_server::LogFormat>,
    /// Log filter, e.g. `info` or `noex_server=debug` (also RUST_LOG).
    #[arg(long, value_name = "FILTER", default_value = "info", env = "RUST_LOG")]
    log: String,
}

impl Cli {
    /// The config file (or defaults) with every given flag applied on top.
    fn into_config(self) -> Result<ServerConfig, noex_server::ConfigError> {
        let mut c = match &self.config {
            Some(path) => ServerConfig::from_file(path)?,
            None => ServerConfig::default(),
        };
        macro_rules! set {
            ($($flag:ident => $($field:ident).+),* $(,)?) => {
                $(if let Some(v) = self.$flag { c.$($field).+ = v; })*
            };
        }
        set!(
            port => port,
            host => host,
            path => path,
            name => name,
            max_payload_bytes => max_payload_bytes,
            heartbeat_interval_ms => heartbeat.interval_ms,
            heartbeat_timeout_ms => heartbeat.timeout_ms,
            max_buffered_bytes => backpressure.max_buffered_bytes,
            high_water_mark => backpressure.high_water_mark,
            max_subscriptions_per_connection => connection_limits.max_subscriptions_per_connection,
        );
        if let Some(n) = self.max_total_subscriptions {
            c.connection_limits.max_total_subscriptions = Some(n);
        }
        if let Some(n) = self.max_connections_per_ip {
            c.connection_limits.max_connections_per_ip = Some(n);
        }
        if let (Some(max_requests), Some(window_ms)) =
            (self.rate_limit_max_requests, self.rate_limit_window_ms)
        {
            c.rate_limit = Some(RateLimitConfig {
                max_requests,
                window_ms,
            });
        }
        if !self.allowed_origins.is_empty() {
            c.allowed_origins = Some(self.allowed_origins);
        }
        if !self.trusted_proxies.is_empty() {
            c.http.trusted_proxies = self.trusted_proxies;
        }
        if self.hide_error_details {
            c.expose_error_details = false;
        }
        if let Some(engine) = self.persistence {
            c.persistence.engine = engine;
        }
        if let Some(dir) = self.data_dir {
            c.persistence.data_dir = Some(dir);
            c.persistence.path = None;
        }
        if let Some(db) = self.db {
            c.persistence.path = Some(db);
            c.persistence.data_dir = None;
        }
        if let Some(durability) = self.durability {
            c.persistence.durability = durability;
        }
        if let Some(admin) = self.http_admin {
            c.http.admin = Some(admin);
        }
        if let Some(token) = self.metrics_token {
            c.http.metrics_token = Some(token);
        }
        if self.no_metrics {
            c.http.metrics = false;
        }
        if self.no_health {
            c.http.health = false;
        }
        if self.console {
            c.http.console = true;
        }
        if let Some(format) = self.log_format {
            c.log.format = format;
        }
        if self.no_rules {
            c.rules.enabled = Some(false);
        } else if c.rules.enabled.is_none() {
            c.rules.enabled = Some(true);
        }
        c.validate()?;
        Ok(c)
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_new(&cli.log)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let grace = Duration::from_millis(cli.shutdown_grace_ms);
    let config = match cli.into_config() {
        Ok(config) => config,
        Err(err) => {
            eprintln!("noex-server: {err}");
            return ExitCode::from(2);
        }
    };
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match config.log.format {
        noex_server::LogFormat::Text => logs.init(),
        // One object a line: the event's fields, its span (the request's connection, user
        // and operation) and the spans around it.
        noex_server::LogFormat::Json => logs
            .json()
            .with_current_span(true)
            .with_span_list(true)
            .init(),
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(err) => {
            eprintln!("noex-server: cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(run(config, grace))
}

async fn run(config: ServerConfig, grace: Duration) -> ExitCode {
    // Installed before the address is printed: whoever reads that line may signal at once,
    // and a signal arriving before its handler exists would kill the process outright.
    let stop = StopSignals::install();
    let path = config.path.clone();
    let server = match Server::start(config).await {
        Ok(server) => server,
        Err(err @ (StartError::Config(_) | StartError::Store { .. } | StartError::Rule { .. })) => {
            eprintln!("noex-server: {err}");
            return ExitCode::from(2);
        }
        Err(err) => {
            eprintln!("noex-server: {err}");
            return ExitCode::FAILURE;
        }
    };
    // The first line on stdout: scripts and tests read the address from it.
    println!(
        "noex-server listening on ws://{}{}",
        server.local_addr(),
        path
    );
    if let Some(admin) = server.admin_addr() {
        println!("noex-server admin endpoints on http://{admin}");
    }
    if server.config().http.console {
        let console = server.admin_addr().unwrap_or_else(|| server.local_addr());
        println!("noex-server console on http://{console}/console/");
    }
    stop.wait().await;
    tracing::info!(grace_ms = grace.as_millis() as u64, "stopping");
    server.stop(grace).await;
    ExitCode::SUCCESS
}

/// SIGINT and SIGTERM, listened to from the moment they are installed.
struct StopSignals {
    #[cfg(unix)]
    handlers: Option<(tokio::signal::unix::Signal, tokio::signal::unix::Signal)>,
}

impl StopSignals {
    fn install() -> Self {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            let handlers = match (
                signal(SignalKind::interrupt()),
                signal(SignalKind::terminate()),
            ) {
                (Ok(int), Ok(term)) => Some((int, term)),
                _ => None,
            };
            StopSignals { handlers }
        }
        #[cfg(not(unix))]
        {
            StopSignals {}
        }
    }

    /// Resolves on the first SIGINT or SIGTERM.
    async fn wait(self) {
        #[cfg(unix)]
        if let Some((mut int, mut term)) = self.handlers {
            tokio::select! {
                _ = int.recv() => {}
                _ = term.recv() => {}
            }
            return;
        }
        let _ = tokio::signal::ctrl_c().await;
    }
}
