//! Payments: takes and refunds payments (In-Out, command-acknowledgement).
//!
//! Pricing sends "take payment" with its token (audience `payments`, step
//! `take-payment`) and the card number in the body; the card number never
//! enters a token, a log or the store, only its last four digits do. The
//! payment and the acknowledgement are written with the inbox claim in one
//! transaction (the Transactional Inbox), keyed by the checkout attempt: the
//! same attempt arriving twice — a retry, a replayed link, a branch taken from
//! an older token — is answered with the stored acknowledgement and charges
//! nothing again.
//!
//! The exchange's fault rule is *fault replaces message*: a declined card,
//! insufficient funds or an unavailable processor are answered with a problem
//! document instead of the acknowledgement.
//!
//! Asked with `Prefer: respond-async` and a `Reply-To` continuation, payments
//! answers `202 Accepted` at once and later POSTs the acknowledgement (or the
//! fault) to that continuation, through its outbox.

pub mod cards;
pub mod methods;
mod refund;
mod take;

pub use refund::{REFUND, REFUND_REPLY, RefundRequest};
pub use take::{PaymentAck, TAKE_PAYMENT, paid_already, take_payment};

use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::app::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(take::take_payment, take::list_payments))
        .routes(routes!(take::get_payment))
        .routes(routes!(refund::refund))
        .routes(routes!(methods::create))
}
