//! The plain-HTTP endpoints and their route table: `/health` (liveness), `/ready`
//! (readiness: 503 from the start of a graceful stop), `/metrics` (the Prometheus text
//! exposition, optionally behind a bearer token), the browser console under `/console/`
//! (with `http.console`; its files are `console`'s), 426 for a plain request on the
//! WebSocket path and 404 for the rest — on the main listener or, with `http.admin`, on the
//! admin listener only. The request head is read and the answer written by `http`.

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;

use crate::http::{Answer, HeadError, Listener, Method, RequestHead, bearer_matches, write_answer};
use crate::metrics::HttpEndpoint;
use crate::shared::{Lifecycle, Shared};
use crate::socket::TrackedStream;

/// Which endpoint a request is for, as the listener and the config serve them.
#[derive(Debug)]
enum Route {
    Health,
    Ready,
    Metrics,
    /// `/console`: redirected to `/console/`, under which the page's relative URLs work.
    ConsoleRedirect,
    /// `/console/config.json`: where the page finds the WebSocket listener.
    ConsoleConfig,
    /// An embedded console file.
    ConsoleAsset(crate::console::Asset),
    /// A plain request on the WebSocket path: 426.
    UpgradeRequired,
    NotFound,
}

/// The route table.
fn route(path: &str, listener: Listener, shared: &Shared) -> Route {
    let http = &shared.config.http;
    if listener == Listener::Main && path == shared.config.path {
        return Route::UpgradeRequired;
    }
    let endpoints_here = match listener {
        Listener::Main => http.admin.is_none(),
        Listener::Admin => true,
    };
    match path {
        "/health" if endpoints_here && http.health => Route::Health,
        "/ready" if endpoints_here && http.health => Route::Ready,
        "/metrics" if endpoints_here && http.metrics => Route::Metrics,
        "/console" if endpoints_here && http.console => Route::ConsoleRedirect,
        "/console/config.json" if endpoints_here && http.console => Route::ConsoleConfig,
        _ => match path.strip_prefix("/console/") {
            Some(file) if endpoints_here && http.console => {
                crate::console::asset(file).map_or(Route::NotFound, Route::ConsoleAsset)
            }
            _ => Route::NotFound,
        },
    }
}

/// Answers a request that is not a WebSocket upgrade (or a head that could not be read),
/// then closes the connection.
pub(crate) async fn respond(
    stream: &mut TrackedStream,
    head: Result<RequestHead, HeadError>,
    shared: Arc<Shared>,
    listener: Listener,
    peer: std::net::IpAddr,
) {
    let metrics = &shared.metrics;
    let (answer, head_only) = match head {
        Err(HeadError::Closed) => return,
        Err(HeadError::Malformed) => {
            metrics.record_http(HttpEndpoint::Refused);
            (
                Answer::error(400, "Bad Request", "malformed HTTP request"),
                false,
            )
        }
        Err(HeadError::TooLarge) => {
            metrics.record_http(HttpEndpoint::Refused);
            (
                Answer::error(
                    431,
                    "Request Header Fields Too Large",
                    "request head too large",
                ),
                false,
            )
        }
        Ok(head) => (
            answer(&head, &shared, listener, peer),
            head.method == Method::Head,
        ),
    };
    write_answer(stream, &answer, head_only).await;
}

