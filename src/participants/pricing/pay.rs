//! The checkout's payment turn: `pay`, the payment reply, and raising the order.
//!
//! Synchronous by default: pricing sends "take payment" to payments and waits
//! for the acknowledgement (or the fault that replaces it). Asked with
//! `Prefer: respond-async`, pricing passes the preference on with a
//! `Reply-To` continuation and answers the client `202` at once; payments'
//! reply later arrives at `payment-reply`. In the default *stateless
//! requestor* mode, that continuation's token is pricing's whole pending
//! state, so pricing stores nothing; with `--requestor-state store` (the
//! *stateful requestor*) pricing parks the state in its store under a
//! correlation id, and the continuation carries only the id.
//!
//! Once paid, pricing sends "raise order" to orders, In-Only, through its
//! outbox (written in one transaction, delivered by the relay).

use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, HeaderValue, StatusCode};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{CANCEL, PAY, Quote, VIEW};
use crate::app::{App, AppState, Note};
use crate::config::RequestorState;
use crate::conversation::continuation::{HEADER, StateToken};
use crate::conversation::{Claims, Expect, Next};
use crate::fault::{self, Problem, types};
use crate::hypermedia::{Deferred, Hal, Resource};
use crate::messaging::exchange;
use crate::participant::Participant::{Orders, Payments, Pricing};
use crate::participants::orders::{ORDER_FAULT, RAISE_ORDER};
use crate::participants::payments::{PaymentAck, TAKE_PAYMENT};
use crate::store::{Correlation, MessageKind, now_ms};

pub const PAYMENT_REPLY: &str = "payment-reply";
/// The step that mints a fault-to continuation (Robust In-Only).
pub const FAULT_TO: &str = "fault-to";
/// The client's turn after a fault: the same quote, a fresh token.
pub const PAYMENT_FAILED: &str = "payment-failed";
/// How long a pending asynchronous payment waits for its reply.
const PENDING_TTL: Duration = Duration::from_secs(3600);
/// Durable messages may be delivered late by the relay.
const DURABLE_TTL: Duration = Duration::from_secs(24 * 3600);

/// The input of `pay`.
#[derive(Deserialize)]
pub struct Pay {
    pub card_number: String,
    /// Where to deliver; the first store's own street when absent.
    #[serde(default)]
    pub address: Option<Address>,
    /// Robust In-Only (default): orders faults back and the checkout refunds.
    /// `false`: plain In-Only, whose failures stay with orders (No Fault).
    #[serde(default)]
    pub robust: Option<bool>,
}

/// A delivery address, as coordinates.
#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
pub struct Address {
    pub lat: f64,
    pub lon: f64,
}

/// What pricing must remember until the order is raised: in the token of
/// an asynchronous continuation, or in the store (stateful requestor).
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Pending {
    quote: Quote,
    order_id: String,
    #[serde(default)]
    address: Option<Address>,
    #[serde(default = "robust_by_default")]
    robust: bool,
}

fn robust_by_default() -> bool {
    true
}

/// What the fault-to continuation of a raised order remembers: enough to refund.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(super) struct Refundable {
    pub order_id: String,
    pub payment_id: String,
}

/// "Raise order": the In-Only message to orders.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RaiseOrder {
    pub order_id: String,
    pub payment_id: String,
    pub items: Value,
    pub total: i64,
    pub currency: String,
    pub stores: Vec<String>,
    pub address: Option<Address>,
}

