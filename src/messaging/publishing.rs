//! Publish-subscribe: how a participant announces its events (Out-Only).
//!
//! A publisher ([`Topic`]) appends each event to its pull feed and queues one
//! signed delivery per subscriber, in the transaction of the change the event
//! announces (the Transactional Outbox), so an event is never announced for a
//! change that rolled back, nor lost for one that committed. Deliveries are
//! CloudEvents signed per Standard Webhooks ([`webhooks`]); clients that cannot
//! receive webhooks read the same events from the feed.
//!
//! A subscriber registers a callback URL and the event types it wants; the
//! answer carries the secret to verify deliveries with (shown once) and a
//! `delete` link. The callback URL must point at a known participant or an
//! allowed host (see [`super::callbacks`]).
//!
//! Orders (`order.placed`) and store information (`store.updated`) publish
//! this way; each keeps its own routes (and OpenAPI operations) and calls in
//! here for the behaviour, which is therefore the same for both.

use axum::response::{IntoResponse, Response};
use http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};

use super::outbox::KIND_WEBHOOK;
use super::webhooks;
use crate::app::App;
use crate::conversation::continuation::HEADER;
use crate::fault::{self, Problem, types};
use crate::hypermedia::{Hal, Resource};
use crate::participant::Participant;
use crate::store::{NewEvent, NewOutboxMessage, StoreError, Subscription, Tx, now_ms};

/// The input of `subscribe`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct Subscribe {
    /// Where to POST the events (a known participant or an allowed host).
    pub callback_url: String,
    /// The event types wanted; all of the publisher's when absent.
    #[serde(default)]
    pub event_types: Option<Vec<String>>,
}

/// The pull feed's query.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct FeedQuery {
    /// Only events after this cursor (the `seq` of the last event read).
    after: Option<i64>,
    /// At most this many events (1 to 100, default 20).
    #[param(minimum = 1, maximum = 100)]
    limit: Option<u32>,
}

/// What a participant publishes.
pub struct Topic {
    pub publisher: Participant,
    /// The publisher as a sentence names it ("Orders", "Store information").
    pub name: &'static str,
    pub event_types: &'static [&'static str],
    /// The field of an event's `data` that is its CloudEvents `subject`.
    pub subject: &'static str,
}

/// One event to publish.
pub struct Event<'a> {
    /// The CloudEvents id, also the `webhook-id` of every delivery.
    pub id: String,
    pub event_type: &'a str,
    /// The conversation the event belongs to.
    pub conversation: String,
    pub data: Value,
    /// The event's own signed token, when it is a turn of its conversation:
    /// every delivery carries it in its `Conversation-State` header (the pull
    /// feed shows the event without it).
    pub token: Option<String>,
}

impl Topic {
    /// Appends the event to the feed and queues one signed delivery per
    /// subscriber, in the caller's transaction.
    pub async fn publish(
        &self,
        app: &App,
        tx: &mut Tx,
        event: Event<'_>,
        subscribers: &[Subscription],
    ) -> Result<(), Problem> {
        let time = now_ms();
        tx.event_append(&NewEvent {
            id: event.id.clone(),
            participant: self.publisher.as_str().to_owned(),
            event_type: event.event_type.to_owned(),
            conversation_id: Some(event.conversation),
            data: event.data.clone(),
            time,
        })
        .await
        .map_err(Problem::internal)?;
        let body = self.cloud_event(app, &event.id, event.event_type, time, &event.data);
        let headers = |subscription: &str| {
            let mut headers = json!({
                "subscription": subscription,
                "webhook-id": event.id,
                "content-type": "application/cloudevents+json",
            });
            if let Some(token) = &event.token {
                headers[HEADER] = json!(token);
            }
            headers
        };
        let deliveries: Vec<NewOutboxMessage> = subscribers
            .iter()
            .map(|subscription| NewOutboxMessage {
                id: uuid::Uuid::now_v7().to_string(),
                participant: self.publisher.as_str().to_owned(),
                destination: subscription.callback_url.clone(),
                kind: KIND_WEBHOOK.to_owned(),
                headers: headers(&subscription.id),
                body: body.clone(),
            })
            .collect();
        tx.outbox_enqueue_all(&deliveries)
            .await
            .map_err(Problem::internal)
    }

