//! The outbox pipeline, observed and repaired: per participant, how many
//! messages are pending, delivered and dead, the dead letters themselves,
//! and a `redeliver` step for each.
//!
//! Dead letters are where the *No Fault* rule leaves a failure: with the
//! provider, visible to its operator, never to the requestor.

use axum::extract::{Path, Query, State};
use http::StatusCode;
use serde::Deserialize;

use crate::app::{App, AppState};
use crate::fault::{self, Problem, types};
use crate::hypermedia::{Hal, Resource};
use crate::participant::Participant;

fn participant(app: &App, name: &str) -> Result<Participant, Problem> {
    name.parse::<Participant>()
        .ok()
        .filter(|p| app.hosts(*p))
        .ok_or_else(|| {
            Problem::new(
                types::NOT_FOUND,
                format!("No participant `{name}` is hosted here."),
            )
        })
}

#[utoipa::path(
    get, path = "/{participant}/outbox", tag = "pipeline", operation_id = "outbox",
    summary = "A participant's outbox: messages pending, delivered and dead",
    params(("participant" = String, Path, description = "A hosted participant")),
    responses(
        (status = 200, description = "The counts, with a link to the dead letters", body = crate::openapi::HalDocument, content_type = "application/hal+json"),
        (status = 404, description = "No such participant here", body = crate::openapi::ProblemDocument, content_type = "application/problem+json"),
    )
)]
/// `GET /{participant}/outbox`.
pub async fn outbox(State(app): State<AppState>, Path(name): Path<String>) -> Result<Hal, Problem> {
    let p = participant(&app, &name)?;
    let counts = app
        .store
        .outbox_counts(p.as_str())
        .await
        .map_err(Problem::internal)?;
    Ok(Hal::ok(
        Resource::new()
            .field("participant", p)
            .fields(counts)
            .link("self", app.href(p, "/outbox"))
            .link("dead-letters", app.href(p, "/dead-letters")),
    ))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct Page {
    /// At most this many (1 to 100, default 50).
    #[param(minimum = 1, maximum = 100)]
    limit: Option<u32>,
}

#[utoipa::path(
    get, path = "/{participant}/dead-letters", tag = "pipeline", operation_id = "dead_letters",
    summary = "Messages whose delivery was given up, each with a redeliver link",
    params(("participant" = String, Path, description = "A hosted participant"), Page),
    responses(
        (status = 200, description = "The dead letters, oldest first", body = crate::openapi::HalDocument, content_type = "application/hal+json"),
        (status = 400, description = "The query cannot be read (`limit` is not a number)", body = crate::openapi::ProblemDocument, content_type = "application/problem+json"),
        (status = 404, description = "No such participant here", body = crate::openapi::ProblemDocument, content_type = "application/problem+json"),
        (status = 422, description = "`limit` is not 1 to 100", body = crate::openapi::ProblemDocument, content_type = "application/problem+json"),
    )
)]
/// `GET /{participant}/dead-letters`.
pub async fn dead_letters(
    State(app): State<AppState>,
    Path(name): Path<String>,
    Query(page): Query<Page>,
) -> Result<Hal, Problem> {
    let p = participant(&app, &name)?;
    let limit = crate::hypermedia::page_limit(page.limit, 50)?;
    let letters = app
        .store
        .outbox_dead_letters(p.as_str(), limit)
        .await
        .map_err(Problem::internal)?;
    let items = letters
        .iter()
        .map(|m| {
            Resource::new()
                .field("id", &m.id)
                .field("kind", &m.kind)
                .field("destination", redact(&m.destination))
                .field("attempts", m.attempts)
                .field("last_error", &m.last_error)
                .field("created_at", m.created_at)
                .action(
                    "redeliver",
                    app.href(p, &format!("/dead-letters/{}/redeliver", m.id)),
                    "Deliver it again",
                    vec![],
                )
        })
        .collect();
    Ok(Hal::ok(
        Resource::new()
            .field("participant", p)
            .field("count", letters.len())
            .link("self", app.href(p, "/dead-letters"))
            .link("outbox", app.href(p, "/outbox"))
            .embed("dead-letters", items),
    ))
}

/// Destinations may be continuation links: their tokens stay out of listings.
fn redact(url: &str) -> String {
    match url.split_once('?') {
        Some((path, query)) => format!(
            "{path}?{}",
            crate::conversation::continuation::redact_query(query)
        ),
        None => url.to_owned(),
    }
}

#[utoipa::path(
    post, path = "/{participant}/dead-letters/{id}/redeliver", tag = "pipeline", operation_id = "redeliver",
    summary = "Give a dead letter a fresh set of delivery attempts",
    params(("participant" = String, Path, description = "A hosted participant"), ("id" = String, Path, description = "The message id")),
    responses(
        (status = 202, description = "Queued again; the relay picks it up now"),
        (status = 404, description = "No such dead letter", body = crate::openapi::ProblemDocument, content_type = "application/problem+json"),
    )
)]
/// `POST /{participant}/dead-letters/{id}/redeliver`.
pub async fn redeliver(
    State(app): State<AppState>,
    Path((name, id)): Path<(String, String)>,
) -> Result<StatusCode, Problem> {
    participant(&app, &name)?;
    app.store
        .outbox_redeliver(&id)
        .await
        .map_err(|e| fault::from_store(e, "dead letter"))?;
    app.relay.wake();
    Ok(StatusCode::ACCEPTED)
}
