//! The permission bypasses of the hostile-clients attack run, each replayed with exactly the
//! frames the attacker sent, on a real server with static tokens and `default: "deny"`:
//! permissions are decided from the typed operation, never from raw request fields;
//! listings show only what the session may see; rules and queries need rights on what they
//! read and write; subscriptions end with the session that allowed them.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;

use common::{Client, local_config};
use noex_server::{AuthConfig, Clock, ManualClock, Server, ServerHandle, StaticToken};
use serde_json::{Value, json};

const T0: u64 = 1_800_000_000_000;

fn token(user: &str, roles: &[&str], expires_at: Option<u64>) -> StaticToken {
    StaticToken {
        user_id: user.into(),
        roles: roles.iter().map(|r| r.to_string()).collect(),
        expires_at,
    }
}

/// Admin, a tenant allowed `store.*` on bucket `public` only, an operator allowed `rules.*`
/// on topics `order.*` (and facts `order:*`), and a few narrower roles.
async fn start() -> (ServerHandle, Arc<ManualClock>) {
    let mut config = local_config();
    config.rules.enabled = Some(true);
    config.rules.store_bridge = true;
    config.store = serde_json::from_value(json!({
        "buckets": {
            "public": {"key": "id", "schema": {"id": {"type": "string"}, "owner": {"type": "string"}}},
            "secret": {"key": "id", "schema": {"id": {"type": "string"}, "owner": {"type": "string"}}}
        },
        "queries": {
            "public-all": {"bucket": "public"},
            "secret-all": {"bucket": "secret"}
        }
    }))
    .expect("store section");
    config.auth = Some(AuthConfig {
        required: true,
        tokens: Some(BTreeMap::from([
            ("admin-t".into(), token("ada", &["admin"], None)),
            ("tenant-t".into(), token("ten", &["tenant"], None)),
            ("other-t".into(), token("oth", &["other-tenant"], None)),
            ("ops-t".into(), token("ops", &["ops"], None)),
            ("watcher-t".into(), token("wat", &["watcher"], None)),
            ("ruler-t".into(), token("rul", &["ruler"], None)),
            (
                "short-t".into(),
                token("sho", &["tenant"], Some(T0 + 1_000)),
            ),
        ])),
        permissions: serde_json::from_value(json!({
            "default": "deny",
            "rules": [
                {"role": "admin", "allow": "*"},
                {"role": "tenant", "allow": "store.*", "buckets": ["public"]},
                {"role": "other-tenant", "allow": "store.*", "buckets": ["secret"]},
                {"role": "ops", "allow": "rules.*", "topics": ["order.*", "order:*"]},
                {"role": "watcher", "allow": "rules.subscribe", "topics": ["bucket.*"]},
                {"role": "watcher", "allow": "store.all", "buckets": ["public"]},
                {"role": "ruler", "allow": "rules.*", "topics": ["order.*", "bucket.*"]}
            ]
        }))
        .expect("permissions"),
        ..AuthConfig::default()
    });
    let clock = Arc::new(ManualClock::new(T0));
    let server = Server::builder(config)
        .clock(clock.clone() as Arc<dyn Clock>)
        .start()
        .await
        .expect("server starts");
    (server, clock)
}

async fn logged_in(server: &ServerHandle, token: &str) -> Client {
    let (mut client, _) = Client::connect(server).await;
    client.ok("auth.login", json!({"token": token})).await;
    client
}

/// Sends exactly `frame` (with a fresh id) and returns the answer.
async fn raw(client: &mut Client, id: u64, frame: Value) -> Value {
    let mut frame = frame;
    frame["id"] = json!(id);
    client.request(frame).await
}

fn forbidden(answer: &Value, message: &str) {
    assert_eq!(answer["code"], "FORBIDDEN", "{answer}");
    assert_eq!(answer["message"], message, "{answer}");
}

