//! Frame-by-frame tests of the state machine: no sockets, time is a number.

use noex_protocol::{AuthOp, ErrorCode, IdentityOp, Operation, ServerOp};
use serde_json::{Value, json};

use super::*;

const WELCOME: &str = r#"{"type":"welcome","version":"1.0.0","serverTime":1,"requiresAuth":false}"#;

fn drain(core: &mut ClientCore) -> Vec<Output> {
    std::iter::from_fn(|| core.poll_output()).collect()
}

fn sent(outputs: &[Output]) -> Vec<Value> {
    outputs
        .iter()
        .filter_map(|o| match o {
            Output::Send(t) => serde_json::from_str(t).ok(),
            _ => None,
        })
        .collect()
}

fn config() -> CoreConfig {
    CoreConfig {
        request_timeout_ms: 1000,
        reconnect: ReconnectPolicy {
            initial_delay_ms: 100,
            max_delay_ms: 1000,
            multiplier: 2.0,
            max_retries: Some(3),
            jitter_ms: 20,
            enabled: true,
        },
        ..Default::default()
    }
}

fn open(config: CoreConfig) -> ClientCore {
    let mut core = ClientCore::new(config);
    core.connection_opened(0);
    core.frame_received(WELCOME, 0);
    let out = drain(&mut core);
    assert!(matches!(
        out.as_slice(),
        [Output::Event(LifecycleEvent::Connected(_))]
    ));
    core
}

fn stats() -> Operation {
    Operation::Server(ServerOp::Stats)
}

