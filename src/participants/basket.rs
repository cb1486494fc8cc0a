//! Basket: a stateless basket whose only storage is the signed token.
//!
//! The conversation starts here (`start-checkout`), and every step is a pure
//! function of the previous token and the step's input: adding an item mints
//! a new token whose `st` is the new basket. Nothing is stored anywhere, so a
//! replayed link simply yields the same basket again (naturally idempotent).
//! `checkout` is the first In-Out exchange of the checkout's turn taking: a
//! query-result request to pricing, whose priced basket (and pricing's own
//! token, which passes control to pricing) becomes the client's response.

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::menu::{ITEMS, item_by_sku};
use crate::app::{App, AppState};
use crate::conversation::token::Minted;
use crate::conversation::{Claims, Expect, Next, Pattern, StateToken};
use crate::fault::{Problem, types};
use crate::hypermedia::{Hal, Input, Property, Resource};
use crate::participant::Participant::{self, Basket, Pricing};

pub const START: &str = "start-checkout";
pub const VIEW: &str = "view";
pub const ADD_ITEM: &str = "add-item";
pub const REMOVE_ITEM: &str = "remove-item";
pub const CHECKOUT: &str = "checkout";
pub const CANCEL: &str = "cancel";

/// The largest quantity of one item a basket holds.
pub const MAX_QUANTITY: i64 = 99;

/// The basket: the token's domain state while the basket is open.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct BasketState {
    pub items: Vec<Line>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Line {
    pub sku: String,
    pub qty: i64,
}

/// The input of `add-item`.
#[derive(Debug, Deserialize)]
pub struct AddItem {
    pub sku: String,
    #[serde(default = "one")]
    pub quantity: i64,
}

/// The input of `remove-item`: without a quantity the whole line goes.
#[derive(Debug, Deserialize)]
pub struct RemoveItem {
    pub sku: String,
    pub quantity: Option<i64>,
}

fn one() -> i64 {
    1
}

impl BasketState {
    fn from_claims(claims: &Claims) -> Result<Self, Problem> {
        serde_json::from_value(claims.st.clone())
            .map_err(|e| Problem::internal(format!("basket state: {e}")))
    }

    /// The steps an open basket allows.
    pub fn steps(&self) -> &'static [&'static str] {
        if self.items.is_empty() {
            &[VIEW, ADD_ITEM, CANCEL]
        } else {
            &[VIEW, ADD_ITEM, REMOVE_ITEM, CHECKOUT, CANCEL]
        }
    }

    fn add(&mut self, sku: &str, quantity: i64) -> Result<(), Problem> {
        check_quantity(quantity)?;
        if item_by_sku(sku).is_none() {
            return Err(Problem::new(
                types::UNKNOWN_SKU,
                format!("`{sku}` is not on the menu."),
            ));
        }
        match self.items.iter_mut().find(|l| l.sku == sku) {
            Some(line) if line.qty + quantity > MAX_QUANTITY => Err(Problem::new(
                types::INVALID_QUANTITY,
                format!(
                    "The basket would hold {} of `{sku}`; at most {MAX_QUANTITY} are allowed.",
                    line.qty + quantity
                ),
            )),
            Some(line) => {
                line.qty += quantity;
                Ok(())
            }
            None => {
                self.items.push(Line {
                    sku: sku.to_owned(),
                    qty: quantity,
                });
                Ok(())
            }
        }
    }

    fn remove(&mut self, sku: &str, quantity: Option<i64>) -> Result<(), Problem> {
        if let Some(q) = quantity {
            check_quantity(q)?;
        }
        let Some(index) = self.items.iter().position(|l| l.sku == sku) else {
            return Err(Problem::new(
                types::NOT_IN_BASKET,
                format!("`{sku}` is not in the basket."),
            ));
        };
        match quantity {
            Some(q) if q < self.items[index].qty => self.items[index].qty -= q,
            _ => {
                self.items.remove(index);
            }
        }
        Ok(())
    }
}

/// The steps an open basket allows.
pub fn steps_of(basket: &BasketState) -> &'static [&'static str] {
    basket.steps()
}

fn check_quantity(quantity: i64) -> Result<(), Problem> {
    if (1..=MAX_QUANTITY).contains(&quantity) {
        Ok(())
    } else {
        Err(Problem::new(
            types::INVALID_QUANTITY,
            format!("The quantity must be between 1 and {MAX_QUANTITY}; {quantity} was given."),
        ))
    }
}

