//! `config`: the server's JSON config file and what the server builds from it at start.
//!
//! UTF-8 input is the file's text. Other input generates a config object from the config's
//! own field names (every section: limits, heartbeat, auth with tokens / JWT / permissions,
//! store buckets and queries, rules, persistence).
//!
//! Checks: `serde_json::from_str::<ServerConfig>` and `validate()` never panic, and
//! `ServerConfig::from_file` on the same text agrees with them (it fails exactly when they
//! do) without panicking; a config that loads serializes back to the same config. For a
//! valid config, the start-up steps that need no socket run: the store section is applied to
//! an in-memory store, the JWT validator is built, the rules are registered, permission
//! checks are evaluated.

#![no_main]

use arbitrary::{Result, Unstructured};
use libfuzzer_sys::fuzz_target;
use noex_fuzz::{Gen, obj, runtime};
use noex_protocol::Operation;
use noex_rules::RuleEngine;
use noex_server::{AuthConfig, JwtValidator, ServerConfig, Session, authorize};
use noex_store::{Store, StoreConfig};
use serde_json::{Map, Value, json};
use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Duration;

fuzz_target!(|data: &[u8]| {
    match std::str::from_utf8(data) {
        Ok(text) => check(text),
        Err(_) => {
            if let Ok(config) = generate(&mut Unstructured::new(data)) {
                check(&config.to_string());
            }
        }
    }
});

/// A file of this process that `from_file` reads the text from.
fn scratch_file() -> &'static PathBuf {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        std::env::temp_dir().join(format!("noex-fuzz-config-{}.json", std::process::id()))
    })
}

fn check(text: &str) {
    noex_fuzz::show(&text);
    let parsed = serde_json::from_str::<ServerConfig>(text);
    let valid = parsed.as_ref().ok().map(ServerConfig::validate);
    std::fs::write(scratch_file(), text).expect("write the scratch config file");
    let from_file = ServerConfig::from_file(scratch_file());
    let _ = from_file.as_ref().map_err(ToString::to_string);
    match (&valid, &from_file) {
        (Some(Ok(())), Ok(loaded)) => assert_eq!(Some(loaded), parsed.as_ref().ok()),
        (Some(Ok(())), Err(e)) => panic!("from_str and validate accept the config, from_file: {e}"),
        (_, Ok(_)) => panic!("from_file accepts a config that from_str or validate refuse"),
        _ => {}
    }
    let Ok(config) = parsed else { return };
    let _ = config.validate().map_err(|e| e.to_string());

    let round_trip = serde_json::to_string(&config).expect("a config serializes");
    let back = serde_json::from_str::<ServerConfig>(&round_trip)
        .unwrap_or_else(|e| panic!("serialized config {round_trip} does not load: {e}"));
    assert_eq!(back, config, "config round trip through {round_trip}");

    if matches!(valid, Some(Ok(()))) {
        start_up(&config);
    }
}

/// What `ServerBuilder::start` does with a valid config before it binds a socket.
fn start_up(config: &ServerConfig) {
    if let Some(jwt) = config
        .auth
        .as_ref()
        .and_then(|auth| auth.jwt.as_ref())
        .filter(|j| j.public_key_file.is_none())
    {
        let _ = JwtValidator::new(jwt);
    }
    runtime().block_on(async {
        let store = Store::start(StoreConfig {
            ttl_check_interval: Duration::ZERO,
            ..StoreConfig::default()
        })
        .expect("the store starts");
        for (name, definition) in &config.store.buckets {
            let _ = store.define_bucket(name, definition.clone());
        }
        for (name, definition) in &config.store.queries {
            if store.define_query(name, definition.clone()).is_ok() {
                let _ = store.run_query(name, &json!({}));
            }
        }
        let engine = (config.rules.enabled == Some(true)).then(|| {
            let engine = RuleEngine::default();
            for rule in &config.rules.rules {
                let _ = engine.register_rule(rule);
            }
            engine
        });
        if let Some(auth) = &config.auth {
            check_permissions(auth, &store, engine.as_ref());
        }
        if let Some(engine) = engine {
            engine.shutdown();
        }
        store.settle().await;
    });
}

