//! No frame a client can send makes validation panic: arbitrary text, arbitrary JSON, and
//! arbitrary fields for every known operation type.

use noex_protocol::{ClientFrame, ErrorCode, Operation, parse_client_frame};
use proptest::prelude::*;
use serde_json::{Map, Value};

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        "[a-z.]{0,12}".prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 24, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map("[a-zA-Z]{1,10}", inner, 0..5)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
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
    "store.updateBucket",
    "store.defineQuery",
    "rules.emit",
    "rules.setFact",
    "rules.subscribe",
    "rules.registerRule",
    "rules.updateRule",
    "auth.login",
    "server.stats",
    "pong",
    "x",
];

proptest! {
    #[test]
    fn arbitrary_text_never_panics(text in ".{0,200}") {
        let _ = parse_client_frame(&text);
    }

    #[test]
    fn arbitrary_json_is_classified(value in json_value()) {
        match parse_client_frame(&value.to_string()) {
            Ok(ClientFrame::Request(r)) => {
                prop_assert_eq!(r.operation(), r.clone().into_operation());
            }
            Ok(ClientFrame::Pong { .. }) => {}
            Err(e) => prop_assert!(matches!(e.code, ErrorCode::ParseError | ErrorCode::InvalidRequest)),
        }
    }

    #[test]
    fn arbitrary_fields_for_known_types_never_panic(
        index in 0..TYPES.len(),
        fields in prop::collection::btree_map(
            prop_oneof![Just("bucket".to_owned()), Just("key".to_owned()), Just("data".to_owned()),
                        Just("filter".to_owned()), Just("n".to_owned()), Just("limit".to_owned()),
                        Just("operations".to_owned()), Just("op".to_owned()), Just("topic".to_owned()),
                        Just("value".to_owned()), Just("token".to_owned()), "[a-z]{1,6}"],
            json_value(), 0..6),
    ) {
        let map: Map<String, Value> = fields.into_iter().collect();
        match Operation::parse(TYPES[index], &map) {
            Ok(op) => prop_assert_eq!(op.op_type(), TYPES[index]),
            Err(e) => prop_assert!(matches!(e.code(), ErrorCode::ValidationError | ErrorCode::UnknownOperation)),
        }
    }
}

// ----- inputs found by the `frame` fuzz target (fuzz/) ------------------------------------

/// A number a client sends is the number the server reads: serializing what was parsed and
/// parsing it again gives the same operation. Found by fuzzing: without serde_json's
/// `float_roundtrip`, `9.34603212849622e+252` (the shortest text of one double) parsed as
/// the neighbouring double, so stored values could change in their last bit.
#[test]
fn a_parsed_request_serializes_back_to_the_same_request() {
    let text = r#"{"id":-2,"type":"store.insert","bucket":"b","data":{"x":9.34603212849622e+252}}"#;
    let Ok(ClientFrame::Request(raw)) = parse_client_frame(text) else {
        panic!("not a request");
    };
    let op = raw.operation().unwrap();
    let sent = serde_json::to_string(&noex_protocol::Request {
        id: raw.id.clone(),
        operation: op.clone(),
    })
    .unwrap();
    let Ok(ClientFrame::Request(again)) = parse_client_frame(&sent) else {
        panic!("{sent} is not a request");
    };
    assert_eq!(again.operation().unwrap(), op, "{sent}");
}