/// The representation of an open basket, its links carrying `minted.token`.
pub fn render(app: &App, minted: &Minted, basket: &BasketState) -> Resource {
    let token = &minted.token;
    let step = |path: &str| app.step_href(Basket, path, token);
    let menu_options = ITEMS.iter().map(|i| (i.name, i.sku));
    let mut resource = Resource::new()
        .field("status", "open")
        .field("conversation", minted.claims.cid)
        .field("turn", minted.claims.seq)
        .field("state", &minted.claims.st)
        .link("self", step("/checkouts/view"))
        .action(
            ADD_ITEM,
            step("/checkouts/add-item"),
            "Add an item",
            vec![
                Property::text("sku")
                    .required()
                    .prompt("Item")
                    .one_of(menu_options),
                Property::number("quantity", 1, MAX_QUANTITY)
                    .value(1)
                    .prompt("Quantity"),
            ],
        );
    if !basket.items.is_empty() {
        let in_basket = basket.items.iter().map(|l| (l.sku.clone(), l.sku.clone()));
        resource = resource
            .action(
                REMOVE_ITEM,
                step("/checkouts/remove-item"),
                "Remove an item",
                vec![
                    Property::text("sku")
                        .required()
                        .prompt("Item")
                        .one_of(in_basket),
                    Property::number("quantity", 1, MAX_QUANTITY).prompt("Quantity (all if empty)"),
                ],
            )
            .action(
                CHECKOUT,
                step("/checkouts/checkout"),
                "Check out: price the basket",
                vec![],
            );
    }
    resource
        .action(
            CANCEL,
            step("/checkouts/cancel"),
            "Cancel the checkout",
            vec![],
        )
        .link("menu", app.href(Participant::Stores, "/menu"))
}

fn mint_basket(app: &App, next: Next, basket: &BasketState) -> Result<Minted, Problem> {
    let st = serde_json::to_value(basket).map_err(Problem::internal)?;
    app.mint(Basket, next.to(&[Basket]).allow(basket.steps()).state(st))
}

/// `POST /basket/checkouts` (`start-checkout`): an empty basket, in a new conversation.
#[utoipa::path(
    post, path = "/checkouts", tag = "basket", operation_id = "start_checkout",
    summary = "Start a checkout: an empty basket in a new conversation",
    responses(
        (status = 201, description = "The empty basket; its links carry its token", body = crate::openapi::HalDocument, content_type = "application/hal+json"),

    )
)]
pub async fn start_checkout(State(app): State<AppState>) -> Result<Response, Problem> {
    let basket = BasketState::default();
    let minted = mint_basket(&app, Next::start(Pattern::TurnTaking, START), &basket)?;
    let resource = render(&app, &minted, &basket);
    let location = app.step_href(Basket, "/checkouts/view", &minted.token);
    Ok((
        [(http::header::LOCATION, location)],
        Hal(StatusCode::CREATED, resource),
    )
        .into_response())
}

/// `GET /basket/checkouts/view`: the basket as the token holds it (no new signature).
#[utoipa::path(
    get, path = "/checkouts/view", tag = "basket", operation_id = "view_basket",
    summary = "The basket as its token holds it",
    security(("state_query" = []), ("state_header" = [])),
    responses(
        (status = 200, description = "The basket", body = crate::openapi::HalDocument, content_type = "application/hal+json"),
        (status = 401, description = "Missing, invalid or expired token", body = crate::openapi::ProblemDocument, content_type = "application/problem+json"),
        (status = 403, description = "The token does not allow this step here", body = crate::openapi::ProblemDocument, content_type = "application/problem+json"),
    )
)]
pub async fn view(State(app): State<AppState>, token: StateToken) -> Result<Hal, Problem> {
    let claims = app.verify(&token, Expect::step(Basket, VIEW)).await?;
    let basket = BasketState::from_claims(&claims)?;
    let minted = Minted {
        token: token.0,
        claims,
    };
    Ok(Hal::ok(render(&app, &minted, &basket)))
}

