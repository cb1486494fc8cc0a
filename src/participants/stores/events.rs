//! Publishing `store.updated`, to subscribers and on the pull feed.
//!
//! The event's `data` is the listing as updated, its `version`, the
//! conversation the update started, and `fault_to`: the continuation link a
//! subscriber posts a fault to. The link travels in `data` (rather than only
//! in a CloudEvents extension attribute) so that pull-feed readers get it too.

use axum::extract::{Query, State};
use serde::Deserialize;
use serde_json::json;

use super::STORE_UPDATED;
use crate::app::{App, AppState};
use crate::conversation::Claims;
use crate::fault::Problem;
use crate::hypermedia::{Hal, Resource};
use crate::messaging::outbox::KIND_WEBHOOK;
use crate::messaging::webhooks;
use crate::participant::Participant::Stores;
use crate::store::listings::Listing;
use crate::store::{NewEvent, NewOutboxMessage, Subscription, Tx, now_ms};

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
    let time = now_ms();
    let data = json!({
        "id": listing.id,
        "name": listing.name,
        "lat": listing.lat,
        "lon": listing.lon,
        "open": listing.open,
        "version": listing.version,
        "conversation": fault_to.cid,
        "fault_to": fault_to_href,
    });
    tx.event_append(&NewEvent {
        id: id.clone(),
        participant: Stores.as_str().to_owned(),
        event_type: STORE_UPDATED.to_owned(),
        conversation_id: Some(fault_to.cid.to_string()),
        data: data.clone(),
        time,
    })
    .await
    .map_err(Problem::internal)?;
    let event = webhooks::cloud_event(
        &id,
        &app.href(Stores, ""),
        STORE_UPDATED,
        &rfc3339(time),
        &listing.id,
        &data,
    );
    for subscription in subscribers {
        tx.outbox_enqueue(&NewOutboxMessage {
            id: uuid::Uuid::now_v7().to_string(),
            participant: Stores.as_str().to_owned(),
            destination: subscription.callback_url.clone(),
            kind: KIND_WEBHOOK.to_owned(),
            headers: json!({
                "subscription": subscription.id,
                "webhook-id": id,
                "content-type": "application/cloudevents+json",
            }),
            body: event.clone(),
        })
        .await
        .map_err(Problem::internal)?;
    }
    Ok(id)
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
    get, path = "/events", tag = "stores", operation_id = "stores_events_feed",
    summary = "The pull feed of store events (for clients that cannot receive webhooks)",
    params(FeedQuery),
    responses((status = 200, description = "A page of events, oldest first, with a `next` link", body = crate::openapi::HalDocument, content_type = "application/hal+json"))
)]
/// `GET /stores/events?after=&limit=`.
pub async fn feed(
    State(app): State<AppState>,
    Query(query): Query<FeedQuery>,
) -> Result<Hal, Problem> {
    let limit = query.limit.unwrap_or(20).clamp(1, 100);
    let events = app
        .store
        .events_page(Stores.as_str(), query.after, limit)
        .await
        .map_err(Problem::internal)?;
    let page = |after: Option<i64>| match after {
        Some(seq) => format!("/events?after={seq}&limit={limit}"),
        None => format!("/events?limit={limit}"),
    };
    let next = page(events.last().map(|e| e.seq).or(query.after));
    let items = events
        .iter()
        .map(|e| {
            Resource::new()
                .field("seq", e.seq)
                .fields(webhooks::cloud_event(
                    &e.id,
                    &app.href(Stores, ""),
                    &e.event_type,
                    &rfc3339(e.time),
                    e.data["id"].as_str().unwrap_or_default(),
                    &e.data,
                ))
        })
        .collect();
    Ok(Hal::ok(
        Resource::new()
            .field("count", events.len())
            .link("self", app.href(Stores, &page(query.after)))
            .titled_link(
                "next",
                app.href(Stores, &next),
                "Events after this page (poll it)",
            )
            .link("subscribe", app.href(Stores, "/subscriptions"))
            .embed("events", items),
    ))
}