#[tokio::test]
async fn bucket_administration_is_checked_on_the_bucket_it_names() {
    let (server, _) = start().await;
    let mut tenant = logged_in(&server, "tenant-t").await;

    let drop = raw(
        &mut tenant,
        1,
        json!({"type":"store.dropBucket","name":"secret","bucket":"public"}),
    )
    .await;
    forbidden(&drop, "No permission for store.dropBucket on secret");
    assert!(server.store().bucket_names().contains(&"secret".to_owned()));

    let schema = raw(
        &mut tenant,
        2,
        json!({"type":"store.getBucketSchema","name":"secret","bucket":"public"}),
    )
    .await;
    forbidden(&schema, "No permission for store.getBucketSchema on secret");

    let update = raw(
        &mut tenant,
        3,
        json!({"type":"store.updateBucket","name":"secret","bucket":"public",
               "updates":{"addFields":{"leak":{"type":"string"}}}}),
    )
    .await;
    forbidden(&update, "No permission for store.updateBucket on secret");
    let schema = server
        .store()
        .bucket_schema("secret")
        .expect("secret exists");
    assert!(
        !serde_json::to_value(schema)
            .expect("json")
            .to_string()
            .contains("leak"),
        "secret's schema unchanged"
    );

    // Its own bucket still works.
    let own = raw(
        &mut tenant,
        4,
        json!({"type":"store.getBucketSchema","name":"public"}),
    )
    .await;
    assert_eq!(own["data"]["name"], "public", "{own}");
}

#[tokio::test]
async fn bulk_operations_are_checked_on_the_bucket_they_name() {
    let (server, _) = start().await;
    let mut admin = logged_in(&server, "admin-t").await;
    admin
        .ok(
            "store.insert",
            json!({"bucket": "secret", "data": {"id": "s1", "owner": "ada"}}),
        )
        .await;
    let mut tenant = logged_in(&server, "tenant-t").await;
    // Each with a decoy `name` / `buckets` field naming the bucket the tenant may use.
    let frames = [
        (
            "store.insertMany",
            json!({"type":"store.insertMany","bucket":"secret","name":"public",
                   "data":[{"id":"x1","owner":"ten"},{"id":"x2","owner":"ten"}]}),
        ),
        (
            "store.updateMany",
            json!({"type":"store.updateMany","bucket":"secret","buckets":["public"],
                   "filter":{},"data":{"owner":"ten"}}),
        ),
        (
            "store.deleteMany",
            json!({"type":"store.deleteMany","bucket":"secret","name":"public","filter":{}}),
        ),
        (
            "store.upsert",
            json!({"type":"store.upsert","bucket":"secret","name":"public",
                   "data":{"id":"s1","owner":"ten"}}),
        ),
        (
            "store.groupBy",
            json!({"type":"store.groupBy","bucket":"secret","name":"public",
                   "field":"owner","aggregate":{"function":"count"}}),
        ),
    ];
    for (i, (op, frame)) in frames.into_iter().enumerate() {
        let answer = raw(&mut tenant, 10 + i as u64, frame).await;
        forbidden(&answer, &format!("No permission for {op} on secret"));
    }
    // Nothing was written: the one record is as the admin left it.
    let all = admin.ok("store.all", json!({"bucket": "secret"})).await;
    assert_eq!(all.as_array().map(Vec::len), Some(1), "{all}");
    assert_eq!(all[0]["owner"], "ada", "{all}");

    // The same operations on `public` are allowed.
    let inserted = raw(
        &mut tenant,
        20,
        json!({"type":"store.insertMany","bucket":"public","data":[{"id":"p1","owner":"ten"}]}),
    )
    .await;
    assert_eq!(inserted["data"][0]["id"], "p1", "{inserted}");
    let grouped = raw(
        &mut tenant,
        21,
        json!({"type":"store.groupBy","bucket":"public","field":"owner","aggregate":{"function":"count"}}),
    )
    .await;
    assert_eq!(
        grouped["data"],
        json!([{"key": {"owner": "ten"}, "value": 1}]),
        "{grouped}"
    );
    let deleted = raw(
        &mut tenant,
        22,
        json!({"type":"store.deleteMany","bucket":"public","filter":{"owner":"ten"}}),
    )
    .await;
    assert_eq!(deleted["data"], 1, "{deleted}");
}

