//! Orders: places orders (In-Only) and publishes what happened (Out-Only).
//!
//! "Raise order" is fire and forget: the checkout sends it (through its
//! outbox) and orders answers `202 Accepted` — nothing else is expected, and
//! a failure stays here (the *No Fault* rule of In-Only). The order, the
//! inbox record of the message and the `order.placed` event with one outbox
//! notification per subscriber are written in one transaction, so a
//! duplicate "raise order" changes nothing and an order never goes
//! unannounced. Subscribers get CloudEvents signed per Standard Webhooks;
//! clients that cannot receive webhooks read the same events from the pull
//! feed ([`events`]).

mod cancel;
pub mod events;
mod raise;
pub mod subscriptions;

pub use cancel::{CANCEL_ORDER, CANCEL_REPLY};
pub use raise::{DELIVERY_RADIUS_KM, ORDER_FAULT, serves};

use axum::extract::{Path, State};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::app::AppState;
use crate::fault::{self, Problem, types};
use crate::hypermedia::{Hal, Resource};
use crate::participant::Participant::Orders;

pub const RAISE_ORDER: &str = "raise-order";
/// The event orders publishes when an order is placed.
pub const ORDER_PLACED: &str = "order.placed";
/// Every event type orders publishes.
pub const EVENT_TYPES: &[&str] = &[ORDER_PLACED];

#[utoipa::path(
    get, path = "/orders/{id}", tag = "orders", operation_id = "get_order",
    summary = "An order",
    params(("id" = String, Path, description = "The order id")),
    responses(
        (status = 200, description = "The order", body = crate::openapi::HalDocument, content_type = "application/hal+json"),
        (status = 404, description = "No such order (yet: In-Only orders appear once placed)", body = crate::openapi::ProblemDocument, content_type = "application/problem+json"),
    )
)]
/// `GET /orders/orders/{id}`.
pub async fn get_order(
    State(app): State<AppState>,
    Path(id): Path<String>,
) -> Result<Hal, Problem> {
    let order = app.store.get_order(&id).await.map_err(|e| match e {
        crate::store::StoreError::NotFound => Problem::new(
            types::NOT_YET,
            "No order with this id has been placed (yet: raising an order is In-Only, so it appears once orders has placed it).",
        ),
        other => fault::from_store(other, "order"),
    })?;
    Ok(Hal::ok(
        Resource::new()
            .fields(&order)
            .link("self", app.href(Orders, &format!("/orders/{id}")))
            .link(
                "conversation",
                app.root_href(&format!("/conversations/{}", order.conversation_id)),
            )
            .link("events", app.href(Orders, "/events")),
    ))
}

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(raise::raise_order))
        .routes(routes!(cancel::cancel_order))
        .routes(routes!(get_order))
        .routes(routes!(subscriptions::subscribe))
        .routes(routes!(
            subscriptions::get_subscription,
            subscriptions::unsubscribe
        ))
        .routes(routes!(events::feed))
}
