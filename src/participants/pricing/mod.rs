//! Pricing: prices baskets (In-Out, query-result) and leads the payment turn.
//!
//! Basket asks "price this basket" with a token it signed for audience
//! `pricing`, allowing the step `price`; the basket itself is the token's
//! state. Pricing verifies basket's signature (from its JWKS when basket runs
//! elsewhere), answers with the priced basket under its own signature, and
//! from then on the checkout's links point here: `pay` and `cancel`.
//!
//! `pay` ([`pay`]) is the checkout's next turn: command-acknowledgement with
//! payments (synchronous, or asynchronous with a Reply-To continuation), then
//! "raise order" to orders, In-Only, through the outbox.

use axum::extract::State;
use serde::{Deserialize, Serialize};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

mod order_fault;
mod pay;

use super::basket;
use super::menu::{self, CURRENCY};
use crate::app::{App, AppState};
use crate::conversation::token::Minted;
use crate::conversation::{Claims, Expect, Next, StateToken};
use crate::fault::{Problem, types};
use crate::hypermedia::{Hal, Property, Resource};
use crate::messaging::sender::SendError;
use crate::participant::Participant::{Basket, Payments, Pricing};
use crate::participants::payments;
use crate::store::Payment;

pub const PRICE: &str = "price";
pub const VIEW: &str = "view";
pub const PAY: &str = "pay";
pub const CANCEL: &str = "cancel";

/// The message "price this basket", as pricing reads it.
#[derive(Debug, Deserialize)]
struct PriceRequest {
    items: Vec<RequestLine>,
}

#[derive(Debug, Deserialize)]
struct RequestLine {
    sku: String,
    qty: i64,
}

/// The priced basket: the token's state from here on.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Quote {
    pub items: Vec<PricedLine>,
    pub delivery_fee: i64,
    pub total: i64,
    pub currency: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PricedLine {
    pub sku: String,
    pub qty: i64,
    pub unit_price: i64,
    pub line_total: i64,
}

/// Prices a basket: item prices, one delivery fee per store, the total.
fn price(request: &PriceRequest) -> Result<Quote, Problem> {
    price_lines(request.items.iter().map(|l| (l.sku.as_str(), l.qty)))
}

/// The pricing rule, for whoever prices lines (the checkout's `price` and the
/// routing slip's `price` step): item prices, one delivery fee per store of
/// the items, the total.
pub fn price_lines<'a>(
    lines: impl ExactSizeIterator<Item = (&'a str, i64)>,
) -> Result<Quote, Problem> {
    let mut items = Vec::with_capacity(lines.len());
    let mut stores: Vec<&str> = Vec::new();
    for (sku, qty) in lines {
        let item = menu::item_by_sku(sku).ok_or_else(|| {
            Problem::new(types::UNKNOWN_SKU, format!("`{sku}` is not on the menu."))
        })?;
        if !stores.contains(&item.store) {
            stores.push(item.store);
        }
        items.push(PricedLine {
            sku: sku.to_owned(),
            qty,
            unit_price: item.price,
            line_total: item.price * qty,
        });
    }
    let delivery_fee = stores
        .iter()
        .filter_map(|s| menu::store(s))
        .map(|s| s.delivery_fee)
        .sum::<i64>();
    let total = items.iter().map(|l| l.line_total).sum::<i64>() + delivery_fee;
    Ok(Quote {
        items,
        delivery_fee,
        total,
        currency: CURRENCY.to_owned(),
    })
}

pub(crate) fn render(app: &App, minted: &Minted) -> Resource {
    let step = |path: &str| app.step_href(Pricing, path, &minted.token);
    Resource::new()
        .field("status", "priced")
        .field("conversation", minted.claims.cid)
        .field("turn", minted.claims.seq)
        .field("state", &minted.claims.st)
        .link("self", step("/checkouts/view"))
        .action(
            PAY,
            step("/checkouts/pay"),
            "Pay for the order",
            vec![
                Property::text("card_number")
                    .required()
                    .prompt("Card number (test cards: see the README)")
                    .regex("^[0-9 -]{12,23}$"),
            ],
        )
        .action(
            CANCEL,
            step("/checkouts/cancel"),
            "Cancel the checkout",
            vec![],
        )
}

/// `POST /pricing/quotes` (`price`): the query-result exchange with basket.
#[utoipa::path(
    post, path = "/quotes", tag = "pricing", operation_id = "price",
    summary = "Price a basket (query-result; basket is the requestor, its token in Conversation-State)",
    security(("state_query" = []), ("state_header" = [])),
    responses(
        (status = 200, description = "The priced basket under pricing's token", body = crate::openapi::HalDocument, content_type = "application/hal+json"),
        (status = 401, description = "Missing, invalid or expired token", body = crate::openapi::ProblemDocument, content_type = "application/problem+json"),
        (status = 403, description = "The token does not allow this step here", body = crate::openapi::ProblemDocument, content_type = "application/problem+json"),
        (status = 409, description = "The conversation was paid already: its basket is not priced again (links to the payment and its order)", body = crate::openapi::ProblemDocument, content_type = "application/problem+json"),
        (status = 422, description = "An item is not on the menu", body = crate::openapi::ProblemDocument, content_type = "application/problem+json"),
        (status = 502, description = "Payments could not say whether the conversation was paid", body = crate::openapi::ProblemDocument, content_type = "application/problem+json"),
    )
)]
pub async fn quote(State(app): State<AppState>, token: StateToken) -> Result<Hal, Problem> {
    let claims = app
        .verify(&token, Expect::step(Pricing, PRICE).from(&[Basket]))
        .await?;
    let request: PriceRequest = serde_json::from_value(claims.st.clone()).map_err(|e| {
        Problem::new(
            types::INVALID_BODY,
            format!("The basket cannot be read: {e}."),
        )
    })?;
    refuse_if_paid(
        &app,
        &claims,
        "This conversation was paid already: its basket is not priced again. Its order is at the order link.",
    )
    .await?;
    let quote = price(&request).map_err(|p| p.in_conversation(claims.cid))?;
    let st = serde_json::to_value(&quote).map_err(Problem::internal)?;
    let minted = app.mint(
        Pricing,
        Next::after(&claims, PRICE)
            .to(&[Pricing])
            .allow(&[VIEW, PAY, CANCEL])
            .state(st),
    )?;
    Ok(Hal::ok(render(&app, &minted)))
}

