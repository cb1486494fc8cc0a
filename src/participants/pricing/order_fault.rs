//! Robust In-Only, the requestor's side: orders faults back, the checkout refunds.
//!
//! The fault arrives at the `Fault-To` continuation pricing gave with "raise
//! order": its token is pricing's own (the payment to refund rides in it, so
//! pricing kept nothing), and orders' signature on the fault is checked like
//! any reply. Pricing then refunds through payments (command-acknowledgement)
//! and the conversation ends as `refunded`, which the conversation view shows.
//! If payments cannot be reached, pricing answers 503 and orders' relay
//! delivers the fault again later.

use axum::body::Bytes;
use axum::extract::{Query, State};
use http::{HeaderMap, StatusCode};
use serde::Deserialize;
use serde_json::{Value, json};

use super::pay::Refundable;
use crate::app::{AppState, Note};
use crate::conversation::continuation::{HEADER, StateToken};
use crate::conversation::{Expect, Next};
use crate::fault::{Problem, types};
use crate::messaging::rules;
use crate::participant::Participant::{Orders, Payments, Pricing};
use crate::participants::orders::ORDER_FAULT;
use crate::participants::payments::{REFUND, REFUND_REPLY, RefundRequest};
use crate::store::MessageKind;

/// The continuation the fault was sent to.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct FaultTarget {
    /// Pricing's own continuation token, minted when it raised the order.
    state: String,
}

#[utoipa::path(
    post, path = "/checkouts/order-fault", tag = "pricing", operation_id = "order_fault",
    summary = "Orders' fault about a raised order (Robust In-Only): the checkout refunds",
    params(FaultTarget, ("Conversation-State" = String, Header, description = "Orders' signed fault token")),
    request_body(content = Object, description = "The problem document", content_type = "application/problem+json"),
    responses(
        (status = 204, description = "The payment was refunded; the conversation ends as refunded"),
        (status = 400, description = "The request cannot be read (its query or its body)", body = crate::openapi::ProblemDocument, content_type = "application/problem+json"),
        (status = 401, description = "A token is missing, invalid or expired", body = crate::openapi::ProblemDocument, content_type = "application/problem+json"),
        (status = 403, description = "The fault was not signed by orders, or belongs to another conversation", body = crate::openapi::ProblemDocument, content_type = "application/problem+json"),
        (status = 503, description = "Payments could not refund now; deliver the fault again later", body = crate::openapi::ProblemDocument, content_type = "application/problem+json"),
    )
)]
/// `POST /pricing/checkouts/order-fault`.
pub async fn order_fault(
    State(app): State<AppState>,
    Query(target): Query<FaultTarget>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<StatusCode, Problem> {
    let own = app
        .verify(
            &StateToken(target.state),
            Expect::step(Pricing, ORDER_FAULT).from(&[Pricing]),
        )
        .await?;
    let provider = StateToken(
        headers
            .get(HEADER)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned(),
    );
    let fault = app
        .verify(
            &provider,
            Expect::step(Pricing, ORDER_FAULT).from(&[Orders]),
        )
        .await?;
    if !rules::RAISE_ORDER_ROBUST.allows_fault(Orders, Pricing) || fault.cid != own.cid {
        return Err(Problem::new(
            types::WRONG_ISSUER,
            "The fault belongs to another conversation.",
        )
        .in_conversation(own.cid));
    }
    let refundable: Refundable =
        serde_json::from_value(own.st.clone()).map_err(Problem::internal)?;
    let problem: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let slug = problem["type"]
        .as_str()
        .and_then(|t| t.strip_prefix("/problems/"))
        .unwrap_or("order-fault")
        .to_owned();
    app.journal_note(
        Pricing,
        MessageKind::Fault,
        Note {
            conversation: own.cid,
            causation: Some(fault.jti),
            from: Orders.as_str(),
            to: Pricing.as_str(),
            pattern: "robust-in-only",
            step: ORDER_FAULT,
            status: &slug,
        },
    );
    let request = RefundRequest {
        payment_id: refundable.payment_id.clone(),
        reason: slug,
    };
    let refund = app.mint(
        Pricing,
        Next::after(&fault, REFUND)
            .to(&[Payments])
            .allow(&[REFUND])
            .state(serde_json::to_value(&request).map_err(Problem::internal)?),
    )?;
    let reply = app
        .sender
        .send_retrying(
            Payments,
            "/refunds",
            &refund.token,
            &refund.claims.jti.to_string(),
            None,
        )
        .await
        .map_err(|e| {
            Problem::new(
                types::PEER_UNAVAILABLE,
                format!("The refund could not be made now: {e}."),
            )
            .in_conversation(own.cid)
        })?;
    let Some(ack) = reply.state.filter(|_| reply.status.is_success()) else {
        return Err(Problem::new(
            types::PEER_UNAVAILABLE,
            format!("Payments refused the refund ({}).", reply.status),
        )
        .in_conversation(own.cid));
    };
    let ack = app
        .verify(
            &StateToken(ack),
            Expect::step(Pricing, REFUND_REPLY).from(&[Payments]),
        )
        .await?;
    app.mint(
        Pricing,
        Next::after(&ack, "refunded").to(&[Pricing]).state(json!({
            "status": "refunded",
            "order_id": refundable.order_id,
            "payment_id": refundable.payment_id,
        })),
    )?;
    tracing::info!(conversation = %own.cid, "order faulted: payment refunded, conversation ends as refunded");
    Ok(StatusCode::NO_CONTENT)
}
