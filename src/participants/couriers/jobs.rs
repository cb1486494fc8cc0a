//! The step `deliver`: a courier assigned by the delivery saga does the job,
//! reporting pickup and drop-off to the saga (Process Manager).
//!
//! Deliveries sends the job with `Prefer: respond-async` and a `Reply-To`
//! continuation for the reports; the courier answers `202` at once, then,
//! after its (simulated) ride, queues "picked-up" and later "delivered",
//! each signed with couriers' own token, through the outbox. Each report is
//! a turn named after what it reports, the second after the first, so the
//! chain shows their order. A ride still under way when the server shuts
//! down ends there, like a courier who gives up: the saga's report timer
//! solicits again.

use std::sync::LazyLock;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::response::Response;
use http::HeaderMap;
use serde::{Deserialize, Serialize};

use super::{SimulatedCourier, unknown_courier};
use crate::app::AppState;
use crate::conversation::{Claims, Expect, Next, StateToken};
use crate::fault::{Problem, types};
use crate::messaging::exchange::{self, AsyncReply};
use crate::participant::Participant::{Couriers, Deliveries};
use crate::store::MessageKind;

pub const DELIVER: &str = "deliver";
/// The step a courier's pickup or drop-off report performs at deliveries.
pub const DELIVERY_REPORT: &str = "delivery-report";
/// The environment variable setting the simulated ride to the pickup, in ms.
pub const PICKUP_DELAY_ENV: &str = "CONVERSANT_COURIER_PICKUP_MS";
/// The environment variable setting the simulated ride to the drop-off, in ms.
pub const DROPOFF_DELAY_ENV: &str = "CONVERSANT_COURIER_DROPOFF_MS";

static PICKUP_DELAY: LazyLock<Duration> = LazyLock::new(|| env_ms(PICKUP_DELAY_ENV, 1000));
static DROPOFF_DELAY: LazyLock<Duration> = LazyLock::new(|| env_ms(DROPOFF_DELAY_ENV, 1000));

fn env_ms(name: &str, default: u64) -> Duration {
    let ms = std::env::var(name)
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(default);
    Duration::from_millis(ms)
}

/// The job, as deliveries' token says it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Job {
    pub delivery_id: String,
    pub courier_id: String,
}

/// A report to the saga: `picked-up` or `delivered`.
#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Report {
    pub delivery_id: String,
    pub courier_id: String,
    /// `picked-up` or `delivered`.
    pub status: String,
}

#[utoipa::path(
    post, path = "/{id}/jobs", tag = "couriers", operation_id = "deliver_job",
    summary = "Give an assigned courier the job; it reports pickup and drop-off to Reply-To later",
    security(("state_header" = []), ("state_query" = [])),
    params(
        ("id" = String, Path, description = "The courier"),
        ("Reply-To" = String, Header, description = "Deliveries' continuation for the reports"),
    ),
    responses(
        (status = 202, description = "On the way; the reports will be POSTed to Reply-To"),
        (status = 400, description = "No Reply-To continuation", body = crate::openapi::ProblemDocument, content_type = "application/problem+json"),
        (status = 401, description = "Missing, invalid or expired token", body = crate::openapi::ProblemDocument, content_type = "application/problem+json"),
        (status = 403, description = "The token was not signed by deliveries, or the job is for another courier", body = crate::openapi::ProblemDocument, content_type = "application/problem+json"),
        (status = 404, description = "No such courier", body = crate::openapi::ProblemDocument, content_type = "application/problem+json"),
    )
)]
/// `POST /couriers/{id}/jobs` (`deliver`).
pub async fn deliver(
    State(app): State<AppState>,
    Path(id): Path<String>,
    token: StateToken,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    let claims = app
        .verify(&token, Expect::step(Couriers, DELIVER).from(&[Deliveries]))
        .await?;
    let courier = SimulatedCourier::by_id(&id).ok_or_else(|| unknown_courier(&app, &id))?;
    let job: Job = serde_json::from_value(claims.st.clone())
        .ok()
        .filter(|j: &Job| j.courier_id == courier.id)
        .ok_or_else(|| {
            Problem::new(types::WRONG_AUDIENCE, "This job is not for this courier.")
                .in_conversation(claims.cid)
        })?;
    let reply_to = exchange::async_reply(&headers, &app.callbacks)?.ok_or_else(|| {
        Problem::new(
            types::MISSING_REPLY_TO,
            "A job is reported on later: send `Prefer: respond-async` and a `Reply-To` continuation.",
        )
        .in_conversation(claims.cid)
    })?;
    app.background
        .until_shutdown(ride(app.clone(), claims, job, reply_to));
    Ok(exchange::accepted_async())
}

/// Rides to the pickup, reports, rides to the drop-off, reports.
async fn ride(app: AppState, mut claims: Claims, job: Job, reply_to: AsyncReply) {
    for (delay, status) in [(*PICKUP_DELAY, "picked-up"), (*DROPOFF_DELAY, "delivered")] {
        tokio::time::sleep(delay).await;
        let report = Report {
            delivery_id: job.delivery_id.clone(),
            courier_id: job.courier_id.clone(),
            status: status.to_owned(),
        };
        match send_report(&app, &claims, &report, &reply_to).await {
            Ok(sent) => claims = sent,
            Err(problem) => {
                tracing::warn!(
                    detail = problem.detail(),
                    "a courier's report could not be queued"
                );
                return;
            }
        }
    }
}

async fn send_report(
    app: &AppState,
    claims: &Claims,
    report: &Report,
    reply_to: &AsyncReply,
) -> Result<Claims, Problem> {
    let body = serde_json::to_value(report).map_err(Problem::internal)?;
    let minted = app.mint(
        Couriers,
        Next::after(claims, &report.status)
            .to(&[Deliveries])
            .allow(&[DELIVERY_REPORT])
            .kind(MessageKind::Reply)
            .state(body.clone()),
    )?;
    let mut tx = app.store.begin().await.map_err(Problem::internal)?;
    exchange::enqueue_reply(&mut tx, Couriers, reply_to, &minted.token, 200, &body).await?;
    tx.commit().await.map_err(Problem::internal)?;
    app.relay.wake();
    Ok(minted.claims)
}