    fn cloud_event(&self, app: &App, id: &str, event_type: &str, time: i64, data: &Value) -> Value {
        webhooks::cloud_event(
            id,
            &app.href(self.publisher, ""),
            event_type,
            &rfc3339(time),
            data[self.subject].as_str().unwrap_or_default(),
            data,
        )
    }

    /// `POST /{publisher}/subscriptions`.
    pub async fn subscribe(&self, app: &App, input: Subscribe) -> Result<Response, Problem> {
        let wanted = input
            .event_types
            .unwrap_or_else(|| self.event_types.iter().map(|t| (*t).to_owned()).collect());
        if wanted.is_empty() {
            return Err(Problem::new(
                types::UNKNOWN_EVENT_TYPE,
                "Name at least one event type.",
            ));
        }
        if let Some(unknown) = wanted
            .iter()
            .find(|t| !self.event_types.contains(&t.as_str()))
        {
            return Err(Problem::new(
                types::UNKNOWN_EVENT_TYPE,
                format!(
                    "{} publishes no `{unknown}`; it publishes {}.",
                    self.name,
                    self.event_types.join(", ")
                ),
            ));
        }
        let url = app
            .callbacks
            .check(&input.callback_url)
            .map_err(|e| Problem::new(types::CALLBACK_NOT_ALLOWED, format!("{e}.")))?;
        let subscription = Subscription {
            id: format!("sub_{}", uuid::Uuid::now_v7().simple()),
            owner: self.publisher.as_str().to_owned(),
            callback_url: url.to_string(),
            event_types: json!(wanted),
            secret: webhooks::new_secret(),
            active: true,
            created_at: now_ms(),
        };
        app.store
            .subscription_create(&subscription)
            .await
            .map_err(Problem::internal)?;
        let location = self.subscription_href(app, &subscription.id);
        Ok((
            [(http::header::LOCATION, location)],
            Hal(StatusCode::CREATED, self.render(app, &subscription, true)),
        )
            .into_response())
    }

    /// `GET /{publisher}/subscriptions/{id}`: without its secret.
    pub async fn subscription(&self, app: &App, id: &str) -> Result<Hal, Problem> {
        let subscription = self.owned(app, id).await?;
        Ok(Hal::ok(self.render(app, &subscription, false)))
    }

    /// `DELETE /{publisher}/subscriptions/{id}`.
    pub async fn unsubscribe(&self, app: &App, id: &str) -> Result<StatusCode, Problem> {
        self.owned(app, id).await?;
        app.store
            .subscription_delete(id)
            .await
            .map_err(|e| fault::from_store(e, "subscription"))?;
        Ok(StatusCode::NO_CONTENT)
    }

    /// A subscription to this publisher: another publisher's is not found here.
    async fn owned(&self, app: &App, id: &str) -> Result<Subscription, Problem> {
        match app.store.subscription_get(id).await {
            Ok(s) if s.owner == self.publisher.as_str() => Ok(s),
            Ok(_) => Err(fault::from_store(StoreError::NotFound, "subscription")),
            Err(e) => Err(fault::from_store(e, "subscription")),
        }
    }

    /// `GET /{publisher}/events?after=&limit=`: a page of the feed, oldest
    /// first, with a `next` link to poll.
    pub async fn feed(&self, app: &App, query: FeedQuery) -> Result<Hal, Problem> {
        let limit = crate::hypermedia::page_limit(query.limit, 20)?;
        let events = app
            .store
            .events_page(self.publisher.as_str(), query.after, limit)
            .await
            .map_err(Problem::internal)?;
        let page = |after: Option<i64>| match after {
            Some(seq) => format!("/events?after={seq}&limit={limit}"),
            None => format!("/events?limit={limit}"),
        };
        let next = page(events.last().map(|e| e.seq).or(query.after));
        let items = events
            .iter()
            .map(|e| {
                Resource::new().field("seq", e.seq).fields(self.cloud_event(
                    app,
                    &e.id,
                    &e.event_type,
                    e.time,
                    &e.data,
                ))
            })
            .collect();
        let href = |path: &str| app.href(self.publisher, path);
        Ok(Hal::ok(
            Resource::new()
                .field("count", events.len())
                .link("self", href(&page(query.after)))
                .titled_link("next", href(&next), "Events after this page (poll it)")
                .link("subscribe", href("/subscriptions"))
                .embed("events", items),
        ))
    }

