//! The step `cancel-order`: withdrawing a placed order (command-acknowledgement).
//!
//! A compensation: the checkout or the delivery saga cancels an order when a
//! later step fails. Cancelling is idempotent: an order already cancelled
//! is acknowledged again (and announced only the first time); one that was
//! never placed cannot be cancelled. The cancellation and its
//! `order.cancelled` event are written in one transaction (the
//! Transactional Outbox), so the order's delivery hears of it.

use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use http::StatusCode;
use serde::Deserialize;
use serde_json::json;

use super::events;
use crate::app::AppState;
use crate::conversation::{Expect, Next, StateToken};
use crate::fault::{self, Problem, types};
use crate::participant::Participant::{self, Deliveries, Orders, Pricing};
use crate::store::{MessageKind, OrderStatus};

pub const CANCEL_ORDER: &str = "cancel-order";
/// The step a cancellation acknowledgement performs at the requestor.
pub const CANCEL_REPLY: &str = "cancel-reply";
/// Who may cancel: the checkout and the conversations that compensate.
const REQUESTORS: &[Participant] = &[Pricing, Deliveries];

/// Why: the token's state.
#[derive(Debug, Deserialize)]
struct CancelRequest {
    reason: String,
}

#[utoipa::path(
    post, path = "/orders/{id}/cancel", tag = "orders", operation_id = "cancel_order",
    summary = "Cancel a placed order (command-acknowledgement; a compensation)",
    security(("state_header" = []), ("state_query" = [])),
    params(("id" = String, Path, description = "The order id")),
    responses(
        (status = 200, description = "Cancelled (or already cancelled); orders' token in Conversation-State", body = Object, content_type = "application/json"),
        (status = 401, description = "Missing, invalid or expired token", body = crate::openapi::ProblemDocument, content_type = "application/problem+json"),
        (status = 403, description = "The token does not allow this step here", body = crate::openapi::ProblemDocument, content_type = "application/problem+json"),
        (status = 404, description = "No such order", body = crate::openapi::ProblemDocument, content_type = "application/problem+json"),
        (status = 409, description = "The order was rejected, never placed", body = crate::openapi::ProblemDocument, content_type = "application/problem+json"),
    )
)]
/// `POST /orders/orders/{id}/cancel` (`cancel-order`).
pub async fn cancel_order(
    State(app): State<AppState>,
    Path(id): Path<String>,
    token: StateToken,
) -> Result<Response, Problem> {
    let claims = app
        .verify(&token, Expect::step(Orders, CANCEL_ORDER).from(REQUESTORS))
        .await?;
    let request: CancelRequest = serde_json::from_value(claims.st.clone()).map_err(|e| {
        Problem::new(
            types::INVALID_BODY,
            format!("The cancellation cannot be read: {e}."),
        )
    })?;
    let order = app
        .store
        .get_order(&id)
        .await
        .map_err(|e| fault::from_store(e, "order").in_conversation(claims.cid))?;
    match order.status {
        OrderStatus::Placed => {
            let mut tx = app.store.begin().await.map_err(Problem::internal)?;
            if tx
                .cancel_placed_order(&id, Some(&request.reason))
                .await
                .map_err(Problem::internal)?
            {
                events::publish_cancelled(&app, &mut tx, &claims, &order, &request.reason).await?;
            }
            tx.commit().await.map_err(Problem::internal)?;
            app.relay.wake();
        }
        OrderStatus::Cancelled => {}
        OrderStatus::Rejected => {
            return Err(
                Problem::new(types::NOT_PLACED, "A rejected order has nothing to cancel.")
                    .in_conversation(claims.cid),
            );
        }
    }
    let requestor: Participant = claims.iss.parse().map_err(Problem::internal)?;
    let ack = app.mint(
        Orders,
        Next::after(&claims, CANCEL_ORDER)
            .to(&[requestor])
            .allow(&[CANCEL_REPLY])
            .kind(MessageKind::Reply)
            .state(json!({ "status": 200 })),
    )?;
    let body = json!({ "order_id": id, "status": OrderStatus::Cancelled });
    let mut response = (
        StatusCode::OK,
        [(http::header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response();
    if let Ok(value) = http::HeaderValue::from_str(&ack.token) {
        response
            .headers_mut()
            .insert(crate::conversation::continuation::HEADER, value);
    }
    Ok(response)
}
