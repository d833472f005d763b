//! Auth, permissions and rate limiting over a real WebSocket (docs/reference/protocol.md and docs/07-auth.md),
//! with an injected clock so expiry and windows move deterministically.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;

use common::{Client, local_config};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use noex_server::{
    AuthConfig, Clock, Decision, JwtAlgorithm, JwtConfig, ManualClock, RateLimitConfig, Server,
    ServerConfig, ServerHandle, Session, StaticToken,
};
use serde_json::{Value, json};

const T0: u64 = 1_800_000_000_000;

fn token(user: &str, roles: &[&str], expires_at: Option<u64>) -> StaticToken {
    StaticToken {
        user_id: user.into(),
        roles: roles.iter().map(|r| r.to_string()).collect(),
        expires_at,
    }
}

fn token_table() -> BTreeMap<String, StaticToken> {
    BTreeMap::from([
        ("admin-t".into(), token("ada", &["admin"], None)),
        ("writer-t".into(), token("wes", &["writer"], None)),
        ("reader-t".into(), token("rea", &["reader"], None)),
        (
            "short-t".into(),
            token("sho", &["writer"], Some(T0 + 1_000)),
        ),
        ("old-t".into(), token("old", &["writer"], Some(T0 - 1))),
        ("agent-t".into(), token("agt", &["agent"], None)),
        ("ops-t".into(), token("opr", &["ops"], None)),
    ])
}

async fn start_with(
    mut config: ServerConfig,
    auth: AuthConfig,
) -> (ServerHandle, Arc<ManualClock>) {
    config.auth = Some(auth);
    let clock = Arc::new(ManualClock::new(T0));
    let server = Server::builder(config)
        .clock(clock.clone() as Arc<dyn Clock>)
        .start()
        .await
        .unwrap();
    (server, clock)
}

fn static_auth() -> AuthConfig {
    AuthConfig {
        required: true,
        tokens: Some(token_table()),
        ..AuthConfig::default()
    }
}

async fn login(client: &mut Client, token: &str) -> Value {
    client
        .request(json!({"id": 100, "type": "auth.login", "token": token}))
        .await
}

#[tokio::test]
async fn login_success_invalid_and_expired_tokens() {
    let (server, _clock) = start_with(local_config(), static_auth()).await;
    let (mut c, welcome) = Client::connect(&server).await;
    assert_eq!(welcome["requiresAuth"], true);
    assert_eq!(
        welcome["serverTime"], T0,
        "the welcome reads the server's (injected) clock"
    );

    let bad = login(&mut c, "nope").await;
    assert_eq!(
        (bad["code"].as_str(), bad["message"].as_str()),
        (Some("UNAUTHORIZED"), Some("Invalid token"))
    );
    let old = login(&mut c, "old-t").await;
    assert_eq!(
        (old["code"].as_str(), old["message"].as_str()),
        (Some("UNAUTHORIZED"), Some("Token has expired"))
    );

    let ok = login(&mut c, "writer-t").await;
    assert_eq!(ok["type"], "result");
    assert_eq!(
        ok["data"],
        json!({"userId": "wes", "roles": ["writer"], "expiresAt": null})
    );
    let ok = login(&mut c, "short-t").await;
    assert_eq!(ok["data"]["expiresAt"], T0 + 1_000);
}

#[tokio::test]
async fn requests_before_login_are_unauthorized() {
    let (server, _clock) = start_with(local_config(), static_auth()).await;
    let (mut c, _) = Client::connect(&server).await;
    for op in [
        json!({"id": 1, "type": "store.all", "bucket": "a"}),
        json!({"id": 2, "type": "rules.stats"}),
        json!({"id": 3, "type": "nope.x"}),
    ] {
        let reply = c.request(op).await;
        assert_eq!(reply["code"], "UNAUTHORIZED");
        assert_eq!(reply["message"], "Authentication required");
    }
    // auth.* is exempt from the session check.
    let who = c.request(json!({"id": 4, "type": "auth.whoami"})).await;
    assert_eq!(who["data"], json!({"authenticated": false}));
}

