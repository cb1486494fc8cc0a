//! One delivery attempt: the POST, and what its answer means.
//!
//! A message whose conversation token has expired is not sent at all: its
//! receiver would refuse it, now and at every retry, so it is dead at once
//! (an `order.placed` redelivered a day late starts no delivery; an operator
//! sees it among the dead letters).
//!
//! 2xx: delivered. `410 Gone`: the receiver wants no more (a webhook
//! subscription is disabled) — dead. A refused reply continuation (4xx other
//! than 408/409/425/429) will not be accepted later either — dead. Anything
//! else, a timeout or an unreachable destination included, is retried.

use std::collections::HashMap;
use std::time::Duration;

use http::StatusCode;

use super::KIND_WEBHOOK;
use crate::conversation::continuation::{HEADER, StateToken};
use crate::messaging::exchange::KIND_REPLY;
use crate::messaging::webhooks;
use crate::store::{OutboxMessage, Store, Subscription, now_ms};

/// What an attempt came to.
pub(super) enum Verdict {
    Delivered,
    Retry(String),
    Dead(String),
}

/// A webhook's subscription, as read for its batch.
pub(super) enum Lookup {
    Found(Subscription),
    Deleted,
    Failed(String),
}

/// The subscriptions a claimed batch of webhooks goes to, read once per
/// batch rather than once per message.
pub(super) type Subscriptions = HashMap<String, Lookup>;

/// How much of a response body is read so that its connection can be
/// reused; a longer one is dropped with its connection.
const DRAIN_LIMIT: usize = 64 * 1024;

/// Reads the subscription of every webhook of `batch`, with one query.
pub(super) async fn subscriptions_of(store: &Store, batch: &[OutboxMessage]) -> Subscriptions {
    let mut wanted: Vec<&str> = batch
        .iter()
        .filter(|m| m.kind == KIND_WEBHOOK)
        .filter_map(|m| m.headers.get("subscription"))
        .collect();
    wanted.sort_unstable();
    wanted.dedup();
    match store.subscriptions_get(&wanted).await {
        Ok(found) => {
            let mut lookups: Subscriptions = wanted
                .iter()
                .map(|id| ((*id).to_owned(), Lookup::Deleted))
                .collect();
            for subscription in found {
                lookups.insert(subscription.id.clone(), Lookup::Found(subscription));
            }
            lookups
        }
        Err(e) => {
            let error = format!("subscription lookup failed: {e}");
            wanted
                .iter()
                .map(|id| ((*id).to_owned(), Lookup::Failed(error.clone())))
                .collect()
        }
    }
}

/// POSTs `message` to its destination (signed, if it is a webhook).
pub(super) async fn attempt(
    store: &Store,
    http: &reqwest::Client,
    timeout: Duration,
    subscriptions: &Subscriptions,
    message: &OutboxMessage,
) -> Verdict {
    if let Some(token) = message.headers.get(HEADER) {
        let expiry = StateToken(token.to_owned()).unverified_expiry();
        if expiry.is_some_and(|exp| exp.saturating_mul(1000) < now_ms()) {
            // Its receiver would refuse it (401) now and at every retry:
            // deterministic, whenever a late redelivery happens.
            return Verdict::Dead(
                "its conversation token expired before it could be delivered".into(),
            );
        }
    }
    let body = message.body.clone();
    let mut request = http.post(&message.destination).timeout(timeout);
    for (name, value) in message.headers.iter() {
        if name != "subscription" {
            request = request.header(name, value);
        }
    }
    if message.kind == KIND_WEBHOOK {
        let Some(subscription_id) = message.headers.get("subscription") else {
            return Verdict::Dead("a webhook without its subscription".into());
        };
        let subscription = match subscriptions.get(subscription_id) {
            Some(Lookup::Found(s)) if s.active => s,
            Some(Lookup::Found(_)) => return Verdict::Dead("the subscription is disabled".into()),
            Some(Lookup::Deleted) => return Verdict::Dead("the subscription was deleted".into()),
            Some(Lookup::Failed(e)) => return Verdict::Retry(e.clone()),
            None => return Verdict::Retry("the subscription was not looked up".into()),
        };
        let id = message.headers.get("webhook-id").unwrap_or(&message.id);
        let timestamp = now_ms() / 1000;
        let Some(signature) = webhooks::sign(&subscription.secret, id, timestamp, body.as_bytes())
        else {
            return Verdict::Dead("the subscription secret is unusable".into());
        };
        request = request
            .header("webhook-timestamp", timestamp.to_string())
            .header("webhook-signature", signature);
    }
    let response = match request.body(body).send().await {
        Ok(r) => r,
        Err(e) if e.is_timeout() => return Verdict::Retry("timed out".into()),
        Err(e) => return Verdict::Retry(format!("unreachable: {}", e.without_url())),
    };
    let status = response.status();
    drain(response).await;
    if status.is_success() {
        return Verdict::Delivered;
    }
    if status == StatusCode::GONE {
        if message.kind == KIND_WEBHOOK
            && let Some(id) = message.headers.get("subscription")
            && let Err(e) = store.subscription_disable(id).await
        {
            tracing::warn!(error = %e, "could not disable a gone subscription");
        }
        return Verdict::Dead("410 Gone".into());
    }
    let refused = status.is_client_error() && !matches!(status.as_u16(), 408 | 409 | 425 | 429);
    if refused && message.kind == KIND_REPLY {
        return Verdict::Dead(format!("the continuation was refused: {status}"));
    }
    Verdict::Retry(format!("answered {status}"))
}

/// Reads what is left of a (short) response body: only a connection whose
/// response was read to the end goes back to the pool for the next delivery.
async fn drain(mut response: reqwest::Response) {
    let mut read = 0;
    while let Ok(Some(chunk)) = response.chunk().await {
        read += chunk.len();
        if read > DRAIN_LIMIT {
            return;
        }
    }
}
