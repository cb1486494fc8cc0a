//! The entry point and the catalogs: `GET /`, the patterns, the problem
//! types, the participants and their keys.
//!
//! Everything a client needs to start is reachable from `GET /` by links:
//! a generic HAL client never has to be told a URL.

mod examples;
pub mod patterns;

use axum::Json;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use self::patterns::{PATTERNS, Status};
use crate::app::{App, AppState};
use crate::fault::{Problem, types};
use crate::hypermedia::{Hal, Resource};
use crate::participant::Participant;
use crate::participants::{basket, deliveries};

#[utoipa::path(
    get, path = "/", tag = "catalog", operation_id = "root",
    summary = "The entry point: links to start every conversation",
    responses(
        (status = 200, description = "The entry point", body = crate::openapi::HalDocument, content_type = "application/hal+json"),
    )
)]
/// `GET /`: the entry point.
pub async fn root(State(app): State<AppState>) -> Hal {
    let mut resource = Resource::new()
        .field("name", "conversant")
        .field(
            "description",
            "Asynchronous conversation patterns, for real, between stateless HTTP participants. Follow the links.",
        )
        .link("self", app.root_href("/"))
        .action(
            basket::START,
            app.href(Participant::Basket, "/checkouts"),
            "Start a checkout (turn taking: basket, pricing, payments, orders)",
            vec![],
        )
        .action(
            crate::flows::routing_slip::START,
            app.root_href("/routing-slips"),
            "Start a routing slip (you choose the steps; the signed slip travels with the message)",
            crate::flows::routing_slip::start_properties(),
        );
    if app.base_of(Participant::Deliveries).is_some() {
        resource = resource.action(
            deliveries::saga::create::START,
            app.href(Participant::Deliveries, "/deliveries"),
            "Start a delivery (process manager: solicit couriers, assign, pick up, deliver)",
            deliveries::saga::create::properties(),
        );
    }
    resource = resource
        .titled_link(
            "patterns",
            app.root_href("/patterns"),
            "The pattern catalog",
        )
        .titled_link(
            "menu",
            app.href(Participant::Stores, "/menu"),
            "What the stores sell",
        )
        .titled_link(
            "jwks",
            app.root_href("/.well-known/jwks.json"),
            "Public keys of the participants hosted here",
        )
        .titled_link("problems", app.root_href("/problems"), "The fault types");
    for participant in Participant::ALL {
        if app.base_of(participant).is_some() {
            resource = resource.titled_link(
                participant.as_str(),
                app.href(participant, ""),
                participant.role(),
            );
        }
    }
    Hal::ok(resource)
}

fn pattern_resource(app: &App, p: &patterns::PatternInfo) -> Resource {
    let mut resource = Resource::new()
        .fields(p)
        .link("self", app.root_href(&format!("/patterns/{}", p.slug)));
    if p.status == Status::Available {
        resource = resource.action(
            "try",
            app.root_href(&format!("/patterns/{}/try", p.slug)),
            &format!("Try {}", p.name),
            vec![],
        );
    }
    resource
}

#[utoipa::path(
    get, path = "/patterns", tag = "catalog", operation_id = "list_patterns",
    summary = "The pattern catalog: every pattern of the talk, with its status",
    responses(
        (status = 200, description = "The catalog", body = crate::openapi::HalDocument, content_type = "application/hal+json"),
    )
)]
/// `GET /patterns`: every pattern of the talk.
pub async fn list_patterns(State(app): State<AppState>) -> Hal {
    let items = PATTERNS.iter().map(|p| pattern_resource(&app, p)).collect();
    Hal::ok(
        Resource::new()
            .field("count", PATTERNS.len())
            .field(
                "available",
                PATTERNS
                    .iter()
                    .filter(|p| p.status == Status::Available)
                    .count(),
            )
            .field("exchanges", crate::messaging::rules::ALL)
            .field("conversation_types", patterns::COMPARISON)
            .titled_link(
                "turn-taking",
                app.root_href("/patterns/turn-taking"),
                "Turn taking: the checkout",
            )
            .titled_link(
                "routing-slip",
                app.root_href("/patterns/routing-slip"),
                "Routing slip: /routing-slips",
            )
            .titled_link(
                "process-manager",
                app.root_href("/patterns/process-manager"),
                "Process manager: /deliveries",
            )
            .link("self", app.root_href("/patterns"))
            .link("start", app.root_href("/"))
            .embed("patterns", items),
    )
}