/// Decides a few operations of every family for a session holding every built-in role,
/// against the store and rules the config defined.
fn check_permissions(auth: &AuthConfig, store: &Store, rules: Option<&RuleEngine>) {
    let session = Session {
        user_id: "u".into(),
        roles: vec!["admin".into(), "customer".into(), "reader".into()],
        expires_at: None,
        identity: false,
    };
    let bucket = auth
        .permissions
        .rules
        .first()
        .and_then(|rule| rule.buckets.as_ref()?.first().cloned())
        .unwrap_or_else(|| "orders".into());
    let frames = [
        json!({"type": "store.insert", "bucket": bucket, "data": {}}),
        json!({"type": "store.all", "bucket": "*"}),
        json!({"type": "store.dropBucket", "name": bucket}),
        json!({"type": "store.subscribe", "query": bucket}),
        json!({"type": "store.buckets"}),
        json!({"type": "rules.emit", "topic": "payment.received", "data": {}}),
        json!({"type": "rules.subscribe", "pattern": "bucket.*"}),
        json!({"type": "rules.getFact", "key": "admin:flag"}),
        json!({"type": "rules.getRule", "ruleId": "r"}),
        json!({"type": "server.stats"}),
    ];
    for frame in frames {
        let Value::Object(mut fields) = frame else {
            continue;
        };
        let Some(Value::String(op_type)) = fields.remove("type") else {
            continue;
        };
        if let Ok(op) = Operation::parse(&op_type, &fields) {
            let _ = authorize(&session, &auth.permissions, None, &op, store, rules)
                .map_err(|e| e.to_string());
        }
    }
}

// ----- the generator ---------------------------------------------------------------------

const KEYS: &[&str] = &[
    "port",
    "host",
    "path",
    "maxPayloadBytes",
    "name",
    "heartbeat",
    "intervalMs",
    "timeoutMs",
    "backpressure",
    "limits",
    "auth",
    "store",
    "rules",
    "persistence",
    "rateLimit",
];
const STRINGS: &[&str] = &[
    "/",
    "/ws",
    "ws",
    "127.0.0.1",
    "0.0.0.0",
    "::1",
    "sync",
    "batched",
    "batched:20ms",
    "batched:0ms",
    "batched:",
    "memory",
    "redb",
    "HS256",
    "RS256",
    "ES256",
    "allow",
    "deny",
    "*",
    "store.*",
    "rules.*",
    "orders",
    "admin",
    "",
];

fn num(g: &mut Gen<'_, '_>) -> Result<Value> {
    g.number()
}

fn boolean(g: &mut Gen<'_, '_>) -> Result<Value> {
    Ok(Value::Bool(g.u.arbitrary()?))
}

fn string(g: &mut Gen<'_, '_>) -> Result<Value> {
    Ok(Value::String(g.string()?))
}

/// An object whose listed fields are each present half the time.
fn section(
    g: &mut Gen<'_, '_>,
    fields: &[(&str, fn(&mut Gen<'_, '_>) -> Result<Value>)],
) -> Result<Value> {
    let mut m = Map::new();
    for (name, make) in fields {
        g.opt_field(&mut m, name, |g| make(g))?;
    }
    Ok(Value::Object(m))
}

