//! The outbox relay: sends what participants committed to send.
//!
//! Transactional Outbox: a participant writes its change and the message
//! announcing it in one transaction; this relay delivers the message
//! afterwards. It is woken in-process right after a commit, and polls as a
//! fallback (messages whose earlier attempt failed, or left by a crashed
//! instance whose lease expired). Claims lease rows to this relay instance,
//! so several instances share the work without sending a row twice.
//!
//! A delivery is one POST. 2xx: delivered. `410 Gone`: the receiver wants no
//! more (a webhook subscription is disabled) — dead. A refused reply
//! continuation (4xx other than 408/429) will not be accepted later either —
//! dead. Anything else is retried on the [`RetrySchedule`]; after the last
//! attempt the message is a dead letter, listed with a `redeliver` link.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use http::StatusCode;
use tokio::sync::Notify;

use super::exchange::KIND_REPLY;
use super::webhooks;
use crate::store::{OutboxMessage, Store, now_ms};

/// The outbox kind of a webhook notification.
pub const KIND_WEBHOOK: &str = "webhook";

/// Delays between delivery attempts; its length is the number of retries.
#[derive(Clone, Debug)]
pub struct RetrySchedule(pub Vec<Duration>);

impl Default for RetrySchedule {
    fn default() -> Self {
        RetrySchedule(
            [1, 5, 30, 120, 600]
                .into_iter()
                .map(Duration::from_secs)
                .collect(),
        )
    }
}

impl RetrySchedule {
    /// Parses `1s,5s,500ms,2m`.
    pub fn parse(text: &str) -> Result<Self, String> {
        text.split(',')
            .map(|part| {
                let part = part.trim();
                let (number, unit) = part.split_at(
                    part.find(|c: char| !c.is_ascii_digit())
                        .unwrap_or(part.len()),
                );
                let n: u64 = number
                    .parse()
                    .map_err(|_| format!("`{part}` is not a delay like 5s"))?;
                Ok(match unit {
                    "ms" => Duration::from_millis(n),
                    "s" | "" => Duration::from_secs(n),
                    "m" => Duration::from_secs(n * 60),
                    "h" => Duration::from_secs(n * 3600),
                    _ => return Err(format!("`{part}`: the unit is ms, s, m or h")),
                })
            })
            .collect::<Result<Vec<_>, _>>()
            .map(RetrySchedule)
    }

    /// The delay before attempt `attempts + 1`, with ±20% jitter; `None` when
    /// the schedule is exhausted.
    pub fn next_delay(&self, attempts: usize) -> Option<Duration> {
        let base = self.0.get(attempts.checked_sub(1)?)?;
        let jitter = 0.8 + 0.4 * (uuid::Uuid::now_v7().as_u128() % 1000) as f64 / 1000.0;
        Some(base.mul_f64(jitter))
    }
}

/// The handle to wake the relay after a commit.
#[derive(Clone)]
pub struct Relay {
    notify: Arc<Notify>,
}

/// How many deliveries the relay runs at once.
const CONCURRENCY: usize = 32;
const BATCH: u32 = 128;
const LEASE: Duration = Duration::from_secs(30);

impl Relay {
    pub fn start(
        store: Store,
        http: reqwest::Client,
        schedule: RetrySchedule,
        poll: Duration,
        timeout: Duration,
    ) -> Relay {
        let notify = Arc::new(Notify::new());
        let owner = format!("relay-{}", uuid::Uuid::now_v7());
        tokio::spawn(listen(store.clone(), notify.clone()));
        tokio::spawn(run(
            store,
            http,
            schedule,
            poll,
            timeout,
            owner,
            notify.clone(),
        ));
        Relay { notify }
    }

    /// Tells the relay there is something to send now.
    pub fn wake(&self) {
        self.notify.notify_one();
    }
}