#[utoipa::path(
    get, path = "/patterns/{slug}", tag = "catalog", operation_id = "pattern",
    summary = "One pattern",
    params(("slug" = String, Path, description = "The pattern's slug, as `GET /patterns` lists it")),
    responses(
        (status = 200, description = "The pattern", body = crate::openapi::HalDocument, content_type = "application/hal+json"),
        (status = 404, description = "No such pattern", body = crate::openapi::ProblemDocument, content_type = "application/problem+json"),
    )
)]
/// `GET /patterns/{slug}`.
pub async fn pattern(
    State(app): State<AppState>,
    Path(slug): Path<String>,
) -> Result<Hal, Problem> {
    let p = patterns::by_slug(&slug).ok_or_else(|| unknown_pattern(&app, &slug))?;
    Ok(Hal::ok(pattern_resource(&app, p)))
}

fn unknown_pattern(app: &App, slug: &str) -> Problem {
    Problem::new(
        types::UNKNOWN_PATTERN,
        format!("There is no pattern `{slug}`."),
    )
    .link("patterns", app.root_href("/patterns"))
}

#[utoipa::path(
    post, path = "/patterns/{slug}/try", tag = "catalog", operation_id = "try_pattern",
    summary = "Start an example of an available pattern (empty body)",
    params(("slug" = String, Path, description = "The pattern's slug, as `GET /patterns` lists it")),
    responses(
        (status = 200, description = "The example's first response", body = crate::openapi::HalDocument, content_type = "application/hal+json"),
        (status = 201, description = "The example's first response, a new conversation", body = crate::openapi::HalDocument, content_type = "application/hal+json"),
        (status = 404, description = "No such pattern", body = crate::openapi::ProblemDocument, content_type = "application/problem+json"),
        (status = 501, description = "The pattern is planned, not available yet", body = crate::openapi::ProblemDocument, content_type = "application/problem+json"),
    )
)]
/// `POST /patterns/{slug}/try`: starts an example of an available pattern.
pub async fn try_pattern(
    State(app): State<AppState>,
    Path(slug): Path<String>,
) -> Result<Response, Problem> {
    let p = patterns::by_slug(&slug).ok_or_else(|| unknown_pattern(&app, &slug))?;
    if p.status != Status::Available {
        return Err(Problem::new(
            types::NOT_IMPLEMENTED,
            format!("{} is planned, not available yet.", p.name),
        )
        .link("patterns", app.root_href("/patterns")));
    }
    examples::run(&app, p.slug).await
}

#[utoipa::path(
    get, path = "/problems", tag = "catalog", operation_id = "list_problems",
    summary = "Every problem type",
    responses(
        (status = 200, description = "The problem types", body = crate::openapi::HalDocument, content_type = "application/hal+json"),
    )
)]
/// `GET /problems`: every fault type, so a `type` URI always resolves.
pub async fn list_problems(State(app): State<AppState>) -> Hal {
    let items = types::ALL
        .iter()
        .map(|t| problem_resource(&app, t))
        .collect();
    Hal::ok(
        Resource::new()
            .link("self", app.root_href("/problems"))
            .embed("problems", items),
    )
}

fn problem_resource(app: &App, t: &crate::fault::ProblemType) -> Resource {
    Resource::new()
        .field("type", format!("/problems/{}", t.slug))
        .field("title", t.title)
        .field("status", t.status.as_u16())
        .link("self", app.root_href(&format!("/problems/{}", t.slug)))
}

#[utoipa::path(
    get, path = "/problems/{slug}", tag = "catalog", operation_id = "problem",
    summary = "One problem type",
    params(("slug" = String, Path, description = "The problem type's slug: the last segment of its `type`")),
    responses(
        (status = 200, description = "The problem type", body = crate::openapi::HalDocument, content_type = "application/hal+json"),
        (status = 404, description = "No such problem type", body = crate::openapi::ProblemDocument, content_type = "application/problem+json"),
    )
)]
/// `GET /problems/{slug}`.
pub async fn problem(
    State(app): State<AppState>,
    Path(slug): Path<String>,
) -> Result<Hal, Problem> {
    types::ALL
        .iter()
        .find(|t| t.slug == slug)
        .map(|t| Hal::ok(problem_resource(&app, t)))
        .ok_or_else(|| {
            Problem::new(
                types::NOT_FOUND,
                format!("There is no problem type `{slug}`."),
            )
        })
}

