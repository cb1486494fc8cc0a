//! Subscriptions: who hears store information's events (Out-Only,
//! publish-subscribe), the same contract as orders' subscriptions (the
//! behaviour is [`crate::messaging::publishing`]'s). Search subscribes here at
//! start, with a callback on itself.

use axum::extract::{Path, State};
use axum::response::Response;
use http::StatusCode;

use super::events::TOPIC;
use crate::app::AppState;
use crate::fault::Problem;
use crate::hypermedia::{Hal, Input};
use crate::messaging::publishing::Subscribe;

#[utoipa::path(
    post, path = "/subscriptions", tag = "stores", operation_id = "stores_subscribe",
    summary = "Subscribe a callback URL to store events (CloudEvents signed per Standard Webhooks)",
    request_body(content((Subscribe = "application/json"), (Subscribe = "application/x-www-form-urlencoded"))),
    responses(
        (status = 201, description = "The subscription, with its signing secret (shown once) and a delete link", body = crate::openapi::HalDocument, content_type = "application/hal+json"),
        (status = 400, description = "Malformed body", body = crate::openapi::ProblemDocument, content_type = "application/problem+json"),
        (status = 422, description = "Unknown event type, or a callback URL that is malformed or not allowed", body = crate::openapi::ProblemDocument, content_type = "application/problem+json"),
    )
)]
/// `POST /stores/subscriptions`.
pub async fn subscribe(
    State(app): State<AppState>,
    Input(input): Input<Subscribe>,
) -> Result<Response, Problem> {
    TOPIC.subscribe(&app, input).await
}

#[utoipa::path(
    get, path = "/subscriptions/{id}", tag = "stores", operation_id = "stores_get_subscription",
    summary = "A subscription (without its secret)",
    params(("id" = String, Path, description = "The subscription id")),
    responses(
        (status = 200, description = "The subscription", body = crate::openapi::HalDocument, content_type = "application/hal+json"),
        (status = 404, description = "No such subscription", body = crate::openapi::ProblemDocument, content_type = "application/problem+json"),
    )
)]
/// `GET /stores/subscriptions/{id}`.
pub async fn get_subscription(
    State(app): State<AppState>,
    Path(id): Path<String>,
) -> Result<Hal, Problem> {
    TOPIC.subscription(&app, &id).await
}

#[utoipa::path(
    delete, path = "/subscriptions/{id}", tag = "stores", operation_id = "stores_unsubscribe",
    summary = "Unsubscribe",
    params(("id" = String, Path, description = "The subscription id")),
    responses(
        (status = 204, description = "Gone; no more deliveries"),
        (status = 404, description = "No such subscription", body = crate::openapi::ProblemDocument, content_type = "application/problem+json"),
    )
)]
/// `DELETE /stores/subscriptions/{id}`.
pub async fn unsubscribe(
    State(app): State<AppState>,
    Path(id): Path<String>,
) -> Result<StatusCode, Problem> {
    TOPIC.unsubscribe(&app, &id).await
}
