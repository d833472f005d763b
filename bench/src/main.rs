//! `noex-bench`: loopback load generator for the noex server.
//!
//! `noex-bench run --scenarios request-rtt,fanout,connections,churn,transfer --targets echo,noex`
//! spawns each server as a child (on 127.0.0.1, ephemeral port), runs the scenarios and
//! prints a table with noex/echo ratios; `--json FILE` also writes the figures as JSON.
//! `--server-cmd "PROGRAM ARGS"` adds any other server that speaks the protocol as a
//! target (`cmd`, shown under `--server-name`), with its own noex/<name> ratios.
//! A scenario whose correctness check fails (the transfer invariant) makes the run exit
//! with a failure status.
//! The hidden `echo-server` subcommand is the raw WebSocket baseline (`--naive`: the
//! previous, one-write-per-answer one).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use noex_bench::runner::{self, SCENARIOS};
use noex_bench::scenario::Config;
use noex_bench::target::{Binaries, TARGET_NAMES, TargetKind, split_command};
use noex_bench::{echo, report};

#[derive(Parser)]
#[command(
    name = "noex-bench",
    about = "Load generator for the noex server, with a raw WebSocket baseline"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run scenarios against the servers and print the table.
    Run(Box<RunArgs>),
    /// The raw baseline server (spawned by `run`).
    #[command(hide = true)]
    EchoServer {
        /// Port on 127.0.0.1 (0 = ephemeral).
        #[arg(long, default_value_t = 0)]
        port: u16,
        /// The previous baseline: one write per answer instead of one per burst.
        #[arg(long)]
        naive: bool,
    },
}

#[derive(clap::Args)]
struct RunArgs {
    /// Comma-separated scenarios: request-rtt, fanout, connections, churn, transfer, logins
    /// and durable-writes (those two not run by default).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "request-rtt,fanout,connections,churn,transfer"
    )]
    scenarios: Vec<String>,
    /// Comma-separated targets: echo (the floor), echo-naive (one write per answer), noex,
    /// cmd (the --server-cmd server; its --server-name is accepted too). Default: echo,noex,
    /// plus cmd when --server-cmd is given.
    #[arg(long, value_delimiter = ',')]
    targets: Option<Vec<String>>,
    /// Another server to measure beside ours: a command (split at whitespace, no quoting)
    /// that prints a line containing ws://127.0.0.1:PORT/ on stdout. Its CPU is read from
    /// the started process: a wrapper script must `exec` the server.
    #[arg(long)]
    server_cmd: Option<String>,
    /// The column the --server-cmd server is shown under.
    #[arg(long, default_value = "other")]
    server_name: String,
    /// The noex server binary (default: `noex-server` next to this executable).
    #[arg(long)]
    server_bin: Option<PathBuf>,
    /// Extra flag for the noex server (repeatable), e.g. --server-arg=--max-connections-per-ip=0.
    #[arg(long = "server-arg", allow_hyphen_values = true)]
    server_args: Vec<String>,
    /// request-rtt: connections.
    #[arg(long, default_value_t = 32)]
    connections: usize,
    /// request-rtt: pipelined requests in flight per connection.
    #[arg(long, default_value_t = 8)]
    depth: usize,
    /// request-rtt: percent of requests that are store.insert (the rest store.get).
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(0..=100))]
    insert_pct: u32,
    /// request-rtt: total requests.
    #[arg(long, default_value_t = 200_000)]
    requests: u64,
    /// fanout: subscribers.
    #[arg(long, default_value_t = 200)]
    subscribers: usize,
    /// fanout: writer inserts per second.
    #[arg(long, default_value_t = 200)]
    rate: u64,
    /// fanout: total inserts.
    #[arg(long, default_value_t = 1000)]
    inserts: u64,
    /// connections: idle connections to open.
    #[arg(long, default_value_t = 2000)]
    idle_connections: usize,
    /// connections: concurrent connection attempts.
    #[arg(long, default_value_t = 64)]
    open_concurrency: usize,
    /// churn: concurrent workers.
    #[arg(long, default_value_t = 16)]
    churn_workers: usize,
    /// churn: connect/subscribe/disconnect cycles.
    #[arg(long, default_value_t = 3000)]
    churn_cycles: u64,
    /// transfer: accounts (each opened with balance 100; at least 2).
    #[arg(long, default_value_t = 100_000)]
    accounts: usize,
    /// transfer: Zipf exponent s of the accounts a transfer pairs (0: uniform).
    #[arg(long, default_value_t = 1.0)]
    zipf: f64,
    /// transfer: concurrent clients, one procedures.call in flight each.
    #[arg(long, default_value_t = 16)]
    transfer_clients: usize,
    /// transfer: total calls (the phase also ends at --duration-secs).
    #[arg(long, default_value_t = 1_000_000)]
    transfer_calls: u64,
    /// durable-writes: connections inserting at once into a server with
    /// `--persistence redb --durability sync` (plus one probe connection reading).
    #[arg(long, default_value_t = 64)]
    durable_writers: usize,
    /// logins: clients logging in at once (one user each, one login in flight each).
    #[arg(long, default_value_t = 50)]
    login_clients: usize,
    /// Wall-clock limit of each scenario's load phase, in seconds.
    #[arg(long, default_value_t = 10)]
    duration_secs: u64,
    /// Latency samples kept per scenario.
    #[arg(long, default_value_t = 200_000)]
    max_samples: usize,
    /// Also write the results as JSON to this file.
    #[arg(long)]
    json: Option<PathBuf>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("noex-bench: cannot start runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match cli.command {
        Command::EchoServer { port, naive } => match rt.block_on(echo::serve(port, naive)) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("noex-bench echo-server: {e}");
                ExitCode::FAILURE
            }
        },
        Command::Run(args) => rt.block_on(run(*args)),
    }
}