#[tokio::test]
async fn whoami_logout_relogin_and_expiry_during_a_session() {
    let (server, clock) = start_with(local_config(), static_auth()).await;
    let (mut c, _) = Client::connect(&server).await;
    login(&mut c, "short-t").await;
    let who = c.request(json!({"id": 1, "type": "auth.whoami"})).await;
    assert_eq!(
        who["data"],
        json!({"authenticated": true, "userId": "sho", "roles": ["writer"], "expiresAt": T0 + 1_000})
    );

    // Re-login replaces the session.
    login(&mut c, "reader-t").await;
    let who = c.request(json!({"id": 2, "type": "auth.whoami"})).await;
    assert_eq!(who["data"]["userId"], "rea");

    let out = c.request(json!({"id": 3, "type": "auth.logout"})).await;
    assert_eq!(out["data"], json!({"loggedOut": true}));
    let again = c.request(json!({"id": 4, "type": "auth.logout"})).await;
    assert_eq!(
        again["data"],
        json!({"loggedOut": true}),
        "logout without a session also succeeds"
    );
    assert_eq!(
        c.request(json!({"id": 5, "type": "store.all", "bucket": "a"}))
            .await["code"],
        "UNAUTHORIZED"
    );

    // Expiry while connected: the next request is refused and the session cleared.
    login(&mut c, "short-t").await;
    assert_ne!(
        c.request(json!({"id": 6, "type": "store.all", "bucket": "a"}))
            .await["code"],
        "UNAUTHORIZED"
    );
    clock.advance(1_000);
    let expired = c
        .request(json!({"id": 7, "type": "store.all", "bucket": "a"}))
        .await;
    assert_eq!(
        (expired["code"].as_str(), expired["message"].as_str()),
        (Some("UNAUTHORIZED"), Some("Session expired"))
    );
    let after = c
        .request(json!({"id": 8, "type": "store.all", "bucket": "a"}))
        .await;
    assert_eq!(after["message"], "Authentication required");
}

#[tokio::test]
async fn whoami_clears_an_expired_session() {
    let (server, clock) = start_with(local_config(), static_auth()).await;
    let (mut c, _) = Client::connect(&server).await;
    login(&mut c, "short-t").await;
    clock.advance(5_000);
    let who = c.request(json!({"id": 1, "type": "auth.whoami"})).await;
    assert_eq!(who["data"], json!({"authenticated": false}));
}

#[tokio::test]
async fn optional_auth_lets_anonymous_clients_through_and_checks_sessions() {
    let mut auth = static_auth();
    auth.required = false;
    let (server, _clock) = start_with(local_config(), auth).await;
    let (mut c, welcome) = Client::connect(&server).await;
    assert_eq!(welcome["requiresAuth"], false);
    let anon = c
        .request(json!({"id": 1, "type": "store.insert", "bucket": "a", "data": {}}))
        .await;
    assert_ne!(anon["code"], "UNAUTHORIZED");
    assert_ne!(anon["code"], "FORBIDDEN");
    login(&mut c, "reader-t").await;
    let denied = c
        .request(json!({"id": 2, "type": "store.insert", "bucket": "a", "data": {}}))
        .await;
    assert_eq!(denied["code"], "FORBIDDEN");
    // A tier refusal names the tier, in the original's words.
    assert_eq!(
        denied["message"],
        "Role level insufficient for store.insert (requires write)"
    );
}

#[tokio::test]
async fn every_tier_boundary() {
    let (server, _clock) = start_with(local_config(), static_auth()).await;
    let read = json!({"type": "store.get", "bucket": "b", "key": 1});
    let write = json!({"type": "store.insert", "bucket": "b", "data": {}});
    let admin = json!({"type": "store.defineBucket", "name": "b", "config": {}});
    let server_op = json!({"type": "server.stats"});
    let cases = [
        ("reader-t", [true, false, false, false]),
        ("writer-t", [true, true, false, false]),
        ("admin-t", [true, true, true, true]),
    ];
    for (tok, expected) in cases {
        let (mut c, _) = Client::connect(&server).await;
        login(&mut c, tok).await;
        for (i, (op, allowed)) in [&read, &write, &admin, &server_op]
            .into_iter()
            .zip(expected)
            .enumerate()
        {
            let mut op = op.clone();
            op["id"] = json!(i + 1);
            let reply = c.request(op.clone()).await;
            assert_eq!(reply["code"] != "FORBIDDEN", allowed, "{tok} {op}: {reply}");
        }
    }
}

