//! The typed store API against the real server: every bucket operation with a serde `T`,
//! errors with their protocol code / message / details, admin operations, transactions
//! and query subscriptions as streams.

use futures_util::StreamExt;
use noex_client::{ClientError, Record};
use noex_protocol::payloads::{QueryKind, ValidationIssue};
use noex_protocol::{ErrorCode, TransactionOp};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::common::{config, connect, next, start};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Task {
    id: String,
    title: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    owner: Option<String>,
    #[serde(default)]
    done: bool,
    #[serde(default)]
    points: f64,
}

fn task(id: &str, owner: &str, points: f64) -> Task {
    Task {
        id: id.into(),
        title: format!("task {id}"),
        owner: Some(owner.into()),
        done: false,
        points,
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct User {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    id: String,
    name: String,
    email: String,
}

fn ids(tasks: &[Task]) -> Vec<&str> {
    tasks.iter().map(|t| t.id.as_str()).collect()
}

fn server_error(err: ClientError) -> (ErrorCode, String, Option<Value>) {
    match err {
        ClientError::Server {
            code,
            message,
            details,
        } => (code, message, details),
        other => panic!("expected a server error, got {other:?}"),
    }
}

#[tokio::test]
async fn crud_with_a_typed_bucket_and_record_metadata() {
    let server = start(config()).await;
    let client = connect(&server).await;
    let tasks = client.store().bucket::<Task>("tasks");
    assert_eq!(tasks.name(), "tasks");

    // Defaults are applied by the server and come back typed.
    let inserted = tasks
        .insert(json!({"id": "t1", "title": "write tests", "owner": "ann"}))
        .await
        .unwrap();
    assert_eq!(
        inserted,
        Task {
            id: "t1".into(),
            title: "write tests".into(),
            owner: Some("ann".into()),
            done: false,
            points: 1.0,
        }
    );
    assert_eq!(tasks.get("t1").await.unwrap(), Some(inserted.clone()));
    assert_eq!(tasks.get("nope").await.unwrap(), None);

    // The same bucket as Record<Task> keeps the metadata.
    let records = client.store().bucket::<Record<Task>>("tasks");
    let before = records.get("t1").await.unwrap().unwrap();
    assert_eq!(before.version, 1);
    assert!(before.created_at > 0 && before.created_at == before.updated_at);
    assert_eq!(before.data, inserted);
    let after = records
        .update("t1", json!({"done": true, "points": 3}))
        .await
        .unwrap();
    assert_eq!(after.version, 2);
    assert_eq!(after.created_at, before.created_at);
    assert!(after.updated_at >= before.updated_at);
    assert!(after.data.done);
    assert_eq!(after.data.points, 3.0);
    assert_eq!(after.data.title, "write tests", "update merges fields");

    assert!(tasks.delete("t1").await.unwrap());
    assert_eq!(tasks.get("t1").await.unwrap(), None);
    // Deleting what is not there still answers {deleted: true}.
    assert!(tasks.delete("t1").await.unwrap());
    client.disconnect().await;
}

#[tokio::test]
async fn queries_pagination_and_aggregates() {
    let server = start(config()).await;
    let client = connect(&server).await;
    let tasks = client.store().bucket::<Task>("tasks");
    for (i, owner) in ["ann", "bob", "ann", "cid", "ann"].iter().enumerate() {
        tasks
            .insert(task(&format!("t{i}"), owner, (i + 1) as f64))
            .await
            .unwrap();
    }
    tasks.update("t4", json!({"done": true})).await.unwrap();

    assert_eq!(
        ids(&tasks.all().await.unwrap()),
        ["t0", "t1", "t2", "t3", "t4"]
    );
    assert_eq!(
        ids(&tasks.find(json!({"owner": "ann"})).await.unwrap()),
        ["t0", "t2", "t4"]
    );
    assert!(
        tasks
            .find(json!({"owner": "zed"}))
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        tasks
            .find_one(json!({"owner": "bob"}))
            .await
            .unwrap()
            .map(|t| t.id),
        Some("t1".into())
    );
    assert_eq!(tasks.find_one(json!({"owner": "zed"})).await.unwrap(), None);
    assert_eq!(tasks.count(None).await.unwrap(), 5);
    let ann = json!({"owner": "ann"}).as_object().cloned();
    assert_eq!(tasks.count(ann.clone()).await.unwrap(), 3);
    assert_eq!(ids(&tasks.first(2).await.unwrap()), ["t0", "t1"]);
    assert_eq!(ids(&tasks.last(2).await.unwrap()), ["t3", "t4"]);

    // Pagination walks every record exactly once.
    let mut seen = Vec::new();
    let mut after = None;
    loop {
        let page = tasks.paginate(2, after).await.unwrap();
        assert!(page.records.len() <= 2);
        seen.extend(page.records.iter().map(|t| t.id.clone()));
        if !page.has_more {
            break;
        }
        after = page.next_cursor;
        assert!(after.is_some(), "has_more comes with a cursor");
    }
    assert_eq!(seen, ["t0", "t1", "t2", "t3", "t4"]);

    // points are 1..=5; ann has 1, 3, 5.
    assert_eq!(tasks.sum("points", None).await.unwrap(), 15.0);
    assert_eq!(tasks.sum("points", ann.clone()).await.unwrap(), 9.0);
    assert_eq!(tasks.avg("points", ann.clone()).await.unwrap(), 3.0);
    assert_eq!(tasks.min("points", None).await.unwrap(), Some(1.0));
    assert_eq!(tasks.max("points", ann).await.unwrap(), Some(5.0));
    let nobody = json!({"owner": "zed"}).as_object().cloned();
    assert_eq!(tasks.min("points", nobody.clone()).await.unwrap(), None);
    assert_eq!(tasks.max("points", nobody.clone()).await.unwrap(), None);
    assert_eq!(tasks.avg("points", nobody.clone()).await.unwrap(), 0.0);
    assert_eq!(tasks.sum("points", nobody).await.unwrap(), 0.0);

    assert!(tasks.clear().await.unwrap());
    assert_eq!(tasks.count(None).await.unwrap(), 0);
    assert!(tasks.all().await.unwrap().is_empty());
    client.disconnect().await;
}

#[tokio::test]
async fn errors_carry_code_message_and_details() {
    let server = start(config()).await;
    let client = connect(&server).await;

    // BUCKET_NOT_DEFINED
    let ghosts = client.store().bucket::<Task>("ghosts");
    let (code, message, details) = server_error(ghosts.all().await.unwrap_err());
    assert_eq!(code, ErrorCode::BucketNotDefined);
    assert!(message.contains("ghosts"), "{message}");
    assert_eq!(details, None);

    // VALIDATION_ERROR with one issue per field.
    let tasks = client.store().bucket::<Task>("tasks");
    let err = tasks
        .insert(json!({"id": "t1", "title": "", "points": -1}))
        .await
        .unwrap_err();
    let (code, message, details) = server_error(err);
    assert_eq!(code, ErrorCode::ValidationError);
    assert!(!message.is_empty());
    let issues: Vec<ValidationIssue> =
        serde_json::from_value(details.expect("validation details")).unwrap();
    let mut fields: Vec<(&str, &str)> = issues
        .iter()
        .map(|i| (i.field.as_str(), i.code.as_str()))
        .collect();
    fields.sort();
    assert_eq!(fields, [("points", "min"), ("title", "minLength")]);
    assert_eq!(tasks.count(None).await.unwrap(), 0, "nothing was stored");

    // ALREADY_EXISTS: duplicate key, and a unique field with its details.
    tasks.insert(task("t1", "ann", 1.0)).await.unwrap();
    let (code, _, _) = server_error(tasks.insert(task("t1", "bob", 1.0)).await.unwrap_err());
    assert_eq!(code, ErrorCode::AlreadyExists);
    let users = client.store().bucket::<User>("users");
    let ann = users
        .insert(json!({"name": "Ann", "email": "ann@example.com"}))
        .await
        .unwrap();
    assert!(!ann.id.is_empty(), "generated key: {ann:?}");
    let (code, _, details) = server_error(
        users
            .insert(json!({"name": "Other Ann", "email": "ann@example.com"}))
            .await
            .unwrap_err(),
    );
    assert_eq!(code, ErrorCode::AlreadyExists);
    assert_eq!(
        details,
        Some(json!({"bucket": "users", "field": "email", "value": "ann@example.com"}))
    );

    // NOT_FOUND: updating a missing record.
    let (code, message, _) = server_error(
        tasks
            .update("missing", json!({"done": true}))
            .await
            .unwrap_err(),
    );
    assert_eq!(code, ErrorCode::NotFound);
    assert!(message.contains("missing"), "{message}");

    // A result that does not fit T is a Decode error, not a panic.
    let as_numbers = client.store().bucket::<u64>("tasks");
    assert!(matches!(
        as_numbers.all().await.unwrap_err(),
        ClientError::Decode(_)
    ));
    client.disconnect().await;
}

#[tokio::test]
async fn admin_operations() {
    let server = start(config()).await;
    let client = connect(&server).await;
    let store = client.store();

    let names = store.buckets().await.unwrap();
    assert_eq!(names.count, 2);
    assert_eq!(names.names, ["tasks", "users"]);

    let notes_config = json!({"key": "id", "schema": {"id": {"type": "number", "generated": "autoincrement"}, "text": {"type": "string"}}});
    let defined = store.define_bucket("notes", &notes_config).await.unwrap();
    assert_eq!(defined.name, "notes");
    let (code, _, _) = server_error(
        store
            .define_bucket("notes", &notes_config)
            .await
            .unwrap_err(),
    );
    assert_eq!(code, ErrorCode::AlreadyExists);

    let notes = store.bucket::<Value>("notes");
    let first = notes.insert(json!({"text": "hello"})).await.unwrap();
    assert_eq!(first["id"], 1);

    store
        .update_bucket(
            "notes",
            json!({"addFields": {"pinned": {"type": "boolean", "default": false}}}),
        )
        .await
        .unwrap();
    let schema = store.bucket_schema("notes").await.unwrap();
    let schema = serde_json::to_value(schema).unwrap();
    assert!(
        schema.to_string().contains("pinned"),
        "schema after update: {schema}"
    );

    let stats = store.stats().await.unwrap();
    assert_eq!(stats.buckets.count, 3);
    assert_eq!(stats.records.total, 1);

    store
        .define_query(
            "pinned-notes",
            json!({"bucket": "notes", "filter": {"pinned": true}}),
        )
        .await
        .unwrap();
    let queries = store.list_queries().await.unwrap();
    let pinned = queries
        .queries
        .iter()
        .find(|q| q.name == "pinned-notes")
        .expect("the new query is listed");
    assert_eq!(pinned.kind, QueryKind::Declarative);
    assert_eq!(
        server_error(
            store
                .define_query("pinned-notes", json!({"bucket": "notes"}))
                .await
                .unwrap_err()
        )
        .0,
        ErrorCode::AlreadyExists
    );
    store.undefine_query("pinned-notes").await.unwrap();
    assert_eq!(
        server_error(store.undefine_query("pinned-notes").await.unwrap_err()).0,
        ErrorCode::QueryNotDefined
    );

    let dropped = store.drop_bucket("notes").await.unwrap();
    assert_eq!(dropped.name, "notes");
    assert_eq!(
        server_error(notes.all().await.unwrap_err()).0,
        ErrorCode::BucketNotDefined
    );
    assert_eq!(store.buckets().await.unwrap().count, 2);

    // server.* admin calls through the same client.
    let stats = client.server_stats().await.unwrap();
    assert_eq!(stats.connections.active, 1);
    assert!(stats.rules_enabled);
    let connections = client.server_connections().await.unwrap();
    assert_eq!(connections.len(), 1);
    client.disconnect().await;
}

#[tokio::test]
async fn transactions_commit_atomically_or_not_at_all() {
    let server = start(config()).await;
    let client = connect(&server).await;
    let tasks = client.store().bucket::<Task>("tasks");
    tasks.insert(task("t1", "ann", 1.0)).await.unwrap();

    let result = client
        .store()
        .transaction(vec![
            TransactionOp::Insert {
                bucket: "tasks".into(),
                data: json!({"id": "t2", "title": "second"})
                    .as_object()
                    .cloned()
                    .unwrap(),
            },
            TransactionOp::Update {
                bucket: "tasks".into(),
                key: json!("t1"),
                data: json!({"done": true}).as_object().cloned().unwrap(),
            },
            TransactionOp::Get {
                bucket: "tasks".into(),
                key: json!("t2"),
            },
        ])
        .await
        .unwrap();
    let indexes: Vec<u32> = result.results.iter().map(|r| r.index).collect();
    assert_eq!(indexes, [0, 1, 2]);
    assert_eq!(result.results[1].data["done"], true);
    assert_eq!(
        result.results[2].data["title"], "second",
        "reads its own writes"
    );
    assert!(tasks.get("t1").await.unwrap().unwrap().done);

    // A failing operation rolls back the ones before it.
    let err = client
        .store()
        .transaction(vec![
            TransactionOp::Insert {
                bucket: "tasks".into(),
                data: json!({"id": "t3", "title": "third"})
                    .as_object()
                    .cloned()
                    .unwrap(),
            },
            TransactionOp::Insert {
                bucket: "tasks".into(),
                data: json!({"id": "t4", "title": ""})
                    .as_object()
                    .cloned()
                    .unwrap(),
            },
        ])
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::ValidationError));
    assert_eq!(tasks.get("t3").await.unwrap(), None, "rolled back");
    assert_eq!(tasks.count(None).await.unwrap(), 2);
    client.disconnect().await;
}

