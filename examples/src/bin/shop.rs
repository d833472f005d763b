//! `shop`: the command-line client of the e-commerce example (`examples/ecommerce`), on the
//! native Rust client (`noex-client`).
//!
//! ```text
//! shop --token "$ADMIN_TOKEN" seed                 # demo products and stock (admin)
//! shop --token "$CUSTOMER_TOKEN" products          # products with their stock
//! shop --token "$CUSTOMER_TOKEN" order mug 2       # one atomic transaction
//! shop --token "$CUSTOMER_TOKEN" pay o-...         # emits payment.received
//! shop --token "$CUSTOMER_TOKEN" orders            # my orders with their status (facts)
//! shop --token "$CUSTOMER_TOKEN" watch             # order.* events as the rules emit them
//! shop --token "$ADMIN_TOKEN" restock mug 10       # admin only: FORBIDDEN for customers
//! ```
//!
//! The token is a JWT (`examples/ecommerce/token.mjs` mints one); the customer of an order
//! is the token's `sub`. Every failure prints the protocol error code (`FORBIDDEN`,
//! `VALIDATION_ERROR`, ...) on stderr and exits with status 1; nothing from the server is
//! unwrapped.
//!
//! An order is one `store.transaction` of three writes: the inventory's new stock (the
//! bucket's `min: 0` makes a short stock fail validation), the order, and an `order_log`
//! entry whose key is `<product>@<inventory version read>`. Two orders computed from the
//! same stock reading collide on that key (`ALREADY_EXISTS`), so the later one fails as a
//! whole and is retried from a fresh reading instead of overwriting the first one's stock.

use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use clap::{Parser, Subcommand};
use futures_util::StreamExt;
use noex_client::protocol::ErrorCode;
use noex_client::protocol::payloads::WhoAmI;
use noex_client::{Client, ClientError, ClientOptions, TransactionOp};
use serde::Deserialize;
use serde_json::{Map, Value, json};

/// How many times an order is recomputed after a concurrent order took the same stock
/// reading.
const ORDER_ATTEMPTS: u32 = 5;

/// Command line of `shop`.
#[derive(Debug, Parser)]
#[command(
    name = "shop",
    about = "Command-line client of the noex e-commerce example"
)]
struct Cli {
    /// WebSocket URL of the noex server.
    #[arg(long, env = "NOEX_URL", default_value = "ws://127.0.0.1:8082/")]
    url: String,
    /// JWT to log in with (examples/ecommerce/token.mjs mints one).
    #[arg(long, env = "SHOP_TOKEN")]
    token: Option<String>,
    /// What to do.
    #[command(subcommand)]
    command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
enum Command {
    /// Who the token logs in as.
    Whoami,
    /// Products with price and stock.
    Products,
    /// Place an order: one transaction (stock, order, log) that fails as a whole.
    Order {
        /// Product id (see `shop products`).
        product: String,
        /// Quantity (at least 1).
        #[arg(value_parser = clap::value_parser!(u32).range(1..))]
        qty: u32,
    },
    /// Pay an order: emits `payment.received`; the rules mark it paid (or refuse it when
    /// the payment window has passed).
    Pay {
        /// Order id as printed by `shop order`.
        order_id: String,
    },
    /// My orders (the token's user) with their status kept by the rules.
    Orders,
    /// Print order events (`order.*`) as the rules emit them; Ctrl-C stops.
    Watch {
        /// Stop after this many events.
        #[arg(long)]
        count: Option<usize>,
    },
    /// Add stock to a product (admin only).
    Restock {
        /// Product id.
        product: String,
        /// Units to add (at least 1).
        #[arg(value_parser = clap::value_parser!(u32).range(1..))]
        qty: u32,
    },
    /// Create the demo products and their stock when missing (admin only).
    Seed,
}

/// A failure of a command: what was being done and why.
#[derive(Debug)]
struct Failure(String);

impl Failure {
    /// A failed request: the context and the client error (which carries the protocol code).
    fn request(context: &str, error: ClientError) -> Failure {
        Failure(format!("{context}: {error}"))
    }
}

/// A product as stored in the `products` bucket.
#[derive(Debug, Deserialize)]
struct Product {
    /// Product id.
    id: String,
    /// Display name.
    name: String,
    /// Unit price.
    price: f64,
}

/// A stock record of the `inventory` bucket.
#[derive(Debug, Deserialize)]
struct Stock {
    /// Units available.
    stock: i64,
    /// Record version (bumped by every change): part of the order log key.
    #[serde(rename = "_version")]
    version: u64,
}

/// An order as stored in the `orders` bucket.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Order {
    /// Order id.
    id: String,
    /// Product id.
    product_id: String,
    /// Quantity.
    qty: u64,
    /// Price of the order.
    total: f64,
}

