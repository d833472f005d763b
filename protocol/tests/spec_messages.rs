//! Every message kind of the protocol (docs/reference/protocol.md), round-tripped against literal JSON in the spec's shapes,
//! and the frame validation order of section 3 case by case.

use noex_protocol::*;
use serde_json::{Value, json};

fn round_trip_server(text: &str) {
    let expected: Value = serde_json::from_str(text).unwrap();
    let msg: ServerMessage = serde_json::from_str(text).unwrap();
    let back: Value = serde_json::from_str(&msg.to_json()).unwrap();
    assert_eq!(back, expected, "round trip of {text}");
}

#[test]
fn server_messages_round_trip() {
    round_trip_server(
        r#"{"type":"welcome","version":"1.0.0","serverTime":1732500000000,"requiresAuth":true}"#,
    );
    round_trip_server(r#"{"id":1,"type":"result","data":{"id":"a","name":"Alice","_version":1}}"#);
    round_trip_server(r#"{"id":2,"type":"result","data":null}"#);
    round_trip_server(r#"{"id":3,"type":"error","code":"NOT_FOUND","message":"Record not found"}"#);
    round_trip_server(
        r#"{"id":4,"type":"error","code":"VALIDATION_ERROR","message":"Validation failed","details":[{"field":"name","message":"Field is required","code":"required"}]}"#,
    );
    round_trip_server(r#"{"id":0,"type":"error","code":"PARSE_ERROR","message":"Invalid JSON"}"#);
    round_trip_server(
        r#"{"type":"push","channel":"subscription","subscriptionId":"sub-1","data":[1,2]}"#,
    );
    round_trip_server(
        r#"{"type":"push","channel":"event","subscriptionId":"sub-2","data":{"topic":"order.created","event":{"id":"e1","topic":"order.created","data":{},"timestamp":5}}}"#,
    );
    round_trip_server(r#"{"type":"ping","timestamp":1732500000000}"#);
    round_trip_server(r#"{"type":"system","event":"shutdown","gracePeriodMs":5000}"#);
}

#[test]
fn welcome_carries_the_protocol_version() {
    let msg = ServerMessage::Welcome(Welcome {
        version: PROTOCOL_VERSION.to_owned(),
        server_time: 1,
        requires_auth: false,
    });
    assert_eq!(
        serde_json::from_str::<Value>(&msg.to_json()).unwrap(),
        json!({"type":"welcome","version":"1.0.0","serverTime":1,"requiresAuth":false})
    );
}

#[test]
fn raw_push_encoding_equals_serde_encoding() {
    let data = json!({"a": [1, "x\"y"], "b": null});
    let raw = PushFrame::encode_raw(PushChannel::Subscription, "sub-\"7", &data.to_string());
    let typed = ServerMessage::Push(PushFrame {
        channel: PushChannel::Subscription,
        subscription_id: "sub-\"7".into(),
        data,
    });
    assert_eq!(
        serde_json::from_str::<Value>(&raw).unwrap(),
        serde_json::from_str::<Value>(&typed.to_json()).unwrap()
    );
}

/// Every client operation, as a client writes it. Each must parse to a typed operation and
/// serialize back to the same JSON.
const REQUESTS: &[&str] = &[
    r#"{"id":1,"type":"store.insert","bucket":"users","data":{"name":"Alice"}}"#,
    r#"{"id":1,"type":"store.get","bucket":"users","key":"a"}"#,
    r#"{"id":1,"type":"store.update","bucket":"users","key":7,"data":{"age":3}}"#,
    r#"{"id":1,"type":"store.delete","bucket":"users","key":"a"}"#,
    r#"{"id":1,"type":"store.all","bucket":"users"}"#,
    r#"{"id":1,"type":"store.where","bucket":"users","filter":{"age":{"$gte":18}}}"#,
    r#"{"id":1,"type":"store.findOne","bucket":"users","filter":{"name":"Alice"}}"#,
    r#"{"id":1,"type":"store.count","bucket":"users"}"#,
    r#"{"id":1,"type":"store.count","bucket":"users","filter":{"role":"admin"}}"#,
    r#"{"id":1,"type":"store.first","bucket":"users","n":2}"#,
    r#"{"id":1,"type":"store.last","bucket":"users","n":3}"#,
    r#"{"id":1,"type":"store.paginate","bucket":"users","limit":10}"#,
    r#"{"id":1,"type":"store.paginate","bucket":"users","limit":10,"after":"k9"}"#,
    r#"{"id":1,"type":"store.sum","bucket":"orders","field":"total"}"#,
    r#"{"id":1,"type":"store.avg","bucket":"orders","field":"total","filter":{"paid":true}}"#,
    r#"{"id":1,"type":"store.min","bucket":"orders","field":"total"}"#,
    r#"{"id":1,"type":"store.max","bucket":"orders","field":"total"}"#,
    r#"{"id":1,"type":"store.insertMany","bucket":"users","data":[{"name":"Alice"},{"name":"Bob"}]}"#,
    r#"{"id":1,"type":"store.insertMany","bucket":"users","data":[]}"#,
    r#"{"id":1,"type":"store.updateMany","bucket":"users","filter":{"role":"guest"},"data":{"role":"user"}}"#,
    r#"{"id":1,"type":"store.deleteMany","bucket":"users","filter":{"age":{"$lt":18}}}"#,
    r#"{"id":1,"type":"store.upsert","bucket":"users","data":{"id":"a","name":"Alice"}}"#,
    r#"{"id":1,"type":"store.groupBy","bucket":"orders","field":"status","aggregate":{"function":"count"}}"#,
    r#"{"id":1,"type":"store.groupBy","bucket":"orders","field":["status","region"],"aggregate":{"function":"sum","field":"total"},"filter":{"paid":true}}"#,
    r#"{"id":1,"type":"store.clear","bucket":"users"}"#,
    r#"{"id":1,"type":"store.buckets"}"#,
    r#"{"id":1,"type":"store.stats"}"#,
    r#"{"id":1,"type":"store.subscribe","query":"all-users"}"#,
    r#"{"id":1,"type":"store.subscribe","query":"by-role","params":{"role":"admin"}}"#,
    r#"{"id":1,"type":"store.unsubscribe","subscriptionId":"sub-1"}"#,
    r#"{"id":1,"type":"store.transaction","operations":[
        {"op":"get","bucket":"a","key":1},
        {"op":"insert","bucket":"a","data":{"x":1}},
        {"op":"update","bucket":"a","key":1,"data":{"x":2}},
        {"op":"delete","bucket":"a","key":1},
        {"op":"where","bucket":"a","filter":{"x":1}},
        {"op":"findOne","bucket":"a","filter":{"x":1}},
        {"op":"count","bucket":"a"},
        {"op":"count","bucket":"a","filter":{"x":1}}]}"#,
    r#"{"id":1,"type":"store.defineBucket","name":"users","config":{"key":"id","schema":{"id":{"type":"string","generated":"uuid"}}}}"#,
    r#"{"id":1,"type":"store.dropBucket","name":"users"}"#,
    r#"{"id":1,"type":"store.updateBucket","name":"users","updates":{"addIndexes":["role"]}}"#,
    r#"{"id":1,"type":"store.getBucketSchema","name":"users"}"#,
    r#"{"id":1,"type":"store.defineQuery","name":"admins","config":{"bucket":"users","filter":{"role":"admin"}}}"#,
    r#"{"id":1,"type":"store.undefineQuery","name":"admins"}"#,
    r#"{"id":1,"type":"store.listQueries"}"#,
    r#"{"id":1,"type":"rules.emit","topic":"order.created","data":{"orderId":"o1"}}"#,
    r#"{"id":1,"type":"rules.emit","topic":"order.created","data":{},"correlationId":"c1","causationId":"e0"}"#,
    r#"{"id":1,"type":"rules.setFact","key":"customer:1:tier","value":"gold"}"#,
    r#"{"id":1,"type":"rules.setFact","key":"flag","value":null}"#,
    r#"{"id":1,"type":"rules.getFact","key":"customer:1:tier"}"#,
    r#"{"id":1,"type":"rules.deleteFact","key":"customer:1:tier"}"#,
    r#"{"id":1,"type":"rules.queryFacts","pattern":"customer:*:tier"}"#,
    r#"{"id":1,"type":"rules.getAllFacts"}"#,
    r#"{"id":1,"type":"rules.subscribe","pattern":"order.*"}"#,
    r#"{"id":1,"type":"rules.unsubscribe","subscriptionId":"sub-3"}"#,
    r#"{"id":1,"type":"rules.stats"}"#,
    r#"{"id":1,"type":"rules.registerRule","rule":{"id":"r1","name":"R"}}"#,
    r#"{"id":1,"type":"rules.unregisterRule","ruleId":"r1"}"#,
    r#"{"id":1,"type":"rules.updateRule","ruleId":"r1","updates":{"priority":5}}"#,
    r#"{"id":1,"type":"rules.enableRule","ruleId":"r1"}"#,
    r#"{"id":1,"type":"rules.disableRule","ruleId":"r1"}"#,
    r#"{"id":1,"type":"rules.getRule","ruleId":"r1"}"#,
    r#"{"id":1,"type":"rules.getRules"}"#,
    r#"{"id":1,"type":"rules.validateRule","rule":{"id":"r1"}}"#,
    r#"{"id":1,"type":"auth.login","token":"secret"}"#,
    r#"{"id":1,"type":"auth.logout"}"#,
    r#"{"id":1,"type":"auth.whoami"}"#,
    r#"{"id":1,"type":"server.stats"}"#,
    r#"{"id":1,"type":"server.connections"}"#,
];

#[test]
fn every_request_round_trips_through_its_typed_operation() {
    let mut types = std::collections::HashSet::new();
    for text in REQUESTS {
        let ClientFrame::Request(raw) = parse_client_frame(text).unwrap() else {
            panic!("not a request: {text}")
        };
        let operation = raw.operation().unwrap_or_else(|e| panic!("{text}: {e:?}"));
        assert_eq!(
            raw.clone().into_operation().as_ref(),
            Ok(&operation),
            "moving the fields parses the same operation: {text}"
        );
        assert!(!matches!(operation, Operation::Unknown(_)));
        assert_eq!(operation.op_type(), raw.op_type);
        types.insert(raw.op_type.clone());
        let request = Request {
            id: raw.id,
            operation,
        };
        let back = serde_json::to_value(&request).unwrap();
        assert_eq!(back, serde_json::from_str::<Value>(text).unwrap(), "{text}");
    }
    // 33 store, 17 rules, 3 auth, 2 server operations.
    assert_eq!(types.len(), 55);
}

#[test]
fn emit_without_data_defaults_to_an_empty_object() {
    let fields = json!({"topic": "a.b"});
    let op = Operation::parse("rules.emit", fields.as_object().unwrap()).unwrap();
    let Operation::Rules(RulesOp::Emit { data, .. }) = op else {
        panic!()
    };
    assert!(data.is_empty());
}

#[test]
fn pong_round_trips() {
    let pong = Pong {
        timestamp: 1732500000000.0,
    };
    let text = serde_json::to_string(&pong).unwrap();
    assert_eq!(
        text, r#"{"type":"pong","timestamp":1732500000000}"#,
        "the ping's integer is echoed as an integer"
    );
    let fractional = serde_json::to_string(&Pong { timestamp: 2.5 }).unwrap();
    assert_eq!(fractional, r#"{"type":"pong","timestamp":2.5}"#);
    assert_eq!(
        parse_client_frame(&text).unwrap(),
        ClientFrame::Pong {
            timestamp: 1732500000000.0
        }
    );
}

fn frame_err(text: &str) -> FrameError {
    parse_client_frame(text).expect_err(text)
}

#[test]
fn malformed_frames_fail_in_the_spec_order() {
    use ErrorCode::*;
    let cases: &[(&str, ErrorCode, &str)] = &[
        ("not json", ParseError, MSG_INVALID_JSON),
        ("{\"id\":1,", ParseError, MSG_INVALID_JSON),
        ("", ParseError, MSG_INVALID_JSON),
        ("[1,2,3]", ParseError, MSG_NOT_OBJECT),
        ("null", ParseError, MSG_NOT_OBJECT),
        ("42", ParseError, MSG_NOT_OBJECT),
        ("\"store.all\"", ParseError, MSG_NOT_OBJECT),
        ("true", ParseError, MSG_NOT_OBJECT),
        ("{\"id\":1}", InvalidRequest, MSG_BAD_TYPE),
        ("{\"id\":1,\"type\":\"\"}", InvalidRequest, MSG_BAD_TYPE),
        ("{\"id\":1,\"type\":5}", InvalidRequest, MSG_BAD_TYPE),
        ("{\"id\":1,\"type\":null}", InvalidRequest, MSG_BAD_TYPE),
        // type is checked before id: a frame with neither reports the type.
        ("{}", InvalidRequest, MSG_BAD_TYPE),
        ("{\"type\":\"pong\"}", InvalidRequest, MSG_BAD_PONG),
        (
            "{\"type\":\"pong\",\"timestamp\":\"5\"}",
            InvalidRequest,
            MSG_BAD_PONG,
        ),
        (
            "{\"type\":\"pong\",\"timestamp\":null}",
            InvalidRequest,
            MSG_BAD_PONG,
        ),
        ("{\"type\":\"store.all\"}", InvalidRequest, MSG_BAD_ID),
        (
            "{\"type\":\"store.all\",\"id\":\"1\"}",
            InvalidRequest,
            MSG_BAD_ID,
        ),
        (
            "{\"type\":\"store.all\",\"id\":null}",
            InvalidRequest,
            MSG_BAD_ID,
        ),
        (
            "{\"type\":\"store.all\",\"id\":[1]}",
            InvalidRequest,
            MSG_BAD_ID,
        ),
    ];
    for (text, code, message) in cases {
        let err = frame_err(text);
        assert_eq!((err.code, err.message), (*code, *message), "frame {text:?}");
        let frame = err.to_error_frame();
        assert_eq!(frame.id, RequestId::zero());
        assert_eq!(frame.details, None);
    }
}

#[test]
fn pong_needs_no_id_and_any_finite_id_is_echoed_exactly() {
    assert_eq!(
        parse_client_frame(r#"{"type":"pong","timestamp":12}"#).unwrap(),
        ClientFrame::Pong { timestamp: 12.0 }
    );
    for id in ["7", "7.5", "-3", "0"] {
        let text = format!(r#"{{"id":{id},"type":"store.buckets"}}"#);
        let ClientFrame::Request(raw) = parse_client_frame(&text).unwrap() else {
            panic!()
        };
        assert_eq!(serde_json::to_string(&raw.id).unwrap(), id);
    }
}

/// Rerun finding: ids past 2^53 and fractions. Integers of 64 bits come back digit for digit
/// (past 2^53 too); other numbers as the same double in its shortest text; an integer past
/// 64 bits (or any number that large) is refused rather than echoed rounded.
#[test]
fn large_and_fractional_ids_are_echoed_exactly_or_refused() {
    let echo = |id: &str| {
        let text = format!(r#"{{"id":{id},"type":"store.buckets"}}"#);
        match parse_client_frame(&text) {
            Ok(ClientFrame::Request(raw)) => Ok(serde_json::to_string(&raw.id).unwrap()),
            Ok(other) => panic!("{other:?}"),
            Err(err) => Err((err.code, err.message)),
        }
    };
    for exact in [
        "9007199254740993",     // 2^53 + 1
        "18446744073709551615", // 2^64 - 1
        "-9223372036854775808", // -2^63
        "0.1",
        "7.25",
        "-1.5e-7",
    ] {
        assert_eq!(echo(exact).as_deref(), Ok(exact), "{exact}");
    }
    // The same double, in its shortest text.
    assert_eq!(echo("7.50").as_deref(), Ok("7.5"));
    assert_eq!(echo("9.2e18").as_deref(), Ok("9.2e+18"));
    for refused in [
        "18446744073709551616", // 2^64
        "-9223372036854775809", // -2^63 - 1
        "123456789012345678901234567890",
        "1e19",
        "-9.3e18",
        "1e300",
    ] {
        assert_eq!(
            echo(refused),
            Err((ErrorCode::InvalidRequest, MSG_ID_OUT_OF_RANGE)),
            "{refused}"
        );
    }
}

#[test]
fn unknown_types_and_namespaces_are_unknown_operations() {
    let empty = serde_json::Map::new();
    for t in [
        "store.nope",
        "rules.nope",
        "auth.nope",
        "server.nope",
        "foo.bar",
        "nonamespace",
    ] {
        let err = Operation::parse(t, &empty).unwrap_err();
        assert_eq!(err.code(), ErrorCode::UnknownOperation, "{t}");
        assert_eq!(err.message(), format!("Unknown operation \"{t}\""));
    }
}

#[test]
fn field_validation_messages_follow_the_spec_pattern() {
    let cases: &[(&str, Value, &str)] = &[
        (
            "store.insert",
            json!({"data": {}}),
            r#"Missing or invalid "bucket": expected non-empty string"#,
        ),
        (
            "store.insert",
            json!({"bucket": ""}),
            r#"Missing or invalid "bucket": expected non-empty string"#,
        ),
        (
            "store.insert",
            json!({"bucket": "u", "data": [1]}),
            r#"Missing or invalid "data": expected object"#,
        ),
        (
            "store.get",
            json!({"bucket": "u"}),
            r#"Missing "key": expected non-null value"#,
        ),
        (
            "store.get",
            json!({"bucket": "u", "key": null}),
            r#"Missing "key": expected non-null value"#,
        ),
        (
            "store.where",
            json!({"bucket": "u", "filter": "x"}),
            r#"Missing or invalid "filter": expected object"#,
        ),
        (
            "store.count",
            json!({"bucket": "u", "filter": 3}),
            r#"Invalid "filter": expected object"#,
        ),
        (
            "store.first",
            json!({"bucket": "u", "n": 0}),
            r#"Missing or invalid "n": expected positive integer"#,
        ),
        (
            "store.first",
            json!({"bucket": "u", "n": 1.5}),
            r#"Missing or invalid "n": expected positive integer"#,
        ),
        (
            "store.last",
            json!({"bucket": "u", "n": -2}),
            r#"Missing or invalid "n": expected positive integer"#,
        ),
        (
            "store.paginate",
            json!({"bucket": "u"}),
            r#"Missing or invalid "limit": expected positive integer"#,
        ),
        (
            "store.sum",
            json!({"bucket": "u"}),
            r#"Missing or invalid "field": expected non-empty string"#,
        ),
        (
            "store.insertMany",
            json!({"bucket": "u", "data": {}}),
            r#"Missing or invalid "data": expected array"#,
        ),
        (
            "store.insertMany",
            json!({"bucket": "u", "data": [{}, {}, null]}),
            "data[2]: expected object",
        ),
        (
            "store.updateMany",
            json!({"bucket": "u", "filter": {}}),
            r#"Missing or invalid "data": expected object"#,
        ),
        (
            "store.deleteMany",
            json!({"bucket": "u", "filter": []}),
            r#"Missing or invalid "filter": expected object"#,
        ),
        (
            "store.groupBy",
            json!({"bucket": "u", "field": [], "aggregate": {"function": "count"}}),
            r#"Missing or invalid "field": expected non-empty string or non-empty array of non-empty strings"#,
        ),
        (
            "store.groupBy",
            json!({"bucket": "u", "field": "c", "aggregate": {"function": "count", "field": 3}}),
            r#"Invalid "aggregate.field": expected non-empty string"#,
        ),
        (
            "store.subscribe",
            json!({}),
            r#"Missing or invalid "query": expected non-empty string"#,
        ),
        (
            "store.unsubscribe",
            json!({}),
            r#"Missing or invalid "subscriptionId": expected non-empty string"#,
        ),
        (
            "store.transaction",
            json!({"operations": []}),
            r#"Missing or invalid "operations": expected non-empty array"#,
        ),
        (
            "store.transaction",
            json!({"operations": [{"op": "drop", "bucket": "a"}]}),
            r#"operations[0]: Missing or invalid "op": expected one of get, insert, update, delete, where, findOne, count, insertMany, updateMany, deleteMany, upsert"#,
        ),
        (
            "store.transaction",
            json!({"operations": [{"op": "get", "bucket": "a", "key": 1}, {"op": "insert", "bucket": "a"}]}),
            r#"operations[1]: Missing or invalid "data": expected object"#,
        ),
        (
            "store.transaction",
            json!({"operations": [3]}),
            "operations[0]: expected object",
        ),
        (
            "store.defineBucket",
            json!({"name": "u"}),
            r#"Missing or invalid "config": expected object"#,
        ),
        (
            "store.updateBucket",
            json!({"name": "u"}),
            r#"Missing or invalid "updates": expected object"#,
        ),
        (
            "rules.emit",
            json!({}),
            r#"Missing or invalid "topic": expected non-empty string"#,
        ),
        (
            "rules.emit",
            json!({"topic": "a", "data": [1]}),
            r#"Invalid "data": expected object"#,
        ),
        (
            "rules.emit",
            json!({"topic": "a", "correlationId": 5}),
            r#"Invalid "correlationId": expected non-empty string"#,
        ),
        (
            "rules.setFact",
            json!({"key": "k"}),
            r#"Missing "value": expected a value"#,
        ),
        (
            "rules.queryFacts",
            json!({}),
            r#"Missing or invalid "pattern": expected non-empty string"#,
        ),
        (
            "rules.registerRule",
            json!({"rule": "x"}),
            r#"Missing or invalid "rule": expected object"#,
        ),
        (
            "rules.enableRule",
            json!({}),
            r#"Missing or invalid "ruleId": expected non-empty string"#,
        ),
        (
            "auth.login",
            json!({"token": ""}),
            r#"Missing or invalid "token": expected non-empty string"#,
        ),
    ];
    for (op_type, fields, message) in cases {
        let err = Operation::parse(op_type, fields.as_object().unwrap()).unwrap_err();
        assert_eq!(err.code(), ErrorCode::ValidationError, "{op_type} {fields}");
        assert_eq!(err.message(), *message, "{op_type} {fields}");
    }
}

#[test]
fn integral_floats_count_as_positive_integers() {
    let fields = json!({"bucket": "u", "n": 2.0});
    let op = Operation::parse("store.first", fields.as_object().unwrap()).unwrap();
    assert_eq!(
        op,
        Operation::Store(StoreOp::First {
            bucket: "u".into(),
            n: 2
        })
    );
}

#[test]
fn definitions_round_trip_in_the_spec_shapes() {
    let bucket = json!({
        "key": "id",
        "schema": {
            "id": {"type": "string", "generated": "uuid"},
            "email": {"type": "string", "required": true, "unique": true, "format": "email"},
            "age": {"type": "number", "min": 0, "max": 150},
            "role": {"type": "string", "enum": ["admin", "user"], "default": "user"},
            "address": {"type": "object", "properties": {"city": {"type": "string", "minLength": 1}}},
            "tags": {"type": "array", "items": {"type": "string", "pattern": "^[a-z]+$"}},
            "team": {"type": "string", "ref": "teams"}
        },
        "indexes": ["role"],
        "ttl": "15m",
        "maxSize": 1000,
        "persistent": false
    });
    let typed: BucketConfig = serde_json::from_value(bucket.clone()).unwrap();
    assert_eq!(typed.ttl, Some(Ttl::Text("15m".into())));
    assert_eq!(
        typed.field_def("id").and_then(|f| f.generated),
        Some(Generated::Uuid)
    );
    // Numbers come back as floats (min: 0 → 0.0); compare after normalising both sides.
    let back = serde_json::to_value(&typed).unwrap();
    let norm = |v: &Value| serde_json::from_str::<Value>(&v.to_string().replace(".0", "")).unwrap();
    assert_eq!(norm(&back), norm(&bucket));

    let query = json!({
        "bucket": "users",
        "filter": {"role": "{{ params.role }}", "age": {"$gte": 18}},
        "sort": {"age": "desc"},
        "limit": 10,
        "offset": 5,
        "fields": ["id", "age"],
        "aggregate": {"function": "avg", "field": "age", "groupBy": ["role"]}
    });
    let typed: QueryConfig = serde_json::from_value(query.clone()).unwrap();
    assert_eq!(serde_json::to_value(&typed).unwrap(), query);

    let updates =
        json!({"addFields": {"nick": {"type": "string"}}, "addIndexes": ["nick"], "ttl": null});
    let typed: BucketUpdates = serde_json::from_value(updates).unwrap();
    assert_eq!(
        typed.ttl,
        Some(None),
        "ttl: null (remove) differs from an absent ttl"
    );
    assert!(
        serde_json::from_value::<BucketUpdates>(json!({}))
            .unwrap()
            .ttl
            .is_none()
    );
}
