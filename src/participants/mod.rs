//! The participants of the example domain, each with its own router.
//!
//! A participant module reads like the conversation it plays: its messages
//! as types, its handlers named after the steps they perform, its router at
//! the bottom. [`router`] only composes: each hosted participant under its
//! own prefix, plus the entry point and catalogs.

pub mod basket;
pub mod catalog;
pub mod conversations;
pub mod couriers;
pub mod deliveries;
pub mod journal;
pub mod menu;
pub mod orders;
pub mod payments;
pub mod pipeline;
pub mod pricing;
pub mod search;
pub mod stores;

use axum::Router;
use utoipa_axum::router::OpenApiRouter;

use crate::app::AppState;
use crate::fault;
use crate::participant::Participant;

/// The documented routes of the catalog and of the given participants.
pub fn api_router(hosted: &[Participant]) -> OpenApiRouter<AppState> {
    let mut router = catalog::router()
        .merge(conversations::router())
        .merge(crate::flows::routing_slip::router())
        .routes(utoipa_axum::routes!(pipeline::outbox))
        .routes(utoipa_axum::routes!(pipeline::dead_letters))
        .routes(utoipa_axum::routes!(pipeline::redeliver));
    for &participant in hosted {
        let routes = match participant {
            Participant::Basket => basket::router(),
            Participant::Pricing => pricing::router(),
            Participant::Stores => stores::router(),
            Participant::Search => search::router(),
            Participant::Payments => payments::router(),
            Participant::Orders => orders::router(),
            Participant::Deliveries => deliveries::router(),
            Participant::Couriers => couriers::router(),
        };
        let routes = routes.merge(journal::router(participant));
        let routes = routes.merge(crate::flows::routing_slip::routes_for(participant));
        router = router.nest(&format!("/{participant}"), routes);
    }
    router
}

/// What the hosted participants do once, before serving: store information
/// seeds its listings; search subscribes to them and the couriers register
/// with deliveries (both in the background, retrying until answered).
pub async fn start(app: &AppState) -> anyhow::Result<()> {
    if app.hosts(Participant::Stores) {
        stores::start(app).await?;
    }
    if app.hosts(Participant::Search) {
        search::start(app.clone());
    }
    couriers::register_on_start(app.clone());
    Ok(())
}

/// The whole application's routes for the participants `app` hosts.
pub fn router(app: AppState) -> Router {
    let (router, _) = api_router(&app.config.participants).split_for_parts();
    router
        .route(
            "/openapi.json",
            axum::routing::get(|| async { axum::Json(crate::openapi::document()) }),
        )
        .fallback(|| async { fault::for_status(http::StatusCode::NOT_FOUND) })
        .layer(axum::middleware::from_fn_with_state(
            app.clone(),
            crate::messaging::chaos::layer,
        ))
        .layer(axum::middleware::from_fn_with_state(
            app.clone(),
            crate::messaging::idempotency::layer,
        ))
        .with_state(app)
}
