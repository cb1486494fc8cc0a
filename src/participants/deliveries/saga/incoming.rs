//! What the saga is told: couriers' reports, arriving at the `Reply-To`
//! continuation each job carried, and orders' events: `order.placed` starts
//! the delivery of its order in the order's own conversation,
//! `order.cancelled` stops it ([`super::order_cancelled`]).

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use http::{HeaderMap, StatusCode};
use serde::Deserialize;
use serde_json::Value;

use super::create::{CreateDelivery, start_delivery};
use super::steps::AwaitingReport;
use super::{timer, transition};
use crate::app::{App, AppState};
use crate::conversation::continuation::HEADER;
use crate::conversation::{Claims, Expect, StateToken, TokenError};
use crate::fault::{self, Problem, types};
use crate::messaging::webhooks;
use crate::participant::Participant::{Couriers, Deliveries, Orders};
use crate::participants::couriers::{DELIVERY_REPORT, Location, Report};
use crate::participants::menu;
use crate::participants::orders::{ORDER_CANCELLED, ORDER_PLACED};
use crate::store::sagas::DeliveryState;

/// How far from the pickup an order's drop-off is when its event names no
/// address (the order was paid without one).
const DEFAULT_DROPOFF_OFFSET: f64 = 0.01;

/// The query of a report: the continuation it was sent to.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ReportTarget {
    /// Deliveries' own continuation, naming the delivery, the courier and the attempt.
    state: Option<String>,
}