#[tokio::test]
async fn listings_show_only_what_the_session_may_see() {
    let (server, _) = start().await;
    let mut tenant = logged_in(&server, "tenant-t").await;

    let buckets = raw(
        &mut tenant,
        1,
        json!({"type":"store.buckets","bucket":"public"}),
    )
    .await;
    assert_eq!(
        buckets["data"],
        json!({"count": 1, "names": ["public"]}),
        "{buckets}"
    );

    let queries = raw(
        &mut tenant,
        2,
        json!({"type":"store.listQueries","bucket":"public"}),
    )
    .await;
    let names: Vec<&str> = queries["data"]["queries"]
        .as_array()
        .expect("queries")
        .iter()
        .filter_map(|q| q["name"].as_str())
        .collect();
    assert_eq!(names, ["public-all"], "{queries}");

    let stats = raw(
        &mut tenant,
        3,
        json!({"type":"store.stats","bucket":"public"}),
    )
    .await;
    assert_eq!(
        stats["data"]["buckets"]["names"],
        json!(["public"]),
        "{stats}"
    );
    assert_eq!(
        stats["data"]["records"]["perBucket"]
            .as_object()
            .map(|m| m.len()),
        Some(1),
        "{stats}"
    );

    // The query counts too: a subscription to the secret bucket's query is not the
    // tenant's business (before, the global counts showed it).
    let mut admin = logged_in(&server, "admin-t").await;
    admin
        .ok("store.subscribe", json!({"query": "secret-all"}))
        .await;
    let stats = raw(
        &mut tenant,
        4,
        json!({"type":"store.stats","bucket":"public"}),
    )
    .await;
    assert_eq!(
        stats["data"]["queries"],
        json!({"defined": 1, "activeSubscriptions": 0}),
        "{stats}"
    );
    let all = admin.ok("store.stats", json!({})).await;
    assert_eq!(
        all["queries"],
        json!({"defined": 2, "activeSubscriptions": 1}),
        "{all}"
    );

    // The admin sees everything.
    let all = admin.ok("store.buckets", json!({})).await;
    assert_eq!(all["names"], json!(["public", "secret"]));
}

#[tokio::test]
async fn a_query_is_checked_on_the_bucket_it_reads() {
    let (server, _) = start().await;
    let mut admin = logged_in(&server, "admin-t").await;
    admin
        .ok(
            "store.insert",
            json!({"bucket": "secret", "data": {"id": "s1", "owner": "boss"}}),
        )
        .await;
    let mut tenant = logged_in(&server, "tenant-t").await;

    // Defining a query over `secret` under a harmless name, with `bucket: public` alongside.
    let define = raw(
        &mut tenant,
        1,
        json!({"type":"store.defineQuery","name":"public","config":{"bucket":"secret"},"bucket":"public"}),
    )
    .await;
    forbidden(&define, "No permission for store.defineQuery on secret");
    assert!(server.store().query_bucket("public").is_none());

    // Subscribing to an existing query over `secret` (whatever the request also says).
    let subscribe = raw(
        &mut tenant,
        2,
        json!({"type":"store.subscribe","query":"secret-all","bucket":"public"}),
    )
    .await;
    forbidden(
        &subscribe,
        "No permission for store.subscribe on secret-all",
    );

    // Over its own bucket both work.
    tenant
        .ok(
            "store.defineQuery",
            json!({"name": "mine", "config": {"bucket": "public"}}),
        )
        .await;
    let sub = tenant.ok("store.subscribe", json!({"query": "mine"})).await;
    assert_eq!(sub["data"], json!([]));
}

