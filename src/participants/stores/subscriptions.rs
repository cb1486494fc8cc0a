//! Subscriptions: who hears store information's events (Out-Only,
//! publish-subscribe), the same contract as orders' subscriptions.
//!
//! A subscriber registers a callback URL and the event types it wants; the
//! answer carries the Standard Webhooks secret to verify deliveries with
//! (shown once) and a `delete` link. The callback URL must point at a known
//! participant or an allowed host (see `messaging::callbacks`). Search
//! subscribes here at start, with a callback on itself.

use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use http::StatusCode;
use serde::Deserialize;
use serde_json::json;

use super::EVENT_TYPES;
use crate::app::{App, AppState};
use crate::fault::{self, Problem, types};
use crate::hypermedia::{Hal, Input, Resource};
use crate::messaging::webhooks;
use crate::participant::Participant::Stores;
use crate::store::{Subscription, now_ms};

/// The input of `subscribe`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct Subscribe {
    /// Where to POST the events (a known participant or an allowed host).
    pub callback_url: String,
    /// The event types wanted; all of store information's when absent.
    #[serde(default)]
    pub event_types: Option<Vec<String>>,
}

fn render(app: &App, subscription: &Subscription, with_secret: bool) -> Resource {
    let href = app.href(Stores, &format!("/subscriptions/{}", subscription.id));
    let mut resource = Resource::new()
        .field("id", &subscription.id)
        .field("callback_url", &subscription.callback_url)
        .field("event_types", &subscription.event_types)
        .field("active", subscription.active)
        .field("created_at", subscription.created_at);
    if with_secret {
        resource = resource.field("secret", &subscription.secret);
    }
    resource
        .link("self", href.clone())
        .titled_link("delete", href, "DELETE this to unsubscribe")
        .link("events", app.href(Stores, "/events"))
}

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
    let types_wanted = input
        .event_types
        .unwrap_or_else(|| EVENT_TYPES.iter().map(|t| (*t).to_owned()).collect());
    if types_wanted.is_empty() {
        return Err(Problem::new(
            types::UNKNOWN_EVENT_TYPE,
            "Name at least one event type.",
        ));
    }
    if let Some(unknown) = types_wanted
        .iter()
        .find(|t| !EVENT_TYPES.contains(&t.as_str()))
    {
        return Err(Problem::new(
            types::UNKNOWN_EVENT_TYPE,
            format!(
                "Store information publishes no `{unknown}`; it publishes {}.",
                EVENT_TYPES.join(", ")
            ),
        ));
    }
    let url = app
        .callbacks
        .check(&input.callback_url)
        .map_err(|e| Problem::new(types::CALLBACK_NOT_ALLOWED, format!("{e}.")))?;
    let subscription = Subscription {
        id: format!("sub_{}", uuid::Uuid::now_v7().simple()),
        owner: Stores.as_str().to_owned(),
        callback_url: url.to_string(),
        event_types: json!(types_wanted),
        secret: webhooks::new_secret(),
        active: true,
        created_at: now_ms(),
    };
    app.store
        .subscription_create(&subscription)
        .await
        .map_err(Problem::internal)?;
    let location = app.href(Stores, &format!("/subscriptions/{}", subscription.id));
    Ok((
        [(http::header::LOCATION, location)],
        Hal(StatusCode::CREATED, render(&app, &subscription, true)),
    )
        .into_response())
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
    let subscription = app
        .store
        .subscription_get(&id)
        .await
        .map_err(|e| fault::from_store(e, "subscription"))?;
    Ok(Hal::ok(render(&app, &subscription, false)))
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
    app.store
        .subscription_delete(&id)
        .await
        .map_err(|e| fault::from_store(e, "subscription"))?;
    Ok(StatusCode::NO_CONTENT)
}
