//! The guide (`docs/*.md`), the reference (`docs/reference/*.md`) and the README work as
//! printed: every request/answer exchange is replayed against a real server started with
//! the config of its chapter, every config block parses (and starts a server), every rule
//! and filter shown is accepted.
//!
//! # The convention in the documents
//!
//! Each fenced block holding JSON (` ```json `) or frames (lines starting with `->` / `<-`)
//! is preceded by a marker comment, invisible when rendered:
//!
//! - `<!-- check: config NAME -->`: a complete config file; the exchanges that name it run
//!   against a server started with it (a config no exchange uses is started once anyway).
//! - `<!-- check: config NAME extends BASE at PATH -->`: a part of a config (e.g. the
//!   `store.queries` of a chapter) placed at the dotted `PATH` of config `BASE`; without
//!   `at PATH` the block is a config whose members are merged into `BASE`'s.
//! - `<!-- check: session CONFIG -->`: an exchange, replayed on a fresh server started with
//!   config `CONFIG` (`default` is the binary's defaults) over one WebSocket.
//! - `<!-- check: json KIND -->`: JSON that must be accepted as a `server-config` (parsed and
//!   validated; for blocks that cannot start alone, e.g. a key file path), a `rule`
//!   (registered in a rule engine) or a `filter` (compiled by the store); `defaults` is a
//!   config whose every value must be the default.
//! - `<!-- check: skip: REASON -->`: not checked, for the reason given.
//!
//! Config names are global over all documents. Like the `noex-server` binary, the checks
//! turn the rule engine on unless a config says `"rules": {"enabled": false}`, and bind
//! `127.0.0.1` on a free port whatever the config says.
//!
//! # Exchanges
//!
//! `-> TEXT` sends TEXT as one text frame, exactly as written (so `-> [1,2]` is sent as is).
//! `<- JSON` is a frame the server sends; the frames after a request are its answer and
//! whatever the request caused (pushes), matched in any order; their number must be exact.
//! A session that does not start with `<-` lines starts after the welcome frame. Indented
//! lines continue the frame above; lines in parentheses are comments.
//!
//! Frames are compared after masking what differs from run to run: timestamps (`serverTime`,
//! `timestamp`, `_createdAt`, `_updatedAt`, `createdAt`, `updatedAt`, `connectedAt`,
//! `uptimeMs`, `avgProcessingTimeMs`; a record's `_expiresAt` is compared as its distance
//! from `_createdAt`), the bound `port`, UUIDs, and waiting times (`retryAfterMs`,
//! `Retry after Nms`). In an expected frame `{...}` stands for any
//! value, and `...` as the last member of an object for any further members.
//!
//! After the last frame the test waits until the store has dispatched every change and
//! checks with one more round trip that nothing else was sent.
//!
//! `DOCS_DUMP=1 cargo test -p noex-server --test docs_exchanges -- --nocapture` prints the
//! frames each session really receives, to write a new exchange; `DOCS_ONLY=store.md` limits
//! the replay to the sessions of the files whose path contains that text.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use noex_server::{Server, ServerConfig};
use serde_json::{Map, Value};
use tokio_tungstenite::tungstenite::Message;

/// Upper bound of one wait for a frame: a guard against hangs, not a timing assumption.
const WAIT: Duration = Duration::from_secs(10);

/// Stands for "any value" in an expected frame (`{...}`).
const ANY: &str = "\u{1}any";
/// Marks an expected object that may have further members (`...` as its last member).
const REST: &str = "\u{1}rest";

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the server crate lives in the workspace")
        .to_path_buf()
}

/// `README.md`, `docs/*.md` and `docs/reference/*.md`, in name order.
fn documents() -> Vec<(String, String)> {
    let root = root();
    let readme = std::fs::read_to_string(root.join("README.md")).expect("README.md");
    let mut out = vec![("README.md".to_owned(), readme)];
    for dir in ["docs", "docs/reference"] {
        if !root.join(dir).is_dir() {
            continue;
        }
        let mut names: Vec<PathBuf> = std::fs::read_dir(root.join(dir))
            .unwrap_or_else(|e| panic!("cannot list {dir}: {e}"))
            .map(|e| e.expect("entry").path())
            .filter(|p| p.extension().and_then(|e| e.to_str()) == Some("md"))
            .collect();
        names.sort();
        for path in names {
            let rel = path
                .strip_prefix(&root)
                .expect("under the root")
                .display()
                .to_string();
            let text = std::fs::read_to_string(&path).expect("readable");
            out.push((rel, text));
        }
    }
    out
}