/// On PostgreSQL, wakes the relay whenever any instance commits an outbox
/// message; reconnects after a lost connection (polling covers the gap).
async fn listen(store: Store, notify: Arc<Notify>) {
    loop {
        match store.outbox_listener().await {
            Ok(None) => return,
            Ok(Some(mut listener)) => loop {
                match listener.recv().await {
                    Ok(_) => notify.notify_one(),
                    Err(e) => {
                        tracing::warn!(error = %e, "outbox listener lost its connection");
                        break;
                    }
                }
            },
            Err(e) => tracing::warn!(error = %e, "outbox listener could not connect"),
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

async fn run(
    store: Store,
    http: reqwest::Client,
    schedule: RetrySchedule,
    poll: Duration,
    timeout: Duration,
    owner: String,
    notify: Arc<Notify>,
) {
    loop {
        let batch = match store.outbox_claim_batch(&owner, BATCH, LEASE).await {
            Ok(batch) => batch,
            Err(e) => {
                tracing::warn!(error = %e, "outbox claim failed");
                Vec::new()
            }
        };
        if batch.is_empty() {
            tokio::select! {
                () = notify.notified() => {},
                () = tokio::time::sleep(poll) => {},
            }
            continue;
        }
        futures::stream::iter(batch)
            .for_each_concurrent(CONCURRENCY, |message| {
                let (store, http, schedule) = (&store, &http, &schedule);
                async move { deliver(store, http, schedule, timeout, message).await }
            })
            .await;
    }
}

enum Verdict {
    Delivered,
    Retry(String),
    Dead(String),
}

async fn deliver(
    store: &Store,
    http: &reqwest::Client,
    schedule: &RetrySchedule,
    timeout: Duration,
    message: OutboxMessage,
) {
    crate::crash::point("relay-mid-batch");
    let verdict = attempt(store, http, timeout, &message).await;
    if matches!(verdict, Verdict::Delivered) {
        crate::crash::point("relay-after-send");
    }
    let result = match verdict {
        Verdict::Delivered => store.outbox_mark_delivered(&message.id).await,
        Verdict::Dead(error) => {
            tracing::warn!(id = %message.id, kind = %message.kind, %error, "outbox message is a dead letter");
            store.outbox_mark_dead(&message.id, &error).await
        }
        Verdict::Retry(error) => match schedule.next_delay(message.attempts.max(0) as usize) {
            Some(delay) => {
                let next = now_ms() + delay.as_millis() as i64;
                store.outbox_mark_retry(&message.id, next, &error).await
            }
            None => {
                tracing::warn!(id = %message.id, kind = %message.kind, %error, "retries exhausted: dead letter");
                store.outbox_mark_dead(&message.id, &error).await
            }
        },
    };
    if let Err(e) = result {
        tracing::warn!(error = %e, id = %message.id, "could not record the delivery outcome");
    }
}

async fn attempt(
    store: &Store,
    http: &reqwest::Client,
    timeout: Duration,
    message: &OutboxMessage,
) -> Verdict {
    let body = message.body.to_string();
    let mut request = http.post(&message.destination).timeout(timeout);
    for (name, value) in message.headers.as_object().into_iter().flatten() {
        if let Some(value) = value.as_str()
            && name != "subscription"
        {
            request = request.header(name.as_str(), value);
        }
    }
    if message.kind == KIND_WEBHOOK {
        let Some(subscription_id) = message.headers["subscription"].as_str() else {
            return Verdict::Dead("a webhook without its subscription".into());
        };
        let subscription = match store.subscription_get(subscription_id).await {
            Ok(s) if s.active => s,
            Ok(_) => return Verdict::Dead("the subscription is disabled".into()),
            Err(crate::store::StoreError::NotFound) => {
                return Verdict::Dead("the subscription was deleted".into());
            }
            Err(e) => return Verdict::Retry(format!("subscription lookup failed: {e}")),
        };
        let id = message.headers["webhook-id"]
            .as_str()
            .unwrap_or(&message.id);
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
    if status.is_success() {
        return Verdict::Delivered;
    }
    if status == StatusCode::GONE {
        if message.kind == KIND_WEBHOOK
            && let Some(id) = message.headers["subscription"].as_str()
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedules_parse_and_run_out() {
        let s = RetrySchedule::parse("100ms, 2s,1m").unwrap();
        assert_eq!(
            s.0,
            vec![
                Duration::from_millis(100),
                Duration::from_secs(2),
                Duration::from_secs(60)
            ]
        );
        let first = s.next_delay(1).unwrap();
        assert!(first >= Duration::from_millis(80) && first <= Duration::from_millis(120));
        assert!(s.next_delay(4).is_none());
        assert!(RetrySchedule::parse("5 parsecs").is_err());
    }
}
