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

pub mod events;
pub mod subscriptions;

use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::app::AppState;
use crate::conversation::{Expect, StateToken};
use crate::fault::{self, Problem, types};
use crate::hypermedia::{Hal, Resource};
use crate::participant::Participant::{Orders, Pricing};
use crate::store::{InboxClaim, Order, OrderStatus, now_ms};

pub const RAISE_ORDER: &str = "raise-order";
/// The event orders publishes when an order is placed.
pub const ORDER_PLACED: &str = "order.placed";
/// Every event type orders publishes.
pub const EVENT_TYPES: &[&str] = &[ORDER_PLACED];

/// "Raise order", as orders reads it.
#[derive(Debug, Deserialize)]
struct RaiseOrder {
    order_id: String,
    payment_id: String,
    items: Value,
    total: i64,
    currency: String,
    stores: Vec<String>,
}

#[utoipa::path(
    post, path = "/orders", tag = "orders", operation_id = "raise_order",
    summary = "Raise an order (In-Only: 202, nothing else is expected)",
    security(("state_header" = []), ("state_query" = [])),
    responses(
        (status = 202, description = "Taken; the order will be placed (or the failure stays here)"),
        (status = 401, description = "Missing, invalid or expired token", body = crate::openapi::ProblemDocument, content_type = "application/problem+json"),
        (status = 403, description = "The token does not allow this step here", body = crate::openapi::ProblemDocument, content_type = "application/problem+json"),
    )
)]
/// `POST /orders/orders` (`raise-order`).
pub async fn raise_order(
    State(app): State<AppState>,
    token: StateToken,
) -> Result<Response, Problem> {
    let claims = app
        .verify(&token, Expect::step(Orders, RAISE_ORDER).from(&[Pricing]))
        .await?;
    let message: RaiseOrder = serde_json::from_value(claims.st.clone()).map_err(|e| {
        Problem::new(
            types::INVALID_BODY,
            format!("The order cannot be read: {e}."),
        )
    })?;
    let subscribers = app
        .store
        .subscriptions_active_for(Orders.as_str(), ORDER_PLACED)
        .await
        .map_err(Problem::internal)?;
    let mut tx = app.store.begin().await.map_err(Problem::internal)?;
    let dedupe = format!("{}:{RAISE_ORDER}:{}", claims.cid, message.order_id);
    if let InboxClaim::Duplicate(_) = tx
        .inbox_claim(Orders.as_str(), &claims.jti.to_string(), &dedupe)
        .await
        .map_err(Problem::internal)?
    {
        tracing::info!(order = %message.order_id, "duplicate raise-order: nothing to do twice");
        return Ok(accepted());
    }
    crate::crash::point("inbox-after-claim");
    let order = Order {
        id: message.order_id.clone(),
        conversation_id: claims.cid.to_string(),
        store: message.stores.join(","),
        items: message.items,
        total: message.total,
        currency: message.currency,
        payment_id: message.payment_id,
        status: OrderStatus::Placed,
        reason: None,
        created_at: now_ms(),
    };
    tx.insert_order(&order).await.map_err(Problem::internal)?;
    let data = json!({
        "order_id": order.id,
        "conversation": order.conversation_id,
        "total": order.total,
        "currency": order.currency,
        "stores": message.stores,
        "payment_id": order.payment_id,
    });
    events::publish(
        &app,
        &mut tx,
        ORDER_PLACED,
        &claims,
        &order.id,
        data,
        &subscribers,
    )
    .await?;
    tx.commit().await.map_err(Problem::internal)?;
    crate::crash::point("after-commit");
    app.relay.wake();
    Ok(accepted())
}

fn accepted() -> Response {
    (
        StatusCode::ACCEPTED,
        [(http::header::CONTENT_TYPE, "application/json")],
        json!({ "status": "accepted" }).to_string(),
    )
        .into_response()
}

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
        .routes(routes!(raise_order))
        .routes(routes!(get_order))
        .routes(routes!(subscriptions::subscribe))
        .routes(routes!(
            subscriptions::get_subscription,
            subscriptions::unsubscribe
        ))
        .routes(routes!(events::feed))
}
