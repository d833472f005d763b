//! Password hashing does not hold up other clients: many logins at once queue for the
//! hashing slots on the blocking pool while another client's requests are answered at once.

mod common;

use std::time::Instant;

use common::{Client, local_config};
use futures_util::future::join_all;
use noex_server::{IdentitySection, Server};
use serde_json::json;

const SECRET: &str = "bootstrap-secret-0123456789";
const LOGINS: usize = 20;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_logins_do_not_hold_up_other_clients() {
    let mut config = local_config();
    config.identity = IdentitySection {
        enabled: true,
        admin_secret: Some(SECRET.into()),
        ..IdentitySection::default()
    };
    let server = Server::start(config).await.expect("server starts");
    let (mut root, _) = Client::connect(&server).await;
    root.ok("identity.loginWithSecret", json!({"secret": SECRET}))
        .await;
    root.ok(
        "identity.createUser",
        json!({"username": "alice", "password": "password-1"}),
    )
    .await;
    let mut clients = Vec::new();
    for _ in 0..LOGINS {
        clients.push(Client::connect(&server).await.0);
    }
    // Every login is sent before any is answered.
    for c in &mut clients {
        c.send(json!({"id": 1, "type": "identity.login", "username": "alice", "password": "password-1"}))
            .await;
    }
    let logins = join_all(clients.iter_mut().map(|c| async move {
        let answer = c.recv().await;
        assert_eq!(answer["type"], "result", "{answer}");
        Instant::now()
    }));
    let other = async {
        let answer = root.call("store.buckets", json!({})).await;
        assert_eq!(answer["type"], "result", "{answer}");
        Instant::now()
    };
    let (done, other_done) = tokio::join!(logins, other);
    let last_login = done.iter().max().copied().expect("logins");
    // The other client's answer did not wait for the logins' hashes.
    assert!(
        other_done < last_login,
        "store.buckets was answered after the last of {LOGINS} logins"
    );
}
