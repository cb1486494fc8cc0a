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

use axum::extract::State;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::menu::{ITEMS, STORES};
use crate::app::{App, AppState};
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
                .map(|i| Resource::new().fields(i))
                .collect();
            Resource::new().fields(store).embed("items", items)
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
            .link("stores", app.href(Participant::Stores, "/stores"))
            .embed("stores", stores),
    )
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
        .routes(routes!(listings::list_stores))
        .routes(routes!(listings::get_store))
        .routes(routes!(listings::update_store))
        .routes(routes!(faults::store_fault))
        .merge(subscriptions::router())
        .routes(routes!(events::feed))
}