#[tokio::test]
async fn declarative_rules_with_buckets_and_topics() {
    let mut auth = static_auth();
    auth.permissions = serde_json::from_value(json!({
        "default": "deny",
        "rules": [
            {"role": "agent", "allow": ["store.insert", "store.update"], "buckets": ["metrics"]},
            {"role": "ops", "allow": "rules.*", "topics": ["order.*"]}
        ]
    }))
    .unwrap();
    let mut config = local_config();
    config.rules.enabled = Some(true);
    let (server, _clock) = start_with(config, auth).await;

    let (mut agent, _) = Client::connect(&server).await;
    login(&mut agent, "agent-t").await;
    let ok = agent
        .request(json!({"id": 1, "type": "store.insert", "bucket": "metrics", "data": {}}))
        .await;
    assert_ne!(ok["code"], "FORBIDDEN");
    let no = agent
        .request(json!({"id": 2, "type": "store.insert", "bucket": "users", "data": {}}))
        .await;
    assert_eq!(no["message"], "No permission for store.insert on users");
    let no = agent
        .request(json!({"id": 3, "type": "store.get", "bucket": "metrics", "key": 1}))
        .await;
    assert_eq!(no["code"], "FORBIDDEN");

    let (mut ops, _) = Client::connect(&server).await;
    login(&mut ops, "ops-t").await;
    let ok = ops
        .request(json!({"id": 1, "type": "rules.emit", "topic": "order.created"}))
        .await;
    assert_eq!(ok["data"]["topic"], "order.created", "{ok}");
    let no = ops
        .request(json!({"id": 2, "type": "rules.emit", "topic": "user.created"}))
        .await;
    assert_eq!(
        no["message"],
        "No permission for rules.emit on user.created"
    );
}

#[tokio::test]
async fn a_rust_permission_hook_and_a_custom_validator() {
    let validator = |token: &str| -> Option<Session> {
        token.strip_prefix("user:").map(|u| Session {
            user_id: u.into(),
            roles: vec!["member".into()],
            expires_at: None,
            identity: false,
        })
    };
    struct FnValidator<F>(F);
    impl<F: Fn(&str) -> Option<Session> + Send + Sync + 'static> noex_server::TokenValidator
        for FnValidator<F>
    {
        fn validate<'a>(&'a self, token: &'a str) -> noex_server::ValidateFuture<'a> {
            Box::pin(std::future::ready((self.0)(token)))
        }
    }
    let server = Server::builder(local_config())
        .token_validator(FnValidator(validator))
        .permission_check(|s: &Session, _op: &str, resource: &str| {
            if resource == format!("private-{}", s.user_id) || !resource.starts_with("private-") {
                Decision::Pass
            } else {
                Decision::Deny
            }
        })
        .start()
        .await
        .unwrap();
    let (mut c, welcome) = Client::connect(&server).await;
    assert_eq!(welcome["requiresAuth"], true);
    assert_eq!(login(&mut c, "user:kim").await["data"]["userId"], "kim");
    let own = c
        .request(json!({"id": 1, "type": "store.all", "bucket": "private-kim"}))
        .await;
    assert_ne!(own["code"], "FORBIDDEN");
    let other = c
        .request(json!({"id": 2, "type": "store.all", "bucket": "private-bob"}))
        .await;
    assert_eq!(other["code"], "FORBIDDEN");
}

fn jwt(alg: Algorithm, key: &EncodingKey, claims: Value) -> String {
    jsonwebtoken::encode(&Header::new(alg), &claims, key).unwrap()
}

