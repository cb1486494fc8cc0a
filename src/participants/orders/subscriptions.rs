//! Subscriptions: who hears orders' events (Out-Only, publish-subscribe; the
//! behaviour is [`crate::messaging::publishing`]'s).

use axum::extract::{Path, State};
use axum::response::Response;
use http::StatusCode;

use super::events::TOPIC;
use crate::app::AppState;
use crate::fault::Problem;
use crate::hypermedia::{Hal, Input};
use crate::messaging::publishing::Subscribe;

#[utoipa::path(
    post, path = "/subscriptions", tag = "orders", operation_id = "subscribe",
    summary = "Subscribe a callback URL to order events (CloudEvents signed per Standard Webhooks)",
    request_body(content((Subscribe = "application/json"), (Subscribe = "application/x-www-form-urlencoded"))),
    responses(
        (status = 201, description = "The subscription, with its signing secret (shown once) and a delete link", body = crate::openapi::HalDocument, content_type = "application/hal+json"),
        (status = 400, description = "Malformed body", body = crate::openapi::ProblemDocument, content_type = "application/problem+json"),
        (status = 422, description = "Unknown event type, or a callback URL that is malformed or not allowed", body = crate::openapi::ProblemDocument, content_type = "application/problem+json"),
    )
)]
/// `POST /orders/subscriptions`.
pub async fn subscribe(
    State(app): State<AppState>,
    Input(input): Input<Subscribe>,
) -> Result<Response, Problem> {
    TOPIC.subscribe(&app, input).await
}

#[utoipa::path(
    get, path = "/subscriptions/{id}", tag = "orders", operation_id = "get_subscription",
    summary = "A subscription (without its secret)",
    params(("id" = String, Path, description = "The subscription id")),
    responses(
        (status = 200, description = "The subscription", body = crate::openapi::HalDocument, content_type = "application/hal+json"),
        (status = 404, description = "No such subscription", body = crate::openapi::ProblemDocument, content_type = "application/problem+json"),
    )
)]
/// `GET /orders/subscriptions/{id}`.
pub async fn get_subscription(
    State(app): State<AppState>,
    Path(id): Path<String>,
) -> Result<Hal, Problem> {
    TOPIC.subscription(&app, &id).await
}

#[utoipa::path(
    delete, path = "/subscriptions/{id}", tag = "orders", operation_id = "unsubscribe",
    summary = "Unsubscribe",
    params(("id" = String, Path, description = "The subscription id")),
    responses(
        (status = 204, description = "Gone; no more deliveries"),
        (status = 404, description = "No such subscription", body = crate::openapi::ProblemDocument, content_type = "application/problem+json"),
    )
)]
/// `DELETE /orders/subscriptions/{id}`.
pub async fn unsubscribe(
    State(app): State<AppState>,
    Path(id): Path<String>,
) -> Result<StatusCode, Problem> {
    TOPIC.unsubscribe(&app, &id).await
}
