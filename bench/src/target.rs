//! The servers under test, spawned as child processes so their pid (for `/proc/PID/status`
//! VmRSS and `/proc/PID/stat` CPU time) is known and every run starts from a fresh, empty
//! server.
//!
//! Every target prints one stdout line containing `ws://127.0.0.1:PORT/`; the port is read
//! from it. The child is killed when the [`Target`] is dropped. Besides our own server and
//! the echo baselines, `--server-cmd` runs any command that prints such a line (another
//! implementation of the protocol), so it can be measured beside ours in one run.

use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

/// Which server a scenario runs against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TargetKind {
    /// The raw baseline, the floor: `noex-bench echo-server` (see [`crate::echo`]), which
    /// writes each burst of answers with one flush.
    Echo,
    /// The previous baseline, kept for comparison: `noex-bench echo-server --naive`, one
    /// write (and one task wake-up) per answer.
    EchoNaive,
    /// The noex server binary.
    Noex,
    /// Any server started by `--server-cmd` (its column is named by `--server-name`).
    Cmd,
}

/// The known target names, for messages.
pub const TARGET_NAMES: &str = "echo, echo-naive, noex, cmd (with --server-cmd)";

impl TargetKind {
    /// The kind's own name (a `cmd` target is shown under its `--server-name`; see
    /// [`Binaries::label`]).
    pub fn name(self) -> &'static str {
        match self {
            TargetKind::Echo => "echo",
            TargetKind::EchoNaive => "echo-naive",
            TargetKind::Noex => "noex",
            TargetKind::Cmd => "cmd",
        }
    }

    /// Parses `echo` / `echo-naive` / `noex` / `cmd`.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "echo" => Some(TargetKind::Echo),
            "echo-naive" => Some(TargetKind::EchoNaive),
            "noex" => Some(TargetKind::Noex),
            "cmd" => Some(TargetKind::Cmd),
            _ => None,
        }
    }
}

/// How to start each server.
#[derive(Debug, Clone)]
pub struct Binaries {
    /// The noex server binary.
    pub noex: PathBuf,
    /// This tool (run with the hidden `echo-server` subcommand).
    pub bench: PathBuf,
    /// Extra flags passed to the noex server.
    pub noex_args: Vec<String>,
    /// `--server-cmd`, split into program and arguments (see [`split_command`]); `None`
    /// when not given.
    pub server_cmd: Option<Vec<String>>,
    /// `--server-name`: the column a `cmd` target is shown under.
    pub server_name: String,
}

impl Binaries {
    /// The name a target of `kind` is shown under in tables and JSON.
    pub fn label(&self, kind: TargetKind) -> String {
        match kind {
            TargetKind::Cmd => self.server_name.clone(),
            k => k.name().to_owned(),
        }
    }
}

/// Splits a `--server-cmd` value into program and arguments at whitespace. There is no
/// quoting: an argument cannot contain a space (put such a command in a script that
/// `exec`s the server).
pub fn split_command(cmd: &str) -> Vec<String> {
    cmd.split_whitespace().map(str::to_owned).collect()
}

/// A running server child process.
#[derive(Debug)]
pub struct Target {
    child: Child,
    /// Which server this is.
    pub kind: TargetKind,
    /// The loopback port it listens on.
    pub port: u16,
}

/// A config file for a server loaded from one address: the load tool opens many
/// connections at once from 127.0.0.1, which the default per-address handshake cap (meant
/// for hostile clients) would cut off. Everything else keeps its default.
/// With `identity`, built-in identity is on with the `logins` scenario's admin secret.
fn load_generator_config(identity: bool) -> Result<std::path::PathBuf, String> {
    let name = if identity { "identity-" } else { "" };
    let path = std::env::temp_dir().join(format!("noex-bench-{name}{}.json", std::process::id()));
    let mut config = serde_json::json!({
        "limits": {"maxPendingHandshakes": 1000000, "maxPendingHandshakesPerIp": 1000000},
        // Every client of the load tool shares 127.0.0.1: the default cap of 256
        // connections per address refused 745 of fanout's 1 000 subscribers and closed
        // most of the idle connections the connections scenario counted.
        "connectionLimits": {"maxConnectionsPerIp": null}
    });
    if identity {
        config["identity"] = serde_json::json!(
            {"enabled": true, "adminSecret": crate::scenario::logins::ADMIN_SECRET});
    }
    let config = config.to_string();
    std::fs::write(&path, config).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    Ok(path)
}

impl Target {
    /// Spawns the server on an ephemeral loopback port and waits for its listening line.
    pub fn spawn(kind: TargetKind, bins: &Binaries) -> Result<Self, String> {
        Self::spawn_with(kind, bins, false, &[])
    }

