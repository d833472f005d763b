//! The procedures API against the real server: register, get, list, update, call (a
//! procedure writing to the store and computing with an expression), unregister, and the
//! errors a client sees.

use noex_client::ClientError;
use noex_protocol::ErrorCode;
use serde_json::json;

use crate::common::{config, connect, obj, start};

#[tokio::test]
async fn register_call_and_manage_a_procedure() {
    let server = start(config()).await;
    let client = connect(&server).await;
    let procedures = client.procedures();
    let def = obj(json!({
        "name": "add-task",
        "description": "Adds a task worth twice the points",
        "input": {"id": {"type": "string"}, "points": {"type": "number", "default": 1}},
        "steps": [
            {"action": "store.insert", "bucket": "tasks", "as": "task", "data": {
                "id": "{{ input.id }}", "title": "Task {{ input.id }}",
                "points": {"$multiply": ["$input.points", 2]}}},
            {"action": "return", "value": "{{ task.points }}"}
        ]
    }));
    let registered = procedures.register(def.clone()).await.unwrap();
    assert_eq!(
        (registered.name.as_str(), registered.registered),
        ("add-task", true)
    );
    assert_eq!(procedures.get("add-task").await.unwrap(), def);
    let list = procedures.list().await.unwrap();
    assert_eq!(list.procedures.len(), 1);
    assert_eq!(list.procedures[0].steps_count, 2);

    let out = procedures
        .call("add-task", obj(json!({"id": "t1", "points": 4})))
        .await
        .unwrap();
    assert!(out.success);
    assert_eq!(out.result, Some(json!(8)));
    assert_eq!(out.results["task"]["title"], "Task t1");

    procedures
        .update("add-task", obj(json!({"description": "changed"})))
        .await
        .unwrap();
    assert_eq!(
        procedures.get("add-task").await.unwrap()["description"],
        "changed"
    );
    let err = procedures
        .call("add-task", obj(json!({"id": 5})))
        .await
        .unwrap_err();
    match err {
        ClientError::Server { code, .. } => assert_eq!(code, ErrorCode::ValidationError),
        other => panic!("expected a server error, got {other:?}"),
    }
    procedures.unregister("add-task").await.unwrap();
    match procedures.get("add-task").await.unwrap_err() {
        ClientError::Server { code, .. } => assert_eq!(code, ErrorCode::NotFound),
        other => panic!("expected NOT_FOUND, got {other:?}"),
    }
}