#[tokio::test]
async fn jwt_hs256_valid_bad_signature_and_expired() {
    let auth = AuthConfig {
        required: true,
        jwt: Some(JwtConfig {
            algorithm: JwtAlgorithm::HS256,
            secret: Some("s3cret".into()),
            public_key: None,
            public_key_file: None,
            roles_claim: "groups".into(),
            issuer: None,
            audience: None,
        }),
        ..AuthConfig::default()
    };
    let (server, _clock) = start_with(local_config(), auth).await;
    let (mut c, _) = Client::connect(&server).await;
    let key = EncodingKey::from_secret(b"s3cret");
    let exp_secs = (T0 / 1000) + 3600;
    let valid = jwt(
        Algorithm::HS256,
        &key,
        json!({"sub": "u-1", "groups": ["admin"], "exp": exp_secs}),
    );
    let ok = login(&mut c, &valid).await;
    assert_eq!(
        ok["data"],
        json!({"userId": "u-1", "roles": ["admin"], "expiresAt": exp_secs * 1000})
    );

    let forged = jwt(
        Algorithm::HS256,
        &EncodingKey::from_secret(b"other"),
        json!({"sub": "u-1", "exp": exp_secs}),
    );
    assert_eq!(login(&mut c, &forged).await["message"], "Invalid token");
    let expired = jwt(
        Algorithm::HS256,
        &key,
        json!({"sub": "u-1", "exp": (T0 / 1000) - 10}),
    );
    assert_eq!(
        login(&mut c, &expired).await["message"],
        "Token has expired"
    );
    let no_sub = jwt(Algorithm::HS256, &key, json!({"exp": exp_secs}));
    assert_eq!(login(&mut c, &no_sub).await["message"], "Invalid token");
    assert_eq!(login(&mut c, "not.a.jwt").await["message"], "Invalid token");
}

/// Rerun finding: a JWT with `sub: ""` logged in as a session with an empty user id.
#[tokio::test]
async fn jwt_without_a_usable_sub_or_with_malformed_roles_is_an_invalid_token() {
    let auth = AuthConfig {
        required: true,
        jwt: Some(JwtConfig {
            algorithm: JwtAlgorithm::HS256,
            secret: Some("s3cret".into()),
            public_key: None,
            public_key_file: None,
            roles_claim: "roles".into(),
            issuer: None,
            audience: None,
        }),
        ..AuthConfig::default()
    };
    let (server, _clock) = start_with(local_config(), auth).await;
    let key = EncodingKey::from_secret(b"s3cret");
    let exp = (T0 / 1000) + 3600;
    for claims in [
        json!({"sub": "", "roles": ["admin"], "exp": exp}),
        json!({"roles": ["admin"], "exp": exp}),
        json!({"sub": 42, "roles": ["admin"], "exp": exp}),
        json!({"sub": null, "roles": ["admin"], "exp": exp}),
        json!({"sub": ["u"], "roles": ["admin"], "exp": exp}),
        // Red-team rerun: a roles claim that is not a string or an array of strings
        // silently became no roles; it is an invalid token.
        json!({"sub": "u", "roles": {"a": 1}, "exp": exp}),
        json!({"sub": "u", "roles": 5, "exp": exp}),
        json!({"sub": "u", "roles": null, "exp": exp}),
        json!({"sub": "u", "roles": ["admin", 3], "exp": exp}),
    ] {
        // A connection of its own: each takes 5 failed logins (`limits.login`).
        let (mut c, _) = Client::connect(&server).await;
        let answer = login(&mut c, &jwt(Algorithm::HS256, &key, claims.clone())).await;
        assert_eq!(
            (answer["code"].as_str(), answer["message"].as_str()),
            (Some("UNAUTHORIZED"), Some("Invalid token")),
            "{claims}"
        );
        let who = c.request(json!({"id": 5, "type": "auth.whoami"})).await;
        assert_eq!(who["data"], json!({"authenticated": false}), "{claims}");
    }
}

/// A custom validator's session with an empty user id is refused the same way.
#[tokio::test]
async fn a_session_with_an_empty_user_id_from_any_validator_is_refused() {
    struct Empty;
    impl noex_server::TokenValidator for Empty {
        fn validate<'a>(&'a self, _token: &'a str) -> noex_server::ValidateFuture<'a> {
            Box::pin(std::future::ready(Some(Session {
                user_id: String::new(),
                roles: vec!["admin".into()],
                expires_at: None,
                identity: false,
            })))
        }
    }
    let server = Server::builder(local_config())
        .token_validator(Empty)
        .start()
        .await
        .unwrap();
    let (mut c, _) = Client::connect(&server).await;
    let answer = login(&mut c, "anything").await;
    assert_eq!(
        (answer["code"].as_str(), answer["message"].as_str()),
        (Some("UNAUTHORIZED"), Some("Invalid token"))
    );
}

