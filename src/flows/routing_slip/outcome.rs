//! The end of a slip: the requestor is told it completed or faulted.
//!
//! Whoever holds the slip last (the last step, the failed step when nothing
//! is owed, or the last compensation) signs the final slip for the
//! requestor and, in the transaction of its own work, appends the outcome to
//! the pull feed (`GET /routing-slips/events`, the store's events under
//! `routing-slips`) and queues it to the requestor's `reply_to`, if it gave
//! one, through its outbox. The outcome carries the final slip as the
//! `inspect` link's token, so the requestor can check every receipt itself.

use axum::extract::{Query, State};
use serde::Deserialize;
use serde_json::{Value, json};

use super::slip::{INSPECT, SLIP_TTL, Slip};
use super::{FEED, inspect_href};
use crate::app::{App, AppState, Note};
use crate::conversation::{Claims, Next};
use crate::fault::Problem;
use crate::hypermedia::{Hal, Resource};
use crate::messaging::exchange::{self, AsyncReply};
use crate::participant::Participant::{self, Basket};
use crate::store::{MessageKind, NewEvent, Tx, now_ms};

/// Reports the outcome of `slip`, held last by `at`.
pub async fn report(
    app: &App,
    tx: &mut Tx,
    at: Participant,
    after: &Claims,
    slip: &Slip,
    produced: &str,
) -> Result<(), Problem> {
    let status = slip.status().as_str();
    let mut next = Next::after(after, produced)
        .to(&[Basket])
        .allow(&[INSPECT])
        .state(json!({ "outcome": status }))
        .kind(MessageKind::Reply)
        .ttl(SLIP_TTL);
    next.slip = Some(slip.to_value()?);
    let minted = app.mint(at, next)?;
    let outcome = document(app, &minted.claims, slip, &minted.token);
    let event_type = format!("routing-slip.{status}");
    tx.event_append(&NewEvent {
        id: format!("evt_{}", uuid::Uuid::now_v7().simple()),
        participant: FEED.to_owned(),
        event_type: event_type.clone(),
        conversation_id: Some(after.cid.to_string()),
        data: outcome.clone(),
        time: now_ms(),
    })
    .await
    .map_err(Problem::internal)?;
    if let Some(reply_to) = &slip.terms.reply_to {
        exchange::enqueue_reply(
            tx,
            at,
            &AsyncReply(reply_to.clone()),
            &minted.token,
            200,
            &outcome,
        )
        .await?;
    }
    app.journal_note(
        at,
        MessageKind::Event,
        Note {
            conversation: after.cid,
            causation: Some(minted.claims.jti),
            from: at.as_str(),
            to: "requestor",
            pattern: "routing-slip",
            step: &event_type,
            status: "published",
        },
    );
    Ok(())
}

/// The outcome as the requestor reads it: what was done, what failed, what
/// was undone, and the final slip to inspect.
fn document(app: &App, claims: &Claims, slip: &Slip, token: &str) -> Value {
    let names = |receipts: &[super::slip::Receipt]| {
        receipts.iter().map(|r| r.step.clone()).collect::<Vec<_>>()
    };
    let mut outcome = json!({
        "slip": claims.cid,
        "outcome": slip.status(),
        "completed": names(&slip.done),
        "held_by": claims.iss,
    });
    if let Some(fault) = &slip.fault {
        outcome["failed"] = json!({ "step": fault.step, "by": fault.by, "problem": fault.result });
        outcome["compensated"] = json!(slip.undone);
    }
    outcome["_links"] = json!({
        "inspect": { "href": inspect_href(app, token), "title": "The final slip, every receipt verified" },
        "feed": { "href": app.root_href(FEED_PATH) },
    });
    outcome
}

/// Where the outcomes are.
pub const FEED_PATH: &str = "/routing-slips/events";

/// The pull feed's query.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct FeedQuery {
    /// Only outcomes after this cursor (the `seq` of the last one read).
    after: Option<i64>,
    /// At most this many (1 to 100, default 20).
    #[param(minimum = 1, maximum = 100)]
    limit: Option<u32>,
}

#[utoipa::path(
    get, path = "/routing-slips/events", tag = "routing-slips", operation_id = "routing_slip_outcomes",
    summary = "The pull feed of routing-slip outcomes (completed or faulted), beside the reply_to",
    params(FeedQuery),
    responses(
        (status = 200, description = "A page of outcomes, oldest first, with a `next` link", body = crate::openapi::HalDocument, content_type = "application/hal+json"),
        (status = 400, description = "The query cannot be read (`after` or `limit` is not a number)", body = crate::openapi::ProblemDocument, content_type = "application/problem+json"),
        (status = 422, description = "`limit` is not 1 to 100", body = crate::openapi::ProblemDocument, content_type = "application/problem+json"),
    )
)]
/// `GET /routing-slips/events?after=&limit=`.
pub async fn feed(
    State(app): State<AppState>,
    Query(query): Query<FeedQuery>,
) -> Result<Hal, Problem> {
    let limit = crate::hypermedia::page_limit(query.limit, 20)?;
    let events = app
        .store
        .events_page(FEED, query.after, limit)
        .await
        .map_err(Problem::internal)?;
    let page = |after: Option<i64>| match after {
        Some(seq) => app.root_href(&format!("{FEED_PATH}?after={seq}&limit={limit}")),
        None => app.root_href(&format!("{FEED_PATH}?limit={limit}")),
    };
    let items = events
        .iter()
        .map(|e| {
            Resource::new()
                .field("seq", e.seq)
                .field("id", &e.id)
                .field("type", &e.event_type)
                .field("time", e.time)
                .field("data", &e.data)
        })
        .collect();
    Ok(Hal::ok(
        Resource::new()
            .field("count", events.len())
            .link("self", page(query.after))
            .titled_link(
                "next",
                page(events.last().map(|e| e.seq).or(query.after)),
                "Outcomes after this page (poll it)",
            )
            .link("start", app.root_href("/"))
            .embed("events", items),
    ))
}