    /// [`spawn`](Self::spawn), with built-in identity on when `identity` (and no
    /// `--config` among the extra flags), and `extra` flags for the noex server (before
    /// the user's own).
    pub fn spawn_with(
        kind: TargetKind,
        bins: &Binaries,
        identity: bool,
        extra: &[String],
    ) -> Result<Self, String> {
        let mut cmd = match kind {
            TargetKind::Echo | TargetKind::EchoNaive => {
                let mut c = Command::new(&bins.bench);
                c.args(["echo-server", "--port", "0"]);
                if kind == TargetKind::EchoNaive {
                    c.arg("--naive");
                }
                c
            }
            TargetKind::Cmd => {
                let Some((program, args)) = bins.server_cmd.as_deref().and_then(<[_]>::split_first)
                else {
                    return Err("the cmd target needs --server-cmd \"PROGRAM ARGS\"".into());
                };
                let mut c = Command::new(program);
                c.args(args);
                c
            }
            TargetKind::Noex => {
                let mut c = Command::new(&bins.noex);
                c.args(["--port", "0", "--host", "127.0.0.1"]);
                if !bins.noex_args.iter().any(|a| a.starts_with("--config")) {
                    c.arg("--config").arg(load_generator_config(identity)?);
                }
                c.args(extra);
                c.args(&bins.noex_args);
                c
            }
        };
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        let mut child = cmd
            .spawn()
            .map_err(|e| format!("cannot start the {} server: {e}", bins.label(kind)))?;
        let Some(stdout) = child.stdout.take() else {
            let _ = child.kill();
            return Err("no stdout pipe".into());
        };
        let mut reader = BufReader::new(stdout);
        let mut line = String::new();
        let port = loop {
            line.clear();
            match reader.read_line(&mut line) {
                Ok(0) | Err(_) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(format!(
                        "the {} server exited before printing a line with ws://127.0.0.1:PORT/",
                        bins.label(kind)
                    ));
                }
                Ok(_) => {
                    if let Some(p) = parse_port(&line) {
                        break p;
                    }
                }
            }
        };
        // Keep draining stdout so a chatty server never blocks on a full pipe.
        std::thread::spawn(move || {
            let mut sink = [0u8; 4096];
            while matches!(reader.read(&mut sink), Ok(n) if n > 0) {}
        });
        Ok(Target { child, kind, port })
    }

    /// The server's resident set size in KiB (VmRSS), if readable.
    pub fn rss_kib(&self) -> Option<u64> {
        rss_kib(self.child.id())
    }

    /// CPU time the server process has used so far (user plus system), if readable.
    pub fn cpu_time(&self) -> Option<std::time::Duration> {
        cpu_time(self.child.id())
    }
}

impl Drop for Target {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Reads VmRSS (KiB) of `pid` from `/proc/PID/status`.
pub fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// CPU time (utime + stime) of `pid` from `/proc/PID/stat`, in clock ticks of
/// `USER_HZ` (100 per second on Linux, whatever the kernel's own tick rate).
pub fn cpu_time(pid: u32) -> Option<std::time::Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces: count fields after its closing paren.
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    // After the name: state is field 3, utime 14 and stime 15.
    let utime: u64 = fields.nth(11)?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(std::time::Duration::from_millis((utime + stime) * 10))
}

/// Extracts PORT from a line containing `ws://127.0.0.1:PORT/`.
pub fn parse_port(line: &str) -> Option<u16> {
    let rest = &line[line.find("ws://127.0.0.1:")? + "ws://127.0.0.1:".len()..];
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_a_command_at_whitespace() {
        assert_eq!(
            split_command("  node  server.js --port 0\n"),
            ["node", "server.js", "--port", "0"]
        );
        assert!(split_command("   ").is_empty());
    }

    #[test]
    fn parses_listening_line() {
        assert_eq!(
            parse_port("noex-server listening on ws://127.0.0.1:40123/\n"),
            Some(40123)
        );
        assert_eq!(parse_port("hello"), None);
    }

    #[test]
    fn reads_own_cpu_time() {
        let spin = std::time::Instant::now();
        let mut x = 0u64;
        while spin.elapsed() < std::time::Duration::from_millis(50) {
            x = x.wrapping_add(1);
        }
        assert!(x > 0);
        assert!(
            cpu_time(std::process::id()).is_some_and(|t| t >= std::time::Duration::from_millis(20))
        );
    }

    #[test]
    fn reads_own_rss() {
        assert!(rss_kib(std::process::id()).is_some_and(|k| k > 0));
    }
}