#[test]
fn a_static_token_with_an_empty_user_id_is_a_config_error() {
    let config: ServerConfig = serde_json::from_value(json!({
        "auth": {"tokens": {"t-1": {"userId": "ada"}, "t-2": {"userId": ""}}}
    }))
    .unwrap();
    let err = config.validate().unwrap_err().to_string();
    assert_eq!(
        err,
        "invalid config: \"auth.tokens\" has a token with an empty userId"
    );
    assert!(!err.contains("t-2"), "the token is a secret: {err}");
}

#[tokio::test]
async fn jwt_rs256_and_es256_with_public_keys() {
    let keys = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/keys/");
    for (algorithm, alg, private, public) in [
        (
            JwtAlgorithm::RS256,
            Algorithm::RS256,
            "rsa_private.pem",
            "rsa_public.pem",
        ),
        (
            JwtAlgorithm::ES256,
            Algorithm::ES256,
            "ec_private.pem",
            "ec_public.pem",
        ),
    ] {
        let auth = AuthConfig {
            required: true,
            jwt: Some(JwtConfig {
                algorithm,
                secret: None,
                public_key: None,
                public_key_file: Some(format!("{keys}{public}")),
                roles_claim: "roles".into(),
                issuer: Some("noex-test".into()),
                audience: None,
            }),
            ..AuthConfig::default()
        };
        let (server, _clock) = start_with(local_config(), auth).await;
        let pem = std::fs::read(format!("{keys}{private}")).unwrap();
        let key = match alg {
            Algorithm::RS256 => EncodingKey::from_rsa_pem(&pem).unwrap(),
            _ => EncodingKey::from_ec_pem(&pem).unwrap(),
        };
        let (mut c, _) = Client::connect(&server).await;
        let good = jwt(
            alg,
            &key,
            json!({"sub": "k", "roles": "reader", "iss": "noex-test"}),
        );
        assert_eq!(
            login(&mut c, &good).await["data"]["roles"],
            json!(["reader"]),
            "{alg:?}"
        );
        let wrong_iss = jwt(alg, &key, json!({"sub": "k", "iss": "elsewhere"}));
        assert_eq!(
            login(&mut c, &wrong_iss).await["message"],
            "Invalid token",
            "{alg:?}"
        );
    }
}

#[tokio::test]
async fn auth_without_any_validator_refuses_to_start() {
    let config = ServerConfig {
        auth: Some(AuthConfig::default()),
        ..local_config()
    };
    let err = Server::start(config).await.err().expect("refused");
    assert!(err.to_string().contains("auth"), "{err}");
}

#[tokio::test]
async fn rate_limit_exceeded_then_recovered_and_keyed_by_user_after_login() {
    let config = ServerConfig {
        rate_limit: Some(RateLimitConfig {
            max_requests: 3,
            window_ms: 1_000,
        }),
        ..local_config()
    };
    let mut auth = static_auth();
    auth.required = false;
    let (server, clock) = start_with(config, auth).await;
    let (mut a, _) = Client::connect(&server).await;
    let (mut b, _) = Client::connect(&server).await;
    let op = |id: u64| json!({"id": id, "type": "nope.x"});
    for id in 1..=3 {
        assert_eq!(a.request(op(id)).await["code"], "UNKNOWN_OPERATION");
    }
    let limited = a.request(op(4)).await;
    assert_eq!(limited["code"], "RATE_LIMITED");
    assert_eq!(
        limited["message"],
        "Rate limit exceeded. Retry after 1000ms"
    );
    assert_eq!(limited["details"], json!({"retryAfterMs": 1000}));
    // Same IP (loopback): the other anonymous connection shares the key.
    assert_eq!(b.request(op(1)).await["code"], "RATE_LIMITED");

    clock.advance(400);
    assert_eq!(a.request(op(5)).await["details"]["retryAfterMs"], 600);
    clock.advance(600);
    assert_eq!(
        a.request(op(6)).await["code"],
        "UNKNOWN_OPERATION",
        "window passed"
    );

    // After login the key is the user: b gets a fresh budget (auth.login itself counts).
    assert_eq!(login(&mut b, "reader-t").await["type"], "result");
    assert_eq!(b.request(op(2)).await["code"], "UNKNOWN_OPERATION");
    assert_eq!(b.request(op(3)).await["code"], "UNKNOWN_OPERATION");
    assert_eq!(b.request(op(4)).await["code"], "UNKNOWN_OPERATION");
    assert_eq!(b.request(op(5)).await["code"], "RATE_LIMITED");
}