#[tokio::test]
async fn facts_and_rules_are_checked_on_their_keys_whatever_topic_is_sent() {
    let (server, _) = start().await;
    let mut admin = logged_in(&server, "admin-t").await;
    admin
        .ok(
            "rules.setFact",
            json!({"key": "admin:flag", "value": "s3cr3t"}),
        )
        .await;
    admin
        .ok("rules.setFact", json!({"key": "order:1", "value": "open"}))
        .await;
    admin
        .ok(
            "rules.registerRule",
            json!({"rule": {"id": "admin-rule", "name": "a",
                "trigger": {"type": "event", "topic": "admin.audit"},
                "actions": [{"type": "set_fact", "key": "admin:last", "value": 1}]}}),
        )
        .await;
    admin
        .ok(
            "rules.registerRule",
            json!({"rule": {"id": "order-rule", "name": "o",
                "trigger": {"type": "event", "topic": "order.created"},
                "actions": [{"type": "emit_event", "topic": "order.seen"}]}}),
        )
        .await;
    let mut ops = logged_in(&server, "ops-t").await;

    let get = raw(
        &mut ops,
        1,
        json!({"type":"rules.getFact","key":"admin:flag","topic":"order.x"}),
    )
    .await;
    forbidden(&get, "No permission for rules.getFact on admin:flag");

    let set = raw(
        &mut ops,
        2,
        json!({"type":"rules.setFact","key":"admin:flag","value":"pwned","topic":"order.x"}),
    )
    .await;
    forbidden(&set, "No permission for rules.setFact on admin:flag");
    let flag = admin
        .ok("rules.getFact", json!({"key": "admin:flag"}))
        .await;
    assert_eq!(flag, "s3cr3t");

    let all = raw(
        &mut ops,
        3,
        json!({"type":"rules.getAllFacts","topic":"order.x"}),
    )
    .await;
    let keys: Vec<&str> = all["data"]
        .as_array()
        .expect("facts")
        .iter()
        .filter_map(|f| f["key"].as_str())
        .collect();
    assert_eq!(keys, ["order:1"], "{all}");

    let rules = raw(
        &mut ops,
        4,
        json!({"type":"rules.getRules","topic":"order.x"}),
    )
    .await;
    let ids: Vec<&str> = rules["data"]["rules"]
        .as_array()
        .expect("rules")
        .iter()
        .filter_map(|r| r["id"].as_str())
        .collect();
    assert_eq!(ids, ["order-rule"], "{rules}");

    let get_rule = raw(
        &mut ops,
        5,
        json!({"type":"rules.getRule","ruleId":"admin-rule","topic":"order.x"}),
    )
    .await;
    forbidden(&get_rule, "No permission for rules.getRule on admin-rule");
    let disable = raw(
        &mut ops,
        6,
        json!({"type":"rules.disableRule","ruleId":"admin-rule","topic":"order.x"}),
    )
    .await;
    forbidden(
        &disable,
        "No permission for rules.disableRule on admin-rule",
    );

    let subscribe = raw(
        &mut ops,
        7,
        json!({"type":"rules.subscribe","pattern":"bucket.*","topic":"order.x"}),
    )
    .await;
    forbidden(&subscribe, "No permission for rules.subscribe on bucket.*");
}

#[tokio::test]
async fn a_rule_needs_rights_on_everything_it_reads_and_writes() {
    let (server, _) = start().await;
    let copier = |id: &str| {
        json!({"type":"rules.registerRule","topic":"order.x","rule":{
            "id": id, "name": "copy secret inserts",
            "trigger": {"type": "event", "topic": "bucket.secret.inserted"},
            "actions": [{"type": "emit_event", "topic": "order.leak",
                         "data": {"record": {"ref": "event.record"}}}]
        }})
    };
    // Topics limited to order.*: the trigger's topic is not covered.
    let mut ops = logged_in(&server, "ops-t").await;
    let answer = raw(&mut ops, 1, copier("leak-1")).await;
    forbidden(&answer, "No permission for rules.registerRule on leak-1");

    // Topics cover bucket.*, but the role may not read bucket `secret`, whose change events
    // carry its records.
    let mut ruler = logged_in(&server, "ruler-t").await;
    let answer = raw(&mut ruler, 1, copier("leak-2")).await;
    forbidden(&answer, "No permission for store.all on secret");
    assert!(server.rules().expect("engine").get_rules().is_empty());

    // A rule inside its rights registers.
    ruler
        .ok(
            "rules.registerRule",
            json!({"rule": {"id": "fine", "name": "fine",
                "trigger": {"type": "event", "topic": "order.created"},
                "actions": [{"type": "emit_event", "topic": "order.seen"}]}}),
        )
        .await;
    // ...and may not be widened by an update.
    let widen = raw(
        &mut ruler,
        2,
        json!({"type":"rules.updateRule","ruleId":"fine",
               "updates":{"trigger":{"type":"event","topic":"bucket.secret.inserted"}}}),
    )
    .await;
    forbidden(&widen, "No permission for store.all on secret");
}

