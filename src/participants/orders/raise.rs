//! The step `raise-order`: In-Only, or Robust In-Only when the requestor
//! gives a `Fault-To` continuation.
//!
//! Orders answers `202 Accepted` before anything can go wrong for the
//! requestor to hear about. When the order cannot be placed (a closed store,
//! an address outside the delivery area), the exchange's fault rule decides:
//! - **No Fault** (plain In-Only, no `Fault-To`): the failure stays here. The
//!   message becomes a dead letter in orders' pipeline (with a `redeliver`
//!   link for when the cause is fixed) and is journaled; the requestor holds
//!   only its 202.
//! - **Message Triggers Fault** (Robust In-Only): the order is recorded as
//!   rejected and a problem document goes to the `Fault-To` continuation,
//!   signed by orders, through the outbox, in the same transaction.

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, StatusCode};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{ORDER_PLACED, RAISE_ORDER, events};
use crate::app::{App, AppState, Note};
use crate::conversation::{Claims, Expect, Next, StateToken};
use crate::fault::{Problem, types};
use crate::messaging::exchange::{self, AsyncReply, KIND_IN_ONLY};
use crate::messaging::rules;
use crate::participant::Participant::{Orders, Pricing};
use crate::participants::menu;
use crate::store::{
    InboxClaim, MessageKind, NewOutboxMessage, Order, OrderStatus, StoreError, now_ms,
};

/// The step a fault from orders performs at the requestor.
pub const ORDER_FAULT: &str = "order-fault";
/// How far from its store an order may be delivered.
pub const DELIVERY_RADIUS_KM: f64 = 10.0;

/// "Raise order", as orders reads it.
#[derive(Debug, Deserialize)]
struct RaiseOrder {
    order_id: String,
    payment_id: String,
    items: Value,
    total: i64,
    currency: String,
    stores: Vec<String>,
    #[serde(default)]
    address: Option<Address>,
}

#[derive(Clone, Copy, Debug, Deserialize)]
struct Address {
    lat: f64,
    lon: f64,
}

#[utoipa::path(
    post, path = "/orders", tag = "orders", operation_id = "raise_order",
    summary = "Raise an order (In-Only: 202, nothing else is expected; Robust In-Only with Fault-To)",
    security(("state_header" = []), ("state_query" = [])),
    params(("Fault-To" = Option<String>, Header, description = "The requestor's continuation for a fault (Robust In-Only); without it, failures stay with orders")),
    responses(
        (status = 202, description = "Taken; the order will be placed (or the failure handled per the fault rule)"),
        (status = 401, description = "Missing, invalid or expired token", body = crate::openapi::ProblemDocument, content_type = "application/problem+json"),
        (status = 403, description = "The token does not allow this step here", body = crate::openapi::ProblemDocument, content_type = "application/problem+json"),
        (status = 422, description = "The Fault-To continuation is not allowed", body = crate::openapi::ProblemDocument, content_type = "application/problem+json"),
    )
)]
/// `POST /orders/orders` (`raise-order`).
pub async fn raise_order(
    State(app): State<AppState>,
    token: StateToken,
    headers: HeaderMap,
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
    let fault_to = fault_to(&app, &headers)?;
    let subscribers = app
        .store
        .subscriptions_active_for(Orders.as_str(), ORDER_PLACED)
        .await
        .map_err(Problem::internal)?;
    let failure = check(&message);
    let exchange = rules::raise_order(fault_to.is_some());
    if let Some(problem) = &failure
        && !exchange.allows_fault(Orders, Pricing)
    {
        return no_fault(&app, &claims, &token, problem.clone()).await;
    }
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
    let mut order = Order {
        id: message.order_id.clone(),
        conversation_id: claims.cid.to_string(),
        store: message.stores.join(","),
        items: message.items.clone(),
        total: message.total,
        currency: message.currency.clone(),
        payment_id: message.payment_id.clone(),
        status: OrderStatus::Placed,
        reason: None,
        created_at: now_ms(),
    };
    let rejected = match (failure, fault_to) {
        (Some(problem), Some(fault_to)) => Some((problem, fault_to)),
        _ => None,
    };
    if let Some((problem, _)) = &rejected {
        order.status = OrderStatus::Rejected;
        order.reason = Some(problem.kind().slug.to_owned());
    }
    // One order per conversation, whatever raised it (the unique index
    // `orders_one_per_conversation`, met on the insert with no read first).
    match tx.insert_order(&order).await {
        Ok(()) => {}
        Err(StoreError::Conflict) => {
            drop(tx);
            return another_branch_ordered(&app, &claims, &dedupe, &order.id).await;
        }
        Err(e) => return Err(Problem::internal(e)),
    }
    match rejected {
        Some((problem, fault_to)) => {
            let problem = problem
                .in_conversation(claims.cid)
                .with("order_id", &order.id);
            let fault = app.mint(
                Orders,
                Next::after(&claims, RAISE_ORDER)
                    .to(&[Pricing])
                    .allow(&[ORDER_FAULT])
                    .kind(MessageKind::Fault)
                    .state(json!({ "status": problem.status().as_u16(), "order_id": order.id })),
            )?;
            exchange::enqueue_reply(
                &mut tx,
                Orders,
                &fault_to,
                &fault.token,
                problem.status().as_u16(),
                &problem.body(),
            )
            .await?;
        }
        None => {
            let mut data = json!({
                "order_id": order.id,
                "conversation": order.conversation_id,
                "total": order.total,
                "currency": order.currency,
                "stores": message.stores,
                "payment_id": order.payment_id,
            });
            if let Some(Address { lat, lon }) = message.address {
                data["address"] = json!({ "lat": lat, "lon": lon });
            }
            events::publish(&app, &mut tx, ORDER_PLACED, &claims, data, &subscribers).await?;
        }
    }
    tx.commit().await.map_err(Problem::internal)?;
    crate::crash::point("after-commit");
    app.relay.wake();
    Ok(accepted())
}

