//! The saga's HTTP face: administer and report on deliveries (starting one
//! is [`super::create`]; the couriers' reports and orders' events arrive in
//! [`super::incoming`]).

use axum::extract::{Path, Query, State};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{TIMER_CANCEL, TIMER_SOLICIT, timer, transition};
use crate::app::{App, AppState};
use crate::fault::{self, Problem, types};
use crate::hypermedia::{Hal, Resource};
use crate::participant::Participant::{Deliveries, Orders, Payments};
use crate::store::sagas::{Delivery, DeliveryState};

const PAGE: u32 = 20;

pub fn render(app: &App, d: &Delivery) -> Resource {
    let href = app.href(Deliveries, &format!("/deliveries/{}", d.id));
    let mut r = Resource::new()
        .field("id", &d.id)
        .field("state", d.state)
        .field("order_id", &d.order_id)
        .field("payment_id", &d.payment_id)
        .field(
            "pickup",
            json!({ "lat": d.pickup_lat, "lon": d.pickup_lon }),
        )
        .field(
            "dropoff",
            json!({ "lat": d.dropoff_lat, "lon": d.dropoff_lon }),
        )
        .field("size", &d.size)
        .field("weight_kg", d.weight_kg)
        .field("courier_id", &d.courier_id)
        .field("attempts", d.attempts)
        .field("max_attempts", super::max_attempts())
        .field("history", &d.history)
        .field("conversation", &d.conversation_id)
        .field("turn", d.head_seq)
        .field("created_at", d.created_at)
        .field("updated_at", d.updated_at)
        .link("self", href.clone())
        .link("collection", app.href(Deliveries, "/deliveries"))
        .link(
            "conversation",
            app.root_href(&format!("/conversations/{}", d.conversation_id)),
        );
    if let Some(order) = &d.order_id
        && app.base_of(Orders).is_some()
    {
        r = r.titled_link(
            "order",
            app.href(Orders, &format!("/orders/{order}")),
            "The order this delivery is for",
        );
    }
    if let Some(payment) = &d.payment_id
        && app.base_of(Payments).is_some()
    {
        r = r.titled_link(
            "payment",
            app.href(Payments, &format!("/payments/{payment}")),
            "The order's payment (refunded if the delivery fails)",
        );
    }
    if !d.state.is_final() && d.state != DeliveryState::Compensating {
        r = r.action(
            "cancel",
            format!("{href}/cancel"),
            "Cancel the delivery (compensates)",
            vec![],
        );
        if d.state != DeliveryState::Delivered {
            r = r.action(
                "reassign",
                format!("{href}/reassign"),
                "Solicit the couriers again",
                vec![],
            );
        }
    }
    r
}

/// The query of `list`. A client need not build it: the list links every
/// state's view (`by-state`), the unfiltered view (`all`) and the pages
/// (`first`, `next`, `prev`).
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Only deliveries in this state (soliciting, offered, assigned, picked-up, delivered, compensating, failed, cancelled); empty: every state.
    #[param(
        pattern = "^(soliciting|offered|assigned|picked-up|delivered|compensating|failed|cancelled)?$"
    )]
    state: Option<String>,
    /// The page, from 0 (to 1,000,000).
    #[param(minimum = 0, maximum = 1_000_000)]
    page: Option<u64>,
}

/// The last page a listing may be asked for: beyond it the offset would not
/// fit the database's integers.
const MAX_PAGE_NUMBER: u64 = 1_000_000;