/// A fenced block with the marker that precedes it.
#[derive(Debug)]
struct Block {
    file: String,
    /// Line of the opening fence (1-based).
    line: usize,
    lang: String,
    /// Body lines with their line numbers.
    body: Vec<(usize, String)>,
    marker: Option<String>,
}

impl Block {
    fn at(&self) -> String {
        format!("{}:{}", self.file, self.line)
    }

    fn text(&self) -> String {
        self.body
            .iter()
            .map(|(_, l)| l.as_str())
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Whether the block must carry a marker: JSON, or frames.
    fn needs_marker(&self) -> bool {
        self.lang == "json"
            || self.body.iter().any(|(_, l)| {
                let l = l.trim_start();
                l.starts_with("->") || l.starts_with("<-")
            })
    }
}

fn blocks(file: &str, text: &str) -> Result<Vec<Block>, Vec<String>> {
    let mut out = Vec::new();
    let mut errors = Vec::new();
    let lines: Vec<&str> = text.lines().collect();
    let mut i = 0;
    let mut last_marker: Option<(usize, String)> = None;
    while i < lines.len() {
        let line = lines[i];
        let trimmed = line.trim();
        if let Some(marker) = trimmed
            .strip_prefix("<!-- check:")
            .and_then(|m| m.strip_suffix("-->"))
        {
            if let Some((at, _)) = last_marker.take() {
                errors.push(format!("{file}:{at}: marker not followed by a block"));
            }
            last_marker = Some((i + 1, marker.trim().to_owned()));
            i += 1;
            continue;
        }
        if trimmed.starts_with("```") {
            let fence: String = trimmed.chars().take_while(|c| *c == '`').collect();
            let lang = trimmed[fence.len()..].trim().to_owned();
            let start = i + 1;
            let mut body = Vec::new();
            i += 1;
            while i < lines.len() && !lines[i].trim_start().starts_with(fence.as_str()) {
                body.push((i + 1, lines[i].to_owned()));
                i += 1;
            }
            out.push(Block {
                file: file.to_owned(),
                line: start,
                lang,
                body,
                marker: last_marker.take().map(|(_, m)| m),
            });
            i += 1;
            continue;
        }
        if !trimmed.is_empty() {
            if let Some((at, _)) = last_marker.take() {
                errors.push(format!("{file}:{at}: marker not followed by a block"));
            }
        }
        i += 1;
    }
    if let Some((at, _)) = last_marker {
        errors.push(format!("{file}:{at}: marker not followed by a block"));
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors)
    }
}

/// A config as written: complete, or a part placed into another config.
struct ConfigBlock {
    at: String,
    value: Value,
    extends: Option<(String, String)>,
}

/// Places `part` at the dotted `path` of `base` (objects merged member by member).
fn place(base: &mut Value, path: &str, part: Value) {
    let mut target = base;
    for key in path.split('.').filter(|k| !k.is_empty()) {
        if !target.is_object() {
            *target = Value::Object(Map::new());
        }
        target = target
            .as_object_mut()
            .expect("object")
            .entry(key.to_owned())
            .or_insert(Value::Object(Map::new()));
    }
    merge(target, part);
}

fn merge(target: &mut Value, part: Value) {
    match (target, part) {
        (Value::Object(t), Value::Object(p)) => {
            for (k, v) in p {
                merge(t.entry(k).or_insert(Value::Null), v);
            }
        }
        (t, p) => *t = p,
    }
}

/// The full JSON of config `name`, with every `extends` resolved.
fn resolve(
    name: &str,
    configs: &BTreeMap<String, ConfigBlock>,
    depth: usize,
) -> Result<Value, String> {
    if name == "default" {
        return Ok(Value::Object(Map::new()));
    }
    let block = configs
        .get(name)
        .ok_or_else(|| format!("no config named {name:?}"))?;
    if depth > 8 {
        return Err(format!(
            "{}: configs extend each other in a cycle",
            block.at
        ));
    }
    Ok(match &block.extends {
        None => block.value.clone(),
        Some((base, path)) => {
            let mut value = resolve(base, configs, depth + 1)?;
            place(&mut value, path, block.value.clone());
            value
        }
    })
}

