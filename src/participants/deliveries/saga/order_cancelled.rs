//! When the order is cancelled under its delivery: orders' `order.cancelled`.
//!
//! Whoever cancelled the order owns its compensation — a routing slip
//! refunds the payment itself, the saga's own compensation refunds after
//! cancelling — so here the saga only *stops*: a running delivery ends
//! `cancelled`, with a history entry naming the order, and sends nothing
//! back (no `cancel-order`: the order is cancelled; no refund). The same
//! compare-and-set clears its timers, so no solicitation or overdue report
//! fires after; a step in flight loses its compare-and-set and stops there;
//! the assigned courier's later reports are refused with `410 Gone`
//! (`delivery-cancelled`), a final answer.
//!
//! Idempotent by state, which makes a redelivered event harmless: a delivery
//! already over (delivered, failed, cancelled) or compensating (the saga
//! itself cancelled the order: the event is the echo of its own
//! `cancel-order`) is left as it is. An event that overtakes the order's
//! `order.placed` (the relay retries each delivery on its own) records the
//! delivery as cancelled before it started, so the late `order.placed` finds
//! it and starts nothing.

use http::HeaderMap;
use serde_json::{Value, json};

use super::create::new_delivery;
use super::incoming::{input_for_order, taken_up};
use super::{advance, conclude, delivery_id_for_order, outcome};
use crate::app::App;
use crate::conversation::Claims;
use crate::fault::Problem;
use crate::participants::orders::ORDER_CANCELLED;
use crate::store::StoreError;
use crate::store::sagas::{Delivery, DeliveryState};

/// How often to read the delivery again when it moved under the
/// compare-and-set (a step finishing meanwhile).
const ATTEMPTS: usize = 5;

/// Stops the delivery of `order`, cancelled: see the module doc.
pub async fn stop(
    app: &App,
    headers: &HeaderMap,
    order: &str,
    data: &Value,
) -> Result<(), Problem> {
    let id = delivery_id_for_order(order);
    let reason = data["reason"].as_str().unwrap_or("no reason given");
    let note = format!(
        "order {order} was cancelled ({reason}): the delivery stops; whoever cancelled the order refunds it"
    );
    // Verified (and journaled as received) even when it changes nothing:
    // the transcript shows that deliveries heard the order was cancelled.
    let event = taken_up(app, headers, ORDER_CANCELLED, order).await?;
    for _ in 0..ATTEMPTS {
        let mut delivery = match app.store.delivery_get(&id).await {
            Ok(delivery) => delivery,
            Err(StoreError::NotFound) => {
                if before_start(app, order, data, &note, event.as_ref()).await? {
                    tracing::info!(%order, "order.cancelled before its delivery started");
                    return Ok(());
                }
                continue;
            }
            Err(e) => return Err(Problem::internal(e)),
        };
        if delivery.state.is_final() || delivery.state == DeliveryState::Compensating {
            tracing::info!(%order, state = %delivery.state, "order.cancelled: nothing to stop");
            return Ok(());
        }
        if let Some(claims) = &event
            && claims.cid.to_string() == delivery.conversation_id
        {
            advance(&mut delivery, claims);
        }
        if conclude(app, &mut delivery, DeliveryState::Cancelled, &note).await? {
            return Ok(());
        }
    }
    Err(Problem::internal(format!(
        "delivery {id} kept moving; order.cancelled is to be delivered again"
    )))
}

/// Records the delivery of a cancelled order that had not started: over
/// already, with no timer. `false` if it started meanwhile.
async fn before_start(
    app: &App,
    order: &str,
    data: &Value,
    note: &str,
    event: Option<&Claims>,
) -> Result<bool, Problem> {
    let payment = data["payment_id"].as_str().unwrap_or_default();
    let mut delivery: Delivery =
        new_delivery(&input_for_order(data), Some((order, payment)), note)?;
    delivery.state = DeliveryState::Cancelled;
    delivery.history =
        json!([{ "state": DeliveryState::Cancelled, "at": delivery.created_at, "note": note }]);
    if let Some(claims) = event {
        delivery.conversation_id = claims.cid.to_string();
        advance(&mut delivery, claims);
    }
    outcome(app, &mut delivery, DeliveryState::Cancelled, note)?;
    app.store
        .delivery_create(&delivery, None)
        .await
        .map_err(Problem::internal)
}
