//! End-to-end: `--server-cmd` puts any server that prints its `ws://127.0.0.1:PORT/` line
//! beside the built-in targets. Here the command is this tool's own echo server, run as an
//! external program under `--server-name mine`; the run shows it as its own column with
//! its own server CPU figure, next to the floor (`echo`) and the old baseline
//! (`echo-naive`).

use std::process::Command;

use serde_json::Value;

fn row<'a>(doc: &'a Value, target: &str) -> &'a Value {
    doc["results"]
        .as_array()
        .and_then(|rs| {
            rs.iter()
                .find(|r| r["scenario"] == "request-rtt" && r["target"] == target)
        })
        .unwrap_or_else(|| panic!("no request-rtt row for {target} in {doc}"))
}

#[test]
fn a_server_cmd_target_is_measured_beside_the_baselines() {
    let bench = env!("CARGO_BIN_EXE_noex-bench");
    let json = std::env::temp_dir().join(format!("noex-bench-cmd-{}.json", std::process::id()));
    let out = Command::new(bench)
        .args([
            "run",
            "--scenarios",
            "request-rtt",
            "--targets",
            "echo,echo-naive,mine",
            "--server-name",
            "mine",
            "--server-cmd",
            &format!("{bench} echo-server --port 0"),
            "--connections",
            "4",
            "--depth",
            "4",
            "--requests",
            "20000",
            "--duration-secs",
            "20",
            "--json",
        ])
        .arg(&json)
        .output()
        .expect("run noex-bench");
    assert!(
        out.status.success(),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let table = String::from_utf8_lossy(&out.stdout);
    let head = table.lines().next().unwrap_or_default();
    for column in ["echo", "echo-naive", "mine"] {
        assert!(head.split_whitespace().any(|w| w == column), "{table}");
    }
    assert!(
        table
            .lines()
            .any(|l| l.contains("server_cpu_us_per_req") && !l.contains(" - ")),
        "a CPU figure in every column: {table}"
    );

    let text = std::fs::read_to_string(&json).expect("json written");
    let _ = std::fs::remove_file(&json);
    let doc: Value = serde_json::from_str(&text).expect("valid json");
    for target in ["echo", "echo-naive", "mine"] {
        let r = row(&doc, target);
        assert_eq!(r["degraded"], false, "{r}");
        assert_eq!(r["metrics"]["answered"], 20000.0, "{r}");
        // The CPU of the process that was started, read from /proc/PID/stat: 20 000
        // requests take well over one 10 ms tick.
        let cpu = r["metrics"]["server_cpu_us_per_req"].as_f64();
        assert!(cpu.is_some_and(|c| c > 0.0), "{r}");
    }
    assert_eq!(row(&doc, "mine")["kind"], "cmd");
    assert_eq!(doc["params"]["targets"][2], "mine");
}

#[test]
fn a_cmd_target_without_server_cmd_is_refused() {
    let out = Command::new(env!("CARGO_BIN_EXE_noex-bench"))
        .args(["run", "--targets", "cmd", "--scenarios", "request-rtt"])
        .output()
        .expect("run noex-bench");
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("needs --server-cmd"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
