//! The README's config-file example and protocol session, replayed against a real server:
//! the documentation works as printed.

mod common;

use common::Client;
use noex_server::ServerConfig;
use serde_json::Value;

fn readme() -> String {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md");
    std::fs::read_to_string(path).expect("README.md")
}

/// The fenced block that follows `<!-- readme-test: NAME -->`.
fn block(readme: &str, name: &str) -> String {
    let marker = format!("<!-- readme-test: {name} -->");
    let after = &readme[readme.find(&marker).expect("marker") + marker.len()..];
    let body = &after[after.find("```").expect("fence")..];
    let body = &body[body.find('\n').expect("fence line") + 1..];
    body[..body.find("```").expect("closing fence")].to_owned()
}

/// Timestamps and generated ids differ from run to run; everything else must match
/// exactly.
fn normalize(value: &mut Value) {
    match value {
        Value::Object(map) => {
            for (key, v) in map.iter_mut() {
                let stamp = matches!(
                    key.as_str(),
                    "_createdAt"
                        | "_updatedAt"
                        | "serverTime"
                        | "timestamp"
                        | "createdAt"
                        | "updatedAt"
                );
                let uuid = v
                    .as_str()
                    .is_some_and(|s| s.len() == 36 && s.matches('-').count() == 4);
                if stamp {
                    assert!(v.is_u64(), "{key} is a timestamp");
                    *v = Value::from(0);
                } else if uuid {
                    *v = Value::from("<uuid>");
                } else {
                    normalize(v);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(normalize),
        _ => {}
    }
}

fn parse(line: &str) -> Value {
    let mut value: Value = serde_json::from_str(line).expect("README line is JSON");
    normalize(&mut value);
    value
}

#[tokio::test]
async fn the_readme_store_session_works_as_printed() {
    let readme = readme();
    let config: ServerConfig =
        serde_json::from_str(&block(&readme, "config")).expect("README config parses");
    assert_eq!(config.store.buckets.len(), 2);
    assert_eq!(config.store.queries.len(), 3);
    replay(config, &block(&readme, "session")).await;
}

#[tokio::test]
async fn the_readme_rules_session_works_as_printed() {
    let readme = readme();
    let config: ServerConfig =
        serde_json::from_str(&block(&readme, "rules-config")).expect("README config parses");
    assert_eq!(config.rules.rules.len(), 3);
    replay(config, &block(&readme, "rules-session")).await;
}

/// Starts a server with `config` and checks that `session` (`->` sent, `<-` received)
/// happens as written.
async fn replay(mut config: ServerConfig, session: &str) {
    config.host = "127.0.0.1".into();
    config.port = 0;
    let server = noex_server::Server::start(config)
        .await
        .expect("README config starts");

    // (request, expected answers) groups; the first group has no request (the welcome).
    let mut groups: Vec<(Option<Value>, Vec<Value>)> = vec![(None, Vec::new())];
    for line in session.lines() {
        if let Some(sent) = line.strip_prefix("-> ") {
            groups.push((
                Some(serde_json::from_str(sent).expect("request JSON")),
                Vec::new(),
            ));
        } else if let Some(received) = line.strip_prefix("<- ") {
            groups.last_mut().expect("group").1.push(parse(received));
        }
    }
    assert!(groups.len() > 1, "the session has requests");

    let url = format!("ws://{}/", server.local_addr());
    let (ws, _) = tokio_tungstenite::connect_async(url.as_str())
        .await
        .expect("connects");
    let mut client = Client::from_ws(ws);
    let dump = std::env::var_os("README_DUMP").is_some();
    for (request, expected) in groups {
        if let Some(request) = &request {
            client.send(request.clone()).await;
        }
        let mut actual = Vec::new();
        for _ in 0..expected.len() {
            let mut frame = client.recv().await;
            if dump {
                // README_DUMP=1 prints the real frames, to write a new session.
                println!("<- {frame}");
            }
            normalize(&mut frame);
            actual.push(frame);
        }
        if dump {
            continue;
        }
        // A push caused by a write may come just before or after the write's result.
        let mut unmatched = actual.clone();
        for want in &expected {
            match unmatched.iter().position(|got| got == want) {
                Some(i) => {
                    unmatched.remove(i);
                }
                None => panic!(
                    "after {request:?}\nexpected {want}\nreceived:\n{}",
                    actual
                        .iter()
                        .map(Value::to_string)
                        .collect::<Vec<_>>()
                        .join("\n")
                ),
            }
        }
    }
    // Nothing else was pushed meanwhile.
    server.store().settle().await;
    client.assert_no_push().await;
}