/// `POST /basket/checkouts/add-item`.
#[utoipa::path(
    post, path = "/checkouts/add-item", tag = "basket", operation_id = "add_item",
    summary = "Add an item (sku, quantity 1-99)",
    security(("state_query" = []), ("state_header" = [])),
    request_body(content((crate::openapi::AddItemInput = "application/json"), (crate::openapi::AddItemInput = "application/x-www-form-urlencoded"))),
    responses(
        (status = 200, description = "The basket with the item, under a new token", body = crate::openapi::HalDocument, content_type = "application/hal+json"),
        (status = 401, description = "Missing, invalid or expired token", body = crate::openapi::ProblemDocument, content_type = "application/problem+json"),
        (status = 403, description = "The token does not allow this step here", body = crate::openapi::ProblemDocument, content_type = "application/problem+json"),        (status = 400, description = "Malformed body", body = crate::openapi::ProblemDocument, content_type = "application/problem+json"),
        (status = 415, description = "Unsupported media type", body = crate::openapi::ProblemDocument, content_type = "application/problem+json"),
        (status = 422, description = "Unknown sku or quantity out of range", body = crate::openapi::ProblemDocument, content_type = "application/problem+json"),
    )
)]
pub async fn add_item(
    State(app): State<AppState>,
    token: StateToken,
    Input(input): Input<AddItem>,
) -> Result<Hal, Problem> {
    let claims = app.verify(&token, Expect::step(Basket, ADD_ITEM)).await?;
    let mut basket = BasketState::from_claims(&claims)?;
    basket
        .add(&input.sku, input.quantity)
        .map_err(|p| repair_links(&app, p, &claims, &token))?;
    let minted = mint_basket(&app, Next::after(&claims, ADD_ITEM), &basket)?;
    Ok(Hal::ok(render(&app, &minted, &basket)))
}

/// `POST /basket/checkouts/remove-item`.
#[utoipa::path(
    post, path = "/checkouts/remove-item", tag = "basket", operation_id = "remove_item",
    summary = "Remove an item, or some of it",
    security(("state_query" = []), ("state_header" = [])),
    request_body(content((crate::openapi::RemoveItemInput = "application/json"), (crate::openapi::RemoveItemInput = "application/x-www-form-urlencoded"))),
    responses(
        (status = 200, description = "The basket without the item, under a new token", body = crate::openapi::HalDocument, content_type = "application/hal+json"),
        (status = 401, description = "Missing, invalid or expired token", body = crate::openapi::ProblemDocument, content_type = "application/problem+json"),
        (status = 403, description = "The token does not allow this step here", body = crate::openapi::ProblemDocument, content_type = "application/problem+json"),        (status = 400, description = "Malformed body", body = crate::openapi::ProblemDocument, content_type = "application/problem+json"),
        (status = 415, description = "Unsupported media type", body = crate::openapi::ProblemDocument, content_type = "application/problem+json"),
        (status = 422, description = "Not in the basket, or quantity out of range", body = crate::openapi::ProblemDocument, content_type = "application/problem+json"),
    )
)]
pub async fn remove_item(
    State(app): State<AppState>,
    token: StateToken,
    Input(input): Input<RemoveItem>,
) -> Result<Hal, Problem> {
    let claims = app
        .verify(&token, Expect::step(Basket, REMOVE_ITEM))
        .await?;
    let mut basket = BasketState::from_claims(&claims)?;
    basket
        .remove(&input.sku, input.quantity)
        .map_err(|p| repair_links(&app, p, &claims, &token))?;
    let minted = mint_basket(&app, Next::after(&claims, REMOVE_ITEM), &basket)?;
    Ok(Hal::ok(render(&app, &minted, &basket)))
}