    fn subscription_href(&self, app: &App, id: &str) -> String {
        app.href(self.publisher, &format!("/subscriptions/{id}"))
    }

    fn render(&self, app: &App, subscription: &Subscription, with_secret: bool) -> Resource {
        let href = self.subscription_href(app, &subscription.id);
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
            .link("events", app.href(self.publisher, "/events"))
    }
}

/// Unix milliseconds as the RFC 3339 time of a CloudEvent.
pub fn rfc3339(ms: i64) -> String {
    let time = std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms.max(0) as u64);
    humantime::format_rfc3339_millis(time).to_string()
}

/// The subscription routes of a publisher: `POST /subscriptions`, and `GET`
/// and `DELETE /subscriptions/{id}`, documented under the publisher's tag
/// with operation ids of its own (one set of handlers per publisher, since
/// OpenAPI needs them apart), all calling the publisher's [`Topic`].
macro_rules! subscription_routes {
    (
        topic: $topic:path,
        tag: $tag:tt,
        summary: $summary:tt,
        operations: [$subscribe:ident, $get:ident, $unsubscribe:ident] $(,)?
    ) => {
        #[utoipa::path(
            post, path = "/subscriptions", tag = $tag,
            summary = $summary,
            request_body(content(
                ($crate::messaging::publishing::Subscribe = "application/json"),
                ($crate::messaging::publishing::Subscribe = "application/x-www-form-urlencoded")
            )),
            responses(
                (status = 201, description = "The subscription, with its signing secret (shown once) and a delete link", body = crate::openapi::HalDocument, content_type = "application/hal+json"),
                (status = 400, description = "Malformed body", body = crate::openapi::ProblemDocument, content_type = "application/problem+json"),
                (status = 422, description = "Unknown event type, or a callback URL that is malformed or not allowed", body = crate::openapi::ProblemDocument, content_type = "application/problem+json"),
            )
        )]
        pub async fn $subscribe(
            axum::extract::State(app): axum::extract::State<$crate::app::AppState>,
            $crate::hypermedia::Input(input): $crate::hypermedia::Input<
                $crate::messaging::publishing::Subscribe,
            >,
        ) -> Result<axum::response::Response, $crate::fault::Problem> {
            $topic.subscribe(&app, input).await
        }

        #[utoipa::path(
            get, path = "/subscriptions/{id}", tag = $tag,
            summary = "A subscription (without its secret)",
            params(("id" = String, Path, description = "The subscription id")),
            responses(
                (status = 200, description = "The subscription", body = crate::openapi::HalDocument, content_type = "application/hal+json"),
                (status = 404, description = "No such subscription", body = crate::openapi::ProblemDocument, content_type = "application/problem+json"),
            )
        )]
        pub async fn $get(
            axum::extract::State(app): axum::extract::State<$crate::app::AppState>,
            axum::extract::Path(id): axum::extract::Path<String>,
        ) -> Result<$crate::hypermedia::Hal, $crate::fault::Problem> {
            $topic.subscription(&app, &id).await
        }

        #[utoipa::path(
            delete, path = "/subscriptions/{id}", tag = $tag,
            summary = "Unsubscribe",
            params(("id" = String, Path, description = "The subscription id")),
            responses(
                (status = 204, description = "Gone; no more deliveries"),
                (status = 404, description = "No such subscription", body = crate::openapi::ProblemDocument, content_type = "application/problem+json"),
            )
        )]
        pub async fn $unsubscribe(
            axum::extract::State(app): axum::extract::State<$crate::app::AppState>,
            axum::extract::Path(id): axum::extract::Path<String>,
        ) -> Result<http::StatusCode, $crate::fault::Problem> {
            $topic.unsubscribe(&app, &id).await
        }

        /// The subscription routes, to merge into the publisher's router.
        pub fn router() -> utoipa_axum::router::OpenApiRouter<$crate::app::AppState> {
            utoipa_axum::router::OpenApiRouter::new()
                .routes(utoipa_axum::routes!($subscribe))
                .routes(utoipa_axum::routes!($get, $unsubscribe))
        }
    };
}
pub(crate) use subscription_routes;