/// The server config a document's config stands for, as the binary would run it.
fn server_config(value: &Value) -> Result<ServerConfig, String> {
    let mut config: ServerConfig =
        serde_json::from_value(value.clone()).map_err(|e| format!("not a config: {e}"))?;
    config.validate().map_err(|e| e.to_string())?;
    if config.rules.enabled.is_none() {
        config.rules.enabled = Some(true);
    }
    config.host = "127.0.0.1".into();
    config.port = 0;
    if config.http.admin.is_some() {
        // A free port for the admin listener as for the main one.
        config.http.admin = Some("127.0.0.1:0".into());
    }
    Ok(config)
}

/// Turns the `{...}` and `...` of an expected frame into markers the matcher understands.
fn parse_expected(text: &str) -> Result<Value, String> {
    let text = text
        .replace(",...}", r#","\u0001rest":true}"#)
        .replace(", ...}", r#","\u0001rest":true}"#)
        .replace("{...}", r#""\u0001any""#);
    let mut value: Value = serde_json::from_str(&text).map_err(|e| format!("not JSON: {e}"))?;
    normalize(&mut value);
    Ok(value)
}

/// Masks what differs from run to run (see the module documentation).
fn normalize(value: &mut Value) {
    match value {
        Value::Object(map) => {
            // A record's expiry is kept as its lifetime, which the bucket's TTL fixes.
            if let (Some(created), Some(expires)) = (
                map.get("_createdAt").and_then(Value::as_u64),
                map.get("_expiresAt").and_then(Value::as_u64),
            ) {
                map.insert(
                    "_expiresAt".into(),
                    Value::from(format!("_createdAt + {}", expires.wrapping_sub(created))),
                );
            }
            for (key, v) in map.iter_mut() {
                let masked = matches!(
                    key.as_str(),
                    "_createdAt"
                        | "_updatedAt"
                        | "_expiresAt"
                        | "serverTime"
                        | "timestamp"
                        | "createdAt"
                        | "updatedAt"
                        | "connectedAt"
                        | "uptimeMs"
                        | "avgProcessingTimeMs"
                        | "port"
                        | "retryAfterMs"
                );
                if masked && v.is_number() {
                    *v = Value::from(0);
                } else if key == "message" && v.is_string() {
                    *v = Value::from(mask_waits(v.as_str().unwrap_or_default()));
                } else {
                    normalize(v);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(normalize),
        Value::String(s) if is_uuid(s) => *value = Value::from("<uuid>"),
        _ => {}
    }
}

fn is_uuid(s: &str) -> bool {
    s.len() == 36
        && s.char_indices().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => c == '-',
            _ => c.is_ascii_hexdigit(),
        })
}

/// `Retry after 420ms` → `Retry after Nms`.
fn mask_waits(message: &str) -> String {
    const WAIT_TEXT: &str = "Retry after ";
    let Some(at) = message.find(WAIT_TEXT) else {
        return message.to_owned();
    };
    let start = at + WAIT_TEXT.len();
    let digits = message[start..]
        .chars()
        .take_while(char::is_ascii_digit)
        .count();
    format!("{}N{}", &message[..start], &message[start + digits..])
}

/// Whether `actual` is what `expected` (normalized, with wildcards) describes.
fn matches(expected: &Value, actual: &Value) -> bool {
    match (expected, actual) {
        (Value::String(s), _) if s == ANY => true,
        (Value::Object(e), Value::Object(a)) => {
            let open = e.contains_key(REST);
            let wanted = e.iter().filter(|(k, _)| *k != REST);
            (open || e.len() == a.len())
                && wanted
                    .into_iter()
                    .all(|(k, v)| a.get(k).is_some_and(|w| matches(v, w)))
        }
        (Value::Array(e), Value::Array(a)) => {
            e.len() == a.len() && e.iter().zip(a).all(|(x, y)| matches(x, y))
        }
        _ => expected == actual,
    }
}

/// One request of a session and the frames it must produce.
struct Group {
    request: Option<(usize, String)>,
    expected: Vec<(usize, String, Value)>,
}

fn groups(block: &Block) -> Result<Vec<Group>, String> {
    // Frames with the line they start on; `true` for sent ones.
    let mut frames: Vec<(usize, bool, String)> = Vec::new();
    for (line, text) in &block.body {
        let trimmed = text.trim();
        if let Some(sent) = trimmed.strip_prefix("->") {
            frames.push((*line, true, sent.trim().to_owned()));
        } else if let Some(received) = trimmed.strip_prefix("<-") {
            frames.push((*line, false, received.trim().to_owned()));
        } else if trimmed.is_empty() || trimmed.starts_with('(') {
            continue;
        } else if text.starts_with(char::is_whitespace) && !frames.is_empty() {
            let last = frames.last_mut().expect("a frame");
            last.2.push('\n');
            last.2.push_str(trimmed);
        } else {
            return Err(format!(
                "{}:{line}: neither a frame (`->`, `<-`), a continuation (indented) nor a comment (in parentheses)",
                block.file
            ));
        }
    }
    let mut out = vec![Group {
        request: None,
        expected: Vec::new(),
    }];
    for (line, sent, text) in frames {
        if sent {
            if text.contains("{...}") {
                return Err(format!(
                    "{}:{line}: a request is sent as written, so it cannot leave anything out",
                    block.file
                ));
            }
            out.push(Group {
                request: Some((line, text)),
                expected: Vec::new(),
            });
        } else {
            let value = parse_expected(&text).map_err(|e| format!("{}:{line}: {e}", block.file))?;
            out.last_mut()
                .expect("a group")
                .expected
                .push((line, text, value));
        }
    }
    if out.len() < 2 && out[0].expected.is_empty() {
        return Err(format!("{}: a session without frames", block.at()));
    }
    Ok(out)
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn recv(ws: &mut Ws) -> Result<Value, String> {
    loop {
        let next = tokio::time::timeout(WAIT, ws.next())
            .await
            .map_err(|_| format!("no frame within {WAIT:?}"))?;
        match next {
            Some(Ok(Message::Text(t))) => {
                return serde_json::from_str(t.as_str()).map_err(|e| format!("not JSON: {e}"));
            }
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
            Some(Ok(Message::Close(frame))) => {
                return Err(format!("closed by the server: {frame:?}"));
            }
            Some(Ok(other)) => return Err(format!("unexpected frame {other:?}")),
            Some(Err(e)) => return Err(format!("connection failed: {e}")),
            None => return Err("connection ended".into()),
        }
    }
}

/// What one session checked.
#[derive(Default, Clone, Copy)]
struct Counts {
    requests: usize,
    frames: usize,
}

/// Replays a session; the error says where and how it differs. With `dump` the frames
/// really exchanged are printed (in one piece, after the session) instead of compared.
async fn replay(block: &Block, config: ServerConfig, dump: bool) -> Result<Counts, String> {
    let mut log = Vec::new();
    let result = run_session(block, config, dump, &mut log).await;
    if dump {
        println!("== {}\n{}", block.at(), log.join("\n"));
    }
    result
}

async fn run_session(
    block: &Block,
    config: ServerConfig,
    dump: bool,
    log: &mut Vec<String>,
) -> Result<Counts, String> {
    let groups = groups(block)?;
    let server = Server::start(config)
        .await
        .map_err(|e| format!("{}: the server does not start: {e}", block.at()))?;
    let url = format!("ws://{}/", server.local_addr());
    let (mut ws, _) = tokio_tungstenite::connect_async(url.as_str())
        .await
        .map_err(|e| format!("{}: cannot connect: {e}", block.at()))?;
    let mut counts = Counts::default();
    for (n, group) in groups.iter().enumerate() {
        if n == 0 && group.expected.is_empty() {
            // The session starts after the welcome.
            let welcome = recv(&mut ws)
                .await
                .map_err(|e| format!("{}: {e}", block.at()))?;
            if welcome["type"] != "welcome" {
                return Err(format!("{}: the first frame is {welcome}", block.at()));
            }
            continue;
        }
        if let Some((line, text)) = &group.request {
            ws.send(Message::Text(text.clone().into()))
                .await
                .map_err(|e| format!("{}:{line}: cannot send: {e}", block.file))?;
            counts.requests += 1;
            log.push(format!("-> {text}"));
        }
        let mut actual = Vec::new();
        for (line, written, _) in &group.expected {
            let frame = recv(&mut ws).await.map_err(|e| {
                format!(
                    "{}:{line}: waiting for\n  {written}\n{e}; received before:\n{}",
                    block.file,
                    show(&actual)
                )
            })?;
            log.push(format!("<- {frame}"));
            actual.push(frame);
        }
        counts.frames += actual.len();
        if dump {
            continue;
        }
        let mut unmatched: Vec<Value> = actual
            .iter()
            .cloned()
            .map(|mut v| {
                normalize(&mut v);
                v
            })
            .collect();
        for (line, written, want) in &group.expected {
            match unmatched.iter().position(|got| matches(want, got)) {
                Some(i) => {
                    unmatched.remove(i);
                }
                None => {
                    let after = group.request.as_ref().map_or_else(
                        || "at the start".to_owned(),
                        |(l, t)| format!("after line {l} `-> {t}`"),
                    );
                    return Err(format!(
                        "{}:{line}: {after}\n  expected: {written}\n  received:\n{}",
                        block.file,
                        show(&actual)
                    ));
                }
            }
        }
    }
    // Nothing else was sent: every change is dispatched, then a round trip.
    server.store().settle().await;
    let probe = r#"{"id":987654321,"type":"store.buckets"}"#;
    ws.send(Message::Text(probe.into()))
        .await
        .map_err(|e| format!("{}: cannot send the final probe: {e}", block.at()))?;
    let next = recv(&mut ws)
        .await
        .map_err(|e| format!("{}: after the last frame: {e}", block.at()))?;
    if next["id"] != 987_654_321 {
        return Err(format!(
            "{}: after the last frame the server also sent\n    {next}",
            block.at()
        ));
    }
    Ok(counts)
}

fn show(frames: &[Value]) -> String {
    if frames.is_empty() {
        return "    (nothing)".into();
    }
    frames
        .iter()
        .map(|f| format!("    {f}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Checks a `json KIND` block.
async fn check_json(block: &Block, kind: &str) -> Result<(), String> {
    let value: Value = serde_json::from_str(&block.text())
        .map_err(|e| format!("{}: not JSON: {e}", block.at()))?;
    let fail = |e: String| format!("{}: not a valid {kind}: {e}", block.at());
    match kind {
        "server-config" => {
            let config: ServerConfig =
                serde_json::from_value(value).map_err(|e| fail(e.to_string()))?;
            config.validate().map_err(|e| fail(e.to_string()))
        }
        "defaults" => {
            let config: ServerConfig =
                serde_json::from_value(value).map_err(|e| fail(e.to_string()))?;
            let defaults = ServerConfig::default();
            if config == defaults {
                Ok(())
            } else {
                Err(fail(format!(
                    "a value differs from the default; the defaults are\n{}",
                    serde_json::to_string_pretty(&defaults).unwrap_or_default()
                )))
            }
        }
        "rule" => noex_rules::RuleEngine::default()
            .register_rule(&value)
            .map(|_| ())
            .map_err(|e| fail(e.to_string())),
        "filter" => {
            let filter = value
                .as_object()
                .ok_or_else(|| fail("not an object".into()))?;
            noex_store::Filter::compile(filter)
                .map(|_| ())
                .map_err(|e| fail(e.to_string()))
        }
        other => Err(format!("{}: unknown json kind {other:?}", block.at())),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_exchange_and_config_in_the_docs_works_as_printed() {
    let dump = std::env::var_os("DOCS_DUMP").is_some();
    // `DOCS_ONLY=store.md` replays only the sessions of files whose path contains it.
    let only = std::env::var("DOCS_ONLY").unwrap_or_default();
    let mut errors = Vec::new();
    let mut all = Vec::new();
    for (file, text) in documents() {
        match blocks(&file, &text) {
            Ok(found) => all.extend(found),
            Err(e) => errors.extend(e),
        }
    }

    let mut configs: BTreeMap<String, ConfigBlock> = BTreeMap::new();
    let mut sessions = Vec::new();
    let mut json_blocks = Vec::new();
    let mut skipped = Vec::new();
    for block in &all {
        let Some(marker) = &block.marker else {
            if block.needs_marker() {
                errors.push(format!(
                    "{}: a JSON or exchange block without a `<!-- check: ... -->` marker",
                    block.at()
                ));
            }
            continue;
        };
        let words: Vec<&str> = marker.split_whitespace().collect();
        match words.as_slice() {
            ["config", name]
            | ["config", name, "extends", _]
            | ["config", name, "extends", _, "at", _] => {
                let value = match serde_json::from_str::<Value>(&block.text()) {
                    Ok(v) => v,
                    Err(e) => {
                        errors.push(format!("{}: config {name} is not JSON: {e}", block.at()));
                        continue;
                    }
                };
                let extends = match words.as_slice() {
                    [_, _, _, base, _, path] => Some(((*base).to_owned(), (*path).to_owned())),
                    [_, _, _, base] => Some(((*base).to_owned(), String::new())),
                    _ => None,
                };
                let name = (*name).to_owned();
                if configs.contains_key(&name) || name == "default" {
                    errors.push(format!("{}: config name {name:?} used twice", block.at()));
                }
                configs.insert(
                    name,
                    ConfigBlock {
                        at: block.at(),
                        value,
                        extends,
                    },
                );
            }
            ["session", config] => {
                if block.file.contains(only.as_str()) {
                    sessions.push((block, (*config).to_owned()));
                }
            }
            ["json", kind] => json_blocks.push((block, (*kind).to_owned())),
            ["skip:", ..] if words.len() > 1 => skipped.push(block),
            _ => errors.push(format!("{}: unknown marker `{marker}`", block.at())),
        }
    }

    // Every config parses; configs no session uses are started once.
    let used: std::collections::BTreeSet<&str> = sessions.iter().map(|(_, c)| c.as_str()).collect();
    let mut resolved: BTreeMap<String, ServerConfig> = BTreeMap::new();
    resolved.insert(
        "default".into(),
        server_config(&Value::Object(Map::new())).expect("defaults"),
    );
    for (name, block) in &configs {
        match resolve(name, &configs, 0).and_then(|v| server_config(&v)) {
            Ok(config) => {
                if !used.contains(name.as_str()) {
                    if let Err(e) = Server::start(config.clone()).await {
                        errors.push(format!("{}: config {name} does not start: {e}", block.at));
                    }
                }
                resolved.insert(name.clone(), config);
            }
            Err(e) => errors.push(format!("{}: config {name}: {e}", block.at)),
        }
    }

    for (block, kind) in &json_blocks {
        if let Err(e) = check_json(block, kind).await {
            errors.push(e);
        }
    }

    let runs = sessions.iter().map(|(block, config)| {
        let config = resolved.get(config).cloned();
        async move {
            match config {
                Some(config) => replay(block, config, dump).await,
                None => Err(format!("{}: no usable config for this session", block.at())),
            }
        }
    });
    let results = futures_util::future::join_all(runs).await;
    let mut total = Counts::default();
    for result in results {
        match result {
            Ok(c) => {
                total.requests += c.requests;
                total.frames += c.frames;
            }
            Err(e) => errors.push(e),
        }
    }

    println!(
        "checked {} sessions ({} requests, {} frames received), {} configs, {} JSON blocks; {} blocks skipped:",
        sessions.len(),
        total.requests,
        total.frames,
        configs.len(),
        json_blocks.len(),
        skipped.len()
    );
    for block in &skipped {
        println!(
            "  {}: {}",
            block.at(),
            block.marker.as_deref().unwrap_or("")
        );
    }
    assert!(
        errors.is_empty(),
        "{} problem(s) in the docs:\n\n{}",
        errors.len(),
        errors.join("\n\n")
    );
    assert!(
        sessions.len() >= 10,
        "only {} sessions found",
        sessions.len()
    );
}

#[test]
fn the_frame_matcher_masks_and_wildcards_as_documented() {
    let want = parse_expected(
        r#"{"type":"result","id":1,"data":{"id":"0b0f8a52-1b52-4bd6-a6d7-8e9b0e0a1c2d","rec":{...},"_createdAt":1,...}}"#,
    )
    .expect("parses");
    let mut got = serde_json::json!({"type": "result", "id": 1, "data": {
        "id": "11111111-2222-4333-8444-555555555555", "rec": [1, 2], "_createdAt": 99, "more": true}});
    normalize(&mut got);
    assert!(matches(&want, &got));
    let ttl = parse_expected(r#"{"_createdAt":5,"_expiresAt":1005}"#).expect("parses");
    let mut same = serde_json::json!({"_createdAt": 70, "_expiresAt": 1070});
    normalize(&mut same);
    assert!(matches(&ttl, &same));
    let mut longer = serde_json::json!({"_createdAt": 70, "_expiresAt": 2070});
    normalize(&mut longer);
    assert!(!matches(&ttl, &longer));
    let mut other = got.clone();
    other["id"] = Value::from(2);
    assert!(!matches(&want, &other));
    let closed = parse_expected(r#"{"a":1}"#).expect("parses");
    assert!(!matches(&closed, &serde_json::json!({"a": 1, "b": 2})));
    assert_eq!(
        mask_waits("Rate limit exceeded. Retry after 420ms"),
        "Rate limit exceeded. Retry after Nms"
    );
    let mut place_into = serde_json::json!({"store": {"buckets": {"b": 1}}});
    place(
        &mut place_into,
        "store.queries",
        serde_json::json!({"q": 2}),
    );
    assert_eq!(
        place_into,
        serde_json::json!({"store": {"buckets": {"b": 1}, "queries": {"q": 2}}})
    );
}
