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
use crate::hypermedia::{Hal, Resource};
use crate::messaging::sender::Reply;
use crate::participant::Participant::{self, Basket, Deliveries, Pricing, Stores};
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
        | "transactional-outbox"
        | "transactional-inbox"
        | "turn-taking" => pay(app, GOOD_CARD, false).await?.relay(Pricing),
        "journals" => journals(app, pay(app, GOOD_CARD, false).await?),
        "stateful-requestor" => pay(app, SLOW_CARD, true).await?.relay(Pricing),
        // The faulty paths: each answers with what the client sees.
        "robust-in-out" => relay_fault(pay(app, DECLINED_CARD, false).await?),
        "in-out-retry" => pay(app, SLOW_CARD, false).await?.relay(Pricing),
        "no-fault" => pay_closed_store(app, false).await?.relay(Pricing),
        "robust-in-only" => pay_closed_store(app, true).await?.relay(Pricing),
        "out-in" | "subscriber-tracking" => solicit(app).await?.relay(Deliveries),
        "robust-out-only" => impossible_store_update(app).await?.relay(Stores),
        "routing-slip" => routing_slip(app).await?.relay(Basket),
        "process-manager" => delivery(app).await?.relay(Deliveries),
        other => Err(Problem::internal(format!(
            "available pattern {other} has no example"
        ))),
    }
}

/// A paid checkout, answered with the way to its transcript: the
/// conversation merged from every participant's journal.
fn journals(app: &App, paid: Reply) -> Result<Response, Problem> {
    let Some(cid) = paid.body["conversation"]
        .as_str()
        .filter(|_| paid.status.is_success())
        .map(str::to_owned)
    else {
        return paid.relay(Pricing);
    };
    let conversation = app.root_href(&format!("/conversations/{cid}"));
    let mut resource = Resource::new()
        .field("status", &paid.body["status"])
        .field("conversation", &cid)
        .field(
            "detail",
            "A checkout was paid: basket, pricing, payments and orders each journaled their side. \
             Follow `conversation` for the merged transcript; orders' side appears once the In-Only order is placed.",
        )
        .titled_link(
            "conversation",
            conversation.clone(),
            "The conversation, rebuilt from the journals and checked against its chain digest",
        )
        .titled_link(
            "mermaid",
            conversation,
            "The same, as a Mermaid sequence diagram: GET with `Accept: text/vnd.mermaid`",
        );
    if let Some(order) = paid.body["_links"]["order"]["href"].as_str() {
        resource = resource.titled_link("order", order, "The order the checkout raised");
    }
    Ok(Hal::ok(resource.link("start", app.root_href("/"))).into_response())
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

/// A slip through every step but `notify`, started as a client would.
async fn routing_slip(app: &App) -> Result<Reply, Problem> {
    let start = app.root_href("/routing-slips");
    let body = crate::flows::routing_slip::example();
    Ok(app.sender.follow(Basket, &start, Some(&body), &[]).await?)
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
