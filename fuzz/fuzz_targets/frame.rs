//! `frame`: what the server does first with every text frame a client sends.
//!
//! UTF-8 input is the frame itself. Other input generates a frame: a known operation type
//! with fields of (mostly) the types that operation expects, so `Operation::parse` of every
//! operation, transactions included, runs far past the envelope checks.
//!
//! Checks: `parse_client_frame` never panics; a request's `operation()` never panics; a
//! parsed operation serializes (as the clients send it) and parses back to the same
//! operation and id; a pong's echo parses back to the same timestamp; error frames serialize.

#![no_main]

use arbitrary::{Result, Unstructured};
use libfuzzer_sys::fuzz_target;
use noex_fuzz::Gen;
use noex_protocol::{ClientFrame, Pong, Request, namespace_of, parse_client_frame};
use serde_json::{Map, Value};

fuzz_target!(|data: &[u8]| {
    match std::str::from_utf8(data) {
        Ok(text) => check(text),
        Err(_) => {
            if let Ok(text) = generate(&mut Unstructured::new(data)) {
                check(&text);
            }
        }
    }
});

fn check(text: &str) {
    noex_fuzz::show(&text);
    match parse_client_frame(text) {
        Ok(ClientFrame::Pong { timestamp }) => {
            let echo = serde_json::to_string(&Pong { timestamp }).expect("a pong serializes");
            match parse_client_frame(&echo) {
                Ok(ClientFrame::Pong { timestamp: back }) => {
                    // by value: -0 is echoed as 0, which the server compares equal
                    assert_eq!(back, timestamp, "pong {echo}")
                }
                other => panic!("pong {echo} parsed back as {other:?}"),
            }
        }
        Ok(ClientFrame::Request(raw)) => {
            let _ = namespace_of(&raw.op_type);
            match raw.operation() {
                Ok(operation) => {
                    assert_eq!(operation.op_type(), raw.op_type);
                    let request = Request {
                        id: raw.id.clone(),
                        operation,
                    };
                    let sent = serde_json::to_string(&request).expect("a request serializes");
                    let Ok(ClientFrame::Request(again)) = parse_client_frame(&sent) else {
                        panic!("serialized request {sent} is not a request frame");
                    };
                    assert_eq!(again.id, request.id, "id of {sent}");
                    let reparsed = again
                        .operation()
                        .unwrap_or_else(|e| panic!("serialized request {sent} fails: {e:?}"));
                    assert_eq!(reparsed, request.operation, "round trip of {sent}");
                }
                Err(error) => {
                    let _ = (error.code(), error.message());
                }
            }
        }
        Err(error) => {
            serde_json::to_string(&error.to_error_frame()).expect("an error frame serializes");
        }
    }
}

const TYPES: &[&str] = &[
    "store.insert",
    "store.get",
    "store.update",
    "store.delete",
    "store.all",
    "store.where",
    "store.findOne",
    "store.count",
    "store.first",
    "store.last",
    "store.paginate",
    "store.sum",
    "store.avg",
    "store.min",
    "store.max",
    "store.insertMany",
    "store.updateMany",
    "store.deleteMany",
    "store.upsert",
    "store.groupBy",
    "store.clear",
    "store.subscribe",
    "store.unsubscribe",
    "store.transaction",
    "store.defineBucket",
    "store.dropBucket",
    "store.updateBucket",
    "store.getBucketSchema",
    "store.defineQuery",
    "store.undefineQuery",
    "store.listQueries",
    "store.buckets",
    "store.stats",
    "rules.emit",
    "rules.setFact",
    "rules.getFact",
    "rules.deleteFact",
    "rules.queryFacts",
    "rules.getAllFacts",
    "rules.subscribe",
    "rules.unsubscribe",
    "rules.registerRule",
    "rules.unregisterRule",
    "rules.updateRule",
    "rules.enableRule",
    "rules.disableRule",
    "rules.getRule",
    "rules.getRules",
    "rules.validateRule",
    "rules.stats",
    "auth.login",
    "auth.logout",
    "auth.whoami",
    "server.stats",
    "server.connections",
    "pong",
    "store.",
    "rules",
    "x",
];

/// Field names the operations read.
const FIELDS: &[&str] = &[
    "bucket",
    "key",
    "data",
    "filter",
    "n",
    "limit",
    "after",
    "field",
    "query",
    "params",
    "subscriptionId",
    "operations",
    "name",
    "config",
    "updates",
    "topic",
    "correlationId",
    "causationId",
    "value",
    "pattern",
    "rule",
    "ruleId",
    "token",
    "timestamp",
];

const STRINGS: &[&str] = &[
    "users",
    "orders",
    "id",
    "age",
    "name",
    "$gt",
    "$in",
    "{{ params.x }}",
    "order.*",
    "order.created",
    "user:1:name",
    "user:*",
    "sub-1",
    "get",
    "insert",
    "update",
    "delete",
    "where",
    "findOne",
    "count",
    "string",
    "number",
    "asc",
    "desc",
    "sum",
    "1h",
    "",
];

/// A frame: `{id, type, ...fields}`: each known field present half the time with a value of
/// the type it usually has, plus now and then a field of any name.
fn generate(u: &mut Unstructured<'_>) -> Result<String> {
    let mut g = Gen::new(u, FIELDS, STRINGS);
    let mut frame = Map::new();
    g.field(&mut frame, "type", |g| g.word(TYPES))?;
    g.field(&mut frame, "id", |g| g.number())?;
    for name in FIELDS {
        g.opt_field(&mut frame, name, |g| typed(g, name, 0))?;
    }
    if g.chance(32)? {
        let name = g.key()?;
        let v = g.value(1)?;
        frame.insert(name, v);
    }
    Ok(Value::Object(frame).to_string())
}

/// A value of the type a field of this name usually has.
fn typed(g: &mut Gen<'_, '_>, name: &str, depth: usize) -> Result<Value> {
    Ok(match name {
        "bucket" | "query" | "subscriptionId" | "name" | "topic" | "pattern" | "ruleId"
        | "token" | "field" | "correlationId" | "causationId" => Value::String(g.string()?),
        "n" | "limit" | "timestamp" => g.number()?,
        "key" | "value" | "after" => g.scalar()?,
        "operations" => Value::Array(g.list(4, |g| {
            let mut op = Map::new();
            g.field(&mut op, "op", |g| {
                g.word(&[
                    "get", "insert", "update", "delete", "where", "findOne", "count",
                ])
            })?;
            g.field(&mut op, "bucket", |g| Ok(Value::String(g.string()?)))?;
            g.opt_field(&mut op, "key", |g| g.scalar())?;
            g.opt_field(&mut op, "data", |g| Ok(Value::Object(g.object(depth + 1)?)))?;
            g.opt_field(&mut op, "filter", |g| {
                Ok(Value::Object(g.object(depth + 1)?))
            })?;
            Ok(Value::Object(op))
        })?),
        _ => Value::Object(g.object(depth + 1)?),
    })
}
