//! `chat-setup`: the one-time setup of the chat example (`examples/chat`) on a server with the
//! built-in identity.
//!
//! It connects with the native Rust client, logs in as the bootstrap superadmin with the
//! `identity.adminSecret` of the chat's `noex.json`, and from `users.json` creates (or brings
//! up to date) the role `member` with its permission rules and the demo users with their
//! passwords, each holding `member`. Every user's id and name also goes into the `members`
//! bucket, which the page reads to name the users its presence facts hold by id. It prints
//! one line per user with the password to log in with.
//!
//! ```text
//! cargo run -p noex-examples --bin chat-setup -- --url ws://127.0.0.1:8080/
//! ```
//!
//! Running it again is harmless: existing users get their demo password back. Exit codes: 0
//! when everything is set up, 1 when the connection, the login or a step failed (the message
//! says which and why), 2 for bad arguments or unreadable files.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Parser;
use noex_client::protocol::ErrorCode;
use noex_client::{Client, ClientError, ClientOptions, NewUser};
use serde::Deserialize;
use serde_json::{Value, json};

/// Command-line options.
#[derive(Debug, Parser)]
#[command(
    name = "chat-setup",
    about = "Creates the chat example's role and demo users on a noex server with built-in identity"
)]
struct Args {
    /// WebSocket URL of the noex server.
    #[arg(long, env = "NOEX_URL", default_value = "ws://127.0.0.1:8080/")]
    url: String,
    /// The server's config file, for its `identity.adminSecret`.
    #[arg(long, default_value = "examples/chat/noex.json")]
    config: PathBuf,
    /// The role and the users to create.
    #[arg(long, default_value = "examples/chat/users.json")]
    users: PathBuf,
}

/// `users.json`.
#[derive(Debug, Deserialize)]
struct Setup {
    /// The role every user gets.
    role: Role,
    /// The demo users.
    users: Vec<User>,
}

/// The chat's role.
#[derive(Debug, Deserialize)]
struct Role {
    /// Its name.
    name: String,
    /// What it is for.
    description: String,
    /// Its permission rules (`{allow, buckets?, topics?}`).
    permissions: Vec<Value>,
}

/// A demo user.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct User {
    /// The login name.
    username: String,
    /// The demo password.
    password: String,
    /// The name shown.
    display_name: String,
}

/// Reads a JSON file.
fn read<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))
}

/// The admin secret of a server config.
fn admin_secret(config: &Value) -> Option<&str> {
    config.get("identity")?.get("adminSecret")?.as_str()
}

/// Creates or updates the role, the users and their `members` records.
async fn set_up(client: &Client, setup: &Setup) -> Result<(), String> {
    let identity = client.identity();
    let step = |what: &'static str| move |e: ClientError| format!("{what}: {e}");
    let roles = identity.list_roles().await.map_err(step("list roles"))?;
    let role = &setup.role;
    match roles.roles.iter().find(|r| r.name == role.name) {
        Some(existing) => {
            identity
                .update_role(
                    &existing.id,
                    Some(&role.description),
                    Some(role.permissions.clone()),
                )
                .await
                .map_err(step("update the role"))?;
        }
        None => {
            identity
                .create_role(
                    &role.name,
                    Some(&role.description),
                    Some(role.permissions.clone()),
                )
                .await
                .map_err(step("create the role"))?;
        }
    }
    let existing = identity
        .list_users(Some(1), Some(200))
        .await
        .map_err(step("list users"))?
        .users;
    let members = client.store().bucket::<Value>("members");
    for user in &setup.users {
        let id = match existing.iter().find(|u| u.username == user.username) {
            Some(found) => {
                identity
                    .reset_password(&found.id, &user.password)
                    .await
                    .map_err(step("reset a password"))?;
                found.id.clone()
            }
            None => {
                let new = NewUser {
                    display_name: Some(user.display_name.clone()),
                    ..NewUser::new(&user.username, &user.password)
                };
                identity
                    .create_user(new)
                    .await
                    .map_err(step("create a user"))?
                    .id
            }
        };
        match identity.assign_role(&id, &role.name).await {
            Ok(_) => {}
            Err(e) if e.code() == Some(ErrorCode::AlreadyExists) => {}
            Err(e) => return Err(format!("assign the role: {e}")),
        }
        members
            .upsert(json!({"id": id, "name": user.username}))
            .await
            .map_err(step("write the members bucket"))?;
        println!("chat user {:<6} password {}", user.username, user.password);
    }
    Ok(())
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let args = Args::parse();
    let (config, setup) = match (read::<Value>(&args.config), read::<Setup>(&args.users)) {
        (Ok(config), Ok(setup)) => (config, setup),
        (Err(e), _) | (_, Err(e)) => {
            eprintln!("chat-setup: {e}");
            return ExitCode::from(2);
        }
    };
    let Some(secret) = admin_secret(&config) else {
        eprintln!(
            "chat-setup: {} has no identity.adminSecret",
            args.config.display()
        );
        return ExitCode::from(2);
    };
    let client = match Client::connect(&args.url, ClientOptions::default()).await {
        Ok(client) => client,
        Err(e) => {
            eprintln!("chat-setup: cannot connect to {}: {e}", args.url);
            return ExitCode::FAILURE;
        }
    };
    if let Err(e) = client.identity().login_with_secret(secret).await {
        eprintln!("chat-setup: the admin secret was refused: {e}");
        return ExitCode::FAILURE;
    }
    let outcome = set_up(&client, &setup).await;
    let _ = client.identity().logout().await;
    client.disconnect().await;
    match outcome {
        Ok(()) => {
            println!("chat setup done: {} users", setup.users.len());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("chat-setup: {e}");
            ExitCode::FAILURE
        }
    }
}