#[utoipa::path(
    post, path = "/deliveries/{id}/reports", tag = "deliveries", operation_id = "delivery_report",
    summary = "A courier reports pickup or drop-off to the saga's Reply-To continuation",
    params(
        ("id" = String, Path, description = "The delivery"),
        ReportTarget,
        ("Conversation-State" = String, Header, description = "Couriers' signed report"),
    ),
    request_body(content = Report, description = "Mirrors the courier's token", content_type = "application/json"),
    responses(
        (status = 204, description = "Taken"),
        (status = 401, description = "A token is missing, invalid or expired", body = crate::openapi::ProblemDocument, content_type = "application/problem+json"),
        (status = 403, description = "Not this delivery's courier, or not signed by couriers", body = crate::openapi::ProblemDocument, content_type = "application/problem+json"),
        (status = 409, description = "The saga has moved on (reassigned), or moved while the report was taken", body = crate::openapi::ProblemDocument, content_type = "application/problem+json"),
        (status = 410, description = "The delivery was cancelled or given up: no report will be taken, now or later", body = crate::openapi::ProblemDocument, content_type = "application/problem+json"),
    )
)]
/// `POST /deliveries/deliveries/{id}/reports` (`delivery-report`).
pub async fn report(
    State(app): State<AppState>,
    Path(id): Path<String>,
    Query(target): Query<ReportTarget>,
    headers: HeaderMap,
) -> Result<StatusCode, Problem> {
    let own = app
        .verify(
            &StateToken(target.state.ok_or(TokenError::Missing)?),
            Expect::step(Deliveries, DELIVERY_REPORT).from(&[Deliveries]),
        )
        .await?;
    let awaiting: AwaitingReport =
        serde_json::from_value(own.st.clone()).map_err(Problem::internal)?;
    let courier_token = headers
        .get(HEADER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .trim()
        .to_owned();
    let theirs = app
        .verify(
            &StateToken(courier_token),
            Expect::step(Deliveries, DELIVERY_REPORT).from(&[Couriers]),
        )
        .await?;
    let report: Report = serde_json::from_value(theirs.st.clone()).map_err(|e| {
        Problem::new(
            types::INVALID_BODY,
            format!("The report cannot be read: {e}."),
        )
    })?;
    if awaiting.delivery != id || report.delivery_id != id || report.courier_id != awaiting.courier
    {
        return Err(Problem::new(
            types::WRONG_ISSUER,
            "This report is not for this delivery's courier.",
        )
        .in_conversation(own.cid));
    }
    let mut d = app
        .store
        .delivery_get(&id)
        .await
        .map_err(|e| fault::from_store(e, "delivery"))?;
    if called_off(d.state) {
        return Err(Problem::new(
            types::DELIVERY_CANCELLED,
            format!(
                "The delivery is {}: the job is called off, and no report will change that.",
                d.state
            ),
        )
        .in_conversation(own.cid)
        .link(
            "delivery",
            app.href(Deliveries, &format!("/deliveries/{id}")),
        ));
    }
    let stale = || {
        Problem::new(
            types::DELIVERY_STATE_CONFLICT,
            format!("The delivery is {}; this report changes nothing.", d.state),
        )
        .in_conversation(own.cid)
    };
    if d.attempts != awaiting.attempt || d.courier_id.as_deref() != Some(awaiting.courier.as_str())
    {
        return Err(stale());
    }
    let (to, next) = match (d.state, report.status.as_str()) {
        (DeliveryState::Assigned, "picked-up") => (
            DeliveryState::PickedUp,
            Some(timer(&id, super::TIMER_REPORT, *super::REPORT_TIMEOUT_MS)),
        ),
        (DeliveryState::Assigned | DeliveryState::PickedUp, "delivered") => {
            (DeliveryState::Delivered, None)
        }
        (s, r) if s.as_str() == r => return Ok(StatusCode::NO_CONTENT),
        _ => return Err(stale()),
    };
    let note = format!("{} reports {}", awaiting.courier, report.status);
    super::advance(&mut d, &theirs);
    let moved = if to == DeliveryState::Delivered {
        super::conclude(&app, &mut d, to, &note).await?
    } else {
        transition(&app, &mut d, to, &note, next).await?
    };
    if !moved {
        return Err(Problem::new(
            types::DELIVERY_STATE_CONFLICT,
            "The delivery moved meanwhile.",
        )
        .in_conversation(own.cid));
    }
    Ok(StatusCode::NO_CONTENT)
}

/// Whether a delivery will never take a courier's report again: cancelled
/// (by an administrator, or with its order), or given up on (failed), or
/// on its way to either (compensating). Its courier is told so as a final
/// answer, `410 Gone`, rather than a conflict it might retry.
fn called_off(state: DeliveryState) -> bool {
    matches!(
        state,
        DeliveryState::Cancelled | DeliveryState::Failed | DeliveryState::Compensating
    )
}

#[utoipa::path(
    post, path = "/notifications", tag = "deliveries", operation_id = "deliveries_notification",
    summary = "Orders' events (CloudEvents, Standard Webhooks signature): order.placed starts the order's delivery, order.cancelled stops it",
    responses(
        (status = 204, description = "Taken (a repeated event changes nothing)"),
        (status = 401, description = "The signature does not verify", body = crate::openapi::ProblemDocument, content_type = "application/problem+json"),
    )
)]
/// `POST /deliveries/notifications`.
pub async fn notifications(
    State(app): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<StatusCode, Problem> {
    let header = |n: &str| {
        headers
            .get(n)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    let secret = app
        .store
        .saga_subscription(Orders.as_str())
        .await
        .map_err(Problem::internal)?
        .map(|s| s.1);
    let timestamp: i64 = header("webhook-timestamp").parse().unwrap_or(0);
    let verified = secret.is_some_and(|s| {
        webhooks::verify(
            &s,
            &header("webhook-id"),
            timestamp,
            &body,
            &header("webhook-signature"),
        )
    });
    if !verified || !webhooks::is_recent(timestamp) {
        return Err(Problem::new(
            types::BAD_WEBHOOK_SIGNATURE,
            "The webhook signature does not verify.",
        ));
    }
    let event: Value = serde_json::from_slice(&body).map_err(|e| {
        Problem::new(
            types::INVALID_BODY,
            format!("The event cannot be read: {e}."),
        )
    })?;
    let event_type = event["type"].as_str().unwrap_or_default();
    if ![ORDER_PLACED, ORDER_CANCELLED].contains(&event_type) {
        return Ok(StatusCode::NO_CONTENT);
    }
    let data = &event["data"];
    let Some(order) = data["order_id"].as_str() else {
        return Err(Problem::new(
            types::INVALID_BODY,
            format!("{event_type} without an order id."),
        ));
    };
    if event_type == ORDER_PLACED {
        order_placed(&app, &headers, order, data).await?;
    } else {
        super::order_cancelled::stop(&app, &headers, order, data).await?;
    }
    Ok(StatusCode::NO_CONTENT)
}

/// `order.placed`: starts the order's delivery, once.
async fn order_placed(
    app: &App,
    headers: &HeaderMap,
    order: &str,
    data: &Value,
) -> Result<(), Problem> {
    let payment = data["payment_id"].as_str().unwrap_or_default();
    if app
        .store
        .delivery_get(&super::delivery_id_for_order(order))
        .await
        .is_ok()
    {
        tracing::info!(%order, "order.placed again: its delivery exists");
        return Ok(());
    }
    let taken_up = taken_up(app, headers, ORDER_PLACED, order).await?;
    let (_, created) = start_delivery(
        app,
        &input_for_order(data),
        Some((order, payment)),
        &format!("created from order.placed ({order})"),
        taken_up.as_ref(),
    )
    .await?;
    if !created {
        tracing::info!(%order, "order.placed again: its delivery exists");
    }
    Ok(())
}

/// What an order event says the delivery is: from the order's first store
/// to the address it was paid with (or nearby, without one); a medium
/// parcel of 2 kg, ready now.
pub(super) fn input_for_order(data: &Value) -> CreateDelivery {
    let store = data["stores"]
        .as_array()
        .and_then(|s| s.first())
        .and_then(Value::as_str)
        .and_then(menu::store)
        .unwrap_or(&menu::STORES[0]);
    let dropoff = serde_json::from_value::<Location>(data["address"].clone())
        .ok()
        .filter(|a| a.is_valid())
        .unwrap_or(Location {
            lat: store.lat + DEFAULT_DROPOFF_OFFSET,
            lon: store.lon + DEFAULT_DROPOFF_OFFSET,
        });
    CreateDelivery {
        pickup: Location {
            lat: store.lat,
            lon: store.lon,
        },
        dropoff,
        size: "medium".into(),
        weight_kg: 2.0,
        ready_in_ms: None,
        deadline_ms: None,
    }
}

/// The event's message the delivery continues: orders' token in the
/// webhook's `Conversation-State` header, for the step `event_type`, which
/// must be this order's. An `order.placed` without one (from a publisher
/// that signs none) starts a conversation of the delivery's own.
pub(super) async fn taken_up(
    app: &App,
    headers: &HeaderMap,
    event_type: &str,
    order: &str,
) -> Result<Option<Claims>, Problem> {
    let token = headers
        .get(HEADER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .trim();
    if token.is_empty() {
        tracing::info!(%order, event_type, "an order event without a token");
        return Ok(None);
    }
    let claims = app
        .verify(
            &StateToken(token.to_owned()),
            Expect::step(Deliveries, event_type).from(&[Orders]),
        )
        .await?;
    if claims.st["order_id"] != order {
        return Err(Problem::new(
            types::WRONG_ISSUER,
            "The event's token belongs to another order.",
        )
        .in_conversation(claims.cid));
    }
    Ok(Some(claims))
}
