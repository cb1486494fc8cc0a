//! The step `take-payment`, and reading a payment back.

use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, HeaderValue, StatusCode};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::cards::{self, Outcome};
use crate::app::{App, AppState};
use crate::conversation::{Claims, Expect, Next, StateToken};
use crate::fault::{Problem, types};
use crate::hypermedia::{Deferred, Hal, Resource};
use crate::messaging::exchange::{self, AsyncReply};
use crate::messaging::rules;
use crate::participant::Participant::{Orders, Payments, Pricing};
use crate::store::{InboxClaim, MessageKind, Payment, PaymentStatus, StoreError};

pub const TAKE_PAYMENT: &str = "take-payment";
/// The step a payment reply performs at the requestor.
pub const PAYMENT_REPLY: &str = "payment-reply";

/// The body of "take payment": the card, which goes no further than here.
#[derive(Deserialize)]
pub struct TakePayment {
    pub card_number: String,
}

/// What pricing asks to be charged: the token's state.
#[derive(Debug, Serialize, Deserialize)]
pub struct Charge {
    pub amount: i64,
    pub currency: String,
    /// The checkout attempt (the id of the client's `pay` message): the inbox key.
    pub attempt: String,
    /// The order this payment pays for, kept with the payment.
    #[serde(default)]
    pub order: Option<String>,
}

/// The acknowledgement: the payment was taken.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PaymentAck {
    pub payment_id: String,
    pub amount: i64,
    pub currency: String,
    pub last4: String,
    pub status: PaymentStatus,
}

/// A reply as payments stores it for replay: status, the signed token, the body.
#[derive(Serialize, Deserialize)]
struct Stored {
    status: u16,
    token: String,
    body: Value,
}

#[utoipa::path(
    post, path = "/payments", tag = "payments", operation_id = "take_payment",
    summary = "Take a payment (In-Out, command-acknowledgement; pricing is the requestor)",
    security(("state_header" = []), ("state_query" = [])),
    request_body(content((crate::openapi::PayInput = "application/json"))),
    params(
        ("Prefer" = Option<String>, Header, description = "`respond-async` to be answered 202 and replied to later"),
        ("Reply-To" = Option<String>, Header, description = "With respond-async: the requestor's continuation link for the reply"),
    ),
    responses(
        (status = 201, description = "The acknowledgement; payments' token in the Conversation-State header", body = Object, content_type = "application/json"),
        (status = 202, description = "Accepted; the reply will be POSTed to Reply-To"),
        (status = 401, description = "Missing, invalid or expired token", body = crate::openapi::ProblemDocument, content_type = "application/problem+json"),
        (status = 402, description = "Declined or insufficient funds (fault replaces message)", body = crate::openapi::ProblemDocument, content_type = "application/problem+json"),
        (status = 403, description = "The token does not allow this step here", body = crate::openapi::ProblemDocument, content_type = "application/problem+json"),
        (status = 409, description = "The conversation has a payment already: nothing is charged (links to it and its order)", body = crate::openapi::ProblemDocument, content_type = "application/problem+json"),
        (status = 422, description = "The card number is not valid", body = crate::openapi::ProblemDocument, content_type = "application/problem+json"),
        (status = 503, description = "The processor is unavailable; retry after Retry-After", body = crate::openapi::ProblemDocument, content_type = "application/problem+json"),
    )
)]
/// `POST /payments/payments` (`take-payment`).
pub async fn take_payment(
    State(app): State<AppState>,
    token: StateToken,
    headers: HeaderMap,
    input: Deferred<TakePayment>,
) -> Result<Response, Problem> {
    let claims = app
        .verify(
            &token,
            Expect::step(Payments, TAKE_PAYMENT).from(&[Pricing]),
        )
        .await?;
    let input = input.read().map_err(|p| p.in_conversation(claims.cid))?;
    let charge: Charge = serde_json::from_value(claims.st.clone()).map_err(|e| {
        Problem::new(
            types::INVALID_BODY,
            format!("The charge cannot be read: {e}."),
        )
    })?;
    let card = cards::read(&input.card_number).map_err(|e| {
        Problem::new(types::INVALID_CARD, format!("{e}.")).in_conversation(claims.cid)
    })?;
    match exchange::async_reply(&headers, &app.callbacks)? {
        None => {
            let (stored, fresh) = charge_once(&app, &claims, &charge, &card, None).await?;
            if fresh && card.outcome == Outcome::Slow {
                // Charged and committed, but answered only after the
                // requestor's timeout: its retry (same message) gets the
                // stored answer at once (In-Out-Retry).
                tokio::time::sleep(app.config.slow_card_delay).await;
            }
            Ok(stored.into_response())
        }
        Some(reply_to) => {
            // The 202 promises a reply, and nothing is durable until the
            // charge: at shutdown a slow processor answers at once, and
            // the server waits for the charge and its queued reply.
            let app = app.clone();
            let background = app.background.clone();
            background.to_the_end(async move {
                if card.outcome == Outcome::Slow {
                    app.background.sleep(app.config.slow_card_delay).await;
                }
                if let Err(problem) =
                    charge_once(&app, &claims, &charge, &card, Some(&reply_to)).await
                {
                    tracing::warn!(
                        detail = problem.detail(),
                        "asynchronous payment failed before its reply"
                    );
                }
            });
            Ok(exchange::accepted_async())
        }
    }
}

