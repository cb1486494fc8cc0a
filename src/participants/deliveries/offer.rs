//! The step `offer`: deliveries offers the job to the courier a solicitation
//! picked (In-Out, command-acknowledgement; deliveries is the requestor).
//!
//! The answer passes the courier's signed acknowledgement on in its
//! `Conversation-State` header: the latest turn of the conversation, which
//! whoever offered (the delivery saga) continues from.

use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use http::HeaderValue;
use serde_json::Value;

use super::OFFER_JOB;
use crate::app::{AppState, Note};
use crate::conversation::continuation::HEADER;
use crate::conversation::{Expect, Next, StateToken};
use crate::fault::{self, Problem, types};
use crate::hypermedia::{Hal, Resource};
use crate::participant::Participant::{Couriers, Deliveries};
use crate::participants::couriers::{Acceptance, JobOffer, OFFER, OFFER_REPLY};
use crate::store::MessageKind;

#[utoipa::path(
    post, path = "/solicitations/{id}/offer", tag = "deliveries", operation_id = "offer_job",
    summary = "Offer the job to the courier the solicitation picked; it acknowledges",
    security(("state_query" = []), ("state_header" = [])),
    params(("id" = String, Path, description = "The solicitation")),
    responses(
        (status = 200, description = "Assigned: the courier's acknowledgement (its token in Conversation-State)", body = crate::openapi::HalDocument, content_type = "application/hal+json"),
        (status = 401, description = "Missing, invalid or expired token", body = crate::openapi::ProblemDocument, content_type = "application/problem+json"),
        (status = 403, description = "The token does not allow this step here", body = crate::openapi::ProblemDocument, content_type = "application/problem+json"),
        (status = 502, description = "The courier did not take the job", body = crate::openapi::ProblemDocument, content_type = "application/problem+json"),
        (status = 504, description = "The courier did not answer in time", body = crate::openapi::ProblemDocument, content_type = "application/problem+json"),
    )
)]
/// `POST /deliveries/solicitations/{id}/offer` (`offer`).
pub async fn offer(
    State(app): State<AppState>,
    Path(id): Path<String>,
    token: StateToken,
) -> Result<Response, Problem> {
    let claims = app
        .verify(
            &token,
            Expect::step(Deliveries, OFFER_JOB).from(&[Deliveries]),
        )
        .await?;
    let job: JobOffer = serde_json::from_value(claims.st.clone()).map_err(Problem::internal)?;
    if job.solicitation != id {
        return Err(Problem::new(
            types::STEP_NOT_ALLOWED,
            "This offer belongs to another solicitation.",
        )
        .in_conversation(claims.cid));
    }
    let request = app.mint(
        Deliveries,
        Next::after(&claims, OFFER_JOB)
            .to(&[Couriers])
            .allow(&[OFFER])
            .state(claims.st.clone()),
    )?;
    let again = |problem: Problem| {
        problem
            .in_conversation(claims.cid)
            .link("solicit", app.href(Deliveries, "/solicitations"))
    };
    let reply = app
        .sender
        .send(
            Couriers,
            &format!("/{}/offers", job.courier_id),
            &request.token,
            None,
        )
        .await
        .map_err(|e| again(Problem::from(e)))?;
    let Some(ack_token) = reply.state.filter(|_| reply.status.is_success()) else {
        app.journal_note(
            Deliveries,
            MessageKind::Fault,
            Note {
                conversation: claims.cid,
                causation: Some(request.claims.jti),
                from: Couriers.as_str(),
                to: Deliveries.as_str(),
                pattern: "in-out",
                step: OFFER,
                status: reply.body["type"]
                    .as_str()
                    .and_then(|t| t.strip_prefix("/problems/"))
                    .unwrap_or("fault"),
            },
        );
        return Err(again(fault::from_peer(&reply.body, Couriers)));
    };
    let ack_claims = app
        .verify(
            &StateToken(ack_token.clone()),
            Expect::step(Deliveries, OFFER_REPLY).from(&[Couriers]),
        )
        .await?;
    let ack: Acceptance =
        serde_json::from_value(ack_claims.st.clone()).map_err(Problem::internal)?;
    let mut response = Hal::ok(
        Resource::new()
            .fields(&ack)
            .field("status", "assigned")
            .field("conversation", claims.cid)
            .field("state", Value::clone(&ack_claims.st))
            .titled_link(
                "conversation",
                app.root_href(&format!("/conversations/{}", claims.cid)),
                "The conversation, rebuilt from the journals",
            )
            .link("couriers", app.href(Deliveries, "/couriers"))
            .link("start", app.root_href("/")),
    )
    .into_response();
    if let Ok(value) = HeaderValue::from_str(&ack_token) {
        response.headers_mut().insert(HEADER, value);
    }
    Ok(response)
}