#[tokio::test]
async fn subscription_stream_gets_initial_data_then_pushes_from_another_client() {
    let server = start(config()).await;
    let watcher = connect(&server).await;
    let writer = connect(&server).await;
    let tasks = writer.store().bucket::<Task>("tasks");
    tasks.insert(task("t1", "ann", 1.0)).await.unwrap();

    let mut all = watcher
        .store()
        .subscribe::<Vec<Task>>("all-tasks", None)
        .await
        .unwrap();
    let mut open = watcher
        .store()
        .subscribe::<u64>("open-count", None)
        .await
        .unwrap();
    let mut anns = watcher
        .store()
        .subscribe::<Vec<Task>>("by-owner", Some(json!({"owner": "ann"})))
        .await
        .unwrap();
    assert_eq!(ids(&next("initial all", &mut all).await.unwrap()), ["t1"]);
    assert_eq!(next("initial count", &mut open).await.unwrap(), 1);
    assert_eq!(ids(&next("initial anns", &mut anns).await.unwrap()), ["t1"]);
    assert_eq!(
        server.stats().connections.total_store_subscriptions,
        3,
        "three server-side subscriptions"
    );

    tasks.insert(task("t2", "bob", 1.0)).await.unwrap();
    assert_eq!(
        ids(&next("push after insert", &mut all).await.unwrap()),
        ["t1", "t2"]
    );
    assert_eq!(next("count after insert", &mut open).await.unwrap(), 2);

    tasks.update("t1", json!({"done": true})).await.unwrap();
    let after_update = next("push after update", &mut all).await.unwrap();
    assert!(after_update[0].done);
    assert_eq!(next("count after update", &mut open).await.unwrap(), 1);
    let anns_now = next("anns after update", &mut anns).await.unwrap();
    assert_eq!(ids(&anns_now), ["t1"]);
    assert!(anns_now[0].done);

    // Nothing else is pending: bob's insert did not change ann's result, so no push.
    server.store().settle().await;
    let round_trip = watcher.store().buckets().await.unwrap();
    assert_eq!(round_trip.count, 2);
    assert!(
        futures_util::FutureExt::now_or_never(anns.next()).is_none(),
        "no push for an unchanged result"
    );

    // Dropping a stream unsubscribes on the server.
    drop(anns);
    drop(open);
    // The unsubscribes are sent before this round trip and the server answers in order.
    watcher.store().buckets().await.unwrap();
    assert_eq!(server.stats().connections.total_store_subscriptions, 1);
    tasks.delete("t2").await.unwrap();
    assert_eq!(
        ids(&next("push after delete", &mut all).await.unwrap()),
        ["t1"]
    );
    drop(all);
    watcher.store().buckets().await.unwrap();
    assert_eq!(server.stats().connections.total_store_subscriptions, 0);

    // Subscribing to an unknown query fails with its code and registers nothing.
    let err = watcher
        .store()
        .subscribe::<Value>("no-such-query", None)
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::QueryNotDefined));
    assert_eq!(server.stats().connections.total_store_subscriptions, 0);
    watcher.disconnect().await;
    writer.disconnect().await;
}