/// Charges the card once per attempt: the inbox claim, the payment and the
/// reply (and, when asynchronous, its outbox message) in one transaction.
/// Returns the reply, and whether this call made it (not a replay).
async fn charge_once(
    app: &App,
    claims: &Claims,
    charge: &Charge,
    card: &cards::Card,
    reply_to: Option<&AsyncReply>,
) -> Result<(Stored, bool), Problem> {
    if card.outcome == Outcome::ProcessorUnavailable {
        // Nothing happened: no claim, so a later retry of this attempt is processed.
        let fault = Problem::new(
            types::PROCESSOR_UNAVAILABLE,
            "The card processor is unavailable; try again shortly.",
        )
        .in_conversation(claims.cid)
        .retry_after(app.config.processor_retry_after.as_secs());
        let stored = reply(app, claims, &fault.body(), fault.status())?;
        if let Some(reply_to) = reply_to {
            reply_alone(app, reply_to, &stored).await?;
        }
        return Ok((stored, true));
    }
    let mut tx = app.store.begin().await.map_err(Problem::internal)?;
    let dedupe = format!("{}:{TAKE_PAYMENT}:{}", claims.cid, charge.attempt);
    match tx
        .inbox_claim(Payments.as_str(), &claims.jti.to_string(), &dedupe)
        .await
        .map_err(Problem::internal)?
    {
        InboxClaim::Duplicate(record) => {
            tracing::info!(conversation = %claims.cid, "duplicate payment request: replaying the first answer");
            let stored: Stored = record
                .response
                .and_then(|r| serde_json::from_value(r).ok())
                .ok_or_else(|| Problem::internal("an inbox record without its response"))?;
            return Ok((stored, false));
        }
        InboxClaim::Claimed => crate::crash::point("inbox-after-claim"),
    }
    let cid = claims.cid.to_string();
    let (mut payment, answer) = cards::charge(card, &cid, charge.amount, &charge.currency);
    payment.order_id = charge.order.clone();
    // Once per conversation, whatever branch asks: an earlier branch's
    // capture answers this one, and nothing is charged (nor claimed: the
    // transaction is dropped, so the same attempt is judged again if
    // retried). A capture meets the unique index `payments_one_capture` on
    // its insert, with no read on the way; a declined attempt is let in by
    // the index, so it asks first.
    if payment.status == PaymentStatus::Declined
        && let Some(paid) = tx
            .capture_of_conversation(&cid)
            .await
            .map_err(Problem::internal)?
    {
        drop(tx);
        return already_paid(app, claims, &paid, reply_to).await;
    }
    match tx.insert_payment(&payment).await {
        Ok(()) => {}
        // Another branch captured first (or is committing its capture now).
        Err(StoreError::Conflict) => {
            drop(tx);
            let paid = app
                .store
                .capture_of_conversation(&cid)
                .await
                .map_err(Problem::internal)?
                .ok_or_else(|| Problem::internal("a payment conflict without a capture"))?;
            return already_paid(app, claims, &paid, reply_to).await;
        }
        Err(e) => return Err(Problem::internal(e)),
    }
    let (body, code) = match answer {
        Ok(ack) => (
            serde_json::to_value(ack).map_err(Problem::internal)?,
            StatusCode::CREATED,
        ),
        Err(fault) => {
            let fault = fault.in_conversation(claims.cid);
            (fault.body(), fault.status())
        }
    };
    let stored = reply(app, claims, &body, code)?;
    let record = serde_json::to_value(&stored).map_err(Problem::internal)?;
    tx.inbox_store_response(
        Payments.as_str(),
        &claims.jti.to_string(),
        stored.status,
        &record,
    )
    .await
    .map_err(Problem::internal)?;
    if let Some(reply_to) = reply_to {
        exchange::enqueue_reply(
            &mut tx,
            Payments,
            reply_to,
            &stored.token,
            stored.status,
            &stored.body,
        )
        .await?;
    }
    tx.commit().await.map_err(Problem::internal)?;
    crate::crash::point("after-commit");
    if reply_to.is_some() {
        app.relay.wake();
    }
    Ok((stored, true))
}

