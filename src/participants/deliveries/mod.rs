//! Deliveries: solicits couriers and assigns the job (Out-In, solicit-response).
//!
//! Deliveries *tracks its subscribers*: couriers register with it
//! ([`registry`]), saying where they are and where solicitations reach them.
//! To find a courier for a pickup, deliveries asks every registered courier
//! at once — "available to take work?" — each with a `Reply-To` continuation
//! of its own and a deadline ([`solicit`]). The continuation is a signed link
//! naming the solicitation, the courier asked and the deadline, so deliveries
//! keeps no pending state in memory: the answers that arrive in time are
//! correlated in the store, keyed by solicitation and courier, and a late
//! answer is refused with `410 Gone` and changes nothing. When every courier
//! asked has answered, or the deadline has passed, the client gets the
//! confirmations, the declines, who did not answer in time, and a signed
//! `offer` link to the best courier (the soonest at the pickup), which sends
//! the courier "take the job" and waits for its acknowledgement ([`offer`]).

mod offer;
mod registry;
pub mod saga;
mod solicit;

pub use solicit::{DEFAULT_DEADLINE_MS, MAX_DEADLINE_MS};

use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::app::AppState;

/// The client's step: offer the job to the courier a solicitation picked.
pub const OFFER_JOB: &str = "offer";

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(registry::register, registry::list))
        .routes(routes!(solicit::solicit))
        .routes(routes!(solicit::solicitation_reply))
        .routes(routes!(offer::offer))
        .routes(routes!(saga::create::create, saga::api::list))
        .routes(routes!(saga::api::summary))
        .routes(routes!(saga::api::get))
        .routes(routes!(saga::api::cancel))
        .routes(routes!(saga::api::reassign))
        .routes(routes!(saga::incoming::report))
        .routes(routes!(saga::incoming::notifications))
}
