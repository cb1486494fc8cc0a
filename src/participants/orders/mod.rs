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
//! feed ([`events`]). Cancelling a placed order — by the `cancel-order`
//! command or a routing slip's compensation — publishes `order.cancelled`
//! the same way, in the transaction that cancels, so the delivery saga
//! stops the order's delivery ([`events::publish_cancelled`]).
//!
//! An order links to its payment and, once placed, to its delivery: the
//! delivery saga starts from `order.placed` with an id derived from the
//! order's ([`saga::delivery_id_for_order`]), so the link is known before
//! the delivery exists (it answers `404 not-yet` until then).

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
use crate::participant::Participant::{Deliveries, Orders, Payments};
use crate::participants::deliveries::saga;
use crate::store::OrderStatus;

pub const RAISE_ORDER: &str = "raise-order";
/// The event orders publishes when an order is placed.
pub const ORDER_PLACED: &str = "order.placed";
/// The event orders publishes when a placed order is cancelled, whoever
/// cancelled it (the `cancel-order` command, a routing slip's compensation).
pub const ORDER_CANCELLED: &str = "order.cancelled";
/// Every event type orders publishes.
pub const EVENT_TYPES: &[&str] = &[ORDER_PLACED, ORDER_CANCELLED];

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
    let mut resource = Resource::new()
        .fields(&order)
        .link("self", app.href(Orders, &format!("/orders/{id}")))
        .link(
            "conversation",
            app.root_href(&format!("/conversations/{}", order.conversation_id)),
        )
        .link("events", app.href(Orders, "/events"));
    if app.base_of(Payments).is_some() && !order.payment_id.is_empty() {
        resource = resource.titled_link(
            "payment",
            app.href(Payments, &format!("/payments/{}", order.payment_id)),
            "The payment (its status shows a refund, if one was made)",
        );
    }
    if order.status != OrderStatus::Rejected && app.base_of(Deliveries).is_some() {
        let delivery = saga::delivery_id_for_order(&order.id);
        resource = resource.titled_link(
            "delivery",
            app.href(Deliveries, &format!("/deliveries/{delivery}")),
            "The delivery (a process manager: it starts when deliveries hears order.placed)",
        );
    }
    Ok(Hal::ok(resource))
}

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(raise::raise_order))
        .routes(routes!(cancel::cancel_order))
        .routes(routes!(get_order))
        .merge(subscriptions::router())
        .routes(routes!(events::feed))
}