#[utoipa::path(
    post, path = "/checkouts/pay", tag = "pricing", operation_id = "pay",
    summary = "Pay: command-acknowledgement with payments, then raise the order (In-Only)",
    security(("state_query" = []), ("state_header" = [])),
    request_body(content((crate::openapi::PayInput = "application/json"), (crate::openapi::PayInput = "application/x-www-form-urlencoded"))),
    params(("Prefer" = Option<String>, Header, description = "`respond-async`: answer 202 now, take the payment asynchronously")),
    responses(
        (status = 200, description = "Paid; the order is being raised", body = crate::openapi::HalDocument, content_type = "application/hal+json"),
        (status = 202, description = "Payment pending (respond-async); follow the order or conversation link", body = crate::openapi::HalDocument, content_type = "application/hal+json"),
        (status = 401, description = "Missing, invalid or expired token", body = crate::openapi::ProblemDocument, content_type = "application/problem+json"),
        (status = 402, description = "Declined or insufficient funds; links to pay again or cancel", body = crate::openapi::ProblemDocument, content_type = "application/problem+json"),
        (status = 403, description = "The token does not allow this step here", body = crate::openapi::ProblemDocument, content_type = "application/problem+json"),
        (status = 409, description = "The conversation was paid already, by another branch of it: nothing was charged (links to the payment and its order)", body = crate::openapi::ProblemDocument, content_type = "application/problem+json"),
        (status = 422, description = "The card number is not valid", body = crate::openapi::ProblemDocument, content_type = "application/problem+json"),
        (status = 503, description = "The processor is unavailable; retry after Retry-After", body = crate::openapi::ProblemDocument, content_type = "application/problem+json"),
        (status = 504, description = "Payments did not answer in time", body = crate::openapi::ProblemDocument, content_type = "application/problem+json"),
    )
)]
/// `POST /pricing/checkouts/pay`. The turn runs to its end even if the
/// client hangs up, and even if the server begins to shut down meanwhile
/// (which waits for it): once payments has charged, the order must be raised.
pub async fn pay(
    State(app): State<AppState>,
    token: StateToken,
    headers: HeaderMap,
    input: Deferred<Pay>,
) -> Result<Response, Problem> {
    let background = app.background.clone();
    background
        .to_the_end(take_turn(app, token, headers, input))
        .await
        .map_err(Problem::internal)?
}

async fn take_turn(
    app: AppState,
    token: StateToken,
    headers: HeaderMap,
    input: Deferred<Pay>,
) -> Result<Response, Problem> {
    let claims = app.verify(&token, Expect::step(Pricing, PAY)).await?;
    let quote: Quote = serde_json::from_value(claims.st.clone()).map_err(Problem::internal)?;
    let repair = |problem: Problem| repair_links(&app, problem, &claims, &token, &quote);
    let input = input.read().map_err(repair)?;
    let body = json!({ "card_number": input.card_number });
    let order_id = order_id_for(&claims);
    let charge = json!({
        "amount": quote.total,
        "currency": quote.currency,
        "attempt": claims.jti,
        "order": order_id,
    });
    let request = app.mint(
        Pricing,
        Next::after(&claims, PAY)
            .to(&[Payments])
            .allow(&[TAKE_PAYMENT])
            .state(charge),
    )?;
    let (address, robust) = (input.address, input.robust.unwrap_or(true));
    if !prefers_async(&headers) {
        let reply = app
            .sender
            .send_retrying(
                Payments,
                "/payments",
                &request.token,
                &request.claims.jti.to_string(),
                Some(&body),
            )
            .await
            .map_err(|e| repair(Problem::from(e)))?;
        let Some(ack_token) = reply.state.filter(|_| reply.status.is_success()) else {
            app.journal_note(
                Pricing,
                MessageKind::Fault,
                fault_record(&claims, &reply.body, Payments.as_str(), Pricing.as_str()),
            );
            let fault = fault::from_peer(&reply.body, Payments).in_conversation(claims.cid);
            // Another branch paid: nothing to repair, and its links say where
            // the payment and the order are.
            if fault.kind() == types::ALREADY_PAID {
                return Err(fault);
            }
            return Err(repair(fault));
        };
        let ack_claims = app
            .verify(
                &StateToken(ack_token),
                Expect::step(Pricing, PAYMENT_REPLY).from(&[Payments]),
            )
            .await?;
        let ack: PaymentAck = serde_json::from_value(reply.body).map_err(Problem::internal)?;
        let pending = Pending {
            quote,
            order_id,
            address,
            robust,
        };
        let raised = raise_order(&app, &ack_claims, &pending, &ack).await?;
        let paid = app.mint(
            Pricing,
            Next::after(&raised, "paid")
                .to(&[Pricing])
                .allow(&[VIEW])
                .state(json!({ "payment": ack, "order_id": pending.order_id, "total": pending.quote.total })),
        )?;
        let payment = app.href(Payments, &format!("/payments/{}", ack.payment_id));
        return Ok(Hal::ok(
            ended(&app, &paid.claims, "paid", &pending.order_id).titled_link(
                "payment",
                payment,
                "The payment (its status shows a refund, if one was made)",
            ),
        )
        .into_response());
    }
    let pending = Pending {
        quote: quote.clone(),
        order_id: order_id.clone(),
        address,
        robust,
    };
    let reply_to = continuation(&app, &claims, &pending).await?;
    let reply = app
        .sender
        .send_with(
            Payments,
            "/payments",
            &request.token,
            Some(&body),
            &[("prefer", "respond-async"), ("reply-to", &reply_to)],
        )
        .await
        .map_err(|e| repair(Problem::from(e)))?;
    if reply.status != StatusCode::ACCEPTED {
        return Err(repair(
            fault::from_peer(&reply.body, Payments).in_conversation(claims.cid),
        ));
    }
    let resource = ended(&app, &claims, "payment-pending", &order_id).field(
        "detail",
        "Payments will reply to pricing's continuation; the order appears at the order link once paid.",
    );
    let mut response = Hal(StatusCode::ACCEPTED, resource).into_response();
    response.headers_mut().insert(
        "preference-applied",
        HeaderValue::from_static("respond-async"),
    );
    Ok(response)
}

