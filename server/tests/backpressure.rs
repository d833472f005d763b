//! Backpressure over a real WebSocket: a client that stops reading while thousands of
//! pushes are due neither slows the writer nor other subscribers, the server holds only
//! the newest value for it, and when it reads again it gets that final value.

mod common;

use common::{Client, local_config, start};
use serde_json::{Value, json};

const UPDATES: u64 = 10_000;
const BLOB: usize = 4_096;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_client_gets_the_final_state_and_nobody_waits_for_it() {
    let mut config = local_config();
    config.backpressure.max_buffered_bytes = 256 * 1024;
    // The stalled client stays connected for the whole test, however long a loaded machine
    // makes it: the write deadline (heartbeat.timeoutMs, 10 s by default) would drop it and
    // what it holds with it (dropping it is hostile_transport's subject).
    config.heartbeat.interval_ms = 600_000;
    config.heartbeat.timeout_ms = 600_000;
    config.store = serde_json::from_value(json!({
        "buckets": {"doc": {"key": "id", "schema": {"id": {"type": "string"}, "n": {"type": "number"}, "blob": {"type": "string"}}}},
        "queries": {"doc": {"bucket": "doc"}}
    }))
    .expect("store section");
    let server = start(config).await;
    let blob = "x".repeat(BLOB);

    let (mut writer, _) = Client::connect(&server).await;
    writer
        .ok(
            "store.insert",
            json!({"bucket": "doc", "data": {"id": "d", "n": 0, "blob": blob}}),
        )
        .await;
    let (mut stalled, _) = Client::connect(&server).await;
    let stalled_sub = stalled.ok("store.subscribe", json!({"query": "doc"})).await;
    let (mut live, _) = Client::connect(&server).await;
    live.ok("store.subscribe", json!({"query": "doc"})).await;

    // The live subscriber reads everything as it comes, concurrently with the writer. It
    // returns only once it has received the final value, so the timeout below is the check
    // that the final state reached it.
    let live_reader = tokio::spawn(async move {
        let mut seen = 0u64;
        loop {
            let push = live.next_push().await;
            seen += 1;
            if push["data"][0]["n"] == UPDATES {
                return seen;
            }
        }
    });

    // `stalled` reads nothing from here on. Requests are pipelined in batches of 10, each
    // answer read before the next batch; the store coalesces changes that arrive together
    // into one re-evaluation, so settling after each batch makes sure at least 1 000
    // pushes of ~4 KiB (4 MB, more than the socket buffers take) fall due.
    const BATCH: u64 = 10;
    for batch in 0..UPDATES / BATCH {
        for i in 1..=BATCH {
            let n = batch * BATCH + i;
            writer
                .send(json!({"id": n, "type": "store.update", "bucket": "doc", "key": "d", "data": {"n": n}}))
                .await;
        }
        for _ in 0..BATCH {
            assert_eq!(writer.recv().await["type"], "result");
        }
        server.store().settle().await;
    }
    let live_pushes = tokio::time::timeout(common::WAIT, live_reader)
        .await
        .expect("the live subscriber is not held up by the stalled one")
        .expect("live reader");

    server.store().settle().await;
    // Memory held for any connection stays under the bound: at most maxBufferedBytes of
    // frames (plus the one that crossed it) and one held value per subscription.
    let frame_bound = BLOB + 1024;
    let buffers = server.connection_buffers();
    assert!(buffers.len() >= 2, "writer and stalled client at least");
    for b in &buffers {
        assert!(
            b.peak_buffered_bytes <= 256 * 1024 + frame_bound,
            "connection {} peaked at {} bytes",
            b.id,
            b.peak_buffered_bytes
        );
        assert!(b.held_bytes <= frame_bound, "{b:?}");
    }
    let stalled_buffer = buffers
        .iter()
        .find(|b| b.held_bytes > 0)
        .expect("the stalled connection holds its newest value");
    assert!(
        stalled_buffer.buffered_bytes >= 200 * 1024,
        "{stalled_buffer:?}"
    );
    eprintln!("buffers while stalled: {buffers:?}");

    // A request from the stalled client is still answered (responses are never held).
    stalled
        .send(json!({"id": 777, "type": "store.get", "bucket": "doc", "key": "d"}))
        .await;

    // Now it reads: whatever the socket buffers held, the answer (queued before the
    // held value is released), and the newest value.
    let mut pushes = 0u64;
    let mut last_n = None;
    let mut answered = false;
    while !(answered && last_n == Some(UPDATES)) {
        let frame = stalled.recv().await;
        match frame["type"].as_str() {
            Some("push") => {
                assert_eq!(frame["subscriptionId"], stalled_sub["subscriptionId"]);
                pushes += 1;
                let n = frame["data"][0]["n"].as_u64().expect("n");
                assert!(
                    last_n < Some(n),
                    "pushes arrive in order: {n} after {last_n:?}"
                );
                last_n = Some(n);
            }
            Some("result") => {
                assert_eq!(frame["id"], 777);
                assert_eq!(frame["data"]["n"], UPDATES);
                answered = true;
            }
            _ => panic!("unexpected {frame}"),
        }
    }
    assert_eq!(last_n, Some(UPDATES), "the final state was delivered");
    assert!(
        pushes < UPDATES / 2,
        "held pushes were coalesced ({pushes} of {UPDATES} delivered)"
    );
    eprintln!("stalled client received {pushes} of {UPDATES} pushes; live client {live_pushes}");

    // Nothing is left over afterwards.
    server.store().settle().await;
    stalled.assert_no_push().await;
    let _: Value = stalled.ok("server.stats", json!({})).await;
}