/// The demo catalogue: id, name, price, initial stock.
const CATALOGUE: [(&str, &str, f64, i64); 4] = [
    ("mug", "noex mug", 12.0, 10),
    ("tshirt", "noex T-shirt", 25.0, 5),
    ("sticker", "Sticker pack", 3.5, 50),
    ("hoodie", "noex hoodie", 49.0, 2),
];

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure(message)) => {
            eprintln!("shop: {message}");
            ExitCode::FAILURE
        }
    }
}

/// Connects (logging in with the token) and runs the command.
async fn run(cli: Cli) -> Result<(), Failure> {
    let watching = matches!(cli.command, Command::Watch { .. });
    let mut options = ClientOptions {
        auth_token: cli.token.clone(),
        ..ClientOptions::default()
    };
    // A one-shot command fails instead of waiting for the server to come back.
    options.reconnect.enabled = watching;
    let client = Client::connect(&cli.url, options)
        .await
        .map_err(|e| Failure::request(&format!("cannot connect to {} and log in", cli.url), e))?;
    let result = match cli.command {
        Command::Whoami => whoami(&client).await,
        Command::Products => products(&client).await,
        Command::Order { product, qty } => order(&client, &product, qty).await,
        Command::Pay { order_id } => pay(&client, &order_id).await,
        Command::Orders => orders(&client).await,
        Command::Watch { count } => watch(&client, count).await,
        Command::Restock { product, qty } => restock(&client, &product, qty).await,
        Command::Seed => seed(&client).await,
    };
    client.disconnect().await;
    result
}

/// The session as `auth.whoami` reports it: user id and roles, `None` when anonymous.
async fn session(client: &Client) -> Result<Option<(String, Vec<String>)>, Failure> {
    let who = client
        .auth()
        .whoami()
        .await
        .map_err(|e| Failure::request("auth.whoami", e))?;
    Ok(match who {
        WhoAmI::Authenticated { user_id, roles, .. } => Some((user_id, roles)),
        WhoAmI::Anonymous { .. } => None,
    })
}

/// A JSON object literal as the map a transaction operation takes.
fn object(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}

/// The logged-in user's id (the JWT's `sub`).
async fn user_id(client: &Client) -> Result<String, Failure> {
    session(client)
        .await?
        .map(|(user, _)| user)
        .ok_or_else(|| Failure("not logged in: pass a JWT with --token (or SHOP_TOKEN)".into()))
}

/// `shop whoami`.
async fn whoami(client: &Client) -> Result<(), Failure> {
    match session(client).await? {
        Some((user, roles)) => println!("{user} (roles: {})", roles.join(", ")),
        None => println!("not logged in"),
    }
    Ok(())
}

/// `shop products`: the catalogue with each product's stock.
async fn products(client: &Client) -> Result<(), Failure> {
    let store = client.store();
    let products = store
        .bucket::<Product>("products")
        .all()
        .await
        .map_err(|e| Failure::request("reading products", e))?;
    if products.is_empty() {
        println!("no products (an admin runs `shop seed`)");
    }
    for product in products {
        let stock = read_stock(client, &product.id).await?;
        let stock = stock.map_or("no stock record".to_owned(), |s| {
            format!("{} in stock", s.stock)
        });
        println!(
            "{:<10} {:<16} {:>8.2}  {stock}",
            product.id, product.name, product.price
        );
    }
    Ok(())
}

/// The inventory record of a product, if any.
async fn read_stock(client: &Client, product: &str) -> Result<Option<Stock>, Failure> {
    client
        .store()
        .bucket::<Stock>("inventory")
        .get(product)
        .await
        .map_err(|e| Failure::request(&format!("reading the stock of {product}"), e))
}

/// A fresh order id: `o-` + time + process id, in base 36.
fn new_order_id() -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!(
        "o-{}-{}",
        base36(nanos / 1_000_000),
        base36((nanos % 1_000_000) * 100_000 + u128::from(std::process::id() % 100_000))
    )
}

/// `n` in base 36 (lower case).
fn base36(mut n: u128) -> String {
    const DIGITS: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut out = Vec::new();
    loop {
        out.push(DIGITS[(n % 36) as usize]);
        n /= 36;
        if n == 0 {
            break;
        }
    }
    out.reverse();
    String::from_utf8_lossy(&out).into_owned()
}

/// Milliseconds since the Unix epoch.
fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Whether the error is the order log's unique key: another order used the same stock reading.
fn is_log_collision(error: &ClientError) -> bool {
    matches!(error, ClientError::Server { code, details: Some(details), .. }
        if *code == ErrorCode::AlreadyExists
            && details.get("bucket").and_then(Value::as_str) == Some("order_log"))
}