/// The order id of a checkout attempt: derived from the conversation and the
/// `pay` message, so a retried `pay` (same link) raises the very same order,
/// which orders' inbox then recognises.
fn order_id_for(claims: &Claims) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::new()
        .chain_update(claims.cid.0.as_bytes())
        .chain_update(claims.jti.0.as_bytes())
        .finalize();
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    uuid::Builder::from_random_bytes(bytes)
        .into_uuid()
        .to_string()
}

fn prefers_async(headers: &HeaderMap) -> bool {
    headers
        .get_all("prefer")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|p| p.trim().eq_ignore_ascii_case("respond-async"))
}

/// The Reply-To continuation: pricing's own signed link (stateless requestor),
/// or a correlation id whose state waits in pricing's store (stateful requestor).
async fn continuation(app: &App, claims: &Claims, pending: &Pending) -> Result<String, Problem> {
    let state = serde_json::to_value(pending).map_err(Problem::internal)?;
    let target = app.href(Pricing, "/checkouts/payment-reply");
    match app.config.requestor_state {
        RequestorState::Token => {
            let minted = app.mint(
                Pricing,
                Next::after(claims, PAY)
                    .to(&[Pricing])
                    .allow(&[PAYMENT_REPLY])
                    .state(state)
                    .ttl(PENDING_TTL),
            )?;
            Ok(format!("{target}?state={}", minted.token))
        }
        RequestorState::Store => {
            let id = uuid::Uuid::now_v7().to_string();
            app.store
                .correlation_put(&Correlation {
                    id: id.clone(),
                    participant: Pricing.as_str().to_owned(),
                    conversation_id: claims.cid.to_string(),
                    state: json!({ "pending": state, "claims": claims }),
                    expires_at: now_ms() + PENDING_TTL.as_millis() as i64,
                })
                .await
                .map_err(Problem::internal)?;
            Ok(format!("{target}?correlation={id}"))
        }
    }
}

/// The query of a payment reply: the continuation it was sent to.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ReplyTarget {
    /// Pricing's own continuation token (stateless requestor).
    state: Option<String>,
    /// The correlation id of the parked state (stateful requestor).
    correlation: Option<String>,
}