#[tokio::test]
async fn bucket_change_events_reach_only_subscribers_who_may_read_the_bucket() {
    let (server, _) = start().await;
    let mut watcher = logged_in(&server, "watcher-t").await;
    let sub = raw(
        &mut watcher,
        1,
        json!({"type":"rules.subscribe","pattern":"bucket.*"}),
    )
    .await;
    let sub_id = sub["data"]["subscriptionId"].clone();
    assert!(sub_id.is_string(), "{sub}");

    let mut admin = logged_in(&server, "admin-t").await;
    admin
        .ok(
            "store.insert",
            json!({"bucket": "secret", "data": {"id": "s1", "owner": "boss"}}),
        )
        .await;
    admin
        .ok(
            "store.insert",
            json!({"bucket": "public", "data": {"id": "p1", "owner": "me"}}),
        )
        .await;
    server.store().settle().await;

    let push = watcher.next_push().await;
    assert_eq!(push["subscriptionId"], sub_id);
    assert_eq!(push["data"]["topic"], "bucket.public.inserted", "{push}");
    // The secret insert came first and was not delivered.
    watcher.ok("store.all", json!({"bucket": "public"})).await;
    assert!(watcher.pushes.is_empty(), "{:?}", watcher.pushes);
}

/// Reads frames until the id-0 error that ends `subscription`.
async fn ended(client: &mut Client, subscription: &Value) -> Value {
    loop {
        let frame = client.recv().await;
        if frame["type"] == "error" && frame["id"] == 0 {
            assert_eq!(frame["details"]["subscriptionId"], *subscription, "{frame}");
            return frame;
        }
        assert_eq!(frame["type"], "push", "unexpected frame {frame}");
    }
}

async fn subscribe_public(client: &mut Client) -> Value {
    let sub = client
        .ok("store.subscribe", json!({"query": "public-all"}))
        .await;
    sub["subscriptionId"].clone()
}

async fn no_more_pushes(server: &ServerHandle, client: &mut Client, admin: &mut Client, id: &str) {
    admin
        .ok(
            "store.insert",
            json!({"bucket": "public", "data": {"id": id, "owner": "x"}}),
        )
        .await;
    server.store().settle().await;
    client.pushes.clear();
    let frame = client
        .request(json!({"id": 999, "type": "auth.whoami"}))
        .await;
    assert_eq!(frame["id"], 999, "no push before the answer: {frame}");
}

#[tokio::test]
async fn subscriptions_end_with_the_session_that_allowed_them() {
    let (server, clock) = start().await;
    let mut admin = logged_in(&server, "admin-t").await;

    // Logout.
    let mut client = logged_in(&server, "tenant-t").await;
    let sub = subscribe_public(&mut client).await;
    client.send(json!({"id": 1, "type": "auth.logout"})).await;
    let notice = ended(&mut client, &sub).await;
    assert_eq!(notice["code"], "UNAUTHORIZED", "{notice}");
    let logout = client.recv().await;
    assert_eq!(logout["data"]["loggedOut"], true, "{logout}");
    no_more_pushes(&server, &mut client, &mut admin, "a").await;

    // Re-login as a role that may not read the bucket.
    let mut client = logged_in(&server, "tenant-t").await;
    let sub = subscribe_public(&mut client).await;
    client
        .send(json!({"id": 2, "type": "auth.login", "token": "other-t"}))
        .await;
    let notice = ended(&mut client, &sub).await;
    assert_eq!(notice["code"], "FORBIDDEN", "{notice}");
    assert_eq!(
        notice["message"],
        format!(
            "Subscription {} ended: No permission for store.subscribe on public-all",
            sub.as_str().unwrap_or_default()
        )
    );
    let login = client.recv().await;
    assert_eq!(login["data"]["userId"], "oth", "{login}");
    no_more_pushes(&server, &mut client, &mut admin, "b").await;
    assert_eq!(server.store().stats().queries.active_subscriptions, 0);

    // Re-login as a role that may keep it: it stays.
    let mut client = logged_in(&server, "tenant-t").await;
    let sub = subscribe_public(&mut client).await;
    client.ok("auth.login", json!({"token": "short-t"})).await;
    admin
        .ok(
            "store.insert",
            json!({"bucket": "public", "data": {"id": "c", "owner": "x"}}),
        )
        .await;
    let push = client.next_push().await;
    assert_eq!(push["subscriptionId"], sub);

    // Expiry, without the client sending anything.
    clock.advance(2_000);
    let notice = ended(&mut client, &sub).await;
    assert_eq!(notice["code"], "UNAUTHORIZED", "{notice}");
    assert!(
        notice["message"]
            .as_str()
            .is_some_and(|m| m.ends_with("Session expired")),
        "{notice}"
    );
    no_more_pushes(&server, &mut client, &mut admin, "d").await;
}