/// A branch of a conversation that has its order raised another: nothing
/// is placed, and the message is claimed on its own, so that its
/// redelivery is a duplicate too.
async fn another_branch_ordered(
    app: &App,
    claims: &Claims,
    dedupe: &str,
    raised: &str,
) -> Result<Response, Problem> {
    let mut tx = app.store.begin().await.map_err(Problem::internal)?;
    tx.inbox_claim(Orders.as_str(), &claims.jti.to_string(), dedupe)
        .await
        .map_err(Problem::internal)?;
    tx.commit().await.map_err(Problem::internal)?;
    tracing::info!(conversation = %claims.cid, %raised, "the conversation has its order: no second one");
    Ok(accepted())
}

/// Whether the order can be placed: every store open, the address within reach.
fn check(message: &RaiseOrder) -> Option<Problem> {
    let address = message.address.map(|a| (a.lat, a.lon));
    message.stores.iter().find_map(|id| match menu::store(id) {
        None => Some(Problem::new(
            types::STORE_CLOSED,
            format!("There is no store `{id}`."),
        )),
        Some(store) => serves(store, address).err(),
    })
}

/// The rule orders places by, for whoever checks an order before placing it
/// (orders' `raise-order` and the routing slip's steps): the store is open
/// and, given an address (latitude, longitude), delivers that far. Returns
/// the distance in km (0 without an address).
pub fn serves(store: &menu::Store, address: Option<(f64, f64)>) -> Result<f64, Problem> {
    if !store.open {
        return Err(Problem::new(
            types::STORE_CLOSED,
            format!("{} is closed.", store.name),
        ));
    }
    let Some((lat, lon)) = address else {
        return Ok(0.0);
    };
    let km = menu::distance_km(store.lat, store.lon, lat, lon);
    if km > DELIVERY_RADIUS_KM {
        return Err(Problem::new(
            types::OUTSIDE_DELIVERY_AREA,
            format!(
                "The address is {km:.1} km from {}; it delivers within {DELIVERY_RADIUS_KM} km.",
                store.name
            ),
        ));
    }
    Ok(km)
}

fn fault_to(app: &App, headers: &HeaderMap) -> Result<Option<AsyncReply>, Problem> {
    let Some(value) = headers.get("fault-to").and_then(|v| v.to_str().ok()) else {
        return Ok(None);
    };
    let url = value.trim().trim_start_matches('<').trim_end_matches('>');
    app.callbacks.check(url).map_err(|e| {
        Problem::new(
            types::CALLBACK_NOT_ALLOWED,
            format!("Fault-To refused: {e}."),
        )
    })?;
    Ok(Some(AsyncReply(url.to_owned())))
}

/// No Fault: the failure stays here, as a dead letter that can be redelivered
/// to this very step once its cause is fixed. It is written dead in one
/// statement, so no relay can send it first. Nothing is claimed in the
/// inbox, so the redelivery is processed afresh.
async fn no_fault(
    app: &App,
    claims: &Claims,
    token: &StateToken,
    problem: Problem,
) -> Result<Response, Problem> {
    let message = NewOutboxMessage {
        id: uuid::Uuid::now_v7().to_string(),
        participant: Orders.as_str().to_owned(),
        destination: app.href(Orders, "/orders"),
        kind: KIND_IN_ONLY.to_owned(),
        headers: json!({ crate::conversation::continuation::HEADER: token.0, "content-type": "application/json" }),
        body: json!({}),
    };
    let error = format!("{}: {}", problem.kind().slug, problem.detail());
    app.store
        .outbox_enqueue_dead(&message, &error)
        .await
        .map_err(Problem::internal)?;
    app.journal_note(
        Orders,
        MessageKind::Fault,
        Note {
            conversation: claims.cid,
            causation: Some(claims.jti),
            from: Orders.as_str(),
            to: Orders.as_str(),
            pattern: "no-fault",
            step: RAISE_ORDER,
            status: problem.kind().slug,
        },
    );
    tracing::info!(conversation = %claims.cid, problem = problem.kind().slug, "in-only failure dead-lettered (no fault rule)");
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