fn answer(
    head: &RequestHead,
    shared: &Arc<Shared>,
    listener: Listener,
    peer: std::net::IpAddr,
) -> Answer {
    let route = route(&head.path, listener, shared);
    shared.metrics.record_http(match route {
        Route::Health => HttpEndpoint::Health,
        Route::Ready => HttpEndpoint::Ready,
        Route::Metrics => HttpEndpoint::Metrics,
        Route::ConsoleRedirect | Route::ConsoleConfig | Route::ConsoleAsset(_) => {
            HttpEndpoint::Console
        }
        Route::UpgradeRequired | Route::NotFound => HttpEndpoint::Other,
    });
    let not_found = || Answer::error(404, "Not Found", "not found");
    match route {
        Route::NotFound => return not_found(),
        Route::UpgradeRequired => {
            return Answer {
                headers: Cow::Borrowed("Upgrade: websocket\r\n"),
                ..Answer::error(
                    426,
                    "Upgrade Required",
                    "this path serves WebSocket upgrades only",
                )
            };
        }
        Route::Health
        | Route::Ready
        | Route::Metrics
        | Route::ConsoleRedirect
        | Route::ConsoleConfig
        | Route::ConsoleAsset(_) => {}
    }
    if head.method == Method::Other {
        return Answer {
            headers: Cow::Borrowed("Allow: GET, HEAD\r\n"),
            ..Answer::error(405, "Method Not Allowed", "only GET and HEAD")
        };
    }
    match route {
        Route::Health => Answer::json(
            200,
            "OK",
            serde_json::json!({
                "status": "ok",
                "name": shared.config.name,
                "uptimeMs": u64::try_from(shared.started_at.elapsed().as_millis()).unwrap_or(u64::MAX),
            }),
        ),
        Route::Ready => match *shared.lifecycle.borrow() {
            Lifecycle::Running => Answer::json(200, "OK", serde_json::json!({"status": "ready"})),
            Lifecycle::Starting => Answer::json(
                503,
                "Service Unavailable",
                serde_json::json!({
                    "status": "starting",
                    "reason": "the server is starting: it takes no clients yet",
                }),
            ),
            Lifecycle::Draining { .. } | Lifecycle::Closing => Answer::json(
                503,
                "Service Unavailable",
                serde_json::json!({
                    "status": "shutting_down",
                    "reason": "the server is stopping: clients are being asked to leave",
                }),
            ),
        },
        Route::Metrics => {
            if let Some(token) = &shared.config.http.metrics_token
                && !bearer_matches(head.authorization.as_deref(), token)
            {
                return Answer {
                    headers: Cow::Borrowed("WWW-Authenticate: Bearer\r\n"),
                    ..Answer::error(401, "Unauthorized", "a valid bearer token is required")
                };
            }
            match render(shared) {
                Ok(body) => Answer {
                    status: 200,
                    reason: "OK",
                    content_type: prometheus_client::encoding::prometheus_text::CONTENT_TYPE,
                    headers: Cow::Borrowed(""),
                    body: Cow::Owned(body.into_bytes()),
                },
                Err(_) => Answer::error(500, "Internal Server Error", "metrics unavailable"),
            }
        }
        Route::ConsoleRedirect => Answer {
            headers: Cow::Borrowed(concat!(
                "Location: /console/\r\n",
                "X-Content-Type-Options: nosniff\r\n"
            )),
            ..Answer::json(
                301,
                "Moved Permanently",
                serde_json::json!({"location": "/console/"}),
            )
        },
        Route::ConsoleConfig => {
            // Where the page opens its WebSocket: on this listener's host and port, or,
            // served by the admin listener, on the same host name and the main port.
            let http = &shared.config.http;
            Answer {
                headers: Cow::Borrowed(crate::console::HEADERS),
                ..Answer::json(
                    200,
                    "OK",
                    serde_json::json!({
                        "name": shared.config.name,
                        "wsPath": shared.config.path,
                        "wsPort": shared.local_addr.port(),
                        "sameListener": listener == Listener::Main,
                        "metrics": http.metrics,
                        "metricsToken": http.metrics_token.is_some(),
                        "identity": shared.config.identity.enabled,
                    }),
                )
            }
        }
        Route::ConsoleAsset(asset) => {
            if asset.body.len() >= crate::console::LARGE_ASSET_BYTES
                && let Err(retry_after_ms) = shared
                    .console_assets
                    .fetch(crate::handshake::client_key(peer), shared.clock.now_ms())
            {
                return Answer {
                    headers: Cow::Owned(format!(
                        "Retry-After: {}\r\n",
                        retry_after_ms.div_ceil(1000)
                    )),
                    ..Answer::error(
                        429,
                        "Too Many Requests",
                        "the console's files were fetched too often from this address",
                    )
                };
            }
            Answer {
                status: 200,
                reason: "OK",
                content_type: asset.content_type,
                headers: Cow::Borrowed(crate::console::HEADERS),
                body: Cow::Borrowed(asset.body),
            }
        }
        Route::UpgradeRequired | Route::NotFound => not_found(),
    }
}

/// The Prometheus text exposition (format 0.0.4) of the server's metrics.
fn render(shared: &Arc<Shared>) -> Result<String, fmt::Error> {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(Scrape(Arc::clone(shared))));
    let mut text = String::with_capacity(16 * 1024);
    prometheus_client::encoding::prometheus_text::encode(&mut text, &registry)?;
    Ok(text)
}