/// Whether the error is the inventory's `min: 0` validation: not enough stock.
fn is_short_stock(error: &ClientError) -> bool {
    matches!(error, ClientError::Server { code, details: Some(Value::Array(issues)), .. }
        if *code == ErrorCode::ValidationError
            && issues.iter().any(|i| i.get("field").and_then(Value::as_str) == Some("stock")))
}

/// `shop order <product> <qty>`: one transaction that writes the new stock, the order and
/// the log entry, or nothing at all.
async fn order(client: &Client, product_id: &str, qty: u32) -> Result<(), Failure> {
    let customer = user_id(client).await?;
    let product = client
        .store()
        .bucket::<Product>("products")
        .get(product_id)
        .await
        .map_err(|e| Failure::request(&format!("reading product {product_id}"), e))?
        .ok_or_else(|| Failure(format!("no product {product_id:?} (see `shop products`)")))?;
    let order_id = new_order_id();
    let total = product.price * f64::from(qty);
    for attempt in 1..=ORDER_ATTEMPTS {
        let stock = read_stock(client, product_id)
            .await?
            .ok_or_else(|| Failure(format!("{product_id} has no stock record")))?;
        let after = stock.stock - i64::from(qty);
        let at = now_ms();
        // The server checks `after >= 0` (inventory.stock has min: 0): a short stock fails
        // the whole transaction, so nothing below is written either.
        let operations = vec![
            TransactionOp::Update {
                bucket: "inventory".into(),
                key: json!(product_id),
                data: object(json!({"stock": after})),
            },
            TransactionOp::Insert {
                bucket: "orders".into(),
                data: object(json!({
                    "id": order_id, "customer": customer, "productId": product_id, "qty": qty,
                    "unitPrice": product.price, "total": total, "placedAt": at})),
            },
            TransactionOp::Insert {
                bucket: "order_log".into(),
                data: object(json!({
                    "id": format!("{product_id}@{}", stock.version), "orderId": order_id,
                    "customer": customer, "productId": product_id, "change": -i64::from(qty),
                    "stockBefore": stock.stock, "stockAfter": after, "at": at})),
            },
        ];
        match client.store().transaction(operations).await {
            Ok(_) => {
                println!(
                    "order {order_id} placed: {qty} x {} = {total:.2}; stock of {product_id} {} -> {after}",
                    product.name, stock.stock
                );
                return Ok(());
            }
            Err(e) if is_log_collision(&e) && attempt < ORDER_ATTEMPTS => {
                // Someone else's order committed from the same reading: read again.
                continue;
            }
            Err(e) if is_short_stock(&e) => {
                return Err(Failure(format!(
                    "not enough stock of {product_id}: {} left, {qty} ordered; nothing was written ({e})",
                    stock.stock
                )));
            }
            Err(e) => {
                return Err(Failure::request(
                    "placing the order (nothing was written)",
                    e,
                ));
            }
        }
    }
    Err(Failure(format!(
        "placing the order: the stock of {product_id} kept changing ({ORDER_ATTEMPTS} attempts)"
    )))
}

/// The status fact the rules keep for an order (`order:<id>:status`).
async fn order_status(client: &Client, order_id: &str) -> Result<Option<String>, Failure> {
    let value = client
        .rules()
        .get_fact(&format!("order:{order_id}:status"))
        .await
        .map_err(|e| Failure::request("rules.getFact", e))?;
    Ok(value.and_then(|v| v.as_str().map(str::to_owned)))
}

/// `shop pay <orderId>`: emits `payment.received` and reports what the rules made of it.
async fn pay(client: &Client, order_id: &str) -> Result<(), Failure> {
    let Some(before) = order_status(client, order_id).await? else {
        return Err(Failure(format!("no order {order_id:?} (no status fact)")));
    };
    if before == "paid" {
        return Err(Failure(format!("order {order_id} is already paid")));
    }
    // Subscribe first: the rules' answer is pushed while the emit is processed.
    let mut events = client
        .rules()
        .subscribe("order.*")
        .await
        .map_err(|e| Failure::request("rules.subscribe", e))?;
    let mut data = Map::new();
    data.insert("orderId".into(), json!(order_id));
    client
        .rules()
        .emit("payment.received", data)
        .await
        .map_err(|e| Failure::request("emitting payment.received", e))?;
    let outcome = tokio::time::timeout(Duration::from_secs(5), async {
        while let Some(push) = events.next().await {
            let Ok(push) = push else { continue };
            let data = &push.event.data;
            if data.get("orderId").and_then(Value::as_str) != Some(order_id) {
                continue;
            }
            match push.topic.as_str() {
                "order.status" => {
                    return Ok(format!(
                        "order {order_id}: {}",
                        data.get("status").and_then(Value::as_str).unwrap_or("?")
                    ));
                }
                "order.payment_refused" => {
                    return Err(Failure(format!(
                        "payment of {order_id} refused: {}",
                        data.get("reason").and_then(Value::as_str).unwrap_or("?")
                    )));
                }
                _ => {}
            }
        }
        Err(Failure(
            "connection closed before the rules answered".into(),
        ))
    })
    .await;
    match outcome {
        Ok(result) => {
            println!("{}", result?);
            Ok(())
        }
        Err(_) => Err(Failure(format!(
            "payment of {order_id} emitted, but its status stayed {before}"
        ))),
    }
}