fn generate(u: &mut Unstructured<'_>) -> Result<Value> {
    let mut g = Gen::new(u, KEYS, STRINGS);
    section(
        &mut g,
        &[
            ("port", num),
            ("host", string),
            ("path", string),
            ("maxPayloadBytes", num),
            ("name", string),
            ("expose_error_details", boolean),
            ("exposeErrorDetails", boolean),
            ("heartbeat", |g| {
                section(g, &[("intervalMs", num), ("timeoutMs", num)])
            }),
            ("backpressure", |g| {
                section(g, &[("maxBufferedBytes", num), ("highWaterMark", num)])
            }),
            ("connectionLimits", |g| {
                section(
                    g,
                    &[
                        ("maxSubscriptionsPerConnection", num),
                        ("maxTotalSubscriptions", num),
                        ("maxConnectionsPerIp", num),
                    ],
                )
            }),
            ("limits", limits),
            ("rateLimit", |g| {
                section(g, &[("maxRequests", num), ("windowMs", num)])
            }),
            ("allowedOrigins", |g| Ok(Value::Array(g.list(2, string)?))),
            ("auth", auth),
            ("store", store),
            ("rules", |g| {
                section(
                    g,
                    &[
                        ("enabled", boolean),
                        ("storeBridge", boolean),
                        ("connectionEvents", boolean),
                        ("rules", |g| {
                            Ok(Value::Array(g.list(2, |g| {
                                Ok(obj([
                                    ("id", g.word(&["a", "b"])?),
                                    ("name", string(g)?),
                                    (
                                        "trigger",
                                        obj([
                                            ("type", json!("event")),
                                            ("topic", g.word(&["t", "a.*", "a..b"])?),
                                        ]),
                                    ),
                                    (
                                        "actions",
                                        json!([{"type": "set_fact", "key": "k", "value": 1}]),
                                    ),
                                ]))
                            })?))
                        }),
                    ],
                )
            }),
            ("persistence", |g| {
                section(
                    g,
                    &[
                        ("engine", |g| g.word(&["memory", "redb", "sqlite"])),
                        ("dataDir", string),
                        ("path", string),
                        ("durability", |g| {
                            g.word(&[
                                "sync",
                                "batched",
                                "batched:20ms",
                                "batched:0ms",
                                "batched:",
                                "batched:1h",
                                "batched:99999999999999999999ms",
                            ])
                        }),
                    ],
                )
            }),
        ],
    )
}

fn limits(g: &mut Gen<'_, '_>) -> Result<Value> {
    section(
        g,
        &[
            ("handshakeTimeoutMs", num),
            ("maxPendingHandshakes", num),
            ("maxPendingHandshakesPerIp", num),
            ("maxJsonDepth", num),
            ("maxJsonElements", num),
            ("maxResultBytes", num),
            ("maxBuckets", num),
            ("maxQueries", num),
            ("maxFacts", num),
            ("maxRules", num),
            ("maxRuleBytes", num),
            ("maxRulesBytes", num),
            ("maxTimers", num),
            ("maxRuleWorkPerInput", num),
            ("maxRuleChainDepth", num),
            ("maxRuleQueuedBytes", num),
            ("maxRuleScanBytes", num),
            ("login", |g| {
                section(
                    g,
                    &[
                        ("maxFailuresPerConnection", num),
                        ("maxFailuresPerIp", num),
                        ("windowMs", num),
                    ],
                )
            }),
        ],
    )
}

fn auth(g: &mut Gen<'_, '_>) -> Result<Value> {
    section(
        g,
        &[
            ("required", boolean),
            ("tokens", |g| {
                let mut m = Map::new();
                for _ in 0..g.len(2)? {
                    let token = g.string()?;
                    let session = section(
                        g,
                        &[
                            ("userId", string),
                            ("roles", |g| {
                                Ok(Value::Array(g.list(2, |g| {
                                    g.word(&["admin", "reader", "writer", "customer"])
                                })?))
                            }),
                            ("expiresAt", num),
                        ],
                    )?;
                    m.insert(token, session);
                }
                Ok(Value::Object(m))
            }),
            ("jwt", |g| {
                section(
                    g,
                    &[
                        ("algorithm", |g| {
                            g.word(&["HS256", "RS256", "ES256", "none"])
                        }),
                        ("secret", string),
                        ("publicKey", |g| {
                            g.word(&[
                        "-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE\n-----END PUBLIC KEY-----\n",
                        "-----BEGIN PUBLIC KEY-----\n-----END PUBLIC KEY-----\n",
                        "-----BEGIN RSA PUBLIC KEY-----\nAAAA\n-----END RSA PUBLIC KEY-----\n",
                        "not a key",
                    ])
                        }),
                        ("rolesClaim", string),
                        ("issuer", string),
                        ("audience", string),
                    ],
                )
            }),
            ("permissions", |g| {
                section(
                    g,
                    &[
                        ("default", |g| g.word(&["allow", "deny"])),
                        ("rules", |g| {
                            Ok(Value::Array(g.list(3, |g| {
                                section(
                                    g,
                                    &[
                                        ("role", |g| g.word(&["admin", "customer", "reader"])),
                                        ("allow", |g| {
                                            if g.chance(128)? {
                                                g.word(&[
                                                    "*",
                                                    "store.*",
                                                    "rules.emit",
                                                    "store.",
                                                    ".*",
                                                    "",
                                                ])
                                            } else {
                                                Ok(Value::Array(g.list(2, |g| {
                                                    g.word(&["*", "store.*", "store.get"])
                                                })?))
                                            }
                                        }),
                                        ("buckets", |g| {
                                            Ok(Value::Array(
                                                g.list(2, |g| g.word(&["orders", "*", ""]))?,
                                            ))
                                        }),
                                        ("topics", |g| {
                                            Ok(Value::Array(g.list(2, |g| {
                                                g.word(&["payment.*", "*", "a..b"])
                                            })?))
                                        }),
                                    ],
                                )
                            })?))
                        }),
                    ],
                )
            }),
        ],
    )
}

