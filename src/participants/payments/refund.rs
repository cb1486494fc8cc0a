//! The step `refund`: giving a captured payment back (command-acknowledgement).
//!
//! A repair, not a happy path: the checkout refunds when orders faults back
//! (Robust In-Only), a routing slip or a saga when they compensate. Refunding
//! is idempotent twice over: the inbox recognises the same message, and a
//! payment already refunded is acknowledged again without a second refund.

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::app::AppState;
use crate::conversation::{Expect, Next, StateToken};
use crate::fault::{self, Problem, types};
use crate::participant::Participant::{self, Deliveries, Orders, Payments, Pricing};
use crate::store::{InboxClaim, MessageKind, PaymentStatus};

pub const REFUND: &str = "refund";
/// The step a refund acknowledgement performs at the requestor.
pub const REFUND_REPLY: &str = "refund-reply";
/// Who may ask for a refund: the checkout, and the conversations that compensate.
const REQUESTORS: &[Participant] = &[Pricing, Orders, Deliveries];

/// What to refund: the token's state.
#[derive(Debug, Serialize, Deserialize)]
pub struct RefundRequest {
    pub payment_id: String,
    /// Why, for the record (e.g. the problem type that caused it).
    pub reason: String,
}

#[utoipa::path(
    post, path = "/refunds", tag = "payments", operation_id = "refund",
    summary = "Refund a captured payment (command-acknowledgement; a compensation)",
    security(("state_header" = []), ("state_query" = [])),
    responses(
        (status = 200, description = "Refunded (or already refunded); payments' token in Conversation-State", body = Object, content_type = "application/json"),
        (status = 401, description = "Missing, invalid or expired token", body = crate::openapi::ProblemDocument, content_type = "application/problem+json"),
        (status = 403, description = "The token does not allow this step here", body = crate::openapi::ProblemDocument, content_type = "application/problem+json"),
        (status = 404, description = "No such payment", body = crate::openapi::ProblemDocument, content_type = "application/problem+json"),
        (status = 409, description = "The payment was never captured", body = crate::openapi::ProblemDocument, content_type = "application/problem+json"),
    )
)]
/// `POST /payments/refunds` (`refund`).
pub async fn refund(State(app): State<AppState>, token: StateToken) -> Result<Response, Problem> {
    let claims = app
        .verify(&token, Expect::step(Payments, REFUND).from(REQUESTORS))
        .await?;
    let request: RefundRequest = serde_json::from_value(claims.st.clone()).map_err(|e| {
        Problem::new(
            types::INVALID_BODY,
            format!("The refund cannot be read: {e}."),
        )
    })?;
    let requestor: Participant = claims.iss.parse().map_err(Problem::internal)?;
    let mut tx = app.store.begin().await.map_err(Problem::internal)?;
    let dedupe = format!("{}:{REFUND}:{}", claims.cid, request.payment_id);
    let fresh = matches!(
        tx.inbox_claim(Payments.as_str(), &claims.jti.to_string(), &dedupe)
            .await
            .map_err(Problem::internal)?,
        InboxClaim::Claimed
    );
    let payment = app
        .store
        .get_payment(&request.payment_id)
        .await
        .map_err(|e| fault::from_store(e, "payment").in_conversation(claims.cid))?;
    match payment.status {
        // Of refunds racing for one payment, exactly one moves it.
        PaymentStatus::Captured => {
            tx.refund_captured_payment(&payment.id, Some(&request.reason))
                .await
                .map_err(Problem::internal)?;
        }
        PaymentStatus::Refunded => {}
        PaymentStatus::Declined => {
            return Err(Problem::new(
                types::NOT_CAPTURED,
                "A declined payment has nothing to refund.",
            )
            .in_conversation(claims.cid));
        }
    }
    tx.commit().await.map_err(Problem::internal)?;
    if !fresh {
        tracing::info!(payment = %payment.id, "duplicate refund request: acknowledged again");
    }
    let ack = app.mint(
        Payments,
        Next::after(&claims, REFUND)
            .to(&[requestor])
            .allow(&[REFUND_REPLY])
            .kind(MessageKind::Reply)
            .state(json!({ "status": 200 })),
    )?;
    let body = json!({
        "payment_id": payment.id,
        "amount": payment.amount,
        "currency": payment.currency,
        "status": PaymentStatus::Refunded,
    });
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