/// `GET /pricing/checkouts/view`: the priced basket again (no new signature).
#[utoipa::path(
    get, path = "/checkouts/view", tag = "pricing", operation_id = "view_quote",
    summary = "The priced basket as its token holds it",
    security(("state_query" = []), ("state_header" = [])),
    responses(
        (status = 200, description = "The priced basket", body = crate::openapi::HalDocument, content_type = "application/hal+json"),
        (status = 401, description = "Missing, invalid or expired token", body = crate::openapi::ProblemDocument, content_type = "application/problem+json"),
        (status = 403, description = "The token does not allow this step here", body = crate::openapi::ProblemDocument, content_type = "application/problem+json"),
    )
)]
pub async fn view(State(app): State<AppState>, token: StateToken) -> Result<Hal, Problem> {
    let claims = app.verify(&token, Expect::step(Pricing, VIEW)).await?;
    Ok(Hal::ok(render(
        &app,
        &Minted {
            token: token.0,
            claims,
        },
    )))
}

/// `POST /pricing/checkouts/pay`: command-acknowledgement with payments
/// (the next issue); a clear 501 until then.
#[utoipa::path(
    post, path = "/checkouts/cancel", tag = "pricing", operation_id = "cancel_quote",
    summary = "Cancel the checkout",
    security(("state_query" = []), ("state_header" = [])),
    responses(
        (status = 200, description = "The conversation has ended", body = crate::openapi::HalDocument, content_type = "application/hal+json"),
        (status = 401, description = "Missing, invalid or expired token", body = crate::openapi::ProblemDocument, content_type = "application/problem+json"),
        (status = 403, description = "The token does not allow this step here", body = crate::openapi::ProblemDocument, content_type = "application/problem+json"),
        (status = 409, description = "The checkout was paid: it ends by its order or a refund", body = crate::openapi::ProblemDocument, content_type = "application/problem+json"),
        (status = 502, description = "Payments could not say whether the checkout was paid", body = crate::openapi::ProblemDocument, content_type = "application/problem+json"),
    )
)]
pub async fn cancel(State(app): State<AppState>, token: StateToken) -> Result<Hal, Problem> {
    let claims = app.verify(&token, Expect::step(Pricing, CANCEL)).await?;
    refuse_if_paid(
        &app,
        &claims,
        "This checkout was paid, so it can no longer be cancelled.",
    )
    .await?;
    Ok(Hal::ok(basket::cancelled(&app, &claims)))
}

/// A signed token cannot be revoked: the priced checkout's `cancel` link,
/// and the basket's `checkout` link before it, still verify after `pay`
/// succeeded (the browser's Back button brings them back). So `cancel` and
/// `price` ask payments (a query, over HTTP) whether this conversation has a
/// payment that took money, and refuse with `409 already-paid`, linking to
/// the payment and its order: a paid conversation ends by its order, or by
/// a refund, and is never priced or paid a second time.
async fn refuse_if_paid(app: &App, claims: &Claims, detail: &str) -> Result<(), Problem> {
    let path = format!("/payments?conversation={}", claims.cid);
    let reply = match app.sender.get(Payments, &path).await {
        Ok(reply) => reply,
        // No route to payments: nothing can have been paid through this pricing.
        Err(SendError::Unknown(_)) => return Ok(()),
        Err(e) => return Err(Problem::from(e).in_conversation(claims.cid)),
    };
    if !reply.status.is_success() {
        return Err(Problem::new(
            types::PEER_UNAVAILABLE,
            "Payments could not say whether this checkout was paid.",
        )
        .in_conversation(claims.cid));
    }
    let paid = reply.body["_embedded"]["payments"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|p| p["status"] != "declined")
        .find_map(|p| serde_json::from_value::<Payment>(p.clone()).ok());
    match paid {
        None => Ok(()),
        Some(payment) => Err(payments::paid_already(app, &payment, detail)),
    }
}

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(quote))
        .routes(routes!(view))
        .routes(routes!(pay::pay))
        .routes(routes!(pay::payment_reply))
        .routes(routes!(order_fault::order_fault))
        .routes(routes!(cancel))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_quote_adds_one_delivery_fee_per_store() {
        let request = PriceRequest {
            items: vec![
                RequestLine {
                    sku: "margherita".into(),
                    qty: 2,
                },
                RequestLine {
                    sku: "tiramisu".into(),
                    qty: 1,
                },
                RequestLine {
                    sku: "miso-soup".into(),
                    qty: 1,
                },
            ],
        };
        let quote = price(&request).unwrap();
        assert_eq!(quote.delivery_fee, 250 + 350);
        assert_eq!(quote.total, 2 * 950 + 550 + 390 + 600);
    }
}
