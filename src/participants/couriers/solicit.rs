//! The step `solicit`: a courier is asked whether it can take work, and
//! answers later, to the requestor's `Reply-To` continuation.

use std::time::Duration;

use axum::extract::{Path, State};
use axum::response::Response;
use http::HeaderMap;
use serde::{Deserialize, Serialize};

use super::{Location, SimulatedCourier, unknown_courier};
use crate::app::{App, AppState};
use crate::conversation::{Claims, Expect, Next, StateToken};
use crate::fault::{Problem, types};
use crate::messaging::exchange::{self, AsyncReply};
use crate::participant::Participant::{Couriers, Deliveries};
use crate::store::MessageKind;

pub const SOLICIT: &str = "solicit";
/// The step a courier's answer performs at deliveries.
pub const SOLICITATION_REPLY: &str = "solicitation-reply";

/// "Available to take work?": what deliveries' token says, and the body mirrors.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Solicitation {
    /// The solicitation's id (`sol_...`).
    pub solicitation: String,
    pub pickup: Location,
    /// Where the job goes, when deliveries knows it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dropoff: Option<Location>,
    /// The deadline for answers, unix milliseconds.
    pub reply_by: i64,
}

/// A courier's answer: confirm (with an ETA) or decline (with a reason).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Availability {
    pub courier_id: String,
    pub available: bool,
    /// Minutes to the pickup, when available.
    pub eta_minutes: Option<i64>,
    /// Why the courier declines.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

#[utoipa::path(
    post, path = "/{id}/solicitations", tag = "couriers", operation_id = "solicit_courier",
    summary = "Ask a courier whether it can take work (Out-In: 202 now, the answer goes to Reply-To)",
    security(("state_header" = []), ("state_query" = [])),
    params(
        ("id" = String, Path, description = "The courier"),
        ("Prefer" = String, Header, description = "`respond-async`: the answer always comes later"),
        ("Reply-To" = String, Header, description = "Deliveries' continuation link for this courier's answer"),
    ),
    request_body(content = Solicitation, description = "Mirrors the token's state, which is what the courier reads", content_type = "application/json"),
    responses(
        (status = 202, description = "Accepted; the answer will be POSTed to Reply-To after the courier's delay"),
        (status = 400, description = "No Reply-To continuation", body = crate::openapi::ProblemDocument, content_type = "application/problem+json"),
        (status = 401, description = "Missing, invalid or expired token", body = crate::openapi::ProblemDocument, content_type = "application/problem+json"),
        (status = 403, description = "The token was not signed by deliveries, or does not allow this step", body = crate::openapi::ProblemDocument, content_type = "application/problem+json"),
        (status = 404, description = "No such courier", body = crate::openapi::ProblemDocument, content_type = "application/problem+json"),
        (status = 422, description = "The solicitation cannot be read, or Reply-To is not allowed", body = crate::openapi::ProblemDocument, content_type = "application/problem+json"),
    )
)]
/// `POST /couriers/{id}/solicitations` (`solicit`).
pub async fn solicit(
    State(app): State<AppState>,
    Path(id): Path<String>,
    token: StateToken,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    let claims = app
        .verify(&token, Expect::step(Couriers, SOLICIT).from(&[Deliveries]))
        .await?;
    let courier = SimulatedCourier::by_id(&id).ok_or_else(|| unknown_courier(&app, &id))?;
    let solicitation: Solicitation = serde_json::from_value(claims.st.clone())
        .ok()
        .filter(|s: &Solicitation| s.pickup.is_valid() && s.dropoff.is_none_or(Location::is_valid))
        .ok_or_else(|| {
            Problem::new(
                types::INVALID_BODY,
                "The solicitation names no valid pickup.",
            )
            .in_conversation(claims.cid)
        })?;
    let reply_to = exchange::async_reply(&headers, &app.callbacks)?.ok_or_else(|| {
        Problem::new(
            types::MISSING_REPLY_TO,
            "A solicitation is answered later: send `Prefer: respond-async` and a `Reply-To` continuation.",
        )
        .in_conversation(claims.cid)
    })?;
    let answer = courier.decide(solicitation.pickup, solicitation.dropoff);
    let delay = courier.reply_delay();
    // An answer still awaited at shutdown is never given: to deliveries,
    // a courier that did not answer in time.
    app.background
        .until_shutdown(answer_later(app.clone(), claims, answer, reply_to, delay));
    Ok(exchange::accepted_async())
}

/// Waits the courier's delay, then queues its signed answer in the outbox.
async fn answer_later(
    app: AppState,
    claims: Claims,
    answer: Availability,
    reply_to: AsyncReply,
    delay: Duration,
) {
    tokio::time::sleep(delay).await;
    if let Err(problem) = send_answer(&app, &claims, &answer, &reply_to).await {
        tracing::warn!(
            detail = problem.detail(),
            "a courier's answer could not be queued"
        );
    }
}

async fn send_answer(
    app: &App,
    claims: &Claims,
    answer: &Availability,
    reply_to: &AsyncReply,
) -> Result<(), Problem> {
    let body = serde_json::to_value(answer).map_err(Problem::internal)?;
    let minted = app.mint(
        Couriers,
        Next::after(claims, SOLICIT)
            .to(&[Deliveries])
            .allow(&[SOLICITATION_REPLY])
            .kind(MessageKind::Reply)
            .state(body.clone()),
    )?;
    let mut tx = app.store.begin().await.map_err(Problem::internal)?;
    exchange::enqueue_reply(&mut tx, Couriers, reply_to, &minted.token, 200, &body).await?;
    tx.commit().await.map_err(Problem::internal)?;
    app.relay.wake();
    Ok(())
}
