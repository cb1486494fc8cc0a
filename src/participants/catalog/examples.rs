//! The runnable examples behind the catalog's `try` links.
//!
//! Each example plays the client's part over real HTTP, following links from
//! a sample basket (two pizzas) as any client would, and answers with the
//! response that shows the pattern, which links to the conversation.

use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::app::App;
use crate::conversation::token::Minted;
use crate::conversation::{Next, Pattern};
use crate::fault::Problem;
use crate::hypermedia::Hal;
use crate::messaging::sender::Reply;
use crate::participant::Participant::{self, Basket, Pricing, Stores};
use crate::participants::basket::{self, BasketState, Line};

/// The card that always succeeds.
const GOOD_CARD: &str = "4242424242424242";
/// The card that answers only after the requestor's timeout.
const SLOW_CARD: &str = "4000000000000259";

/// Runs the example of an available pattern.
pub async fn run(app: &App, slug: &str) -> Result<Response, Problem> {
    match slug {
        "stateless-requestor" => {
            let (minted, basket) = sample_basket(app)?;
            Ok(Hal(
                http::StatusCode::CREATED,
                basket::render(app, &minted, &basket),
            )
            .into_response())
        }
        "in-out-query" => priced(app).await?.relay(Pricing),
        "in-out-command"
        | "in-only"
        | "out-only"
        | "journals"
        | "transactional-outbox"
        | "transactional-inbox" => pay(app, GOOD_CARD, false).await?.relay(Pricing),
        "stateful-requestor" => pay(app, SLOW_CARD, true).await?.relay(Pricing),
        "robust-out-only" => impossible_store_update(app).await?.relay(Stores),
        other => Err(Problem::internal(format!(
            "available pattern {other} has no example"
        ))),
    }
}

fn sample_basket(app: &App) -> Result<(Minted, BasketState), Problem> {
    let basket = BasketState {
        items: vec![Line {
            sku: "margherita".into(),
            qty: 2,
        }],
    };
    let st = serde_json::to_value(&basket).map_err(Problem::internal)?;
    let minted = app.mint(
        Basket,
        Next::start(Pattern::Exchange, basket::START)
            .to(&[Basket])
            .allow(basket::steps_of(&basket))
            .state(st),
    )?;
    Ok((minted, basket))
}

/// The sample basket, checked out: basket asks pricing (query-result).
async fn priced(app: &App) -> Result<Reply, Problem> {
    let (minted, _) = sample_basket(app)?;
    let checkout = app.step_href(Basket, "/checkouts/checkout", &minted.token);
    Ok(app.sender.follow(Basket, &checkout, None, &[]).await?)
}

/// The sample basket, checked out and paid.
async fn pay(app: &App, card: &str, respond_async: bool) -> Result<Reply, Problem> {
    let priced = priced(app).await?;
    let pay = link(&priced, "pay", Pricing)?;
    let headers: &[(&str, &str)] = if respond_async {
        &[("prefer", "respond-async")]
    } else {
        &[]
    };
    Ok(app
        .sender
        .follow(
            Pricing,
            &pay,
            Some(&json!({ "card_number": card })),
            headers,
        )
        .await?)
}

/// The store whose listing the Robust Out-Only example breaks (closed, so
/// the open stores stay where search finds them).
const EXAMPLE_STORE: &str = "night-owl";

/// Robust Out-Only, the faulty path: a store update with an impossible
/// latitude, which search cannot index. The answer is the updated listing;
/// its `listing` link shows it become `needs-attention` once search's fault
/// has arrived, with a `repair` link.
async fn impossible_store_update(app: &App) -> Result<Reply, Problem> {
    let update = app.href(Stores, &format!("/stores/{EXAMPLE_STORE}/update"));
    Ok(app
        .sender
        .follow(Stores, &update, Some(&json!({ "lat": 123.4 })), &[])
        .await?)
}

fn link(reply: &Reply, rel: &str, from: Participant) -> Result<String, Problem> {
    reply.body["_links"][rel]["href"]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| {
            Problem::internal(format!(
                "{from} answered {} without a `{rel}` link",
                reply.status
            ))
        })
}
