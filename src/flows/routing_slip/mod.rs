//! Routing Slip: the requestor chooses the steps; a signed slip travels with
//! the message and every step marks itself done.
//!
//! `POST /routing-slips` (linked from `GET /` as `start-routing-slip`) names
//! steps from a documented set, in order:
//!
//! | step | done by | needs before it | compensation |
//! |---|---|---|---|
//! | `validate-address` | stores | | |
//! | `price` | pricing | | |
//! | `take-payment` | payments | `price` | `refund-payment` |
//! | `raise-order` | orders | `price`, `take-payment` | `cancel-order` |
//! | `notify` | basket | every other step (it comes last); a `reply_to` | |
//!
//! Basket signs the slip for the requestor (it is the participant that acts
//! for the client elsewhere too) and sends it to the first step. From then on
//! the slip is the conversation: each step verifies it ([`slip`]), does its
//! work ([`steps`]), adds its own signed receipt and forwards it through its
//! outbox to the next address in the itinerary ([`hop`]). Steps make no
//! routing choice and cannot alter the itinerary: its digest is under the
//! requestor's signature. The card number travels only in the message body,
//! and only until `take-payment`.
//!
//! A failed step turns the slip back: the completed steps that have a
//! compensation are undone in reverse order, each by the participant that
//! did it (payments refunds, orders cancels), each with a receipt of its own.
//! Then the requestor is told the outcome ([`outcome`]): on the pull feed
//! and at its `reply_to`. `GET /routing-slips/inspect` reads any slip token
//! back, verifying every signature in it, with no server state at all.
//!
//! Compared with turn taking, nobody waits for anybody: the slip moves on
//! its own. Compared with a process manager, nobody is in charge: what
//! happened is only in the slip (and the journals).

mod handlers;
mod hop;
pub mod outcome;
pub mod slip;
mod start;
mod steps;

use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::app::{App, AppState};
use crate::participant::Participant;

pub use start::{START, example};

/// The feed (the store's events) that outcomes are appended to.
pub const FEED: &str = "routing-slips";

/// The `inspect` link of a slip token.
pub fn inspect_href(app: &App, token: &str) -> String {
    app.root_href(&format!("/routing-slips/inspect?state={token}"))
}

/// The routes outside any participant: start, inspect, the feed.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(start::start))
        .routes(routes!(start::inspect))
        .routes(routes!(outcome::feed))
}

/// The steps (and compensations) `participant` takes when a slip reaches it,
/// under its own prefix.
pub fn routes_for(participant: Participant) -> OpenApiRouter<AppState> {
    let router = OpenApiRouter::new();
    match participant {
        Participant::Stores => router.routes(routes!(handlers::validate_address)),
        Participant::Pricing => router.routes(routes!(handlers::price)),
        Participant::Payments => router
            .routes(routes!(handlers::take_payment))
            .routes(routes!(handlers::refund_payment)),
        Participant::Orders => router
            .routes(routes!(handlers::raise_order))
            .routes(routes!(handlers::cancel_order)),
        Participant::Basket => router.routes(routes!(handlers::notify)),
        _ => router,
    }
}

/// The HAL-FORMS properties of `start-routing-slip`, with a sample slip.
pub fn start_properties() -> Vec<crate::hypermedia::Property> {
    start::properties()
}
