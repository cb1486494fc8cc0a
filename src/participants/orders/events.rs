//! Publishing: the `order.placed` event, to subscribers and on the pull feed.

use std::time::Duration;

use axum::extract::{Query, State};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::app::AppState;
use crate::conversation::continuation::HEADER;
use crate::conversation::{Claims, Next};
use crate::fault::Problem;
use crate::hypermedia::{Hal, Resource};
use crate::messaging::outbox::KIND_WEBHOOK;
use crate::messaging::webhooks;
use crate::participant::Participant::{self, Deliveries, Orders};
use crate::store::{NewEvent, NewOutboxMessage, Subscription, Tx, now_ms};

/// How long an event's token stays valid: the relay may deliver it late,
/// after retries.
const EVENT_TTL: Duration = Duration::from_secs(24 * 3600);
/// The participants that may take a conversation up from orders' events:
/// deliveries starts a delivery from `order.placed`.
pub const TAKEN_UP_BY: &[Participant] = &[Deliveries];

/// Appends the event to the feed and queues one signed delivery per
/// subscriber, in the caller's transaction.
///
/// The event is a message of the conversation that caused it: orders signs
/// it as the turn after `cause` (its state is the event's data), journals it
/// as published, and every webhook delivery carries that token in its
/// `Conversation-State` header, so a participant that takes the
/// conversation up (deliveries) continues the same chain. The pull feed
/// shows the event without the token.
pub async fn publish(
    app: &crate::app::App,
    tx: &mut Tx,
    event_type: &str,
    cause: &Claims,
    subject: &str,
    data: Value,
    subscribers: &[Subscription],
) -> Result<(), Problem> {
    let id = format!("evt_{}", uuid::Uuid::now_v7().simple());
    let time = now_ms();
    tx.event_append(&NewEvent {
        id: id.clone(),
        participant: Orders.as_str().to_owned(),
        event_type: event_type.to_owned(),
        conversation_id: Some(cause.cid.to_string()),
        data: data.clone(),
        time,
    })
    .await
    .map_err(Problem::internal)?;
    let event = webhooks::cloud_event(
        &id,
        &app.href(Orders, ""),
        event_type,
        &rfc3339(time),
        subject,
        &data,
    );
    let mut next = Next::after(cause, event_type)
        .to(TAKEN_UP_BY)
        .allow(&[event_type])
        .state(data)
        .ttl(EVENT_TTL);
    next.slip = None;
    let status = if subscribers.is_empty() {
        "published (feed only)"
    } else {
        "published"
    };
    let token = app.mint_event(Orders, next, status)?.token;
    for subscription in subscribers {
        tx.outbox_enqueue(&NewOutboxMessage {
            id: uuid::Uuid::now_v7().to_string(),
            participant: Orders.as_str().to_owned(),
            destination: subscription.callback_url.clone(),
            kind: KIND_WEBHOOK.to_owned(),
            headers: json!({
                "subscription": subscription.id,
                "webhook-id": id,
                "content-type": "application/cloudevents+json",
                HEADER: token,
            }),
            body: event.clone(),
        })
        .await
        .map_err(Problem::internal)?;
    }
    Ok(())
}

fn rfc3339(ms: i64) -> String {
    let time = std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms.max(0) as u64);
    humantime::format_rfc3339_millis(time).to_string()
}

/// The pull feed's query.
#[derive(Deserialize, utoipa::IntoParams)]
pub struct FeedQuery {
    /// Only events after this cursor (the `seq` of the last event read).
    after: Option<i64>,
    /// At most this many events (1 to 100, default 20).
    limit: Option<u32>,
}

#[utoipa::path(
    get, path = "/events", tag = "orders", operation_id = "events_feed",
    summary = "The pull feed of order events (for clients that cannot receive webhooks)",
    params(FeedQuery),
    responses((status = 200, description = "A page of events, oldest first, with a `next` link", body = crate::openapi::HalDocument, content_type = "application/hal+json"))
)]
/// `GET /orders/events?after=&limit=`.
pub async fn feed(
    State(app): State<AppState>,
    Query(query): Query<FeedQuery>,
) -> Result<Hal, Problem> {
    let limit = query.limit.unwrap_or(20).clamp(1, 100);
    let events = app
        .store
        .events_page(Orders.as_str(), query.after, limit)
        .await
        .map_err(Problem::internal)?;
    let cursor = events.last().map(|e| e.seq).or(query.after);
    let next = match cursor {
        Some(seq) => format!("/events?after={seq}&limit={limit}"),
        None => format!("/events?limit={limit}"),
    };
    let items = events
        .iter()
        .map(|e| {
            let time = rfc3339(e.time);
            Resource::new()
                .field("seq", e.seq)
                .fields(webhooks::cloud_event(
                    &e.id,
                    &app.href(Orders, ""),
                    &e.event_type,
                    &time,
                    e.data["order_id"].as_str().unwrap_or_default(),
                    &e.data,
                ))
        })
        .collect();
    let self_href = match query.after {
        Some(after) => format!("/events?after={after}&limit={limit}"),
        None => format!("/events?limit={limit}"),
    };
    Ok(Hal::ok(
        Resource::new()
            .field("count", events.len())
            .link("self", app.href(Orders, &self_href))
            .titled_link(
                "next",
                app.href(Orders, &next),
                "Events after this page (poll it)",
            )
            .link("subscribe", app.href(Orders, "/subscriptions"))
            .embed("events", items),
    ))
}
