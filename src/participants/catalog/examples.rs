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
use crate::participant::Participant::{self, Basket, Deliveries, Pricing};
use crate::participants::basket::{self, BasketState, Line};

/// The card that always succeeds.
const GOOD_CARD: &str = "4242424242424242";
/// The card that answers only after the requestor's timeout.
const SLOW_CARD: &str = "4000000000000259";
/// The card that is always declined.
const DECLINED_CARD: &str = "4000000000000002";

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
        // The faulty paths: each answers with what the client sees.
        "robust-in-out" => relay_fault(pay(app, DECLINED_CARD, false).await?),
        "in-out-retry" => pay(app, SLOW_CARD, false).await?.relay(Pricing),
        "no-fault" => pay_closed_store(app, false).await?.relay(Pricing),
        "robust-in-only" => pay_closed_store(app, true).await?.relay(Pricing),
        "out-in" | "subscriber-tracking" => solicit(app).await?.relay(Deliveries),
        "process-manager" => delivery(app).await?.relay(Deliveries),
        other => Err(Problem::internal(format!(
            "available pattern {other} has no example"
        ))),
    }
}

fn sample_basket(app: &App) -> Result<(Minted, BasketState), Problem> {
    basket_of(
        app,
        BasketState {
            items: vec![Line {
                sku: "margherita".into(),
                qty: 2,
            }],
        },
    )
}

fn basket_of(app: &App, basket: BasketState) -> Result<(Minted, BasketState), Problem> {
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
    let (_, basket) = sample_basket(app)?;
    priced_basket(app, &basket).await
}

async fn priced_basket(app: &App, basket: &BasketState) -> Result<Reply, Problem> {
    let (minted, _) = basket_of(app, basket.clone())?;
    let checkout = app.step_href(Basket, "/checkouts/checkout", &minted.token);
    Ok(app.sender.follow(Basket, &checkout, None, &[]).await?)
}

/// A fault is the example's answer: the client sees it as it is.
fn relay_fault(reply: Reply) -> Result<Response, Problem> {
    let mut response = (reply.status, reply.body.to_string()).into_response();
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static(crate::fault::PROBLEM_JSON),
    );
    Ok(response)
}

/// Pancakes from the closed store, paid: orders cannot place the order.
async fn pay_closed_store(app: &App, robust: bool) -> Result<Reply, Problem> {
    let basket = BasketState {
        items: vec![Line {
            sku: "pancakes".into(),
            qty: 1,
        }],
    };
    let priced = priced_basket(app, &basket).await?;
    let pay = link(&priced, "pay", Pricing)?;
    Ok(app
        .sender
        .follow(
            Pricing,
            &pay,
            Some(&json!({ "card_number": GOOD_CARD, "robust": robust })),
            &[],
        )
        .await?)
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

/// Deliveries solicits its couriers for a pickup at the first store.
async fn solicit(app: &App) -> Result<Reply, Problem> {
    let store = crate::participants::menu::STORES[0];
    let url = app.href(Deliveries, "/solicitations");
    let body = json!({ "pickup": { "lat": store.lat, "lon": store.lon } });
    Ok(app
        .sender
        .follow(Deliveries, &url, Some(&body), &[])
        .await?)
}

/// Deliveries starts a delivery saga from the first store to a drop-off nearby.
async fn delivery(app: &App) -> Result<Reply, Problem> {
    let store = crate::participants::menu::STORES[0];
    let url = app.href(Deliveries, "/deliveries");
    let body = json!({
        "pickup": { "lat": store.lat, "lon": store.lon },
        "dropoff": { "lat": store.lat + 0.01, "lon": store.lon + 0.01 },
        "size": "medium",
        "weight_kg": 2.0,
    });
    Ok(app
        .sender
        .follow(Deliveries, &url, Some(&body), &[])
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