#[tokio::test]
async fn a_session_may_always_end_its_own_subscriptions() {
    let (server, _) = start().await;
    // The watcher's rules allow `rules.subscribe` and nothing about unsubscribing.
    let mut watcher = logged_in(&server, "watcher-t").await;
    let sub = watcher
        .ok("rules.subscribe", json!({"pattern": "bucket.*"}))
        .await;
    let answer = watcher
        .request(
            json!({"id": 2, "type": "rules.unsubscribe", "subscriptionId": sub["subscriptionId"]}),
        )
        .await;
    assert_eq!(answer["data"]["unsubscribed"], true, "{answer}");
    // Someone else's (or no) subscription id is still NOT_FOUND, not a way to probe.
    let answer = watcher
        .request(json!({"id": 3, "type": "store.unsubscribe", "subscriptionId": "sub-999"}))
        .await;
    assert_eq!(answer["code"], "NOT_FOUND", "{answer}");
}

/// Red-team rerun: timer names were no resource, so a role limited to `order.*` could
/// cancel or override another tenant's timer (`set_timer` / `cancel_timer` of its name) or
/// read its data (a `timer` trigger on its name fires with the timer's `onExpire` data).
/// Timer names are in the fact grammar and covered by `topics` like fact keys.
#[tokio::test]
async fn timer_names_a_rule_touches_are_checked_like_fact_keys() {
    let (server, _) = start().await;
    let mut ops = logged_in(&server, "ops-t").await;
    let register = |id: &str, trigger: Value, actions: Value| {
        json!({"type": "rules.registerRule", "rule": {
            "id": id, "name": id, "trigger": trigger, "actions": actions}})
    };
    let on_order = json!({"type": "event", "topic": "order.created"});
    let set_timer = |name: &str| {
        json!([{"type": "set_timer", "timer": {"name": name, "duration": "1h",
                "onExpire": {"topic": "order.expired"}}}])
    };
    let attacks = [
        // Overrides (replaces) the other tenant's timer.
        ("override", on_order.clone(), set_timer("payment:timeout")),
        // ...also through a template whose fixed part is not the role's.
        (
            "template",
            on_order.clone(),
            set_timer("payment:${event.id}"),
        ),
        // Cancels it.
        (
            "cancel",
            on_order.clone(),
            json!([{"type": "cancel_timer", "name": "payment:timeout"}]),
        ),
        // ...nested in a for_each.
        (
            "nested",
            on_order.clone(),
            json!([{"type": "for_each", "collection": [1], "as": "i",
                    "actions": [{"type": "cancel_timer", "name": "payment:timeout"}]}]),
        ),
        // Fires when the other tenant's timer expires and sees its data.
        (
            "listen",
            json!({"type": "timer", "name": "payment:*"}),
            json!([{"type": "emit_event", "topic": "order.copy", "data": {"d": {"ref": "event.secret"}}}]),
        ),
        // A template starting with a template can produce any name.
        ("any", on_order.clone(), set_timer("${event.name}")),
    ];
    for (n, (id, trigger, actions)) in attacks.into_iter().enumerate() {
        let answer = raw(&mut ops, n as u64 + 1, register(id, trigger, actions)).await;
        forbidden(
            &answer,
            &format!("No permission for rules.registerRule on {id}"),
        );
    }
    assert!(server.rules().expect("engine").get_rules().is_empty());

    // Its own timer names (`order:*`, one segment) are fine.
    ops.ok(
        "rules.registerRule",
        json!({"rule": {"id": "own", "name": "own", "trigger": on_order,
        "actions": [
            {"type": "set_timer", "timer": {"name": "order:reminder", "duration": "1h",
                "onExpire": {"topic": "order.expired"}}},
            {"type": "cancel_timer", "name": "order:old"}
        ]}}),
    )
    .await;
    ops.ok(
        "rules.registerRule",
        json!({"rule": {"id": "own-listen", "name": "own-listen",
            "trigger": {"type": "timer", "name": "order:*"},
            "actions": [{"type": "emit_event", "topic": "order.late"}]}}),
    )
    .await;
    // ...and may not be widened to another tenant's timer by an update.
    let widen = raw(
        &mut ops,
        10,
        json!({"type": "rules.updateRule", "ruleId": "own-listen",
               "updates": {"trigger": {"type": "timer", "name": "payment:timeout"}}}),
    )
    .await;
    forbidden(&widen, "No permission for rules.updateRule on own-listen");
}

