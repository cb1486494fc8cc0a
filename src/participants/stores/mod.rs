//! Store information: the stores, their menu, and the publisher's side of
//! Robust Out-Only.
//!
//! Store information keeps a [`Listing`] per store (seeded from the menu's
//! stores at first start). An update ([`listings::update_store`]) writes the
//! listing and, in the same transaction, the `store.updated` event with one
//! outbox delivery per subscriber ([`events::publish`]), so no update goes
//! unannounced (Transactional Outbox).
//!
//! Out-Only alone would end there: the publisher never hears back. *Robust*
//! Out-Only lets the notification trigger a fault. Each event carries a
//! **fault-to continuation**: a link to [`faults::store_fault`] whose token
//! store information signed for this update (the stateless requestor: the
//! link *is* what store information must remember about the update). A
//! subscriber that cannot process the event — search, when the location is
//! impossible — still acknowledges the delivery, then posts a fault, signed
//! with its own token, to that link. Store information marks the listing
//! `needs-attention` with the reason and offers a `repair` link; the next
//! update clears the mark (no news is good news).
//!
//! Subscriptions and the pull feed are the same as orders' (Out-Only):
//! CloudEvents signed per Standard Webhooks, callback URLs checked.
//!
//! [`Listing`]: crate::store::listings::Listing

pub mod events;
pub mod faults;
pub mod listings;
pub mod subscriptions;

use axum::extract::{Path, State};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::menu::{ITEMS, Item, STORES};
use crate::app::{App, AppState};
use crate::fault::{Problem, types};
use crate::hypermedia::{Hal, Resource};
use crate::participant::Participant;
use crate::store::StoreError;
use crate::store::listings::{Listing, ListingStatus};

/// The event store information publishes when a listing changes.
pub const STORE_UPDATED: &str = "store.updated";
/// Every event type store information publishes.
pub const EVENT_TYPES: &[&str] = &[STORE_UPDATED];
/// The step a subscriber takes with the event's fault-to token: taking the
/// event in (what search journals as received).
pub const INDEX_STORE: &str = "index-store";
/// The step of the fault-to continuation: a subscriber faulting back.
pub const STORE_FAULT: &str = "store-fault";

#[utoipa::path(
    get, path = "/menu", tag = "stores", operation_id = "menu",
    summary = "Every store and what it sells (prices in minor units)",
    responses((status = 200, description = "The menu", body = crate::openapi::HalDocument, content_type = "application/hal+json"))
)]
/// `GET /stores/menu`: every store and what it sells.
pub async fn menu(State(app): State<AppState>) -> Hal {
    let stores = STORES
        .iter()
        .map(|store| {
            let items = ITEMS
                .iter()
                .filter(|i| i.store == store.id)
                .map(|i| item_resource(&app, i))
                .collect();
            // Every embedded resource that has an address links to it
            // (`self`): generic HAL clients ignore those that do not.
            Resource::new()
                .fields(store)
                .link(
                    "self",
                    app.href(Participant::Stores, &format!("/stores/{}", store.id)),
                )
                .embed("items", items)
        })
        .collect();
    Hal::ok(
        Resource::new()
            .field("currency", super::menu::CURRENCY)
            .link("self", app.href(Participant::Stores, "/menu"))
            .link(
                "start-checkout",
                app.href(Participant::Basket, "/checkouts"),
            )
            // The listings (each store's status): not `stores`, the rel of
            // the embedded stores, which a HAL client reads as one relation.
            .link("listings", app.href(Participant::Stores, "/stores"))
            .embed("stores", stores),
    )
}

/// An item of the menu, as it is embedded there and served on its own.
fn item_resource(app: &App, item: &Item) -> Resource {
    Resource::new()
        .fields(item)
        .link(
            "self",
            app.href(Participant::Stores, &format!("/items/{}", item.sku)),
        )
        .link(
            "store",
            app.href(Participant::Stores, &format!("/stores/{}", item.store)),
        )
}

#[utoipa::path(
    get, path = "/items/{sku}", tag = "stores", operation_id = "menu_item",
    summary = "One item of the menu (its price in minor units), with its store",
    params(("sku" = String, Path, description = "The item's sku, as the menu names it")),
    responses(
        (status = 200, description = "The item", body = crate::openapi::HalDocument, content_type = "application/hal+json"),
        (status = 404, description = "No item has this sku", body = crate::openapi::ProblemDocument, content_type = "application/problem+json"),
    )
)]
/// `GET /stores/items/{sku}`: one item of the menu.
pub async fn menu_item(
    State(app): State<AppState>,
    Path(sku): Path<String>,
) -> Result<Hal, Problem> {
    let item = super::menu::item_by_sku(&sku)
        .ok_or_else(|| Problem::new(types::NOT_FOUND, "There is no such item on the menu."))?;
    Ok(Hal::ok(
        item_resource(&app, item)
            .link("menu", app.href(Participant::Stores, "/menu"))
            .link(
                "start-checkout",
                app.href(Participant::Basket, "/checkouts"),
            ),
    ))
}

/// Seeds the listings from the menu's stores, the first time only: a
/// listing that exists (and may have been updated since) is left alone.
pub async fn start(app: &App) -> Result<(), StoreError> {
    let now = crate::store::now_ms();
    let seed: Vec<Listing> = STORES
        .iter()
        .map(|s| Listing {
            id: s.id.to_owned(),
            name: s.name.to_owned(),
            lat: s.lat,
            lon: s.lon,
            open: s.open,
            version: 1,
            status: ListingStatus::Ok,
            reason: None,
            updated_at: now,
        })
        .collect();
    let inserted = app.store.listings_seed(&seed).await?;
    if inserted > 0 {
        tracing::info!(inserted, "store listings seeded from the menu");
    }
    Ok(())
}

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(menu))
        .routes(routes!(menu_item))
        .routes(routes!(listings::list_stores))
        .routes(routes!(listings::get_store))
        .routes(routes!(listings::update_store))
        .routes(routes!(faults::store_fault))
        .merge(subscriptions::router())
        .routes(routes!(events::feed))
}