#[tokio::test]
async fn per_ip_connection_limit_closes_with_4003() {
    let mut config = local_config();
    config.connection_limits.max_connections_per_ip = Some(2);
    let server = common::start(config).await;
    let (_a, _) = Client::connect(&server).await;
    let (_b, _) = Client::connect(&server).await;
    let (ws, _) = tokio_tungstenite::connect_async(format!("ws://{}/", server.local_addr()))
        .await
        .unwrap();
    let mut third = Client::from_ws(ws);
    assert_eq!(
        third.expect_close().await,
        (4003, "too_many_connections".into())
    );
    assert_eq!(server.connection_count(), 2);
}

#[tokio::test]
async fn disallowed_origins_get_http_403() {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let mut config = local_config();
    config.allowed_origins = Some(vec!["https://app.example".into()]);
    let server = common::start(config).await;
    let url = format!("ws://{}/", server.local_addr());
    let with_origin = |origin: &str| {
        let mut req = url.clone().into_client_request().unwrap();
        req.headers_mut().insert("origin", origin.parse().unwrap());
        req
    };
    match tokio_tungstenite::connect_async(with_origin("https://evil.example")).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => assert_eq!(resp.status(), 403),
        other => panic!("expected 403, got {:?}", other.map(|_| ())),
    }
    assert!(
        tokio_tungstenite::connect_async(with_origin("https://app.example"))
            .await
            .is_ok()
    );
    // No Origin header (non-browser client): always accepted.
    assert!(tokio_tungstenite::connect_async(url.as_str()).await.is_ok());
}

#[tokio::test]
async fn expose_error_details_false_strips_details() {
    let config = ServerConfig {
        rate_limit: Some(RateLimitConfig {
            max_requests: 1,
            window_ms: 60_000,
        }),
        expose_error_details: false,
        ..local_config()
    };
    let server = common::start(config).await;
    let (mut c, _) = Client::connect(&server).await;
    c.request(json!({"id": 1, "type": "nope.x"})).await;
    let limited = c.request(json!({"id": 2, "type": "nope.x"})).await;
    assert_eq!(limited["code"], "RATE_LIMITED");
    assert!(limited.get("details").is_none(), "{limited}");
}

#[tokio::test]
async fn a_panicking_validator_is_an_internal_error_and_the_connection_lives_on() {
    struct Exploding;
    impl noex_server::TokenValidator for Exploding {
        fn validate<'a>(&'a self, token: &'a str) -> noex_server::ValidateFuture<'a> {
            Box::pin(async move {
                if token == "boom" {
                    panic!("validator bug");
                }
                Some(Session {
                    user_id: token.into(),
                    roles: vec![],
                    expires_at: None,
                    identity: false,
                })
            })
        }
    }
    let server = Server::builder(local_config())
        .token_validator(Exploding)
        .start()
        .await
        .unwrap();
    let (mut c, _) = Client::connect(&server).await;
    let reply = login(&mut c, "boom").await;
    assert_eq!(reply["code"], "INTERNAL_ERROR");
    assert_eq!(
        reply["message"], "Internal server error",
        "no internals leak"
    );
    assert!(reply.get("details").is_none());
    // The same connection keeps working.
    assert_eq!(login(&mut c, "kim").await["data"]["userId"], "kim");
    let (_other, welcome) = Client::connect(&server).await;
    assert_eq!(welcome["type"], "welcome", "the server is unaffected");
}

