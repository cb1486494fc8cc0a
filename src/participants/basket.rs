//! Basket: a stateless basket whose only storage is the signed token.
//!
//! The conversation starts here (`start-checkout`), and every step is a pure
//! function of the previous token and the step's input: adding an item mints
//! a new token whose `st` is the new basket. Nothing is stored anywhere, so a
//! replayed link simply yields the same basket again (naturally idempotent).
//! `checkout` is the first In-Out exchange of the checkout's turn taking: a
//! query-result request to pricing, whose priced basket (and pricing's own
//! token, which passes control to pricing) becomes the client's response.
//!
//! Its stateful twin (`--basket-state store`, see [`kept`]) keeps the lines
//! in the store instead, so the two can be compared step for step; the
//! representation is the same in both.

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use http::StatusCode;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub mod kept;
mod lines;

pub use self::lines::{AddItem, BasketState, Line, MAX_QUANTITY, RemoveItem, steps_of};
use super::menu::ITEMS;
use crate::app::{App, AppState};
use crate::conversation::token::Minted;
use crate::conversation::{Claims, Expect, Next, StateToken};
use crate::fault::Problem;
use crate::hypermedia::{Deferred, Hal, Property, Resource};
use crate::participant::Participant::{self, Basket, Pricing};

pub const START: &str = "start-checkout";
pub const VIEW: &str = "view";
pub const ADD_ITEM: &str = "add-item";
pub const REMOVE_ITEM: &str = "remove-item";
pub const CHECKOUT: &str = "checkout";
pub const CANCEL: &str = "cancel";

/// The representation of an open basket, its links carrying `minted.token`.
pub fn render(app: &App, minted: &Minted, basket: &BasketState) -> Resource {
    let token = &minted.token;
    let step = |path: &str| app.step_href(Basket, path, token);
    let menu_options = ITEMS.iter().map(|i| (i.name, i.sku));
    let mut resource = Resource::new()
        .field("status", "open")
        .field("conversation", minted.claims.cid)
        .field("turn", minted.claims.seq)
        .field("state", basket)
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
    let minted = kept::start(&app, &basket).await?;
    let resource = render(&app, &minted, &basket);
    let location = app.step_href(Basket, "/checkouts/view", &minted.token);
    Ok((
        [(http::header::LOCATION, location)],
        Hal(StatusCode::CREATED, resource),
    )
        .into_response())
}

/// `GET /basket/checkouts/view`: the basket as the token holds it (no new
/// signature), or as the store keeps it (a new token if the basket changed
/// since this one was minted).
#[utoipa::path(
    get, path = "/checkouts/view", tag = "basket", operation_id = "view_basket",
    summary = "The basket as its token holds it (or, with --basket-state store, as the store keeps it)",
    security(("state_query" = []), ("state_header" = [])),
    responses(
        (status = 200, description = "The basket", body = crate::openapi::HalDocument, content_type = "application/hal+json"),
        (status = 401, description = "Missing, invalid or expired token", body = crate::openapi::ProblemDocument, content_type = "application/problem+json"),
        (status = 403, description = "The token does not allow this step here", body = crate::openapi::ProblemDocument, content_type = "application/problem+json"),
        (status = 410, description = "The basket is no longer kept (--basket-state store)", body = crate::openapi::ProblemDocument, content_type = "application/problem+json"),
    )
)]
pub async fn view(State(app): State<AppState>, token: StateToken) -> Result<Hal, Problem> {
    let claims = app.verify(&token, Expect::step(Basket, VIEW)).await?;
    let (basket, kept) = kept::load(&app, &claims)
        .await
        .map_err(|p| repair_links(&app, p, &claims, &token))?;
    let minted = if kept.is_stale() {
        kept::refresh(&app, &claims, VIEW, &basket, kept)?
    } else {
        Minted {
            token: token.0,
            claims,
        }
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
        (status = 409, description = "The basket changed since this link was issued (--basket-state store)", body = crate::openapi::ProblemDocument, content_type = "application/problem+json"),
        (status = 410, description = "The basket is no longer kept (--basket-state store)", body = crate::openapi::ProblemDocument, content_type = "application/problem+json"),
    )
)]
pub async fn add_item(
    State(app): State<AppState>,
    token: StateToken,
    input: Deferred<AddItem>,
) -> Result<Hal, Problem> {
    let claims = app.verify(&token, Expect::step(Basket, ADD_ITEM)).await?;
    let repair = |p| repair_links(&app, p, &claims, &token);
    let input = input.read().map_err(repair)?;
    let (mut basket, kept) = kept::load_current(&app, &claims).await.map_err(repair)?;
    basket.add(&input.sku, input.quantity).map_err(repair)?;
    let minted = kept::save(&app, &claims, ADD_ITEM, &basket, kept)
        .await
        .map_err(repair)?;
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
        (status = 409, description = "The basket changed since this link was issued (--basket-state store)", body = crate::openapi::ProblemDocument, content_type = "application/problem+json"),
        (status = 410, description = "The basket is no longer kept (--basket-state store)", body = crate::openapi::ProblemDocument, content_type = "application/problem+json"),
    )
)]
pub async fn remove_item(
    State(app): State<AppState>,
    token: StateToken,
    input: Deferred<RemoveItem>,
) -> Result<Hal, Problem> {
    let claims = app
        .verify(&token, Expect::step(Basket, REMOVE_ITEM))
        .await?;
    let repair = |p| repair_links(&app, p, &claims, &token);
    let input = input.read().map_err(repair)?;
    let (mut basket, kept) = kept::load_current(&app, &claims).await.map_err(repair)?;
    basket.remove(&input.sku, input.quantity).map_err(repair)?;
    let minted = kept::save(&app, &claims, REMOVE_ITEM, &basket, kept)
        .await
        .map_err(repair)?;
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
        (status = 403, description = "The token does not allow this step here", body = crate::openapi::ProblemDocument, content_type = "application/problem+json"),
        (status = 409, description = "The conversation was paid already (links to the payment and its order), or the basket changed since this link was issued (--basket-state store)", body = crate::openapi::ProblemDocument, content_type = "application/problem+json"),
        (status = 410, description = "The basket is no longer kept (--basket-state store)", body = crate::openapi::ProblemDocument, content_type = "application/problem+json"),
        (status = 502, description = "Pricing could not be reached or refused", body = crate::openapi::ProblemDocument, content_type = "application/problem+json"),
        (status = 504, description = "Pricing did not answer in time", body = crate::openapi::ProblemDocument, content_type = "application/problem+json"),
    )
)]
pub async fn checkout(State(app): State<AppState>, token: StateToken) -> Result<Response, Problem> {
    let claims = app.verify(&token, Expect::step(Basket, CHECKOUT)).await?;
    let (basket, _) = kept::load_current(&app, &claims)
        .await
        .map_err(|p| repair_links(&app, p, &claims, &token))?;
    let st = serde_json::to_value(&basket).map_err(Problem::internal)?;
    let request = app.mint(
        Basket,
        Next::after(&claims, CHECKOUT)
            .to(&[Pricing])
            .allow(&[super::pricing::PRICE])
            .state(st),
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
