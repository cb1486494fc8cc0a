//! The step `offer`: the courier deliveries picked is offered the job and
//! acknowledges it (In-Out, command-acknowledgement).
//!
//! The acknowledgement is a pure function of the offer (its assignment id
//! comes from the solicitation), so an offer replayed from the same link is
//! acknowledged the same way and nothing happens twice.

use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode};
use serde::{Deserialize, Serialize};

use super::{Location, SimulatedCourier, unknown_courier};
use crate::app::AppState;
use crate::conversation::continuation::HEADER;
use crate::conversation::{Expect, Next, StateToken};
use crate::fault::{Problem, types};
use crate::participant::Participant::{Couriers, Deliveries};
use crate::store::MessageKind;

pub const OFFER: &str = "offer";
/// The step a courier's acknowledgement performs at deliveries.
pub const OFFER_REPLY: &str = "offer-reply";

/// "Take the job": what deliveries' token says.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct JobOffer {
    pub solicitation: String,
    pub courier_id: String,
    pub pickup: Location,
    /// The ETA the courier gave when it confirmed.
    pub eta_minutes: i64,
}

/// The acknowledgement: the courier took the job.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Acceptance {
    pub assignment_id: String,
    pub courier_id: String,
    pub courier_name: String,
    pub solicitation: String,
    pub pickup: Location,
    pub eta_minutes: i64,
    pub status: String,
}

#[utoipa::path(
    post, path = "/{id}/offers", tag = "couriers", operation_id = "offer_courier",
    summary = "Offer a courier the job (command-acknowledgement; deliveries is the requestor)",
    security(("state_header" = []), ("state_query" = [])),
    params(("id" = String, Path, description = "The courier")),
    responses(
        (status = 201, description = "Accepted; the acknowledgement, couriers' token in the Conversation-State header", body = Object, content_type = "application/json"),
        (status = 401, description = "Missing, invalid or expired token", body = crate::openapi::ProblemDocument, content_type = "application/problem+json"),
        (status = 403, description = "The token was not signed by deliveries, or the offer is for another courier", body = crate::openapi::ProblemDocument, content_type = "application/problem+json"),
        (status = 404, description = "No such courier", body = crate::openapi::ProblemDocument, content_type = "application/problem+json"),
    )
)]
/// `POST /couriers/{id}/offers` (`offer`).
pub async fn offer(
    State(app): State<AppState>,
    Path(id): Path<String>,
    token: StateToken,
) -> Result<Response, Problem> {
    let claims = app
        .verify(&token, Expect::step(Couriers, OFFER).from(&[Deliveries]))
        .await?;
    let courier = SimulatedCourier::by_id(&id).ok_or_else(|| unknown_courier(&app, &id))?;
    let offer: JobOffer = serde_json::from_value(claims.st.clone()).map_err(|e| {
        Problem::new(
            types::INVALID_BODY,
            format!("The offer cannot be read: {e}."),
        )
        .in_conversation(claims.cid)
    })?;
    if offer.courier_id != courier.id {
        return Err(Problem::new(
            types::WRONG_AUDIENCE,
            format!("This offer is for courier `{}`.", offer.courier_id),
        )
        .in_conversation(claims.cid));
    }
    let ack = Acceptance {
        assignment_id: format!(
            "asg_{}",
            offer
                .solicitation
                .strip_prefix("sol_")
                .unwrap_or(&offer.solicitation)
        ),
        courier_id: courier.id.to_owned(),
        courier_name: courier.name.to_owned(),
        solicitation: offer.solicitation,
        pickup: offer.pickup,
        eta_minutes: offer.eta_minutes,
        status: "accepted".to_owned(),
    };
    let body = serde_json::to_value(&ack).map_err(Problem::internal)?;
    let minted = app.mint(
        Couriers,
        Next::after(&claims, OFFER)
            .to(&[Deliveries])
            .allow(&[OFFER_REPLY])
            .kind(MessageKind::Reply)
            .state(body.clone()),
    )?;
    let mut response = (
        StatusCode::CREATED,
        [(http::header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response();
    if let Ok(token) = HeaderValue::from_str(&minted.token) {
        response.headers_mut().insert(HEADER, token);
    }
    Ok(response)
}
