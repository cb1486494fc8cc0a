//! Payment methods: a card becomes a reference, so the number goes no further.
//!
//! A requestor that must carry "how to pay" across several hops (a routing
//! slip) exchanges the card for a payment-method reference first. The
//! reference is a token payments signs for itself — the last four digits and
//! what the card will do — so payments keeps nothing, and nothing but
//! payments can forge or read more into it. Only the reference travels.

use std::time::Duration;

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use http::StatusCode;
use serde::Deserialize;
use serde_json::json;

use super::cards::{self, Card};
use crate::app::AppState;
use crate::conversation::{Expect, Next, Pattern, StateToken};
use crate::fault::{Problem, types};
use crate::hypermedia::Input;
use crate::participant::Participant::Payments;

/// The step a payment-method reference allows: charging it.
pub const CHARGE_METHOD: &str = "charge-method";
/// How long a reference can be charged.
const METHOD_TTL: Duration = Duration::from_secs(3600);

/// The card to turn into a reference.
#[derive(Deserialize)]
pub struct NewMethod {
    pub card_number: String,
}

#[utoipa::path(
    post, path = "/methods", tag = "payments", operation_id = "create_payment_method",
    summary = "Exchange a card number for a payment-method reference (signed by payments, holding only the last four digits)",
    request_body(content((crate::openapi::PayInput = "application/json"), (crate::openapi::PayInput = "application/x-www-form-urlencoded"))),
    responses(
        (status = 201, description = "The reference (`method`) and the last four digits", body = Object, content_type = "application/json"),
        (status = 422, description = "The card number is not valid", body = crate::openapi::ProblemDocument, content_type = "application/problem+json"),
    )
)]
/// `POST /payments/methods`.
pub async fn create(
    State(app): State<AppState>,
    Input(input): Input<NewMethod>,
) -> Result<Response, Problem> {
    let card = cards::read(&input.card_number)
        .map_err(|e| Problem::new(types::INVALID_CARD, format!("{e}.")))?;
    let minted = app.mint(
        Payments,
        Next::start(Pattern::Exchange, "payment-method")
            .to(&[Payments])
            .allow(&[CHARGE_METHOD])
            .state(serde_json::to_value(&card).map_err(Problem::internal)?)
            .ttl(METHOD_TTL),
    )?;
    let body = json!({ "method": minted.token, "last4": card.last4 });
    Ok((
        StatusCode::CREATED,
        [(http::header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response())
}

/// The card a reference stands for, if payments signed it and it has not expired.
pub async fn resolve(app: &crate::app::App, method: &str) -> Result<Card, Problem> {
    let claims = app
        .verify(
            &StateToken(method.to_owned()),
            Expect::step(Payments, CHARGE_METHOD).from(&[Payments]),
        )
        .await?;
    serde_json::from_value(claims.st).map_err(|e| Problem::internal(format!("payment method: {e}")))
}
