//! Store information: the stores and their menu.
//!
//! For now it serves the menu the basket links to; the Robust Out-Only
//! pattern (store updates published to search) builds on it later.

use axum::extract::State;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::menu::{ITEMS, STORES};
use crate::app::AppState;
use crate::hypermedia::{Hal, Resource};
use crate::participant::Participant;

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
            .embed("stores", stores),
    )
}

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(menu))
}