#[utoipa::path(
    get, path = "/.well-known/jwks.json", tag = "catalog", operation_id = "jwks",
    summary = "The public keys of every participant hosted here (RFC 7517)",
    responses(
        (status = 200, description = "A JWK set", body = Object, content_type = "application/json"),
    )
)]
/// `GET /.well-known/jwks.json`: the public keys of every hosted participant.
pub async fn jwks(State(app): State<AppState>) -> Response {
    (
        [(http::header::CACHE_CONTROL, "max-age=60")],
        Json(app.jwks.0.clone()),
    )
        .into_response()
}

#[utoipa::path(
    get, path = "/{participant}", tag = "catalog", operation_id = "participant",
    summary = "What a participant does",
    params(("participant" = String, Path, description = "The participant's name: basket, pricing, payments, orders, deliveries, couriers, stores or search")),
    responses(
        (status = 200, description = "The participant", body = crate::openapi::HalDocument, content_type = "application/hal+json"),
        (status = 404, description = "No such participant here", body = crate::openapi::ProblemDocument, content_type = "application/problem+json"),
    )
)]
/// `GET /{participant}`: what a participant does, and where to start with it.
pub async fn participant_index(
    State(app): State<AppState>,
    Path(name): Path<String>,
) -> Result<Hal, Problem> {
    let participant = name
        .parse::<Participant>()
        .ok()
        .filter(|p| app.hosts(*p))
        .ok_or_else(|| crate::fault::for_status(http::StatusCode::NOT_FOUND))?;
    let mut resource = Resource::new()
        .field("participant", participant)
        .field("role", participant.role());
    for (rel, path, title) in resources_of(participant) {
        resource = resource.titled_link(rel, app.href(participant, path), title);
    }
    Ok(Hal::ok(
        resource
            .link("self", app.href(participant, ""))
            .link("start", app.root_href("/"))
            .link("jwks", app.root_href("/.well-known/jwks.json"))
            .titled_link(
                "outbox",
                app.href(participant, "/outbox"),
                "What it has to send, and its dead letters",
            )
            .titled_link(
                "journal",
                app.href(participant, "/journal?conversation={cid}"),
                "Its journal of one conversation (put the id in)",
            ),
    ))
}

/// What a participant offers to read, beyond its outbox and journal: the
/// resources a client or an administrator starts from (rel, path, title).
fn resources_of(participant: Participant) -> &'static [(&'static str, &'static str, &'static str)] {
    match participant {
        Participant::Orders => &[("events", "/events", "The pull feed of order events")],
        Participant::Deliveries => &[
            (
                "deliveries",
                "/deliveries",
                "Every delivery (filter with ?state=, page with ?page=)",
            ),
            (
                "summary",
                "/deliveries/summary",
                "Counts per state, mean time per stage",
            ),
            (
                "couriers",
                "/couriers",
                "The couriers registered to be solicited",
            ),
        ],
        Participant::Stores => &[
            ("stores", "/stores", "The store listings"),
            ("menu", "/menu", "What the stores sell"),
            ("events", "/events", "The pull feed of store events"),
        ],
        Participant::Search => &[(
            "stores",
            "/stores?near=52.52,13.405",
            "Stores nearest a point (change ?near=lat,lon)",
        )],
        Participant::Basket
        | Participant::Pricing
        | Participant::Payments
        | Participant::Couriers => &[],
    }
}

#[utoipa::path(
    get, path = "/health", tag = "catalog", operation_id = "health",
    summary = "Liveness",
    responses(
        (status = 200, description = "The server is up", body = Object, content_type = "application/json"),
    )
)]
pub async fn health() -> Json<serde_json::Value> {
    Json(json!({ "status": "ok" }))
}

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(root))
        .routes(routes!(participant_index))
        .routes(routes!(list_patterns))
        .routes(routes!(pattern))
        .routes(routes!(try_pattern))
        .routes(routes!(list_problems))
        .routes(routes!(problem))
        .routes(routes!(jwks))
        .routes(routes!(health))
}
