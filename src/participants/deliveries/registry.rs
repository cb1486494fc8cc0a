//! The courier registry: the subscribers deliveries tracks.
//!
//! A courier registers (or refreshes its place and busyness) with a POST;
//! the simulated couriers do so when the server starts. Its solicit URL must
//! point at a known participant or an allowed host, like any callback
//! (see `messaging::callbacks`), since deliveries will POST to it.

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use http::StatusCode;
use serde::Deserialize;

use crate::app::{App, AppState};
use crate::fault::{Problem, types};
use crate::hypermedia::{Hal, Input, Property, Resource};
use crate::participant::Participant::Deliveries;
use crate::participants::couriers::Location;
use crate::store::{Courier, now_ms};

/// The input of `register`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct Register {
    /// 1 to 64 letters, digits, `-` or `_`; registering a known id refreshes it.
    #[schema(pattern = "^[A-Za-z0-9_-]{1,64}$")]
    pub id: String,
    /// 1 to 100 characters, not all blank.
    #[schema(min_length = 1, max_length = 100, pattern = "\\S")]
    pub name: String,
    /// Where the courier is: -90 to 90.
    #[schema(minimum = -90, maximum = 90)]
    pub lat: f64,
    /// -180 to 180.
    #[schema(minimum = -180, maximum = 180)]
    pub lon: f64,
    /// From 0 (idle) to 1 (fully booked).
    #[schema(minimum = 0, maximum = 1)]
    pub busyness: f64,
    /// Where solicitations are POSTed (a known participant or an allowed host).
    pub solicit_url: String,
}

fn check(input: &Register) -> Result<(), Problem> {
    let id_ok = (1..=64).contains(&input.id.len())
        && input
            .id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if !id_ok {
        return Err(Problem::new(
            types::INVALID_BODY,
            "A courier id is 1 to 64 letters, digits, `-` or `_`.",
        ));
    }
    if input.name.trim().is_empty() || input.name.chars().count() > 100 {
        return Err(Problem::new(
            types::INVALID_BODY,
            "A courier's name is 1 to 100 characters.",
        ));
    }
    if !(Location {
        lat: input.lat,
        lon: input.lon,
    })
    .is_valid()
    {
        return Err(Problem::new(
            types::INVALID_BODY,
            "Coordinates are a latitude from -90 to 90 and a longitude from -180 to 180.",
        ));
    }
    if !(0.0..=1.0).contains(&input.busyness) {
        return Err(Problem::new(
            types::INVALID_BODY,
            "Busyness goes from 0 (idle) to 1 (fully booked).",
        ));
    }
    Ok(())
}

fn render(courier: &Courier) -> Resource {
    Resource::new()
        .field("id", &courier.id)
        .field("name", &courier.name)
        .field("lat", courier.lat)
        .field("lon", courier.lon)
        .field("busyness", courier.busyness)
        .field("solicit_url", &courier.reply_url)
        .field("registered_at", courier.created_at)
}

/// The template of `register`, for the registry's links.
fn register_properties() -> Vec<Property> {
    vec![
        Property::text("id").required(),
        Property::text("name").required(),
        Property::number("lat", -90, 90).required(),
        Property::number("lon", -180, 180).required(),
        Property::number("busyness", 0, 1).required(),
        Property::text("solicit_url").required(),
    ]
}

#[utoipa::path(
    post, path = "/couriers", tag = "deliveries", operation_id = "register_courier",
    summary = "Register a courier, or refresh its place and busyness (the provider tracks its subscribers)",
    request_body(content((Register = "application/json"), (Register = "application/x-www-form-urlencoded"))),
    responses(
        (status = 201, description = "Registered", body = crate::openapi::HalDocument, content_type = "application/hal+json"),
        (status = 200, description = "A known courier, refreshed", body = crate::openapi::HalDocument, content_type = "application/hal+json"),
        (status = 400, description = "Malformed body", body = crate::openapi::ProblemDocument, content_type = "application/problem+json"),
        (status = 422, description = "Bad id, name, coordinates or busyness, or a solicit URL that is not allowed", body = crate::openapi::ProblemDocument, content_type = "application/problem+json"),
    )
)]
/// `POST /deliveries/couriers`.
pub async fn register(
    State(app): State<AppState>,
    Input(input): Input<Register>,
) -> Result<Response, Problem> {
    check(&input)?;
    let url = app
        .callbacks
        .check(&input.solicit_url)
        .map_err(|e| Problem::new(types::CALLBACK_NOT_ALLOWED, format!("{e}.")))?;
    let known = app
        .store
        .couriers_list()
        .await
        .map_err(Problem::internal)?
        .into_iter()
        .find(|c| c.id == input.id);
    let courier = Courier {
        id: input.id,
        name: input.name.trim().to_owned(),
        lat: input.lat,
        lon: input.lon,
        busyness: input.busyness,
        reply_url: Some(url.to_string()),
        created_at: known.as_ref().map_or_else(now_ms, |k| k.created_at),
    };
    app.store
        .courier_upsert(&courier)
        .await
        .map_err(Problem::internal)?;
    let status = if known.is_some() {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    let resource = render(&courier)
        .link("registry", app.href(Deliveries, "/couriers"))
        .link("start", app.root_href("/"));
    Ok(Hal(status, resource).into_response())
}

#[utoipa::path(
    get, path = "/couriers", tag = "deliveries", operation_id = "list_couriers",
    summary = "The courier registry: whom a solicitation asks",
    responses(
        (status = 200, description = "The registered couriers, with links to register and to solicit them", body = crate::openapi::HalDocument, content_type = "application/hal+json"),
    )
)]
/// `GET /deliveries/couriers`.
pub async fn list(State(app): State<AppState>) -> Result<Hal, Problem> {
    let couriers = app.store.couriers_list().await.map_err(Problem::internal)?;
    Ok(Hal::ok(registry_resource(&app, &couriers)))
}

fn registry_resource(app: &App, couriers: &[Courier]) -> Resource {
    let href = app.href(Deliveries, "/couriers");
    Resource::new()
        .field("count", couriers.len())
        .link("self", href.clone())
        .action(
            "register",
            href,
            "Register a courier (or refresh one)",
            register_properties(),
        )
        .action(
            "solicit",
            app.href(Deliveries, "/solicitations"),
            "Ask every courier whether it can take work at a pickup",
            super::solicit::solicit_properties(),
        )
        .link("start", app.root_href("/"))
        .embed("couriers", couriers.iter().map(render).collect())
}
