//! The documented routes of the steps, one per participant and step: thin
//! handlers over [`hop`], so that every step has its own OpenAPI operation
//! under its participant's prefix.

use axum::extract::State;
use axum::response::Response;
use serde::Deserialize;

use super::hop;
use super::slip::{CANCEL_ORDER, REFUND_PAYMENT, Step};
use crate::app::AppState;
use crate::conversation::StateToken;
use crate::fault::Problem;
use crate::hypermedia::Deferred;
use crate::participant::Participant;

/// The message body that travels beside the slip.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
pub struct SlipMessage {
    /// Payments' payment-method reference, only until `take-payment` (the
    /// card number itself never travels: see `payments::methods`).
    #[serde(default)]
    pub payment_method: Option<String>,
}

#[utoipa::path(
    post, path = "/routing-slips/validate-address", tag = "stores", operation_id = "slip_validate_address",
    summary = "Routing slip: Validate the slip's address: every store of the items open and within the delivery radius",
    security(("state_header" = []), ("state_query" = [])),
    request_body(content((SlipMessage = "application/json"))),
    responses(
        (status = 202, description = "Taken: the slip moves on (or turns back to compensate)", body = Object, content_type = "application/json"),
        (status = 401, description = "Missing, invalid or expired token", body = crate::openapi::ProblemDocument, content_type = "application/problem+json"),
        (status = 403, description = "Not this step's turn, not from the slip's last holder, or a tampered slip", body = crate::openapi::ProblemDocument, content_type = "application/problem+json"),
    )
)]
/// `POST /stores/routing-slips/validate-address`.
pub async fn validate_address(
    State(app): State<AppState>,
    token: StateToken,
    message: Deferred<SlipMessage>,
) -> Result<Response, Problem> {
    hop::take(
        &app,
        Participant::Stores,
        Step::ValidateAddress,
        &token,
        message,
    )
    .await
}

#[utoipa::path(
    post, path = "/routing-slips/price", tag = "pricing", operation_id = "slip_price",
    summary = "Routing slip: Price the slip's items (one delivery fee per store)",
    security(("state_header" = []), ("state_query" = [])),
    request_body(content((SlipMessage = "application/json"))),
    responses(
        (status = 202, description = "Taken: the slip moves on (or turns back to compensate)", body = Object, content_type = "application/json"),
        (status = 401, description = "Missing, invalid or expired token", body = crate::openapi::ProblemDocument, content_type = "application/problem+json"),
        (status = 403, description = "Not this step's turn, not from the slip's last holder, or a tampered slip", body = crate::openapi::ProblemDocument, content_type = "application/problem+json"),
    )
)]
/// `POST /pricing/routing-slips/price`.
pub async fn price(
    State(app): State<AppState>,
    token: StateToken,
    message: Deferred<SlipMessage>,
) -> Result<Response, Problem> {
    hop::take(&app, Participant::Pricing, Step::Price, &token, message).await
}

#[utoipa::path(
    post, path = "/routing-slips/take-payment", tag = "payments", operation_id = "slip_take_payment",
    summary = "Routing slip: Charge the priced total to the card in the message body",
    security(("state_header" = []), ("state_query" = [])),
    request_body(content((SlipMessage = "application/json"))),
    responses(
        (status = 202, description = "Taken: the slip moves on (or turns back to compensate)", body = Object, content_type = "application/json"),
        (status = 401, description = "Missing, invalid or expired token", body = crate::openapi::ProblemDocument, content_type = "application/problem+json"),
        (status = 403, description = "Not this step's turn, not from the slip's last holder, or a tampered slip", body = crate::openapi::ProblemDocument, content_type = "application/problem+json"),
    )
)]
/// `POST /payments/routing-slips/take-payment`.
pub async fn take_payment(
    State(app): State<AppState>,
    token: StateToken,
    message: Deferred<SlipMessage>,
) -> Result<Response, Problem> {
    hop::take(
        &app,
        Participant::Payments,
        Step::TakePayment,
        &token,
        message,
    )
    .await
}