/// A declarative rule limited to some buckets allows a `store.transaction` whose every
/// operation names one of them, and refuses one that reaches outside (the resource stays
/// `*` in the message, as the protocol says).
#[tokio::test]
async fn bucket_limited_rules_check_every_bucket_of_a_transaction() {
    let mut auth = static_auth();
    auth.permissions = serde_json::from_value(json!({
        "default": "deny",
        "rules": [{"role": "agent", "allow": ["store.transaction", "store.insert"], "buckets": ["metrics", "events"]}]
    }))
    .expect("policy");
    let mut config = local_config();
    config.store = serde_json::from_value(json!({"buckets": {
        "metrics": {"key": "id", "schema": {"id": {"type": "number", "generated": "autoincrement"}}},
        "events": {"key": "id", "schema": {"id": {"type": "number", "generated": "autoincrement"}}},
        "users": {"key": "id", "schema": {"id": {"type": "number", "generated": "autoincrement"}}}
    }}))
    .expect("store");
    let (server, _clock) = start_with(config, auth).await;
    let (mut c, _) = Client::connect(&server).await;
    login(&mut c, "agent-t").await;
    let ok = c
        .ok(
            "store.transaction",
            json!({"operations": [
                {"op": "insert", "bucket": "metrics", "data": {}},
                {"op": "insert", "bucket": "events", "data": {}}
            ]}),
        )
        .await;
    assert_eq!(ok["results"].as_array().map(Vec::len), Some(2));
    let (code, message, _) = c
        .fail(
            "store.transaction",
            json!({"operations": [
                {"op": "insert", "bucket": "metrics", "data": {}},
                {"op": "insert", "bucket": "users", "data": {}}
            ]}),
        )
        .await;
    assert_eq!(
        (code.as_str(), message.as_str()),
        ("FORBIDDEN", "No permission for store.transaction on *")
    );
    assert_eq!(
        server.store().bucket("users").count(None).expect("count"),
        0
    );
    assert_eq!(
        server.store().bucket("metrics").count(None).expect("count"),
        1
    );
}

/// A transaction can do nothing its operations could not do one by one: with
/// `store.transaction` allowed on every bucket but `store.insert` only on `metrics`, a
/// transaction that also updates `users` is refused naming that operation, and nothing of
/// it is written.
#[tokio::test]
async fn every_operation_inside_a_transaction_is_checked_on_its_own() {
    let mut auth = static_auth();
    auth.permissions = serde_json::from_value(json!({
        "default": "deny",
        "rules": [
            {"role": "agent", "allow": "store.transaction"},
            {"role": "agent", "allow": ["store.insert", "store.get"], "buckets": ["metrics"]}
        ]
    }))
    .expect("policy");
    let mut config = local_config();
    config.store = serde_json::from_value(json!({"buckets": {
        "metrics": {"key": "id", "schema": {"id": {"type": "number", "generated": "autoincrement"}}},
        "users": {"key": "id", "schema": {"id": {"type": "string"}, "admin": {"type": "boolean"}}}
    }}))
    .expect("store");
    let (server, _clock) = start_with(config, auth).await;
    server
        .store()
        .bucket("users")
        .insert(
            json!({"id": "eve", "admin": false})
                .as_object()
                .cloned()
                .unwrap_or_default(),
        )
        .expect("seed");
    let (mut c, _) = Client::connect(&server).await;
    login(&mut c, "agent-t").await;
    let (code, message, _) = c
        .fail(
            "store.transaction",
            json!({"operations": [
                {"op": "insert", "bucket": "metrics", "data": {}},
                {"op": "update", "bucket": "users", "key": "eve", "data": {"admin": true}}
            ]}),
        )
        .await;
    assert_eq!(
        (code.as_str(), message.as_str()),
        ("FORBIDDEN", "No permission for store.update on users")
    );
    assert_eq!(
        server.store().bucket("metrics").count(None).expect("count"),
        0
    );
    let eve = server
        .store()
        .bucket("users")
        .get(&json!("eve"))
        .expect("get")
        .expect("eve");
    assert_eq!(eve["admin"], false);
    // Reading a bucket the role may not read is refused inside a transaction too.
    let (code, message, _) = c
        .fail(
            "store.transaction",
            json!({"operations": [{"op": "get", "bucket": "users", "key": "eve"}]}),
        )
        .await;
    assert_eq!(
        (code.as_str(), message.as_str()),
        ("FORBIDDEN", "No permission for store.get on users")
    );
    // What the role may do alone, it may do atomically.
    let ok = c
        .ok(
            "store.transaction",
            json!({"operations": [
                {"op": "insert", "bucket": "metrics", "data": {}},
                {"op": "get", "bucket": "metrics", "key": 1}
            ]}),
        )
        .await;
    assert_eq!(ok["results"][1]["data"]["id"], 1);
}