async fn run(args: RunArgs) -> ExitCode {
    let mut scenarios = Vec::new();
    for s in &args.scenarios {
        match SCENARIOS.iter().find(|n| **n == s.as_str()) {
            Some(n) => scenarios.push(*n),
            None => {
                eprintln!(
                    "noex-bench: unknown scenario {s:?} (known: {})",
                    SCENARIOS.join(", ")
                );
                return ExitCode::FAILURE;
            }
        }
    }
    let server_cmd = args.server_cmd.as_deref().map(split_command);
    if server_cmd.as_ref().is_some_and(Vec::is_empty) {
        eprintln!("noex-bench: --server-cmd is empty");
        return ExitCode::FAILURE;
    }
    let name = args.server_name.as_str();
    if name.is_empty() || name.contains(char::is_whitespace) || TargetKind::parse(name).is_some() {
        eprintln!(
            "noex-bench: --server-name {name:?} must be one word other than a target kind ({TARGET_NAMES})"
        );
        return ExitCode::FAILURE;
    }
    let names = args.targets.clone().unwrap_or_else(|| {
        let mut d = vec!["echo".to_owned(), "noex".to_owned()];
        if server_cmd.is_some() {
            d.push("cmd".to_owned());
        }
        d
    });
    let mut targets = Vec::new();
    for t in &names {
        let kind = if t == name {
            Some(TargetKind::Cmd)
        } else {
            TargetKind::parse(t)
        };
        match kind {
            Some(TargetKind::Cmd) if server_cmd.is_none() => {
                eprintln!("noex-bench: target {t:?} needs --server-cmd \"PROGRAM ARGS\"");
                return ExitCode::FAILURE;
            }
            Some(k) if !targets.contains(&k) => targets.push(k),
            Some(_) => {}
            None => {
                eprintln!("noex-bench: unknown target {t:?} (known: {TARGET_NAMES})");
                return ExitCode::FAILURE;
            }
        }
    }
    let bench = match std::env::current_exe() {
        Ok(p) => p,
        Err(e) => {
            eprintln!("noex-bench: cannot locate own executable: {e}");
            return ExitCode::FAILURE;
        }
    };
    let noex = args
        .server_bin
        .clone()
        .unwrap_or_else(|| bench.with_file_name("noex-server"));
    let bins = Binaries {
        noex,
        bench,
        noex_args: args.server_args.clone(),
        server_cmd,
        server_name: args.server_name.clone(),
    };
    let cfg = Config {
        connections: args.connections,
        depth: args.depth,
        insert_pct: args.insert_pct,
        requests: args.requests,
        subscribers: args.subscribers,
        rate: args.rate,
        inserts: args.inserts,
        idle_connections: args.idle_connections,
        open_concurrency: args.open_concurrency,
        churn_workers: args.churn_workers,
        churn_cycles: args.churn_cycles,
        accounts: args.accounts,
        zipf: args.zipf,
        durable_writers: args.durable_writers,
        transfer_clients: args.transfer_clients,
        transfer_calls: args.transfer_calls,
        login_clients: args.login_clients,
        duration: Duration::from_secs(args.duration_secs),
        max_samples: args.max_samples,
    };
    let rows = runner::run(&scenarios, &targets, &bins, &cfg).await;
    print!("{}", report::table(&rows));
    if let Some(path) = &args.json {
        let params = serde_json::json!({
            "connections": cfg.connections, "depth": cfg.depth, "insert_pct": cfg.insert_pct,
            "requests": cfg.requests, "subscribers": cfg.subscribers, "rate": cfg.rate,
            "inserts": cfg.inserts, "idle_connections": cfg.idle_connections,
            "churn_workers": cfg.churn_workers, "churn_cycles": cfg.churn_cycles,
            "accounts": cfg.accounts, "zipf": cfg.zipf, "transfer_clients": cfg.transfer_clients,
            "durable_writers": cfg.durable_writers,
            "transfer_calls": cfg.transfer_calls, "login_clients": cfg.login_clients,
            "duration_secs": args.duration_secs,
            "targets": targets.iter().map(|k| bins.label(*k)).collect::<Vec<_>>(),
            "server_cmd": args.server_cmd,
            "cores": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        });
        let doc = report::json(&rows, params);
        let text = serde_json::to_string_pretty(&doc).unwrap_or_default();
        if let Err(e) = std::fs::write(path, text + "\n") {
            eprintln!("noex-bench: cannot write {}: {e}", path.display());
            return ExitCode::FAILURE;
        }
    }
    let failed: Vec<&report::Row> = rows
        .iter()
        .filter(|r| r.outcome.failure.is_some())
        .collect();
    for r in &failed {
        eprintln!(
            "noex-bench: FAILED {} against {}: {}",
            r.scenario,
            r.label,
            r.outcome.failure.as_deref().unwrap_or_default()
        );
    }
    if failed.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
