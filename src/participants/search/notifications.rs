//! Deliveries of `store.updated`: verify, take in once, then index or fault.
//!
//! 1. The Standard Webhooks signature must verify with the secret of one of
//!    search's subscriptions, and its timestamp be recent (401 otherwise, so
//!    the publisher's relay retries and nothing forged is ever indexed).
//! 2. The event's fault-to continuation is verified too: it must be signed
//!    by store information and allow search to take the event in. Its claims
//!    are the conversation the fault continues.
//! 3. In one transaction: the inbox claims the event id (a redelivery does
//!    nothing twice), then the store is indexed, or — when it cannot be — the
//!    fault is queued in the outbox for the fault-to link (Robust Out-Only).
//!
//! The delivery is answered `204` either way: the event was received; what
//! search made of it travels separately, as a fault.

use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use http::{HeaderMap, StatusCode};
use serde::Deserialize;
use serde_json::{Value, json};

use super::unindexable;
use crate::app::{App, AppState};
use crate::conversation::{Claims, Expect, Next, StateToken};
use crate::fault::{Problem, types};
use crate::messaging::exchange::{self, AsyncReply};
use crate::messaging::webhooks;
use crate::participant::Participant::{Search, Stores};
use crate::participants::stores::{INDEX_STORE, STORE_FAULT, STORE_UPDATED};
use crate::store::search_index::IndexedStore;
use crate::store::{InboxClaim, MessageKind, Tx, now_ms};

/// The fault is durable: the relay may deliver it late.
const FAULT_TTL: Duration = Duration::from_secs(24 * 3600);

/// A CloudEvent in structured mode, as far as search reads it.
#[derive(Deserialize)]
struct CloudEvent {
    #[serde(rename = "type")]
    kind: String,
    data: Value,
}

/// The `data` of `store.updated`.
#[derive(Deserialize)]
struct StoreUpdated {
    id: String,
    #[serde(default)]
    name: String,
    /// `None` when the publisher could not write a number.
    lat: Option<f64>,
    lon: Option<f64>,
    #[serde(default)]
    open: bool,
    version: i64,
    fault_to: Option<String>,
}

/// A verified fault-to continuation: where to send a fault, and the claims
/// of the publisher's token that the fault continues.
struct FaultTo {
    href: String,
    claims: Claims,
}