/// The answer to a branch of a conversation that is paid already: `409
/// already-paid`, signed like any reply, with links to the payment and its
/// order. Nothing was charged, and nothing is kept for the attempt.
async fn already_paid(
    app: &App,
    claims: &Claims,
    paid: &Payment,
    reply_to: Option<&AsyncReply>,
) -> Result<(Stored, bool), Problem> {
    tracing::info!(conversation = %claims.cid, payment = %paid.id, "a branch of a paid conversation asked to pay: nothing charged");
    let problem = paid_already(
        app,
        paid,
        "This conversation is paid already; nothing was charged again.",
    );
    let stored = reply(app, claims, &problem.body(), problem.status())?;
    if let Some(reply_to) = reply_to {
        reply_alone(app, reply_to, &stored).await?;
    }
    Ok((stored, false))
}

/// `409 already-paid` for the conversation that `paid` paid: links to the
/// payment, its order (when the payer named one) and the conversation.
pub fn paid_already(app: &App, paid: &Payment, detail: &str) -> Problem {
    let mut problem = Problem::new(types::ALREADY_PAID, detail)
        .with("payment_id", &paid.id)
        .link(
            "payment",
            app.href(Payments, &format!("/payments/{}", paid.id)),
        );
    if let Some(order) = &paid.order_id {
        problem = problem
            .with("order_id", order)
            .link("order", app.href(Orders, &format!("/orders/{order}")));
    }
    match paid.conversation_id.parse() {
        Ok(cid) => problem.in_conversation(cid).link(
            "conversation",
            app.root_href(&format!("/conversations/{}", paid.conversation_id)),
        ),
        Err(_) => problem,
    }
}

/// Sends an asynchronous reply that comes with no effect of its own (the
/// processor was down, the conversation was paid): its outbox message is
/// the whole transaction.
async fn reply_alone(app: &App, reply_to: &AsyncReply, stored: &Stored) -> Result<(), Problem> {
    let mut tx = app.store.begin().await.map_err(Problem::internal)?;
    exchange::enqueue_reply(
        &mut tx,
        Payments,
        reply_to,
        &stored.token,
        stored.status,
        &stored.body,
    )
    .await?;
    tx.commit().await.map_err(Problem::internal)?;
    app.relay.wake();
    Ok(())
}

