//! The saga's compensation: undoing what the checkout did when no courier
//! takes the delivery (or an administrator cancels it). Orders cancels the
//! order and payments refunds the payment, each a command-acknowledgement
//! sent with In-Out-Retry; both are turns of the delivery's conversation, and
//! the saga's last message says how it ended.

use serde_json::json;

use super::{advance, conclude, next_message};
use crate::app::App;
use crate::conversation::{Claims, Expect, StateToken};
use crate::fault::Problem;
use crate::participant::Participant::{self, Deliveries, Orders, Payments};
use crate::participants::orders::{CANCEL_ORDER, CANCEL_REPLY};
use crate::participants::payments::{REFUND, REFUND_REPLY, RefundRequest};
use crate::store::sagas::{Delivery, DeliveryState};

/// Cancels the order and refunds the payment, then ends the saga with a
/// message saying how.
pub async fn compensate(app: &App, delivery: &mut Delivery, by_admin: bool) -> Result<(), Problem> {
    let reason = if by_admin {
        "delivery-cancelled"
    } else {
        "no-courier"
    };
    let mut done = Vec::new();
    if let Some(order) = delivery.order_id.clone() {
        let request = app.mint(
            Deliveries,
            next_message(delivery, CANCEL_ORDER)?
                .to(&[Orders])
                .allow(&[CANCEL_ORDER])
                .state(json!({ "reason": reason })),
        )?;
        advance(delivery, &request.claims);
        let reply = app
            .sender
            .send_retrying(
                Orders,
                &format!("/orders/{order}/cancel"),
                &request.token,
                &request.claims.jti.to_string(),
                None,
            )
            .await?;
        let ack = acknowledged(app, &reply, Orders, CANCEL_REPLY, "cancel-order").await?;
        advance(delivery, &ack);
        done.push(format!("order {order} cancelled"));
    }
    if let Some(payment) = delivery.payment_id.clone() {
        let state = serde_json::to_value(RefundRequest {
            payment_id: payment.clone(),
            reason: reason.to_owned(),
        })
        .map_err(Problem::internal)?;
        let request = app.mint(
            Deliveries,
            next_message(delivery, REFUND)?
                .to(&[Payments])
                .allow(&[REFUND])
                .state(state),
        )?;
        advance(delivery, &request.claims);
        let reply = app
            .sender
            .send_retrying(
                Payments,
                "/refunds",
                &request.token,
                &request.claims.jti.to_string(),
                None,
            )
            .await?;
        let ack = acknowledged(app, &reply, Payments, REFUND_REPLY, "refund").await?;
        advance(delivery, &ack);
        done.push(format!("payment {payment} refunded"));
    }
    let (state, what) = if by_admin {
        (DeliveryState::Cancelled, "cancelled by an administrator")
    } else {
        (
            DeliveryState::Failed,
            "failed: no courier took the delivery",
        )
    };
    let note = if done.is_empty() {
        format!("{what}; nothing to compensate")
    } else {
        format!("{what}; {}", done.join(", "))
    };
    conclude(app, delivery, state, &note).await?;
    Ok(())
}

/// Checks a compensation's acknowledgement: a success carrying the
/// provider's signed token for `step` (which journals it as received).
async fn acknowledged(
    app: &App,
    reply: &crate::messaging::sender::Reply,
    from: Participant,
    step: &str,
    what: &str,
) -> Result<Claims, Problem> {
    match reply.state.as_deref().filter(|_| reply.status.is_success()) {
        Some(token) => {
            app.verify(
                &StateToken(token.to_owned()),
                Expect::step(Deliveries, step).from(&[from]),
            )
            .await
        }
        None => Err(Problem::internal(format!(
            "{from} refused {what} ({}): {}",
            reply.status.as_u16(),
            reply.body
        ))),
    }
}