#[utoipa::path(
    post, path = "/notifications", tag = "search", operation_id = "store_updated",
    summary = "Webhook: store information's store.updated events (CloudEvents, signed per Standard Webhooks)",
    params(
        ("webhook-id" = String, Header, description = "The event id"),
        ("webhook-timestamp" = i64, Header, description = "Unix seconds"),
        ("webhook-signature" = String, Header, description = "`v1,` + base64 HMAC-SHA-256 with the subscription's secret"),
    ),
    request_body(content = Object, description = "A CloudEvent", content_type = "application/cloudevents+json"),
    responses(
        (status = 204, description = "Received: indexed, or a fault was sent to the event's fault-to continuation"),
        (status = 401, description = "The webhook signature does not verify", body = crate::openapi::ProblemDocument, content_type = "application/problem+json"),
        (status = 422, description = "Signed, but not a store.updated event search can read", body = crate::openapi::ProblemDocument, content_type = "application/problem+json"),
    )
)]
/// `POST /search/notifications`: a delivery of `store.updated`.
pub async fn store_updated(
    State(app): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<StatusCode, Problem> {
    let event_id = verify_signature(&app, &headers, &body).await?;
    let unreadable = |e: serde_json::Error| {
        Problem::new(types::INVALID_BODY, format!("Not a store event: {e}."))
    };
    let event: CloudEvent = serde_json::from_slice(&body).map_err(unreadable)?;
    if event.kind != STORE_UPDATED {
        return Ok(StatusCode::NO_CONTENT);
    }
    let update: StoreUpdated = serde_json::from_value(event.data).map_err(unreadable)?;
    let fault_to = match &update.fault_to {
        Some(href) => fault_to(&app, href).await,
        None => None,
    };
    let entry = IndexedStore {
        store_id: update.id,
        name: update.name,
        lat: update.lat.unwrap_or(f64::NAN),
        lon: update.lon.unwrap_or(f64::NAN),
        open: update.open,
        version: update.version,
        indexed_at: now_ms(),
    };
    let mut tx = app.store.begin().await.map_err(Problem::internal)?;
    let dedupe = format!("{STORE_UPDATED}:{event_id}");
    if let InboxClaim::Duplicate(_) = tx
        .inbox_claim(Search.as_str(), &event_id, &dedupe)
        .await
        .map_err(Problem::internal)?
    {
        return Ok(StatusCode::NO_CONTENT);
    }
    let faulted = match unindexable(&entry) {
        None => {
            tx.search_index_upsert(&entry)
                .await
                .map_err(Problem::internal)?;
            false
        }
        Some(reason) => match &fault_to {
            Some(fault_to) => {
                send_fault(&app, &mut tx, fault_to, &entry, reason).await?;
                true
            }
            None => {
                tracing::warn!(store = %entry.store_id, %reason, "unindexable, and no usable fault-to: the publisher will not hear of it");
                false
            }
        },
    };
    tx.commit().await.map_err(Problem::internal)?;
    if faulted {
        app.relay.wake();
    }
    Ok(StatusCode::NO_CONTENT)
}

/// Checks the Standard Webhooks headers against search's subscription
/// secrets; returns the `webhook-id`.
async fn verify_signature(app: &App, headers: &HeaderMap, body: &[u8]) -> Result<String, Problem> {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
    };
    let refused = |detail: &str| Problem::new(types::BAD_WEBHOOK_SIGNATURE, detail);
    let (id, signature) = (header("webhook-id"), header("webhook-signature"));
    let timestamp: i64 = header("webhook-timestamp")
        .parse()
        .map_err(|_| refused("The webhook-timestamp header is missing or not a number."))?;
    if !webhooks::is_recent(timestamp) {
        return Err(refused("The webhook-timestamp is too far from now."));
    }
    if id.is_empty() || signature.is_empty() {
        return Err(refused(
            "A delivery needs webhook-id and webhook-signature headers.",
        ));
    }
    let subscriptions = app
        .store
        .search_subscriptions_of(Stores.as_str())
        .await
        .map_err(Problem::internal)?;
    if subscriptions
        .iter()
        .any(|s| webhooks::verify(&s.secret, id, timestamp, body, signature))
    {
        Ok(id.to_owned())
    } else {
        Err(refused(
            "The signature does not verify with the secret of any subscription search holds.",
        ))
    }
}

/// The event's fault-to link, if search may call it and its token verifies
/// (journaled by search as the event received).
async fn fault_to(app: &App, href: &str) -> Option<FaultTo> {
    let url = match app.callbacks.check(href) {
        Ok(url) => url,
        Err(e) => {
            tracing::warn!(error = %e, "fault-to link refused");
            return None;
        }
    };
    let token = url
        .query_pairs()
        .find(|(k, _)| k == "state")
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default();
    let expect = Expect::step(Search, INDEX_STORE).from(&[Stores]);
    match app.verify(&StateToken(token), expect).await {
        Ok(claims) => Some(FaultTo {
            href: href.to_owned(),
            claims,
        }),
        Err(problem) => {
            tracing::warn!(detail = problem.detail(), "fault-to token refused");
            None
        }
    }
}

/// Queues the fault for the fault-to link, signed by search, in `tx`.
async fn send_fault(
    app: &App,
    tx: &mut Tx,
    fault_to: &FaultTo,
    entry: &IndexedStore,
    reason: String,
) -> Result<(), Problem> {
    let problem = Problem::new(types::UNINDEXABLE_STORE, reason)
        .in_conversation(fault_to.claims.cid)
        .with("store", &entry.store_id)
        .with("version", entry.version)
        .link(
            "listing",
            app.href(Stores, &format!("/stores/{}", entry.store_id)),
        );
    let token = app.mint(
        Search,
        Next::after(&fault_to.claims, STORE_FAULT)
            .to(&[Stores])
            .allow(&[STORE_FAULT])
            .kind(MessageKind::Fault)
            .state(json!({
                "store": entry.store_id,
                "version": entry.version,
                "type": format!("/problems/{}", types::UNINDEXABLE_STORE.slug),
            }))
            .ttl(FAULT_TTL),
    )?;
    exchange::enqueue_reply(
        tx,
        Search,
        &AsyncReply(fault_to.href.clone()),
        &token.token,
        problem.status().as_u16(),
        &problem.body(),
    )
    .await
}