/// One scrape's view of the server: the gauges read now, and the counters kept while
/// serving (`metrics`).
struct Scrape(Arc<Shared>);

impl fmt::Debug for Scrape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Scrape")
    }
}

fn gauge(value: impl TryInto<i64>) -> ConstGauge {
    ConstGauge::new(value.try_into().unwrap_or(i64::MAX))
}

impl Collector for Scrape {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> fmt::Result {
        let shared = &self.0;
        let counter = MetricType::Counter;
        let gauge_type = MetricType::Gauge;
        let e = encoder.encode_descriptor(
            "noex_connections_open",
            "Open WebSocket connections",
            None,
            gauge_type,
        )?;
        gauge(shared.registry.len()).encode(e)?;
        let e = encoder.encode_descriptor(
            "noex_handshakes_pending",
            "Connections in their handshake (WebSocket upgrades and plain HTTP requests)",
            None,
            gauge_type,
        )?;
        gauge(shared.handshakes.pending()).encode(e)?;
        shared.metrics.encode(&mut encoder)?;

        // Pushes.
        let outbound = &shared.outbound;
        let e = encoder.encode_descriptor(
            "noex_pushes",
            "Subscription pushes queued for clients",
            None,
            counter,
        )?;
        ConstCounter::new(outbound.pushes()).encode(e)?;
        let mut e = encoder.encode_descriptor(
            "noex_pushes_coalesced",
            "Pushes held back under backpressure and given up for a newer one: a store \
             result replaced (result), a rules event dropped as too many (event)",
            None,
            counter,
        )?;
        let (results, events) = outbound.coalesced();
        ConstCounter::new(results).encode(e.encode_family(&[("kind", "result")])?)?;
        ConstCounter::new(events).encode(e.encode_family(&[("kind", "event")])?)?;
        let e = encoder.encode_descriptor(
            "noex_outbound_bytes",
            "Outbound bytes in memory over all connections",
            None,
            gauge_type,
        )?;
        gauge(outbound.total()).encode(e)?;
        let e = encoder.encode_descriptor(
            "noex_subscriptions",
            "Active subscriptions (store and rules) over all connections",
            None,
            gauge_type,
        )?;
        gauge(shared.subscription_counters.total()).encode(e)?;

        // The store: as many series as buckets, bounded by `limits.maxBuckets`.
        let names = shared.store.bucket_names();
        let mut e = encoder.encode_descriptor(
            "noex_bucket_records",
            "Records per bucket",
            None,
            gauge_type,
        )?;
        for name in &names {
            if let Some(n) = shared.store.bucket_len(name) {
                gauge(n).encode(e.encode_family(&[("bucket", name.as_str())])?)?;
            }
        }
        let mut e = encoder.encode_descriptor(
            "noex_bucket_bytes",
            "Approximate bytes of the records per bucket (as limits.maxStoreBytes counts them)",
            None,
            gauge_type,
        )?;
        for name in &names {
            if let Some(n) = shared.store.bucket_bytes(name) {
                gauge(n).encode(e.encode_family(&[("bucket", name.as_str())])?)?;
            }
        }

        // Rules.
        if let Some(engine) = &shared.rules {
            let stats = engine.stats();
            for (name, help, value) in [
                (
                    "noex_rule_firings",
                    "Rule runs whose conditions held",
                    stats.rules_executed,
                ),
                (
                    "noex_rule_action_errors",
                    "Rule runs stopped by a failing condition or action",
                    stats.action_errors,
                ),
                (
                    "noex_rule_events_processed",
                    "Events processed by the rule engine",
                    stats.events_processed,
                ),
            ] {
                let e = encoder.encode_descriptor(name, help, None, counter)?;
                ConstCounter::new(value).encode(e)?;
            }
            let e =
                encoder.encode_descriptor("noex_rules", "Registered rules", None, gauge_type)?;
            gauge(stats.rules_count).encode(e)?;
            let e = encoder.encode_descriptor("noex_facts", "Stored facts", None, gauge_type)?;
            gauge(stats.facts_count).encode(e)?;
        }
        let e = encoder.encode_descriptor(
            "noex_uptime_seconds",
            "Seconds since the server started",
            None,
            gauge_type,
        )?;
        ConstGauge::new(shared.started_at.elapsed().as_secs_f64()).encode(e)?;
        Ok(())
    }
}