#[utoipa::path(
    post, path = "/checkouts/payment-reply", tag = "pricing", operation_id = "payment_reply",
    summary = "Payments' asynchronous reply (acknowledgement or fault) arriving at pricing's continuation",
    params(ReplyTarget, ("Conversation-State" = String, Header, description = "Payments' signed reply token")),
    request_body(content = Object, description = "The acknowledgement, or a problem document", content_type = "application/json"),
    responses(
        (status = 204, description = "The reply was taken; the conversation goes on"),
        (status = 401, description = "A token is missing, invalid or expired", body = crate::openapi::ProblemDocument, content_type = "application/problem+json"),
        (status = 403, description = "The reply was not signed by payments, or belongs to another conversation", body = crate::openapi::ProblemDocument, content_type = "application/problem+json"),
        (status = 404, description = "No conversation waits for this correlation id", body = crate::openapi::ProblemDocument, content_type = "application/problem+json"),
    )
)]
/// `POST /pricing/checkouts/payment-reply`: resumes the checkout with nothing
/// stored (or with what the correlation id names).
pub async fn payment_reply(
    State(app): State<AppState>,
    Query(target): Query<ReplyTarget>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<StatusCode, Problem> {
    let (own, pending): (Claims, Pending) = match (&target.state, &target.correlation) {
        (Some(state), _) => {
            let own = app
                .verify(
                    &StateToken(state.clone()),
                    Expect::step(Pricing, PAYMENT_REPLY).from(&[Pricing]),
                )
                .await?;
            let pending = serde_json::from_value(own.st.clone()).map_err(Problem::internal)?;
            (own, pending)
        }
        (None, Some(id)) => {
            let parked = app.store.correlation_take(id).await.map_err(|e| match e {
                crate::store::StoreError::NotFound => Problem::new(
                    types::UNKNOWN_CONTINUATION,
                    "No payment is pending under this correlation id (unknown, expired or already answered).",
                ),
                other => Problem::internal(other),
            })?;
            let own: Claims = serde_json::from_value(parked.state["claims"].clone())
                .map_err(Problem::internal)?;
            let pending = serde_json::from_value(parked.state["pending"].clone())
                .map_err(Problem::internal)?;
            (own, pending)
        }
        (None, None) => return Err(Problem::from(crate::conversation::TokenError::Missing)),
    };
    let provider = StateToken(
        headers
            .get(HEADER)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned(),
    );
    let reply = app
        .verify(
            &provider,
            Expect::step(Pricing, PAYMENT_REPLY).from(&[Payments]),
        )
        .await?;
    if reply.cid != own.cid {
        return Err(Problem::new(
            types::WRONG_ISSUER,
            "The reply belongs to another conversation.",
        )
        .in_conversation(own.cid));
    }
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let status = reply.st["status"].as_u64().unwrap_or(500);
    if (200..300).contains(&status) {
        let ack: PaymentAck = serde_json::from_value(body).map_err(|e| {
            Problem::new(
                types::INVALID_BODY,
                format!("The acknowledgement cannot be read: {e}."),
            )
        })?;
        raise_order(&app, &reply, &pending, &ack).await?;
    } else {
        app.journal_note(
            Pricing,
            MessageKind::Fault,
            fault_record(&reply, &body, Payments.as_str(), Pricing.as_str()),
        );
        tracing::info!(conversation = %own.cid, "asynchronous payment failed; the checkout ends here");
    }
    Ok(StatusCode::NO_CONTENT)
}

/// Sends "raise order" to orders, In-Only, through the outbox. Returns the
/// claims of the message, the latest turn of the conversation.
async fn raise_order(
    app: &App,
    after: &Claims,
    pending: &Pending,
    ack: &PaymentAck,
) -> Result<Claims, Problem> {
    let mut stores: Vec<String> = Vec::new();
    for line in &pending.quote.items {
        if let Some(item) = crate::participants::menu::item_by_sku(&line.sku)
            && !stores.iter().any(|s| s == item.store)
        {
            stores.push(item.store.to_owned());
        }
    }
    let message = RaiseOrder {
        order_id: pending.order_id.clone(),
        payment_id: ack.payment_id.clone(),
        items: serde_json::to_value(&pending.quote.items).map_err(Problem::internal)?,
        total: pending.quote.total,
        currency: pending.quote.currency.clone(),
        stores,
        address: pending.address,
    };
    let fault_to = if pending.robust {
        let refundable = Refundable {
            order_id: pending.order_id.clone(),
            payment_id: ack.payment_id.clone(),
        };
        let continuation = app.mint(
            Pricing,
            Next::after(after, FAULT_TO)
                .to(&[Pricing])
                .allow(&[ORDER_FAULT])
                .state(serde_json::to_value(&refundable).map_err(Problem::internal)?)
                .ttl(DURABLE_TTL),
        )?;
        Some(app.step_href(Pricing, "/checkouts/order-fault", &continuation.token))
    } else {
        None
    };
    let minted = app.mint(
        Pricing,
        Next::after(after, RAISE_ORDER)
            .to(&[Orders])
            .allow(&[RAISE_ORDER])
            .state(serde_json::to_value(&message).map_err(Problem::internal)?)
            .ttl(DURABLE_TTL),
    )?;
    let destination = app.sender.url(Orders, "/orders").map_err(Problem::from)?;
    // The message is the whole transaction: one statement, committed on its
    // own (on SQLite, no BEGIN and COMMIT round trips on the one writer).
    let message = exchange::in_only(
        Pricing,
        destination,
        &minted.token,
        fault_to.as_deref(),
        &json!({}),
    );
    app.store
        .outbox_enqueue(&message)
        .await
        .map_err(Problem::internal)?;
    crate::crash::point("after-commit");
    app.relay.wake();
    Ok(minted.claims)
}

/// The end of the checkout's payment turn, for the client.
fn ended(app: &App, claims: &Claims, status: &str, order_id: &str) -> Resource {
    Resource::new()
        .field("status", status)
        .field("conversation", claims.cid)
        .field("order_id", order_id)
        .field("state", &claims.st)
        .titled_link(
            "order",
            app.href(Orders, &format!("/orders/{order_id}")),
            "The order (In-Only: it appears once orders has placed it)",
        )
        .titled_link(
            "conversation",
            app.root_href(&format!("/conversations/{}", claims.cid)),
            "The conversation, rebuilt from the journals",
        )
        .link("start", app.root_href("/"))
}

/// A payment fault replaces the acknowledgement: the client gets a fresh
/// token to pay again (another card), retry (when the processor was down) or cancel.
fn repair_links(
    app: &App,
    problem: Problem,
    claims: &Claims,
    token: &StateToken,
    quote: &Quote,
) -> Problem {
    let state = match serde_json::to_value(quote) {
        Ok(state) => state,
        Err(e) => return Problem::internal(e),
    };
    let Ok(fresh) = app.mint(
        Pricing,
        Next::after(claims, PAYMENT_FAILED)
            .to(&[Pricing])
            .allow(&[VIEW, PAY, CANCEL])
            .state(state),
    ) else {
        return problem;
    };
    let step = |path: &str| app.step_href(Pricing, path, &fresh.token);
    let mut problem = problem
        .in_conversation(claims.cid)
        .link("pay", step("/checkouts/pay"))
        .link("cancel", step("/checkouts/cancel"))
        .link("checkout", step("/checkouts/view"));
    if matches!(
        problem.kind().slug,
        "processor-unavailable" | "peer-timeout" | "peer-unavailable"
    ) {
        // The same attempt again (the original token): if the payment was
        // taken after all, payments answers with it instead of charging again.
        problem = problem.link("retry", app.step_href(Pricing, "/checkouts/pay", &token.0));
    }
    problem
}

fn fault_record<'a>(claims: &'a Claims, body: &'a Value, from: &'a str, to: &'a str) -> Note<'a> {
    Note {
        conversation: claims.cid,
        causation: Some(claims.jti),
        from,
        to,
        pattern: "fault-replaces-message",
        step: TAKE_PAYMENT,
        status: body["type"]
            .as_str()
            .and_then(|t| t.strip_prefix("/problems/"))
            .unwrap_or("fault"),
    }
}