#[tokio::test]
async fn bulk_operations_with_a_typed_bucket() {
    use noex_client::protocol::AggregateFunction;
    let server = start(config()).await;
    let client = connect(&server).await;
    let tasks = client.store().bucket::<Task>("tasks");
    let mut all = client
        .store()
        .subscribe::<Vec<Task>>("all-tasks", None)
        .await
        .unwrap();
    assert!(next("initial", &mut all).await.unwrap().is_empty());

    let inserted = tasks
        .insert_many([
            task("a", "ann", 1.0),
            task("b", "bob", 2.0),
            task("c", "ann", 3.0),
        ])
        .await
        .unwrap();
    assert_eq!(ids(&inserted), ["a", "b", "c"]);
    // One push for the three records.
    assert_eq!(
        ids(&next("push after insertMany", &mut all).await.unwrap()),
        ["a", "b", "c"]
    );

    // A bad record writes nothing and is named by its index.
    let bad = tasks
        .insert_many([
            json!({"id": "d", "title": "ok"}),
            json!({"id": "e", "title": ""}),
        ])
        .await
        .unwrap_err();
    let (code, _, details) = server_error(bad);
    assert_eq!(code, ErrorCode::ValidationError);
    let details = details.expect("details");
    assert_eq!(details["index"], 1, "{details}");
    assert_eq!(details["issues"][0]["field"], "title", "{details}");
    assert_eq!(tasks.count(None).await.unwrap(), 3);

    let n = tasks
        .update_many(json!({"owner": "ann"}), json!({"done": true}))
        .await
        .unwrap();
    assert_eq!(n, 2);
    let after = next("push after updateMany", &mut all).await.unwrap();
    assert_eq!(after.iter().filter(|t| t.done).count(), 2);

    let totals = tasks
        .group_by(&["owner"], AggregateFunction::Sum, Some("points"), None)
        .await
        .unwrap();
    let totals: Vec<(Value, Value)> = totals
        .into_iter()
        .map(|g| (g.key["owner"].clone(), g.value))
        .collect();
    assert_eq!(totals, [(json!("ann"), json!(4)), (json!("bob"), json!(2))]);

    let up = tasks.upsert(json!({"id": "b", "points": 7})).await.unwrap();
    assert_eq!((up.points, up.title.as_str()), (7.0, "task b"));
    let new = tasks
        .upsert(json!({"id": "z", "title": "new"}))
        .await
        .unwrap();
    assert_eq!(new.points, 1.0);

    assert_eq!(tasks.delete_many(json!({"done": true})).await.unwrap(), 2);
    let left: Vec<String> = tasks
        .all()
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.id)
        .collect();
    assert_eq!(left, ["b", "z"]);
}
