//! The listings: read them, and update one (which publishes `store.updated`).

use std::time::Duration;

use axum::extract::{Path, State};
use serde::Deserialize;
use serde_json::json;

use super::{INDEX_STORE, STORE_FAULT, STORE_UPDATED, events};
use crate::app::{App, AppState};
use crate::conversation::{Next, Pattern};
use crate::fault::{self, Problem, types};
use crate::hypermedia::{Hal, Input, Property, Resource};
use crate::participant::Participant::{Search, Stores};
use crate::store::MessageKind;
use crate::store::listings::{Listing, ListingChange, ListingStatus};

/// How long a fault-to continuation stays valid: the event may reach a
/// subscriber late (relay retries), and the subscriber's fault later still.
const FAULT_TO_TTL: Duration = Duration::from_secs(24 * 3600);

/// The input of `update`: only the members given change.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct UpdateStore {
    /// The store's name.
    pub name: Option<String>,
    /// Latitude in degrees. Store information keeps what the owner typed;
    /// subscribers such as search may refuse what they cannot use.
    pub lat: Option<f64>,
    /// Longitude in degrees.
    pub lon: Option<f64>,
    /// Whether the store takes orders.
    pub open: Option<bool>,
}

/// A listing as a HAL resource: its members, and the links that make sense
/// for it (a `repair` link while it needs attention).
pub fn render(app: &App, listing: &Listing) -> Resource {
    let href = app.href(Stores, &format!("/stores/{}", listing.id));
    let update = format!("{href}/update");
    let properties = || {
        vec![
            Property::text("name").value(&listing.name),
            Property {
                kind: "number",
                ..Property::text("lat")
            }
            .value(listing.lat),
            Property {
                kind: "number",
                ..Property::text("lon")
            }
            .value(listing.lon),
            Property::text("open")
                .one_of([("open", "true"), ("closed", "false")])
                .value(listing.open),
        ]
    };
    let mut resource = Resource::new().fields(listing).link("self", href).action(
        "update",
        update.clone(),
        "Update the listing",
        properties(),
    );
    if listing.status == ListingStatus::NeedsAttention {
        resource = resource.action(
            "repair",
            update,
            "Repair: correct what a subscriber could not take",
            properties(),
        );
    }
    resource
        .link("stores", app.href(Stores, "/stores"))
        .link("events", app.href(Stores, "/events"))
}

#[utoipa::path(
    get, path = "/stores", tag = "stores", operation_id = "list_stores",
    summary = "Every store listing, with its status (ok or needs-attention)",
    responses((status = 200, description = "The listings", body = crate::openapi::HalDocument, content_type = "application/hal+json"))
)]
/// `GET /stores/stores`.
pub async fn list_stores(State(app): State<AppState>) -> Result<Hal, Problem> {
    let listings = app.store.listings_list().await.map_err(Problem::internal)?;
    let items = listings.iter().map(|l| render(&app, l)).collect();
    Ok(Hal::ok(
        Resource::new()
            .field("count", listings.len())
            .link("self", app.href(Stores, "/stores"))
            .link("menu", app.href(Stores, "/menu"))
            .link("subscribe", app.href(Stores, "/subscriptions"))
            .link("events", app.href(Stores, "/events"))
            .link("search", app.href(Search, "/stores"))
            .embed("stores", items),
    ))
}

#[utoipa::path(
    get, path = "/stores/{id}", tag = "stores", operation_id = "get_store",
    summary = "A store listing; while it needs attention, with a `repair` link",
    params(("id" = String, Path, description = "The store id")),
    responses(
        (status = 200, description = "The listing", body = crate::openapi::HalDocument, content_type = "application/hal+json"),
        (status = 404, description = "No such store", body = crate::openapi::ProblemDocument, content_type = "application/problem+json"),
    )
)]
/// `GET /stores/stores/{id}`.
pub async fn get_store(
    State(app): State<AppState>,
    Path(id): Path<String>,
) -> Result<Hal, Problem> {
    let listing = app
        .store
        .listing_get(&id)
        .await
        .map_err(|e| fault::from_store(e, "store"))?;
    Ok(Hal::ok(render(&app, &listing)))
}

#[utoipa::path(
    post, path = "/stores/{id}/update", tag = "stores", operation_id = "update_store",
    summary = "Update a listing and publish store.updated, with a fault-to continuation (Robust Out-Only)",
    params(("id" = String, Path, description = "The store id")),
    request_body(content((UpdateStore = "application/json"), (UpdateStore = "application/x-www-form-urlencoded"))),
    responses(
        (status = 200, description = "The updated listing; subscribers hear of it, and may fault back later", body = crate::openapi::HalDocument, content_type = "application/hal+json"),
        (status = 400, description = "Malformed body", body = crate::openapi::ProblemDocument, content_type = "application/problem+json"),
        (status = 404, description = "No such store", body = crate::openapi::ProblemDocument, content_type = "application/problem+json"),
        (status = 422, description = "A member has the wrong type, or a coordinate is not a number", body = crate::openapi::ProblemDocument, content_type = "application/problem+json"),
    )
)]
/// `POST /stores/stores/{id}/update`: writes the listing and the event (with
/// one outbox delivery per subscriber) in one transaction.
pub async fn update_store(
    State(app): State<AppState>,
    Path(id): Path<String>,
    Input(input): Input<UpdateStore>,
) -> Result<Hal, Problem> {
    if [input.lat, input.lon]
        .iter()
        .flatten()
        .any(|c| !c.is_finite())
    {
        return Err(Problem::new(
            types::INVALID_BODY,
            "A coordinate must be a finite number.",
        ));
    }
    let change = ListingChange {
        name: input.name,
        lat: input.lat,
        lon: input.lon,
        open: input.open,
    };
    let subscribers = app
        .store
        .subscriptions_active_for(Stores.as_str(), STORE_UPDATED)
        .await
        .map_err(Problem::internal)?;
    let mut tx = app.store.begin().await.map_err(Problem::internal)?;
    let listing = tx
        .listing_update(&id, &change, crate::store::now_ms())
        .await
        .map_err(|e| fault::from_store(e, "store"))?;
    // The fault-to continuation: what store information must remember about
    // this update, signed. Search may take the event in and fault back with it.
    let fault_to = app.mint(
        Stores,
        Next::start(Pattern::Exchange, STORE_UPDATED)
            .to(&[Search, Stores])
            .allow(&[INDEX_STORE, STORE_FAULT])
            .kind(MessageKind::Event)
            .state(json!({ "store": listing.id, "version": listing.version }))
            .ttl(FAULT_TO_TTL),
    )?;
    let fault_to_href = app.step_href(
        Stores,
        &format!("/stores/{}/faults", listing.id),
        &fault_to.token,
    );
    let event_id = events::publish(
        &app,
        &mut tx,
        &listing,
        &fault_to.claims,
        &fault_to_href,
        &subscribers,
    )
    .await?;
    tx.commit().await.map_err(Problem::internal)?;
    app.relay.wake();
    let cid = fault_to.claims.cid;
    Ok(Hal::ok(
        render(&app, &listing)
            .field("conversation", cid)
            .field("event", event_id)
            .field(
                "detail",
                "Published store.updated. A subscriber that cannot take the update faults back; the listing then needs attention.",
            )
            .titled_link(
                "listing",
                app.href(Stores, &format!("/stores/{}", listing.id)),
                "The listing (it becomes needs-attention if a subscriber faults; asynchronously)",
            )
            .titled_link(
                "conversation",
                app.root_href(&format!("/conversations/{cid}")),
                "The conversation, rebuilt from the journals",
            ),
    ))
}
