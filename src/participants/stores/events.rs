//! Publishing `store.updated`, to subscribers and on the pull feed (the
//! behaviour is [`crate::messaging::publishing`]'s, shared with orders).
//!
//! The event's `data` is the listing as updated, its `version`, the
//! conversation the update started, and `fault_to`: the continuation link a
//! subscriber posts a fault to. The link travels in `data` (rather than only
//! in a CloudEvents extension attribute) so that pull-feed readers get it too.

use axum::extract::{Query, State};
use serde_json::json;

use super::{EVENT_TYPES, STORE_UPDATED};
use crate::app::{App, AppState};
use crate::conversation::Claims;
use crate::fault::Problem;
use crate::hypermedia::Hal;
use crate::messaging::publishing::{Event, FeedQuery, Topic};
use crate::participant::Participant::Stores;
use crate::store::listings::Listing;
use crate::store::{Subscription, Tx};

/// What store information publishes.
pub const TOPIC: Topic = Topic {
    publisher: Stores,
    name: "Store information",
    event_types: EVENT_TYPES,
    subject: "id",
};

/// Appends `store.updated` to the feed and queues one signed delivery per
/// subscriber, in the caller's transaction. Returns the event id, which is
/// derived from the fault-to token's message id, so the journal and the
/// event name the same message.
pub async fn publish(
    app: &App,
    tx: &mut Tx,
    listing: &Listing,
    fault_to: &Claims,
    fault_to_href: &str,
    subscribers: &[Subscription],
) -> Result<String, Problem> {
    let id = format!("evt_{}", fault_to.jti.0.simple());
    let event = Event {
        id: id.clone(),
        event_type: STORE_UPDATED,
        conversation: fault_to.cid.to_string(),
        data: json!({
            "id": listing.id,
            "name": listing.name,
            "lat": listing.lat,
            "lon": listing.lon,
            "open": listing.open,
            "version": listing.version,
            "conversation": fault_to.cid,
            "fault_to": fault_to_href,
        }),
        token: None,
    };
    TOPIC.publish(app, tx, event, subscribers).await?;
    Ok(id)
}

#[utoipa::path(
    get, path = "/events", tag = "stores", operation_id = "stores_events_feed",
    summary = "The pull feed of store events (for clients that cannot receive webhooks)",
    params(FeedQuery),
    responses(
        (status = 200, description = "A page of events, oldest first, with a `next` link", body = crate::openapi::HalDocument, content_type = "application/hal+json"),
        (status = 400, description = "The query cannot be read (`after` or `limit` is not a number)", body = crate::openapi::ProblemDocument, content_type = "application/problem+json"),
        (status = 422, description = "`limit` is not 1 to 100", body = crate::openapi::ProblemDocument, content_type = "application/problem+json"),
    )
)]
/// `GET /stores/events?after=&limit=`.
pub async fn feed(
    State(app): State<AppState>,
    Query(query): Query<FeedQuery>,
) -> Result<Hal, Problem> {
    TOPIC.feed(&app, query).await
}