/// Signs the reply (acknowledgement or fault) so the requestor can verify who sent it.
fn reply(app: &App, claims: &Claims, body: &Value, status: StatusCode) -> Result<Stored, Problem> {
    if !status.is_success() && !rules::TAKE_PAYMENT.allows_fault(Payments, Pricing) {
        return Err(Problem::internal(
            "take-payment's fault rule forbids this fault",
        ));
    }
    let kind = if status.is_success() {
        MessageKind::Reply
    } else {
        MessageKind::Fault
    };
    let minted = app.mint(
        Payments,
        Next::after(claims, TAKE_PAYMENT)
            .to(&[Pricing])
            .allow(&[PAYMENT_REPLY])
            .kind(kind)
            .state(json!({ "status": status.as_u16() })),
    )?;
    Ok(Stored {
        status: status.as_u16(),
        token: minted.token,
        body: body.clone(),
    })
}

impl IntoResponse for Stored {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let content_type = if status.is_success() {
            "application/json"
        } else {
            crate::fault::PROBLEM_JSON
        };
        let mut response = (status, self.body.to_string()).into_response();
        let headers = response.headers_mut();
        headers.insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static(content_type),
        );
        if let Ok(token) = HeaderValue::from_str(&self.token) {
            headers.insert(crate::conversation::continuation::HEADER, token);
        }
        response
    }
}

#[utoipa::path(
    get, path = "/payments/{id}", tag = "payments", operation_id = "get_payment",
    summary = "A payment (amount, last four digits, status)",
    params(("id" = String, Path, description = "The payment id")),
    responses(
        (status = 200, description = "The payment", body = crate::openapi::HalDocument, content_type = "application/hal+json"),
        (status = 404, description = "No such payment", body = crate::openapi::ProblemDocument, content_type = "application/problem+json"),
    )
)]
/// `GET /payments/payments/{id}`.
pub async fn get_payment(
    State(app): State<AppState>,
    Path(id): Path<String>,
) -> Result<Hal, Problem> {
    let payment = app
        .store
        .get_payment(&id)
        .await
        .map_err(|e| crate::fault::from_store(e, "payment"))?;
    Ok(Hal::ok(
        Resource::new()
            .fields(&payment)
            .link("self", app.href(Payments, &format!("/payments/{id}")))
            .link(
                "conversation",
                app.root_href(&format!("/conversations/{}", payment.conversation_id)),
            ),
    ))
}

/// The query of the payments listing.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ByConversation {
    /// The conversation whose payments to list.
    conversation: String,
}

#[utoipa::path(
    get, path = "/payments", tag = "payments", operation_id = "list_payments",
    summary = "The payments of a conversation (for audit: was anything charged twice?)",
    params(ByConversation),
    responses(
        (status = 200, description = "The payments, oldest first", body = crate::openapi::HalDocument, content_type = "application/hal+json"),
        (status = 400, description = "No conversation given", body = crate::openapi::ProblemDocument, content_type = "application/problem+json"),
    )
)]
/// `GET /payments/payments?conversation=ID`.
pub async fn list_payments(
    State(app): State<AppState>,
    axum::extract::Query(query): axum::extract::Query<ByConversation>,
) -> Result<Hal, Problem> {
    let payments = app
        .store
        .payments_for_conversation(&query.conversation)
        .await
        .map_err(Problem::internal)?;
    let items = payments
        .iter()
        .map(|p| {
            Resource::new()
                .fields(p)
                .link("self", app.href(Payments, &format!("/payments/{}", p.id)))
        })
        .collect();
    Ok(Hal::ok(
        Resource::new()
            .field("conversation", &query.conversation)
            .field("count", payments.len())
            .link(
                "self",
                app.href(
                    Payments,
                    &format!("/payments?conversation={}", query.conversation),
                ),
            )
            .embed("payments", items),
    ))
}