#[test]
fn out_of_order_results_are_correlated() {
    let mut core = open(config());
    let a = core.request(stats(), 0);
    let b = core.request(stats(), 0);
    let frames = sent(&drain(&mut core));
    assert_eq!(frames[0], json!({"id": 1, "type": "server.stats"}));
    assert_eq!(frames[1]["id"], 2);
    core.frame_received(r#"{"id":2,"type":"result","data":"second"}"#, 5);
    core.frame_received(
        r#"{"id":1,"type":"error","code":"NOT_FOUND","message":"nope","details":{"k":1}}"#,
        6,
    );
    let out = drain(&mut core);
    assert_eq!(
        out,
        vec![
            Output::Resolve {
                handle: b,
                result: Ok(json!("second"))
            },
            Output::Resolve {
                handle: a,
                result: Err(ClientError::Server {
                    code: ErrorCode::NotFound,
                    message: "nope".into(),
                    details: Some(json!({"k": 1})),
                }),
            },
        ]
    );
    assert_eq!(core.pending_count(), 0);
}

#[test]
fn requests_time_out_at_their_own_deadline() {
    let mut core = open(config());
    let a = core.request(stats(), 0);
    let b = core.request(stats(), 500);
    drain(&mut core);
    assert_eq!(core.next_timeout(), Some(1000));
    core.handle_timeout(999);
    assert!(drain(&mut core).is_empty());
    core.handle_timeout(1000);
    assert_eq!(
        drain(&mut core),
        vec![Output::Resolve {
            handle: a,
            result: Err(ClientError::Timeout)
        }]
    );
    assert_eq!(core.next_timeout(), Some(1500));
    // A late answer for the timed-out request is ignored.
    core.frame_received(r#"{"id":1,"type":"result","data":1}"#, 1200);
    assert!(drain(&mut core).is_empty());
    core.handle_timeout(1500);
    assert_eq!(
        drain(&mut core),
        vec![Output::Resolve {
            handle: b,
            result: Err(ClientError::Timeout)
        }]
    );
}

#[test]
fn pings_are_answered_unless_disabled() {
    let mut core = open(config());
    core.frame_received(r#"{"type":"ping","timestamp":1234}"#, 0);
    assert_eq!(
        sent(&drain(&mut core)),
        vec![json!({"type": "pong", "timestamp": 1234})]
    );
    let mut quiet = open(CoreConfig {
        heartbeat_replies: false,
        ..config()
    });
    quiet.frame_received(r#"{"type":"ping","timestamp":1}"#, 0);
    assert!(drain(&mut quiet).is_empty());
}

#[test]
fn malformed_frames_and_id_zero_errors_become_events() {
    let mut core = open(config());
    core.frame_received("not json", 0);
    core.frame_received(r#"{"type":"result","id":"x"}"#, 0);
    core.frame_received(
        r#"{"id":0,"type":"error","code":"PARSE_ERROR","message":"Invalid JSON"}"#,
        0,
    );
    let out = drain(&mut core);
    assert!(matches!(
        out[0],
        Output::Event(LifecycleEvent::Error(ClientError::Protocol(_)))
    ));
    assert!(matches!(
        out[1],
        Output::Event(LifecycleEvent::Error(ClientError::Protocol(_)))
    ));
    assert!(matches!(
        &out[2],
        Output::Event(LifecycleEvent::Error(ClientError::Server {
            code: ErrorCode::ParseError,
            ..
        }))
    ));
}

#[test]
fn reconnect_schedule_with_jitter_bounds_and_give_up() {
    let mut core = open(config());
    let pending = core.request(stats(), 0);
    drain(&mut core);
    core.connection_closed(10);
    let mut out = drain(&mut core);
    assert_eq!(
        out[0],
        Output::Resolve {
            handle: pending,
            result: Err(ClientError::Disconnected)
        }
    );
    assert_eq!(
        out[1],
        Output::Event(LifecycleEvent::Disconnected {
            will_reconnect: true
        })
    );
    let mut now = 10;
    for attempt in 1..=3u32 {
        if attempt > 1 {
            // The previous attempt failed.
            core.connection_closed(now);
            out = drain(&mut core);
        }
        let Some(Output::Event(LifecycleEvent::Reconnecting {
            attempt: a,
            delay_ms,
        })) = out.last()
        else {
            panic!("expected reconnecting, got {out:?}");
        };
        assert_eq!(*a, attempt);
        let base = 100u64 << (attempt - 1);
        assert!(
            *delay_ms >= base && *delay_ms <= base + 20,
            "{delay_ms} vs {base}"
        );
        assert_eq!(core.next_timeout(), Some(now + delay_ms));
        core.handle_timeout(now + delay_ms - 1);
        assert!(drain(&mut core).is_empty());
        now += delay_ms;
        core.handle_timeout(now);
        assert_eq!(drain(&mut core), vec![Output::Connect]);
        // Requests while reconnecting fail at once.
        let h = core.request(stats(), now);
        assert_eq!(
            drain(&mut core),
            vec![Output::Resolve {
                handle: h,
                result: Err(ClientError::Disconnected)
            }]
        );
    }
    core.connection_closed(now);
    assert_eq!(
        drain(&mut core),
        vec![Output::Event(LifecycleEvent::Disconnected {
            will_reconnect: false
        })]
    );
    assert_eq!(core.next_timeout(), None);
}

#[test]
fn relogin_then_resubscribe_delivers_fresh_data() {
    let mut core = open(CoreConfig {
        auth_token: Some("tok".into()),
        ..config()
    });
    let (h, store_key) = core.subscribe(
        SubscriptionTarget::Store {
            query: "all-users".into(),
            params: Some(json!({"a": 1})),
        },
        0,
    );
    let (h2, rules_key) = core.subscribe(
        SubscriptionTarget::Rules {
            pattern: "order.*".into(),
        },
        0,
    );
    let frames = sent(&drain(&mut core));
    assert_eq!(
        frames[0],
        json!({"id": 1, "type": "store.subscribe", "query": "all-users", "params": {"a": 1}})
    );
    assert_eq!(
        frames[1],
        json!({"id": 2, "type": "rules.subscribe", "pattern": "order.*"})
    );
    core.frame_received(
        r#"{"id":1,"type":"result","data":{"subscriptionId":"s1","data":[1]}}"#,
        1,
    );
    core.frame_received(
        r#"{"id":2,"type":"result","data":{"subscriptionId":"r1"}}"#,
        1,
    );
    core.frame_received(
        r#"{"type":"push","channel":"subscription","subscriptionId":"s1","data":[1,2]}"#,
        2,
    );
    core.frame_received(r#"{"type":"push","channel":"event","subscriptionId":"r1","data":{"topic":"order.x","event":{}}}"#, 2);
    // A push for an unknown id or the wrong channel is dropped.
    core.frame_received(
        r#"{"type":"push","channel":"event","subscriptionId":"s1","data":0}"#,
        2,
    );
    let out = drain(&mut core);
    assert_eq!(
        out[0],
        Output::Resolve {
            handle: h,
            result: Ok(json!([1]))
        }
    );
    assert_eq!(
        out[1],
        Output::Resolve {
            handle: h2,
            result: Ok(json!({"subscriptionId": "r1"}))
        }
    );
    assert_eq!(
        out[2],
        Output::Push {
            key: store_key,
            data: json!([1, 2])
        }
    );
    assert_eq!(
        out[3],
        Output::Push {
            key: rules_key,
            data: json!({"topic": "order.x", "event": {}})
        }
    );
    assert_eq!(out.len(), 4);

    core.connection_closed(10);
    drain(&mut core);
    let at = core.next_timeout().unwrap_or(0);
    core.handle_timeout(at);
    assert_eq!(drain(&mut core), vec![Output::Connect]);
    core.connection_opened(at);
    // Old server ids are gone.
    core.frame_received(
        r#"{"type":"push","channel":"subscription","subscriptionId":"s1","data":0}"#,
        at,
    );
    assert!(drain(&mut core).is_empty());
    core.frame_received(WELCOME, at);
    let out = drain(&mut core);
    assert!(matches!(
        out[0],
        Output::Event(LifecycleEvent::Reconnected(_))
    ));
    let frames = sent(&out);
    assert_eq!(
        frames[0],
        json!({"id": 3, "type": "auth.login", "token": "tok"})
    );
    assert_eq!(
        frames[1],
        json!({"id": 4, "type": "store.subscribe", "query": "all-users", "params": {"a": 1}})
    );
    assert_eq!(
        frames[2],
        json!({"id": 5, "type": "rules.subscribe", "pattern": "order.*"})
    );
    core.frame_received(r#"{"id":3,"type":"result","data":{"userId":"u"}}"#, at);
    core.frame_received(
        r#"{"id":4,"type":"result","data":{"subscriptionId":"s2","data":[9]}}"#,
        at,
    );
    core.frame_received(
        r#"{"id":5,"type":"result","data":{"subscriptionId":"r2"}}"#,
        at,
    );
    core.frame_received(
        r#"{"type":"push","channel":"event","subscriptionId":"r2","data":1}"#,
        at,
    );
    assert_eq!(
        drain(&mut core),
        vec![
            Output::Push {
                key: store_key,
                data: json!([9])
            },
            Output::Push {
                key: rules_key,
                data: json!(1)
            },
        ]
    );
    // Unsubscribing sends the current server id.
    core.unsubscribe(store_key, at);
    assert_eq!(
        sent(&drain(&mut core)),
        vec![json!({"id": 6, "type": "store.unsubscribe", "subscriptionId": "s2"})]
    );
    assert_eq!(core.subscription_count(), 1);
}

#[test]
fn failed_relogin_and_resubscribe_are_reported() {
    let mut core = open(CoreConfig {
        auth_token: Some("bad".into()),
        ..config()
    });
    let (_, sub_key) = core.subscribe(
        SubscriptionTarget::Store {
            query: "q".into(),
            params: None,
        },
        0,
    );
    core.frame_received(
        r#"{"id":1,"type":"result","data":{"subscriptionId":"s1","data":[]}}"#,
        0,
    );
    drain(&mut core);
    core.connection_closed(0);
    core.handle_timeout(core.next_timeout().unwrap_or(0));
    core.connection_opened(500);
    core.frame_received(WELCOME, 500);
    drain(&mut core);
    core.frame_received(
        r#"{"id":2,"type":"error","code":"UNAUTHORIZED","message":"bad token"}"#,
        500,
    );
    core.frame_received(
        r#"{"id":3,"type":"error","code":"QUERY_NOT_DEFINED","message":"gone"}"#,
        500,
    );
    let out = drain(&mut core);
    assert!(matches!(
        &out[0],
        Output::Event(LifecycleEvent::Error(ClientError::Server {
            code: ErrorCode::Unauthorized,
            ..
        }))
    ));
    // The subscription that could not be restored ends where its user sees it...
    assert!(matches!(
        &out[1],
        Output::SubscriptionEnded {
            key,
            error: ClientError::Server {
                code: ErrorCode::QueryNotDefined,
                ..
            }
        } if *key == sub_key
    ));
    assert!(matches!(
        &out[2],
        Output::Event(LifecycleEvent::Error(ClientError::Server {
            code: ErrorCode::QueryNotDefined,
            ..
        }))
    ));
    // ...and is forgotten: a late push for its old id and the next reconnect do nothing for it.
    core.frame_received(
        r#"{"type":"push","channel":"subscription","subscriptionId":"s1","data":[1]}"#,
        600,
    );
    assert_eq!(drain(&mut core), vec![]);
    core.connection_closed(700);
    core.handle_timeout(core.next_timeout().unwrap_or(700));
    core.connection_opened(1500);
    core.frame_received(WELCOME, 1500);
    let frames = sent(&drain(&mut core));
    assert!(
        frames.iter().all(|f| f["type"] != "store.subscribe"),
        "{frames:?}"
    );
}

#[test]
fn a_runtime_login_is_replayed_after_reconnects_until_logout() {
    let mut core = open(config());
    let login = core.request(
        Operation::Auth(AuthOp::Login {
            token: "runtime".into(),
        }),
        0,
    );
    drain(&mut core);
    core.frame_received(
        r#"{"id":1,"type":"result","data":{"userId":"u","roles":[],"expiresAt":null}}"#,
        0,
    );
    assert!(matches!(
        drain(&mut core).as_slice(),
        [Output::Resolve { handle, result: Ok(_) }] if *handle == login
    ));
    let reconnect = |core: &mut ClientCore, at: u64| {
        core.connection_closed(at);
        core.handle_timeout(core.next_timeout().unwrap_or(at));
        core.connection_opened(at + 500);
        core.frame_received(WELCOME, at + 500);
        sent(&drain(core))
    };
    let frames = reconnect(&mut core, 10);
    assert_eq!(frames[0]["type"], "auth.login");
    assert_eq!(frames[0]["token"], "runtime");
    // A rejected login keeps the last good token.
    let id = frames[0]["id"].as_u64().unwrap_or_default();
    core.frame_received(
        &format!(
            r#"{{"id":{id},"type":"result","data":{{"userId":"u","roles":[],"expiresAt":null}}}}"#
        ),
        600,
    );
    let bad = core.request(
        Operation::Auth(AuthOp::Login {
            token: "wrong".into(),
        }),
        600,
    );
    let frames = sent(&drain(&mut core));
    let id = frames[0]["id"].as_u64().unwrap_or_default();
    core.frame_received(
        &format!(r#"{{"id":{id},"type":"error","code":"UNAUTHORIZED","message":"Invalid token"}}"#),
        600,
    );
    assert!(matches!(
        drain(&mut core).as_slice(),
        [Output::Resolve { handle, result: Err(_) }] if *handle == bad
    ));
    let frames = reconnect(&mut core, 700);
    assert_eq!(frames[0]["token"], "runtime");
    let id = frames[0]["id"].as_u64().unwrap_or_default();
    core.frame_received(
        &format!(
            r#"{{"id":{id},"type":"result","data":{{"userId":"u","roles":[],"expiresAt":null}}}}"#
        ),
        1300,
    );
    // After a logout nothing is replayed.
    core.request(Operation::Auth(AuthOp::Logout), 1300);
    let frames = sent(&drain(&mut core));
    let id = frames[0]["id"].as_u64().unwrap_or_default();
    core.frame_received(
        &format!(r#"{{"id":{id},"type":"result","data":{{"loggedOut":true}}}}"#),
        1300,
    );
    drain(&mut core);
    let frames = reconnect(&mut core, 1400);
    assert!(
        frames.iter().all(|f| f["type"] != "auth.login"),
        "{frames:?}"
    );
}

#[test]
fn an_identity_login_is_replayed_after_reconnects_until_identity_logout() {
    let mut core = open(config());
    let answer = |core: &mut ClientCore, frame: &str, at: u64| {
        let frames = sent(&drain(core));
        let id = frames[0]["id"].as_u64().unwrap_or_default();
        core.frame_received(&frame.replace("{ID}", &id.to_string()), at);
        (frames, drain(core))
    };
    let reconnect = |core: &mut ClientCore, at: u64| {
        core.connection_closed(at);
        core.handle_timeout(core.next_timeout().unwrap_or(at));
        core.connection_opened(at + 500);
        core.frame_received(WELCOME, at + 500);
        sent(&drain(core))
    };
    let session = |token: &str| {
        format!(
            r#"{{"id":{{ID}},"type":"result","data":{{"token":"{token}","expiresAt":9,"user":{{"id":"u","username":"alice","roles":[]}}}}}}"#
        )
    };
    // A failed password login stores nothing.
    core.request(
        Operation::Identity(IdentityOp::Login {
            username: "alice".into(),
            password: "wrong password".into(),
        }),
        0,
    );
    answer(
        &mut core,
        r#"{"id":{ID},"type":"error","code":"UNAUTHORIZED","message":"Invalid credentials"}"#,
        0,
    );
    let frames = reconnect(&mut core, 10);
    assert!(
        frames.iter().all(|f| f["type"] != "auth.login"),
        "{frames:?}"
    );

    let login = core.request(
        Operation::Identity(IdentityOp::Login {
            username: "alice".into(),
            password: "correct horse".into(),
        }),
        600,
    );
    let (frames, outputs) = answer(&mut core, &session("sess-1"), 600);
    assert_eq!(frames[0]["type"], "identity.login");
    assert!(matches!(
        outputs.as_slice(),
        [Output::Resolve { handle, result: Ok(_) }] if *handle == login
    ));
    let frames = reconnect(&mut core, 700);
    assert_eq!(frames[0]["type"], "auth.login");
    assert_eq!(frames[0]["token"], "sess-1");
    let id = frames[0]["id"].as_u64().unwrap_or_default();
    core.frame_received(
        &format!(
            r#"{{"id":{id},"type":"result","data":{{"userId":"u","roles":[],"expiresAt":9}}}}"#
        ),
        1200,
    );
    drain(&mut core);

    // A refreshed session replaces the token.
    core.request(Operation::Identity(IdentityOp::RefreshSession), 1200);
    answer(&mut core, &session("sess-2"), 1200);
    let frames = reconnect(&mut core, 1300);
    assert_eq!(frames[0]["token"], "sess-2");
    let id = frames[0]["id"].as_u64().unwrap_or_default();
    core.frame_received(
        &format!(
            r#"{{"id":{id},"type":"result","data":{{"userId":"u","roles":[],"expiresAt":9}}}}"#
        ),
        1800,
    );
    drain(&mut core);

    // identity.logout forgets it.
    core.request(Operation::Identity(IdentityOp::Logout), 1800);
    answer(
        &mut core,
        r#"{"id":{ID},"type":"result","data":{"loggedOut":true}}"#,
        1800,
    );
    let frames = reconnect(&mut core, 1900);
    assert!(
        frames.iter().all(|f| f["type"] != "auth.login"),
        "{frames:?}"
    );

    // The bootstrap secret's session is kept the same way.
    core.request(
        Operation::Identity(IdentityOp::LoginWithSecret {
            secret: "s".repeat(16),
        }),
        2400,
    );
    answer(&mut core, &session("sess-admin"), 2400);
    let frames = reconnect(&mut core, 2500);
    assert_eq!(frames[0]["token"], "sess-admin");
}

#[test]
fn user_disconnect_fails_pending_and_never_reconnects() {
    let mut core = open(config());
    let h = core.request(stats(), 0);
    drain(&mut core);
    core.disconnect();
    assert_eq!(
        drain(&mut core),
        vec![
            Output::Resolve {
                handle: h,
                result: Err(ClientError::Disconnected)
            },
            Output::Close,
            Output::Event(LifecycleEvent::Disconnected {
                will_reconnect: false
            }),
        ]
    );
    core.connection_closed(5);
    assert!(drain(&mut core).is_empty());
    assert_eq!(core.next_timeout(), None);
}

#[test]
fn failed_subscribe_is_forgotten() {
    let mut core = open(config());
    let (h, _) = core.subscribe(
        SubscriptionTarget::Store {
            query: "nope".into(),
            params: None,
        },
        0,
    );
    drain(&mut core);
    core.frame_received(
        r#"{"id":1,"type":"error","code":"QUERY_NOT_DEFINED","message":"x"}"#,
        0,
    );
    let out = drain(&mut core);
    assert!(matches!(&out[0], Output::Resolve { handle, result: Err(_) } if *handle == h));
    assert_eq!(core.subscription_count(), 0);
}

#[test]
fn a_subscription_the_server_ends_is_forgotten_and_reported() {
    for frame in [
        r#"{"id":0,"type":"error","code":"FORBIDDEN","message":"Subscription sub-7 ended: No permission for store.subscribe on q","details":{"subscriptionId":"sub-7"}}"#,
        // Details hidden by the server: the id is read from the message.
        r#"{"id":0,"type":"error","code":"UNAUTHORIZED","message":"Subscription sub-7 ended: Session expired"}"#,
    ] {
        let mut core = open(config());
        let (_, key) = core.subscribe(
            SubscriptionTarget::Store {
                query: "q".into(),
                params: None,
            },
            0,
        );
        drain(&mut core);
        core.frame_received(
            r#"{"id":1,"type":"result","data":{"subscriptionId":"sub-7","data":[]}}"#,
            0,
        );
        drain(&mut core);
        assert_eq!(core.subscription_count(), 1);
        core.frame_received(frame, 0);
        let out = drain(&mut core);
        assert!(
            matches!(&out[0], Output::SubscriptionEnded { key: k, .. } if *k == key),
            "{out:?}"
        );
        assert!(matches!(&out[1], Output::Event(LifecycleEvent::Error(_))));
        assert_eq!(core.subscription_count(), 0);
        // Later pushes for it are ignored.
        core.frame_received(
            r#"{"type":"push","channel":"subscription","subscriptionId":"sub-7","data":[1]}"#,
            0,
        );
        assert!(drain(&mut core).is_empty());
    }
}

#[test]
fn a_reconnect_without_welcome_is_dropped_and_retried() {
    let mut core = open(CoreConfig {
        welcome_timeout_ms: 300,
        ..config()
    });
    core.connection_closed(0);
    drain(&mut core);
    let at = core.next_timeout().unwrap_or(0);
    core.handle_timeout(at);
    assert_eq!(drain(&mut core), vec![Output::Connect]);
    core.connection_opened(at);
    assert_eq!(core.next_timeout(), Some(at + 300));
    core.handle_timeout(at + 299);
    assert!(drain(&mut core).is_empty());
    core.handle_timeout(at + 300);
    let out = drain(&mut core);
    assert_eq!(out[0], Output::Close);
    assert!(matches!(
        out[1],
        Output::Event(LifecycleEvent::Reconnecting { attempt: 2, .. })
    ));
    assert_eq!(out.len(), 2);
}

#[test]
fn a_subscription_ended_while_its_resubscribe_is_in_flight_is_released_on_the_server() {
    let mut core = open(config());
    let (_, store_key) = core.subscribe(
        SubscriptionTarget::Store {
            query: "q".into(),
            params: None,
        },
        0,
    );
    let (_, rules_key) = core.subscribe(
        SubscriptionTarget::Rules {
            pattern: "a.*".into(),
        },
        0,
    );
    drain(&mut core);
    core.frame_received(
        r#"{"id":1,"type":"result","data":{"subscriptionId":"s1","data":[]}}"#,
        1,
    );
    core.frame_received(
        r#"{"id":2,"type":"result","data":{"subscriptionId":"r1"}}"#,
        1,
    );
    drain(&mut core);

    // Reconnect: both re-subscribes go out (ids 3 and 4).
    core.connection_closed(2);
    drain(&mut core);
    core.handle_timeout(10_000);
    drain(&mut core);
    core.connection_opened(10_000);
    core.frame_received(WELCOME, 10_000);
    let frames = sent(&drain(&mut core));
    assert_eq!(frames.len(), 2);
    assert_eq!(frames[0]["type"], "store.subscribe");
    assert_eq!(frames[1]["type"], "rules.subscribe");

    // Both end before the server answers: nothing can be sent yet.
    core.unsubscribe(store_key, 10_001);
    core.unsubscribe(rules_key, 10_001);
    assert_eq!(drain(&mut core), vec![]);
    assert_eq!(core.subscription_count(), 0);

    // The answers create server-side subscriptions: each is released at once, with no
    // push and no error event.
    core.frame_received(
        r#"{"id":3,"type":"result","data":{"subscriptionId":"s2","data":[1]}}"#,
        10_002,
    );
    core.frame_received(
        r#"{"id":4,"type":"result","data":{"subscriptionId":"r2"}}"#,
        10_002,
    );
    let out = drain(&mut core);
    assert_eq!(
        sent(&out),
        vec![
            json!({"id": 5, "type": "store.unsubscribe", "subscriptionId": "s2"}),
            json!({"id": 6, "type": "rules.unsubscribe", "subscriptionId": "r2"}),
        ]
    );
    assert_eq!(out.len(), 2, "only the two unsubscribes: {out:?}");
    core.frame_received(
        r#"{"type":"push","channel":"subscription","subscriptionId":"s2","data":[2]}"#,
        10_003,
    );
    assert_eq!(drain(&mut core), vec![]);
}

/// Subscribes to `q`, answers with server id `s1`, drops the connection and reconnects;
/// returns the core after the welcome with the re-subscribe's request id.
fn resubscribing_core() -> (ClientCore, SubscriptionKey, u64) {
    let mut core = open(config());
    let (_, key) = core.subscribe(
        SubscriptionTarget::Store {
            query: "q".into(),
            params: None,
        },
        0,
    );
    core.frame_received(
        r#"{"id":1,"type":"result","data":{"subscriptionId":"s1","data":[]}}"#,
        0,
    );
    drain(&mut core);
    core.connection_closed(0);
    core.handle_timeout(core.next_timeout().unwrap_or(0));
    core.connection_opened(500);
    core.frame_received(WELCOME, 500);
    let frames = sent(&drain(&mut core));
    assert_eq!(frames[0]["type"], "store.subscribe");
    let id = frames[0]["id"].as_u64().unwrap_or_default();
    (core, key, id)
}

#[test]
fn a_rate_limited_resubscribe_is_retried_after_retry_after_ms() {
    let (mut core, key, id) = resubscribing_core();
    core.frame_received(
        &format!(
            r#"{{"id":{id},"type":"error","code":"RATE_LIMITED","message":"slow down","details":{{"retryAfterMs":300}}}}"#
        ),
        500,
    );
    let out = drain(&mut core);
    assert!(
        matches!(out.as_slice(), [Output::Event(LifecycleEvent::Error(_))]),
        "reported, not ended: {out:?}"
    );
    assert_eq!(core.next_timeout(), Some(800));
    core.handle_timeout(799);
    assert_eq!(sent(&drain(&mut core)), Vec::<Value>::new());
    core.handle_timeout(800);
    let frames = sent(&drain(&mut core));
    assert_eq!(frames.len(), 1);
    assert_eq!(frames[0]["type"], "store.subscribe");
    let id = frames[0]["id"].as_u64().unwrap_or_default();
    core.frame_received(
        &format!(r#"{{"id":{id},"type":"result","data":{{"subscriptionId":"s9","data":[7]}}}}"#),
        810,
    );
    assert_eq!(
        drain(&mut core),
        vec![Output::Push {
            key,
            data: json!([7])
        }]
    );
}

#[test]
fn a_timed_out_resubscribe_is_retried_and_its_late_answer_released() {
    let (mut core, key, id) = resubscribing_core();
    core.handle_timeout(1500); // request timeout 1000 ms after 500
    let out = drain(&mut core);
    assert!(
        matches!(
            out.as_slice(),
            [Output::Event(LifecycleEvent::Error(ClientError::Timeout))]
        ),
        "{out:?}"
    );
    // The late answer created a server-side subscription nobody waits for: released.
    core.frame_received(
        &format!(r#"{{"id":{id},"type":"result","data":{{"subscriptionId":"late","data":[]}}}}"#),
        1510,
    );
    let frames = sent(&drain(&mut core));
    assert_eq!(
        frames,
        vec![json!({"id": frames[0]["id"], "type": "store.unsubscribe", "subscriptionId": "late"})]
    );
    // The retry (backoff delay of attempt 1: 100..=120 ms) re-subscribes the same key.
    let at = core.next_timeout().unwrap_or(0);
    assert!((1600..=1620).contains(&at), "retry at {at}");
    core.handle_timeout(at);
    let frames = sent(&drain(&mut core));
    assert_eq!(frames[0]["type"], "store.subscribe");
    let id = frames[0]["id"].as_u64().unwrap_or_default();
    core.frame_received(
        &format!(r#"{{"id":{id},"type":"result","data":{{"subscriptionId":"s2","data":[1]}}}}"#),
        at,
    );
    assert_eq!(
        drain(&mut core),
        vec![Output::Push {
            key,
            data: json!([1])
        }]
    );
}

#[test]
fn a_resubscribe_that_keeps_failing_ends_after_the_policys_retries() {
    let (mut core, key, mut id) = resubscribing_core();
    let mut now = 500;
    let mut ended = None;
    // max_retries 3: three retries, the fourth failure ends the subscription.
    for _ in 0..4 {
        core.frame_received(
            &format!(r#"{{"id":{id},"type":"error","code":"INTERNAL_ERROR","message":"x"}}"#),
            now,
        );
        let out = drain(&mut core);
        if let Some(Output::SubscriptionEnded { key: k, .. }) = out.first() {
            ended = Some(*k);
            break;
        }
        now = core.next_timeout().unwrap_or(now);
        core.handle_timeout(now);
        id = sent(&drain(&mut core))[0]["id"]
            .as_u64()
            .unwrap_or_default();
    }
    assert_eq!(ended, Some(key));
}

#[test]
fn a_resubscribe_timing_out_after_the_user_dropped_it_reports_nothing() {
    let (mut core, key, _) = resubscribing_core();
    core.unsubscribe(key, 600);
    assert_eq!(drain(&mut core), vec![]);
    core.handle_timeout(1500);
    assert_eq!(
        drain(&mut core),
        vec![],
        "no error for a subscription already ended"
    );
    assert_eq!(core.next_timeout(), None, "and no retry");
}

#[test]
fn a_logout_cut_by_a_disconnect_still_forgets_the_token() {
    let mut core = open(CoreConfig {
        auth_token: Some("tok".into()),
        ..config()
    });
    let logout = core.request(Operation::Auth(AuthOp::Logout), 0);
    drain(&mut core);
    core.connection_closed(10);
    assert!(drain(&mut core).contains(&Output::Resolve {
        handle: logout,
        result: Err(ClientError::Disconnected)
    }));
    core.handle_timeout(core.next_timeout().unwrap_or(10));
    core.connection_opened(500);
    core.frame_received(WELCOME, 500);
    let frames = sent(&drain(&mut core));
    assert!(
        frames.iter().all(|f| f["type"] != "auth.login"),
        "{frames:?}"
    );
}

/// As the original client: after `session_revoked` (and the server's 4002 close) the
/// client does not reconnect, so it cannot loop reconnecting and being refused.
#[test]
fn a_revoked_session_is_not_reconnected() {
    let mut core = open(CoreConfig {
        auth_token: Some("t".into()),
        ..config()
    });
    core.frame_received(
        r#"{"type":"system","event":"session_revoked","reason":"Session revoked by administrator"}"#,
        10,
    );
    assert_eq!(
        drain(&mut core),
        vec![Output::Event(LifecycleEvent::SessionRevoked {
            reason: "Session revoked by administrator".into()
        })]
    );
    core.connection_closed(11);
    assert_eq!(
        drain(&mut core),
        vec![Output::Event(LifecycleEvent::Disconnected {
            will_reconnect: false
        })]
    );
    assert!(core.is_terminated());
    core.handle_timeout(100_000);
    assert_eq!(drain(&mut core), vec![], "no reconnect attempt, ever");
    assert_eq!(core.next_timeout(), None);
}

#[test]
fn a_changed_password_ends_the_replayed_session_token() {
    let mut core = open(config());
    let answer = |core: &mut ClientCore, frame: &str, at: u64| {
        let frames = sent(&drain(core));
        let id = frames[0]["id"].as_u64().unwrap_or_default();
        core.frame_received(&frame.replace("{ID}", &id.to_string()), at);
        drain(core)
    };
    core.request(
        Operation::Identity(IdentityOp::Login {
            username: "alice".into(),
            password: "correct horse".into(),
        }),
        0,
    );
    answer(
        &mut core,
        r#"{"id":{ID},"type":"result","data":{"token":"sess-1","expiresAt":9,"user":{"id":"u","username":"alice","roles":[]}}}"#,
        0,
    );
    let change = |core: &mut ClientCore, at: u64, reply: &str| {
        core.request(
            Operation::Identity(IdentityOp::ChangePassword {
                user_id: "u".into(),
                current_password: "correct horse".into(),
                new_password: "battery staple".into(),
            }),
            at,
        );
        answer(core, reply, at);
        core.connection_closed(at);
        core.handle_timeout(core.next_timeout().unwrap_or(at));
        core.connection_opened(at + 500);
        core.frame_received(WELCOME, at + 500);
        sent(&drain(core))
    };
    // A refused change keeps the session.
    let frames = change(
        &mut core,
        100,
        r#"{"id":{ID},"type":"error","code":"UNAUTHORIZED","message":"Current password is incorrect"}"#,
    );
    assert_eq!(frames[0]["token"], "sess-1", "{frames:?}");
    let id = frames[0]["id"].as_u64().unwrap_or_default();
    core.frame_received(
        &format!(
            r#"{{"id":{id},"type":"result","data":{{"userId":"u","roles":[],"expiresAt":9}}}}"#
        ),
        700,
    );
    drain(&mut core);
    let frames = change(
        &mut core,
        1_000,
        r#"{"id":{ID},"type":"result","data":{"changed":true}}"#,
    );
    assert!(
        frames.iter().all(|f| f["type"] != "auth.login"),
        "{frames:?}"
    );
}

#[test]
fn raw_requests_send_the_typed_frame_and_are_recognised_by_type() {
    let mut core = open(config());
    // The same text as the typed operation, field order included.
    core.request(
        Operation::Auth(AuthOp::Login {
            token: "typed".into(),
        }),
        0,
    );
    let fields = json!({"id": 99, "token": "raw", "type": "ignored"});
    let Value::Object(fields) = fields else {
        panic!("object expected");
    };
    let login = core.request_raw("auth.login", fields, 0);
    let out = drain(&mut core);
    assert_eq!(
        out,
        vec![
            Output::Send(r#"{"id":1,"type":"auth.login","token":"typed"}"#.into()),
            Output::Send(r#"{"id":2,"type":"auth.login","token":"raw"}"#.into()),
        ]
    );
    core.frame_received(
        r#"{"id":1,"type":"error","code":"UNAUTHORIZED","message":"no"}"#,
        1,
    );
    core.frame_received(r#"{"id":2,"type":"result","data":{"userId":"u"}}"#, 1);
    assert!(matches!(
        drain(&mut core).as_slice(),
        [Output::Resolve { result: Err(_), .. }, Output::Resolve { handle, result: Ok(_) }] if *handle == login
    ));
    // The raw login's token is the one replayed after a reconnect.
    core.connection_closed(10);
    core.handle_timeout(core.next_timeout().unwrap_or(10));
    core.connection_opened(500);
    core.frame_received(WELCOME, 500);
    let frames = sent(&drain(&mut core));
    assert_eq!(frames[0]["type"], "auth.login");
    assert_eq!(frames[0]["token"], "raw");
}

#[test]
fn frames_are_read_as_the_protocol_defines_them() {
    let mut core = open(config());
    let bad = [
        r#"[1]"#,
        r#"{"type":"nonsense"}"#,
        r#"{"type":"result","data":1}"#,
        r#"{"type":"error","id":1,"code":"NO_SUCH_CODE","message":"m"}"#,
        r#"{"type":"push","channel":"other","subscriptionId":"s","data":1}"#,
        r#"{"type":"ping","timestamp":-1}"#,
        r#"{"type":"system","event":"reboot"}"#,
    ];
    for frame in bad {
        core.frame_received(frame, 0);
        assert!(
            matches!(
                drain(&mut core).as_slice(),
                [Output::Event(LifecycleEvent::Error(ClientError::Protocol(
                    _
                )))]
            ),
            "{frame}"
        );
    }
    core.frame_received(r#"{"type":"ping","timestamp":5,"extra":true}"#, 0);
    core.frame_received(
        r#"{"type":"system","event":"shutdown","gracePeriodMs":7}"#,
        0,
    );
    assert_eq!(
        drain(&mut core),
        vec![
            Output::Send(r#"{"type":"pong","timestamp":5}"#.into()),
            Output::Event(LifecycleEvent::Shutdown { grace_period_ms: 7 }),
        ]
    );
    let h = core.request(stats(), 0);
    drain(&mut core);
    core.frame_received(
        r#"{"id":1,"type":"error","code":"NOT_FOUND","message":"m","details":null}"#,
        0,
    );
    assert_eq!(
        drain(&mut core),
        vec![Output::Resolve {
            handle: h,
            result: Err(ClientError::Server {
                code: ErrorCode::NotFound,
                message: "m".into(),
                details: None
            })
        }]
    );
}
