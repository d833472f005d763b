//! A runnable example: connect, watch lifecycle events, send a few requests and print the
//! answers (errors are printed too: a server started without a `users` bucket answers
//! BUCKET_NOT_DEFINED).
//!
//! ```text
//! cargo run -p noex-server &                        # a server on ws://127.0.0.1:8080
//! cargo run -p noex-client --example basic -- ws://127.0.0.1:8080
//! ```

use futures_util::StreamExt;
use noex_client::{Client, ClientOptions};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let url = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "ws://127.0.0.1:8080".to_owned());
    let (client, mut events) = Client::connect_with_events(&url, ClientOptions::default()).await?;
    println!("connected: protocol {}", client.welcome().version);
    tokio::spawn(async move {
        while let Some(event) = events.next().await {
            println!("event: {event:?}");
        }
    });

    let users = client.store().bucket::<serde_json::Value>("users");
    match users.insert(serde_json::json!({"name": "Alice"})).await {
        Ok(record) => println!("inserted {record}"),
        Err(e) => println!("insert failed: {e}"),
    }
    match users.all().await {
        Ok(all) => println!("{} users", all.len()),
        Err(e) => println!("all failed: {e}"),
    }
    match client.rules().stats().await {
        Ok(stats) => println!("rules: {stats:?}"),
        Err(e) => println!("rules failed: {e}"),
    }
    client.disconnect().await;
    Ok(())
}