fn store(g: &mut Gen<'_, '_>) -> Result<Value> {
    section(
        g,
        &[
            ("name", string),
            ("buckets", |g| {
                let mut m = Map::new();
                for _ in 0..g.len(2)? {
                    let name = g
                        .word(&["orders", "users", ""])?
                        .as_str()
                        .unwrap_or_default()
                        .to_owned();
                    let def = section(
                        g,
                        &[
                            ("key", |g| g.word(&["id", "missing"])),
                            ("schema", |g| {
                                let mut s = Map::new();
                                s.insert("id".into(), json!({"type": "string"}));
                                for name in ["n", "s"] {
                                    let field = section(
                                        g,
                                        &[
                                            ("type", |g| {
                                                g.word(&[
                                                    "string", "number", "boolean", "object",
                                                    "array", "date", "uuid",
                                                ])
                                            }),
                                            ("required", boolean),
                                            ("default", |g| g.scalar()),
                                            ("generated", |g| {
                                                g.word(&[
                                                    "uuid",
                                                    "cuid",
                                                    "autoincrement",
                                                    "timestamp",
                                                ])
                                            }),
                                            ("unique", boolean),
                                            ("enum", |g| {
                                                Ok(Value::Array(g.list(3, |g| g.scalar())?))
                                            }),
                                            ("format", |g| g.word(&["email", "url", "iso-date"])),
                                            ("min", num),
                                            ("max", num),
                                            ("minLength", num),
                                            ("maxLength", num),
                                            ("pattern", |g| {
                                                g.word(&["^a", "[", "(a+)+$", "a{1000}{1000}"])
                                            }),
                                        ],
                                    )?;
                                    s.insert(name.into(), field);
                                }
                                Ok(Value::Object(s))
                            }),
                            ("indexes", |g| {
                                Ok(Value::Array(g.list(2, |g| g.word(&["n", "s", "id", "x"]))?))
                            }),
                            ("ttl", |g| {
                                if g.chance(128)? {
                                    g.number()
                                } else {
                                    g.word(&["1s", "0", "15m", "1w", "99999999999999999999d"])
                                }
                            }),
                            ("maxSize", num),
                            ("persistent", boolean),
                        ],
                    )?;
                    m.insert(name, def);
                }
                Ok(Value::Object(m))
            }),
            ("queries", |g| {
                let mut m = Map::new();
                for _ in 0..g.len(2)? {
                    let name = g.string()?;
                    let def = section(
                        g,
                        &[
                            ("bucket", |g| g.word(&["orders", "users"])),
                            ("filter", |g| Ok(Value::Object(g.object(1)?))),
                            ("sort", |g| {
                                Ok(obj([("n", g.word(&["asc", "desc", "up"])?)]))
                            }),
                            ("limit", num),
                            ("offset", num),
                            ("fields", |g| Ok(Value::Array(g.list(2, string)?))),
                            ("aggregate", |g| {
                                section(
                                    g,
                                    &[
                                        ("function", |g| {
                                            g.word(&["count", "sum", "avg", "min", "max", "median"])
                                        }),
                                        ("field", |g| g.word(&["n", "s"])),
                                        ("groupBy", |g| g.word(&["s", "n"])),
                                    ],
                                )
                            }),
                        ],
                    )?;
                    m.insert(name, def);
                }
                Ok(Value::Object(m))
            }),
        ],
    )
}
