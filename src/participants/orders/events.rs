//! Publishing: the `order.placed` and `order.cancelled` events, to
//! subscribers and on the pull feed (the behaviour is
//! [`crate::messaging::publishing`]'s, shared with stores).

use std::time::Duration;

use axum::extract::{Query, State};
use serde_json::{Value, json};

use super::{EVENT_TYPES, ORDER_CANCELLED};
use crate::app::{App, AppState};
use crate::conversation::{Claims, Next};
use crate::fault::Problem;
use crate::hypermedia::Hal;
use crate::messaging::publishing::{Event, FeedQuery, Topic};
use crate::participant::Participant::{self, Deliveries, Orders};
use crate::store::{Order, Subscription, Tx};

/// What orders publishes.
pub const TOPIC: Topic = Topic {
    publisher: Orders,
    name: "Orders",
    event_types: EVENT_TYPES,
    subject: "order_id",
};

/// How long an event's token stays valid: the relay may deliver it late,
/// after retries.
const EVENT_TTL: Duration = Duration::from_secs(24 * 3600);
/// The participants that may take a conversation up from orders' events:
/// deliveries starts a delivery from `order.placed` and stops it on
/// `order.cancelled`.
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
    app: &App,
    tx: &mut Tx,
    event_type: &str,
    cause: &Claims,
    data: Value,
    subscribers: &[Subscription],
) -> Result<(), Problem> {
    let mut next = Next::after(cause, event_type)
        .to(TAKEN_UP_BY)
        .allow(&[event_type])
        .state(data.clone())
        .ttl(EVENT_TTL);
    next.slip = None;
    let status = if subscribers.is_empty() {
        "published (feed only)"
    } else {
        "published"
    };
    let token = app.mint_event(Orders, next, status)?.token;
    let event = Event {
        id: format!("evt_{}", uuid::Uuid::now_v7().simple()),
        event_type,
        conversation: cause.cid.to_string(),
        data,
        token: Some(token),
    };
    TOPIC.publish(app, tx, event, subscribers).await
}

/// Publishes `order.cancelled` for `order`, which the caller has just
/// cancelled in `tx` (so a cancellation that rolls back is never announced),
/// as the turn after `cause`, the message that cancelled it. The data names
/// what a subscriber needs without asking back: the order, its conversation,
/// its stores and payment, and why.
pub async fn publish_cancelled(
    app: &App,
    tx: &mut Tx,
    cause: &Claims,
    order: &Order,
    reason: &str,
) -> Result<(), Problem> {
    let subscribers = app
        .store
        .subscriptions_active_for(Orders.as_str(), ORDER_CANCELLED)
        .await
        .map_err(Problem::internal)?;
    let stores: Vec<&str> = order.store.split(',').filter(|s| !s.is_empty()).collect();
    let data = json!({
        "order_id": order.id,
        "conversation": order.conversation_id,
        "total": order.total,
        "currency": order.currency,
        "stores": stores,
        "payment_id": order.payment_id,
        "reason": reason,
    });
    publish(app, tx, ORDER_CANCELLED, cause, data, &subscribers).await
}

#[utoipa::path(
    get, path = "/events", tag = "orders", operation_id = "events_feed",
    summary = "The pull feed of order events (for clients that cannot receive webhooks)",
    params(FeedQuery),
    responses(
        (status = 200, description = "A page of events, oldest first, with a `next` link", body = crate::openapi::HalDocument, content_type = "application/hal+json"),
        (status = 400, description = "The query cannot be read (`after` or `limit` is not a number)", body = crate::openapi::ProblemDocument, content_type = "application/problem+json"),
        (status = 422, description = "`limit` is not 1 to 100", body = crate::openapi::ProblemDocument, content_type = "application/problem+json"),
    )
)]
/// `GET /orders/events?after=&limit=`.
pub async fn feed(
    State(app): State<AppState>,
    Query(query): Query<FeedQuery>,
) -> Result<Hal, Problem> {
    TOPIC.feed(&app, query).await
}