/// A JWT signed with HS256 from a hand-written header and claims (the `jsonwebtoken`
/// crate's `Header` cannot carry `crit`, and its `encode` would not let claims be odd).
fn hand_built_jwt(secret: &[u8], header: Value, claims: Value) -> String {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let message = format!(
        "{}.{}",
        b64.encode(header.to_string()),
        b64.encode(claims.to_string())
    );
    let signature = jsonwebtoken::crypto::sign(
        message.as_bytes(),
        &EncodingKey::from_secret(secret),
        Algorithm::HS256,
    )
    .unwrap();
    format!("{message}.{signature}")
}

fn hs256_auth() -> AuthConfig {
    AuthConfig {
        required: true,
        jwt: Some(JwtConfig {
            algorithm: JwtAlgorithm::HS256,
            secret: Some("s3cret".into()),
            public_key: None,
            public_key_file: None,
            roles_claim: "roles".into(),
            issuer: None,
            audience: None,
        }),
        ..AuthConfig::default()
    }
}

#[tokio::test]
async fn jwt_time_claims_must_be_numbers() {
    let (server, _clock) = start_with(local_config(), hs256_auth()).await;
    let header = json!({"alg": "HS256", "typ": "JWT"});
    let later = (T0 / 1000) + 3600;
    let good = hand_built_jwt(b"s3cret", header.clone(), json!({"sub": "u", "exp": later}));
    let (mut c, _) = Client::connect(&server).await;
    assert_eq!(
        login(&mut c, &good).await["type"],
        "result",
        "the hand-built token is valid"
    );
    for claims in [
        json!({"sub": "u", "exp": "9999999999"}),
        json!({"sub": "u", "exp": null}),
        json!({"sub": "u", "nbf": "0"}),
        json!({"sub": "u", "iat": "yesterday"}),
        json!({"sub": "u", "exp": [later]}),
        // Red team: far-future and negative dates used to mean "never expires".
        json!({"sub": "u", "exp": 1e300}),
        json!({"sub": "u", "exp": 1e30}),
        json!({"sub": "u", "exp": u64::MAX}),
        json!({"sub": "u", "exp": 253_402_300_800_u64}),
        json!({"sub": "u", "nbf": -1}),
        json!({"sub": "u", "iat": -5.5}),
    ] {
        // A fresh connection per token keeps the failed-login limit out of the way.
        let (mut c, _) = Client::connect(&server).await;
        let token = hand_built_jwt(b"s3cret", header.clone(), claims.clone());
        let answer = login(&mut c, &token).await;
        assert_eq!(answer["code"], "UNAUTHORIZED", "{claims}: {answer}");
        assert_eq!(answer["message"], "Invalid token", "{claims}");
    }
}

#[tokio::test]
async fn jwt_nbf_is_honoured_against_the_server_clock() {
    let (server, clock) = start_with(local_config(), hs256_auth()).await;
    let key = EncodingKey::from_secret(b"s3cret");
    let nbf = (T0 / 1000) + 60;
    let token = jwt(
        Algorithm::HS256,
        &key,
        json!({"sub": "u-9", "nbf": nbf, "exp": nbf + 3600}),
    );
    let (mut c, _) = Client::connect(&server).await;
    let early = login(&mut c, &token).await;
    assert_eq!(early["code"], "UNAUTHORIZED", "{early}");
    // Fractional NumericDates are numbers too.
    let fractional = jwt(
        Algorithm::HS256,
        &key,
        json!({"sub": "u-9", "nbf": nbf as f64 + 0.5}),
    );
    assert_eq!(login(&mut c, &fractional).await["code"], "UNAUTHORIZED");
    clock.set(nbf * 1000 + 1_000);
    let on_time = login(&mut c, &token).await;
    assert_eq!(on_time["type"], "result", "{on_time}");
    assert_eq!(on_time["data"]["userId"], "u-9");
}

#[tokio::test]
async fn a_jwt_header_with_crit_is_rejected() {
    let (server, _clock) = start_with(local_config(), hs256_auth()).await;
    for crit in [json!(["exp"]), json!([]), json!("b64"), json!(null)] {
        let (mut c, _) = Client::connect(&server).await;
        let token = hand_built_jwt(
            b"s3cret",
            json!({"alg": "HS256", "typ": "JWT", "crit": crit}),
            json!({"sub": "u"}),
        );
        let answer = login(&mut c, &token).await;
        assert_eq!(answer["code"], "UNAUTHORIZED", "crit {crit}: {answer}");
        assert_eq!(answer["message"], "Invalid token");
    }
}
