//! [`Subscription`]: a typed stream of subscription data that unsubscribes when dropped.

use std::marker::PhantomData;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures_util::Stream;
use serde::de::DeserializeOwned;
use serde_json::Value;
use tokio::sync::{mpsc, oneshot};

use super::Client;
use super::client::decode;
use super::driver::Command;
use crate::ClientError;
use crate::core::{SubscriptionKey, SubscriptionTarget};

/// A live subscription. For store queries the first item is the initial result and every
/// later item the complete new result (also after a reconnect, when the client
/// re-subscribes); for rules every item is an event push. Dropping it unsubscribes. The
/// stream ends when the client is closed for good, or with an `Err` item as its last when
/// the re-subscription after a reconnect fails for good (the query was undefined
/// meanwhile, the session lost the permission, ...); a passing failure (timeout, rate
/// limit) is retried on the reconnect policy's schedule first.
///
/// ```no_run
/// # async fn demo(client: noex_client::Client) -> Result<(), noex_client::ClientError> {
/// use futures_util::StreamExt;
/// let mut users = client.store().subscribe::<Vec<serde_json::Value>>("all-users", None).await?;
/// while let Some(result) = users.next().await { println!("{:?}", result?); }
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct Subscription<T> {
    key: SubscriptionKey,
    first: Option<Value>,
    rx: mpsc::UnboundedReceiver<Result<Value, ClientError>>,
    commands: mpsc::UnboundedSender<Command>,
    _marker: PhantomData<fn() -> T>,
}

impl<T> Subscription<T> {
    /// Subscribes; `initial` says whether the subscribe result is the first item.
    pub(crate) async fn open(
        client: &Client,
        target: SubscriptionTarget,
        initial: bool,
    ) -> Result<(Subscription<T>, Value), ClientError> {
        let (reply, reply_rx) = oneshot::channel();
        let (pushes, rx) = mpsc::unbounded_channel();
        let commands = client.commands().clone();
        commands
            .send(Command::Subscribe {
                target,
                reply,
                pushes,
            })
            .map_err(|_| ClientError::Disconnected)?;
        let (key, data) = reply_rx.await.unwrap_or(Err(ClientError::Disconnected))?;
        let subscription = Subscription {
            key,
            first: initial.then(|| data.clone()),
            rx,
            commands,
            _marker: PhantomData,
        };
        Ok((subscription, data))
    }
}

impl<T: DeserializeOwned> Stream for Subscription<T> {
    type Item = Result<T, ClientError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if let Some(first) = self.first.take() {
            return Poll::Ready(Some(decode(first)));
        }
        self.rx
            .poll_recv(cx)
            .map(|item| item.map(|item| item.and_then(decode)))
    }
}

impl<T> Unpin for Subscription<T> {}

impl<T> Drop for Subscription<T> {
    fn drop(&mut self) {
        let _ = self.commands.send(Command::Unsubscribe(self.key));
    }
}