#[utoipa::path(
    post, path = "/routing-slips/raise-order", tag = "orders", operation_id = "slip_raise_order",
    summary = "Routing slip: Place the paid order (publishes order.placed)",
    security(("state_header" = []), ("state_query" = [])),
    request_body(content((SlipMessage = "application/json"))),
    responses(
        (status = 202, description = "Taken: the slip moves on (or turns back to compensate)", body = Object, content_type = "application/json"),
        (status = 401, description = "Missing, invalid or expired token", body = crate::openapi::ProblemDocument, content_type = "application/problem+json"),
        (status = 403, description = "Not this step's turn, not from the slip's last holder, or a tampered slip", body = crate::openapi::ProblemDocument, content_type = "application/problem+json"),
    )
)]
/// `POST /orders/routing-slips/raise-order`.
pub async fn raise_order(
    State(app): State<AppState>,
    token: StateToken,
    message: Deferred<SlipMessage>,
) -> Result<Response, Problem> {
    hop::take(&app, Participant::Orders, Step::RaiseOrder, &token, message).await
}

#[utoipa::path(
    post, path = "/routing-slips/notify", tag = "basket", operation_id = "slip_notify",
    summary = "Routing slip: The slip comes home to the requestor's participant before the outcome is reported",
    security(("state_header" = []), ("state_query" = [])),
    request_body(content((SlipMessage = "application/json"))),
    responses(
        (status = 202, description = "Taken: the slip moves on (or turns back to compensate)", body = Object, content_type = "application/json"),
        (status = 401, description = "Missing, invalid or expired token", body = crate::openapi::ProblemDocument, content_type = "application/problem+json"),
        (status = 403, description = "Not this step's turn, not from the slip's last holder, or a tampered slip", body = crate::openapi::ProblemDocument, content_type = "application/problem+json"),
    )
)]
/// `POST /basket/routing-slips/notify`.
pub async fn notify(
    State(app): State<AppState>,
    token: StateToken,
    message: Deferred<SlipMessage>,
) -> Result<Response, Problem> {
    hop::take(&app, Participant::Basket, Step::Notify, &token, message).await
}

#[utoipa::path(
    post, path = "/routing-slips/refund-payment", tag = "payments", operation_id = "slip_refund_payment",
    summary = "Routing slip: Compensation: refund the slip's payment (a later step failed)",
    security(("state_header" = []), ("state_query" = [])),
    responses(
        (status = 202, description = "Taken: the slip moves on (or turns back to compensate)", body = Object, content_type = "application/json"),
        (status = 401, description = "Missing, invalid or expired token", body = crate::openapi::ProblemDocument, content_type = "application/problem+json"),
        (status = 403, description = "Not this step's turn, not from the slip's last holder, or a tampered slip", body = crate::openapi::ProblemDocument, content_type = "application/problem+json"),
        (status = 404, description = "The payment or order to undo is unknown here; the slip's relay delivers it again", body = crate::openapi::ProblemDocument, content_type = "application/problem+json"),
    )
)]
/// `POST /payments/routing-slips/refund-payment`.
pub async fn refund_payment(
    State(app): State<AppState>,
    token: StateToken,
) -> Result<Response, Problem> {
    hop::undo(&app, Participant::Payments, REFUND_PAYMENT, &token).await
}

#[utoipa::path(
    post, path = "/routing-slips/cancel-order", tag = "orders", operation_id = "slip_cancel_order",
    summary = "Routing slip: Compensation: cancel the slip's order (a later step failed)",
    security(("state_header" = []), ("state_query" = [])),
    responses(
        (status = 202, description = "Taken: the slip moves on (or turns back to compensate)", body = Object, content_type = "application/json"),
        (status = 401, description = "Missing, invalid or expired token", body = crate::openapi::ProblemDocument, content_type = "application/problem+json"),
        (status = 403, description = "Not this step's turn, not from the slip's last holder, or a tampered slip", body = crate::openapi::ProblemDocument, content_type = "application/problem+json"),
        (status = 404, description = "The payment or order to undo is unknown here; the slip's relay delivers it again", body = crate::openapi::ProblemDocument, content_type = "application/problem+json"),
    )
)]
/// `POST /orders/routing-slips/cancel-order`.
pub async fn cancel_order(
    State(app): State<AppState>,
    token: StateToken,
) -> Result<Response, Problem> {
    hop::undo(&app, Participant::Orders, CANCEL_ORDER, &token).await
}