#[utoipa::path(
    get, path = "/deliveries", tag = "deliveries", operation_id = "list_deliveries",
    summary = "The deliveries, newest first, by state and page (central administration)",
    params(ListQuery),
    responses(
        (status = 200, description = "A page of deliveries (each links its order and conversation), with links to every state's view (`by-state`, one per state by `name`), the unfiltered view (`all`), the pages (`first`, `next` when there is more, `prev`) and the `create` form", body = crate::openapi::HalDocument, content_type = "application/hal+json"),
        (status = 400, description = "The query cannot be read (`page` is not a number)", body = crate::openapi::ProblemDocument, content_type = "application/problem+json"),
        (status = 422, description = "Unknown state, or a page beyond 1,000,000", body = crate::openapi::ProblemDocument, content_type = "application/problem+json"),
    )
)]
/// `GET /deliveries/deliveries`.
pub async fn list(State(app): State<AppState>, Query(q): Query<ListQuery>) -> Result<Hal, Problem> {
    let base = app.href(Deliveries, "/deliveries");
    let state = match q.state.as_deref().filter(|s| !s.is_empty()) {
        Some(s) => Some(s.parse::<DeliveryState>().map_err(|_| {
            let known: Vec<&str> = DeliveryState::ALL.iter().map(|s| s.as_str()).collect();
            Problem::new(
                types::INVALID_BODY,
                format!("No state `{s}`; the states are {}.", known.join(", ")),
            )
            .link("deliveries", base.clone())
        })?),
        None => None,
    };
    let page = q.page.unwrap_or(0);
    if page > MAX_PAGE_NUMBER {
        return Err(Problem::new(
            types::INVALID_QUERY,
            format!("`page` is 0 to {MAX_PAGE_NUMBER}, not {page}."),
        )
        .link("deliveries", base));
    }
    let mut found = app
        .store
        .delivery_list(state, PAGE + 1, page * u64::from(PAGE))
        .await
        .map_err(Problem::internal)?;
    let more = found.len() > PAGE as usize;
    found.truncate(PAGE as usize);
    let at = |page: u64| page_href(&base, state, page);
    let mut r = Resource::new()
        .field("state", state)
        .field("page", page)
        .field("count", found.len())
        .link("self", at(page))
        .titled_link("first", at(0), "The first page")
        .link("summary", app.href(Deliveries, "/deliveries/summary"))
        .action(
            "create",
            base.clone(),
            "Start a delivery",
            super::create::properties(),
        );
    if more {
        r = r.titled_link("next", at(page + 1), "The next page (older deliveries)");
    }
    if page > 0 {
        r = r.titled_link("prev", at(page - 1), "The previous page (newer deliveries)");
    }
    if state.is_some() {
        r = r.titled_link(
            "all",
            page_href(&base, None, 0),
            "Every delivery, whatever its state",
        );
    }
    Ok(Hal::ok(r.named_links("by-state", by_state(&base)).embed(
        "deliveries",
        found.iter().map(|d| render(&app, d)).collect(),
    )))
}

/// A page of the list, in one state or all.
fn page_href(base: &str, state: Option<DeliveryState>, page: u64) -> String {
    match state {
        Some(state) => format!("{base}?state={state}&page={page}"),
        None => format!("{base}?page={page}"),
    }
}

/// One link per state, to the first page of the deliveries in it.
fn by_state(base: &str) -> impl Iterator<Item = (&'static str, String, String)> {
    DeliveryState::ALL.into_iter().map(move |state| {
        (
            state.as_str(),
            page_href(base, Some(state), 0),
            format!("Deliveries in state {state}"),
        )
    })
}

#[utoipa::path(
    get, path = "/deliveries/{id}", tag = "deliveries", operation_id = "get_delivery",
    summary = "A delivery: its state, history and next actions",
    params(("id" = String, Path, description = "The delivery")),
    responses(
        (status = 200, description = "The delivery", body = crate::openapi::HalDocument, content_type = "application/hal+json"),
        (status = 404, description = "No such delivery (yet: an order's delivery starts when deliveries hears order.placed)", body = crate::openapi::ProblemDocument, content_type = "application/problem+json"),
    )
)]
/// `GET /deliveries/deliveries/{id}`.
pub async fn get(State(app): State<AppState>, Path(id): Path<String>) -> Result<Hal, Problem> {
    let d = app.store.delivery_get(&id).await.map_err(|e| match e {
        crate::store::StoreError::NotFound => Problem::new(
            types::NOT_YET,
            "No delivery with this id (yet: the delivery of an order starts once deliveries hears its order.placed).",
        )
        .link("deliveries", app.href(Deliveries, "/deliveries")),
        other => fault::from_store(other, "delivery"),
    })?;
    Ok(Hal::ok(render(&app, &d)))
}