/// Fourth red-team run: the temporal byte pool was shared fairly per rule, so a tenant with
/// twenty count rules held twenty shares and the administrator's one rule (a count of 40
/// events of 200 KB) never fired. Rules are owned by the user who registered them, and a
/// full pool is shared by owner first.
#[tokio::test]
async fn a_tenant_with_many_temporal_rules_does_not_starve_the_admins_rule() {
    let mut config = local_config();
    config.rules.enabled = Some(true);
    config.limits.max_rule_temporal_bytes = 8 * 1024 * 1024;
    config.auth = Some(AuthConfig {
        required: true,
        tokens: Some(BTreeMap::from([
            ("admin-t".into(), token("ada", &["admin"], None)),
            ("ops-t".into(), token("ops", &["ops"], None)),
        ])),
        permissions: serde_json::from_value(json!({
            "default": "deny",
            "rules": [
                {"role": "admin", "allow": "*"},
                {"role": "ops", "allow": "rules.*", "topics": ["order.*", "order:*"]}
            ]
        }))
        .expect("permissions"),
        ..AuthConfig::default()
    });
    let server = Server::builder(config)
        .start()
        .await
        .expect("server starts");
    let mut tenant = logged_in(&server, "ops-t").await;
    for n in 0..20 {
        tenant
            .ok(
                "rules.registerRule",
                json!({"rule": {"id": format!("hoard-{n}"), "name": "hoard",
                    "trigger": {"type": "temporal", "pattern": {"type": "count",
                        "event": {"topic": "order.c"}, "threshold": 1_000_000, "window": "1h"}},
                    "actions": [{"type": "log", "level": "info", "message": "never"}]}}),
            )
            .await;
    }
    let blob = "x".repeat(900_000);
    for n in 0..30 {
        tenant
            .ok(
                "rules.emit",
                json!({"topic": "order.c", "data": {"n": n, "b": blob}}),
            )
            .await;
    }
    let mut admin = logged_in(&server, "admin-t").await;
    admin
        .ok(
            "rules.registerRule",
            json!({"rule": {"id": "alarm", "name": "alarm",
                "trigger": {"type": "temporal", "pattern": {"type": "count",
                    "event": {"topic": "pay.fail"}, "threshold": 10, "window": "1h"}},
                "actions": [{"type": "set_fact", "key": "admin:alarm", "value": true}]}}),
        )
        .await;
    let payload = "y".repeat(200_000);
    for n in 0..10 {
        admin
            .ok(
                "rules.emit",
                json!({"topic": "pay.fail", "data": {"n": n, "b": payload}}),
            )
            .await;
    }
    let fact = admin
        .ok("rules.getFact", json!({"key": "admin:alarm"}))
        .await;
    assert_eq!(fact, json!(true), "the admin's count fired");
}