/// `shop orders`: the logged-in customer's orders with their status.
async fn orders(client: &Client) -> Result<(), Failure> {
    let customer = user_id(client).await?;
    let orders = client
        .store()
        .bucket::<Order>("orders")
        .find(json!({"customer": customer}))
        .await
        .map_err(|e| Failure::request("reading orders", e))?;
    if orders.is_empty() {
        println!("no orders for {customer}");
    }
    for order in orders {
        let status = order_status(client, &order.id).await?;
        println!(
            "{}  {} x {:<8} {:>8.2}  {}",
            order.id,
            order.qty,
            order.product_id,
            order.total,
            status.as_deref().unwrap_or("(no status)")
        );
    }
    Ok(())
}

/// `shop watch`: prints `order.*` events, one line each: topic and data.
async fn watch(client: &Client, count: Option<usize>) -> Result<(), Failure> {
    let mut events = client
        .rules()
        .subscribe("order.*")
        .await
        .map_err(|e| Failure::request("rules.subscribe order.*", e))?;
    println!("watching order.* (Ctrl-C stops)");
    let mut seen = 0;
    loop {
        tokio::select! {
            push = events.next() => match push {
                Some(Ok(push)) => {
                    println!("{} {}", push.topic, push.event.data);
                    seen += 1;
                    if count.is_some_and(|n| seen >= n) {
                        return Ok(());
                    }
                }
                Some(Err(e)) => eprintln!("shop: undecodable event: {e}"),
                None => return Err(Failure("connection closed".into())),
            },
            _ = tokio::signal::ctrl_c() => return Ok(()),
        }
    }
}

/// `shop restock <product> <qty>`: one transaction that raises the stock and records the
/// restock in `restocks` (key `<product>@<stock version read>`, so two restocks computed
/// from the same reading cannot both commit). Customers may update the inventory (their
/// orders decrement it) but not insert into `restocks`, so the server refuses the whole
/// transaction for them: every operation inside a transaction is permission-checked.
async fn restock(client: &Client, product_id: &str, qty: u32) -> Result<(), Failure> {
    let stock = read_stock(client, product_id)
        .await?
        .ok_or_else(|| Failure(format!("{product_id} has no stock record")))?;
    let after = stock.stock + i64::from(qty);
    let by = match client.auth().whoami().await {
        Ok(WhoAmI::Authenticated { user_id, .. }) => user_id,
        Ok(WhoAmI::Anonymous { .. }) => "anonymous".to_owned(),
        Err(e) => return Err(Failure::request("asking who is logged in", e)),
    };
    let operations = vec![
        TransactionOp::Update {
            bucket: "inventory".into(),
            key: json!(product_id),
            data: object(json!({"stock": after})),
        },
        TransactionOp::Insert {
            bucket: "restocks".into(),
            data: object(json!({
                "id": format!("{product_id}@{}", stock.version), "productId": product_id,
                "qty": qty, "by": by, "stockBefore": stock.stock, "stockAfter": after,
                "at": now_ms()})),
        },
    ];
    client
        .store()
        .transaction(operations)
        .await
        .map_err(|e| Failure::request(&format!("restocking {product_id}"), e))?;
    println!("restocked {product_id}: {} -> {after}", stock.stock);
    Ok(())
}

/// `shop seed`: inserts the demo catalogue and stock; existing records are left alone.
async fn seed(client: &Client) -> Result<(), Failure> {
    let store = client.store();
    let mut created = 0;
    for (id, name, price, stock) in CATALOGUE {
        let inserts = [
            ("products", json!({"id": id, "name": name, "price": price})),
            ("inventory", json!({"productId": id, "stock": stock})),
        ];
        for (bucket, data) in inserts {
            match store.bucket::<Value>(bucket).insert(data).await {
                Ok(_) => created += 1,
                Err(e) if e.code() == Some(ErrorCode::AlreadyExists) => {}
                Err(e) => return Err(Failure::request(&format!("seeding {bucket}/{id}"), e)),
            }
        }
    }
    println!("seeded: {created} records created");
    Ok(())
}