/// `POST /basket/checkouts/checkout`: asks pricing to price the basket
/// (In-Out, query-result) and answers with pricing's priced basket.
#[utoipa::path(
    post, path = "/checkouts/checkout", tag = "basket", operation_id = "checkout",
    summary = "Check out: basket asks pricing to price the basket (In-Out, query-result)",
    security(("state_query" = []), ("state_header" = [])),
    responses(
        (status = 200, description = "The priced basket under pricing's token, with pay and cancel links", body = crate::openapi::HalDocument, content_type = "application/hal+json"),
        (status = 401, description = "Missing, invalid or expired token", body = crate::openapi::ProblemDocument, content_type = "application/problem+json"),
        (status = 403, description = "The token does not allow this step here", body = crate::openapi::ProblemDocument, content_type = "application/problem+json"),        (status = 502, description = "Pricing could not be reached or refused", body = crate::openapi::ProblemDocument, content_type = "application/problem+json"),
        (status = 504, description = "Pricing did not answer in time", body = crate::openapi::ProblemDocument, content_type = "application/problem+json"),
    )
)]
pub async fn checkout(State(app): State<AppState>, token: StateToken) -> Result<Response, Problem> {
    let claims = app.verify(&token, Expect::step(Basket, CHECKOUT)).await?;
    let request = app.mint(
        Basket,
        Next::after(&claims, CHECKOUT)
            .to(&[Pricing])
            .allow(&[super::pricing::PRICE]),
    )?;
    let reply = app
        .sender
        .send(Pricing, "/quotes", &request.token, None)
        .await
        .map_err(|e| repair_links(&app, Problem::from(e), &claims, &token))?;
    reply
        .relay(Pricing)
        .map_err(|p| repair_links(&app, p, &claims, &token))
}

/// `POST /basket/checkouts/cancel`: ends the conversation.
#[utoipa::path(
    post, path = "/checkouts/cancel", tag = "basket", operation_id = "cancel_basket",
    summary = "Cancel the checkout",
    security(("state_query" = []), ("state_header" = [])),
    responses(
        (status = 200, description = "The conversation has ended", body = crate::openapi::HalDocument, content_type = "application/hal+json"),
        (status = 401, description = "Missing, invalid or expired token", body = crate::openapi::ProblemDocument, content_type = "application/problem+json"),
        (status = 403, description = "The token does not allow this step here", body = crate::openapi::ProblemDocument, content_type = "application/problem+json"),
    )
)]
pub async fn cancel(State(app): State<AppState>, token: StateToken) -> Result<Hal, Problem> {
    let claims = app.verify(&token, Expect::step(Basket, CANCEL)).await?;
    Ok(Hal::ok(cancelled(&app, &claims)))
}

/// The end of a cancelled checkout, wherever it was cancelled.
pub fn cancelled(app: &App, claims: &Claims) -> Resource {
    Resource::new()
        .field("status", "cancelled")
        .field("conversation", claims.cid)
        .link("start", app.root_href("/"))
        .action(
            START,
            app.href(Basket, "/checkouts"),
            "Start a new checkout",
            vec![],
        )
}

/// Adds the links that repair a basket fault: back to the basket, the menu.
fn repair_links(app: &App, problem: Problem, claims: &Claims, token: &StateToken) -> Problem {
    problem
        .in_conversation(claims.cid)
        .link("basket", app.step_href(Basket, "/checkouts/view", &token.0))
        .link("menu", app.href(Participant::Stores, "/menu"))
}

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(start_checkout))
        .routes(routes!(view))
        .routes(routes!(add_item))
        .routes(routes!(remove_item))
        .routes(routes!(checkout))
        .routes(routes!(cancel))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adding_merges_lines_and_caps_quantities() {
        let mut basket = BasketState::default();
        basket.add("margherita", 2).unwrap();
        basket.add("margherita", 3).unwrap();
        assert_eq!(
            basket.items,
            vec![Line {
                sku: "margherita".into(),
                qty: 5
            }]
        );
        assert_eq!(
            basket.add("margherita", 95).unwrap_err().kind(),
            types::INVALID_QUANTITY
        );
        assert_eq!(
            basket.add("margherita", 0).unwrap_err().kind(),
            types::INVALID_QUANTITY
        );
        assert_eq!(
            basket.add("caviar", 1).unwrap_err().kind(),
            types::UNKNOWN_SKU
        );
    }

    #[test]
    fn removing_reduces_or_drops_a_line() {
        let mut basket = BasketState::default();
        basket.add("diavola", 3).unwrap();
        basket.remove("diavola", Some(1)).unwrap();
        assert_eq!(basket.items[0].qty, 2);
        basket.remove("diavola", None).unwrap();
        assert!(basket.items.is_empty());
        assert_eq!(
            basket.remove("diavola", None).unwrap_err().kind(),
            types::NOT_IN_BASKET
        );
        assert_eq!(basket.steps(), &[VIEW, ADD_ITEM, CANCEL]);
    }
}
