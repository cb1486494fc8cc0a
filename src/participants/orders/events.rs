//! Publishing: the `order.placed` event, to subscribers and on the pull feed
//! (the behaviour is [`crate::messaging::publishing`]'s, shared with stores).

use axum::extract::{Query, State};
use serde_json::Value;

use super::EVENT_TYPES;
use crate::app::{App, AppState, Note};
use crate::conversation::Claims;
use crate::fault::Problem;
use crate::hypermedia::Hal;
use crate::messaging::publishing::{Event, FeedQuery, Topic};
use crate::participant::Participant::Orders;
use crate::store::{MessageKind, Subscription, Tx};

/// What orders publishes.
pub const TOPIC: Topic = Topic {
    publisher: Orders,
    name: "Orders",
    event_types: EVENT_TYPES,
    subject: "order_id",
};

/// Appends the event to the feed and queues one signed delivery per
/// subscriber, in the caller's transaction; journals it as the step of the
/// conversation that `cause` continues.
pub async fn publish(
    app: &App,
    tx: &mut Tx,
    event_type: &str,
    cause: &Claims,
    data: Value,
    subscribers: &[Subscription],
) -> Result<(), Problem> {
    let event = Event {
        id: format!("evt_{}", uuid::Uuid::now_v7().simple()),
        event_type,
        conversation: cause.cid.to_string(),
        data,
    };
    TOPIC.publish(app, tx, event, subscribers).await?;
    app.journal_note(
        Orders,
        MessageKind::Event,
        Note {
            conversation: cause.cid,
            causation: Some(cause.jti),
            from: Orders.as_str(),
            to: "subscribers",
            pattern: "out-only",
            step: event_type,
            status: if subscribers.is_empty() {
                "published (feed only)"
            } else {
                "published"
            },
        },
    );
    Ok(())
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
    TOPIC.feed(&app, query).await
}