#[utoipa::path(
    get, path = "/deliveries/summary", tag = "deliveries", operation_id = "delivery_summary",
    summary = "Reporting: deliveries per state, and the mean seconds spent in each stage",
    responses(
        (status = 200, description = "The summary", body = crate::openapi::HalDocument, content_type = "application/hal+json"),
    )
)]
/// `GET /deliveries/deliveries/summary`.
pub async fn summary(State(app): State<AppState>) -> Result<Hal, Problem> {
    let rows = app
        .store
        .delivery_histories(10_000)
        .await
        .map_err(Problem::internal)?;
    let mut counts = serde_json::Map::new();
    let mut spent: std::collections::BTreeMap<String, (f64, u32)> = Default::default();
    for s in DeliveryState::ALL {
        counts.insert(s.as_str().to_owned(), json!(0));
    }
    for (state, history) in &rows {
        let n = counts[state.as_str()].as_i64().unwrap_or(0);
        counts.insert(state.as_str().to_owned(), json!(n + 1));
        let steps = history.as_array().cloned().unwrap_or_default();
        for pair in steps.windows(2) {
            let (Some(stage), Some(from), Some(to)) = (
                pair[0]["state"].as_str(),
                pair[0]["at"].as_i64(),
                pair[1]["at"].as_i64(),
            ) else {
                continue;
            };
            let e = spent.entry(stage.to_owned()).or_default();
            e.0 += (to - from) as f64 / 1000.0;
            e.1 += 1;
        }
    }
    let means: serde_json::Map<String, Value> = spent
        .into_iter()
        .map(|(k, (t, n))| (k, json!(t / f64::from(n))))
        .collect();
    Ok(Hal::ok(
        Resource::new()
            .field("total", rows.len())
            .field("counts", counts)
            .field("mean_seconds_per_stage", means)
            .link("self", app.href(Deliveries, "/deliveries/summary"))
            .link("deliveries", app.href(Deliveries, "/deliveries"))
            .named_links("by-state", by_state(&app.href(Deliveries, "/deliveries"))),
    ))
}

async fn admin(app: &App, id: &str, cancel: bool) -> Result<Hal, Problem> {
    let mut d = app
        .store
        .delivery_get(id)
        .await
        .map_err(|e| fault::from_store(e, "delivery"))?;
    if d.state.is_final() || d.state == DeliveryState::Compensating {
        return Err(Problem::new(
            types::DELIVERY_STATE_CONFLICT,
            format!("The delivery is {}: nothing to change.", d.state),
        )
        .link(
            "delivery",
            app.href(Deliveries, &format!("/deliveries/{id}")),
        ));
    }
    let moved = if cancel {
        transition(
            app,
            &mut d,
            DeliveryState::Compensating,
            "cancelled by an administrator",
            Some(timer(id, TIMER_CANCEL, 0)),
        )
        .await?
    } else {
        d.attempts = 0;
        d.courier_id = None;
        transition(
            app,
            &mut d,
            DeliveryState::Soliciting,
            "reassigned by an administrator",
            Some(timer(id, TIMER_SOLICIT, 0)),
        )
        .await?
    };
    if !moved {
        return Err(Problem::new(
            types::DELIVERY_STATE_CONFLICT,
            "The delivery moved meanwhile; look again.",
        ));
    }
    Ok(Hal::ok(render(app, &d)))
}

#[utoipa::path(
    post, path = "/deliveries/{id}/cancel", tag = "deliveries", operation_id = "cancel_delivery",
    summary = "Cancel a running delivery: the saga compensates (cancels the order, refunds the payment)",
    params(("id" = String, Path, description = "The delivery")),
    responses(
        (status = 200, description = "Compensating", body = crate::openapi::HalDocument, content_type = "application/hal+json"),
        (status = 404, description = "No such delivery", body = crate::openapi::ProblemDocument, content_type = "application/problem+json"),
        (status = 409, description = "The delivery is over or already compensating", body = crate::openapi::ProblemDocument, content_type = "application/problem+json"),
    )
)]
/// `POST /deliveries/deliveries/{id}/cancel`.
pub async fn cancel(State(app): State<AppState>, Path(id): Path<String>) -> Result<Hal, Problem> {
    admin(&app, &id, true).await
}

#[utoipa::path(
    post, path = "/deliveries/{id}/reassign", tag = "deliveries", operation_id = "reassign_delivery",
    summary = "Solicit the couriers again for a running delivery (the attempts start over)",
    params(("id" = String, Path, description = "The delivery")),
    responses(
        (status = 200, description = "Soliciting", body = crate::openapi::HalDocument, content_type = "application/hal+json"),
        (status = 404, description = "No such delivery", body = crate::openapi::ProblemDocument, content_type = "application/problem+json"),
        (status = 409, description = "The delivery is over or compensating", body = crate::openapi::ProblemDocument, content_type = "application/problem+json"),
    )
)]
/// `POST /deliveries/deliveries/{id}/reassign`.
pub async fn reassign(State(app): State<AppState>, Path(id): Path<String>) -> Result<Hal, Problem> {
    admin(&app, &id, false).await
}
