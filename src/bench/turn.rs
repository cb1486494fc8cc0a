//! `turn`: one stateless step of the basket, over and over; `turn-stateful`:
//! the same step with the basket kept in the store; and `token-growth`: how
//! long the token is after many turns.
//!
//! Each worker opens one basket, then alternately follows its `add-item`
//! and `remove-item` links. Either step is a whole stateless turn: verify the
//! token, change the basket, sign one new token, render the HAL document
//! whose links carry it. Nothing is read from or written to a store for the
//! basket (the journal batcher records the turn off the request path).
//! Alternating keeps the basket, and so the token, the same size however
//! long the run, so the figure does not drift with the run's length.
//!
//! `turn-stateful` is the very same workload against a server started with
//! `--basket-state store`: the token then carries only the basket's version,
//! and each turn also reads the basket from the store and writes it back
//! with a compare-and-set. Each worker first checks that the server really
//! keeps its basket there (an older link must be refused as stale), so the
//! figure cannot be taken against a stateless server by mistake.
//!
//! `view` takes a turn apart: each worker holds a basket with one item and
//! follows its `self` link again and again. The server verifies the token
//! and renders the very answer an `add-item` turn sends (the same links and
//! templates, the same token in each), but signs nothing and journals
//! nothing (a read step), so `view` against `turn` is what the mint, the
//! journal and the request body cost, and `view` against `baseline` what
//! verifying and carrying the conversation's links cost. Each answer must
//! carry the very token the request did, so the figure cannot be taken
//! against a server that signs on a read.

use std::sync::Arc;
use std::time::Instant;

use serde_json::json;

use super::client::{Doc, Failure, Http};
use super::driver::{self, Options, Steps, Workload};
use super::report::Report;

/// The item the bench adds and removes.
pub const SKU: &str = "margherita";

/// The add/remove turn; `stateful` checks that the server keeps baskets in its store.
struct Turn {
    stateful: bool,
}

/// A worker's basket: its latest links, and whether it holds the item.
pub(crate) struct Basket {
    doc: Doc,
    holds_item: bool,
}

impl Basket {
    /// A new, empty basket.
    async fn open(http: &Http) -> Result<Basket, Failure> {
        Ok(Basket {
            doc: start(http).await?,
            holds_item: false,
        })
    }
}

/// Starts a basket (`POST /basket/checkouts`, 201).
pub(crate) async fn start(http: &Http) -> Result<Doc, Failure> {
    http.post("/basket/checkouts", None, &[], 201).await
}

/// Takes the basket's next turn: add the item, or remove it again.
async fn next_turn(http: &Http, basket: &mut Basket) -> Result<&'static str, Failure> {
    let (step, body) = if basket.holds_item {
        ("remove-item", json!({ "sku": SKU }))
    } else {
        ("add-item", json!({ "sku": SKU, "quantity": 1 }))
    };
    basket.doc = http
        .post(basket.doc.link(step)?, Some(&body), &[], 200)
        .await?;
    basket.holds_item = !basket.holds_item;
    Ok(step)
}

impl Workload for Turn {
    type Worker = Basket;

    async fn begin(&self, http: &Http) -> Result<Basket, Failure> {
        let mut basket = Basket::open(http).await?;
        if self.stateful {
            let first = basket.doc.link("add-item")?.to_owned();
            next_turn(http, &mut basket).await?;
            let body = json!({ "sku": SKU });
            http.post(&first, Some(&body), &[], 409)
                .await
                .map_err(|f| {
                    Failure(format!(
                        "{f}: an older link was not refused as stale; is the server's --basket-state store?"
                    ))
                })?;
        }
        Ok(basket)
    }

    async fn iterate(
        &self,
        http: &Http,
        basket: &mut Basket,
        _: &mut Steps,
    ) -> Result<(), Failure> {
        next_turn(http, basket).await.map(drop)
    }
}

/// The `view` read: a basket with one item, its `self` link followed.
struct View;

impl Workload for View {
    /// The basket's `self` href.
    type Worker = String;

    async fn begin(&self, http: &Http) -> Result<String, Failure> {
        let mut basket = Basket::open(http).await?;
        next_turn(http, &mut basket).await?;
        Ok(basket.doc.link("self")?.to_owned())
    }

    async fn iterate(&self, http: &Http, href: &mut String, _: &mut Steps) -> Result<(), Failure> {
        let doc = http.get(href, 200).await?;
        if doc.link("self")? == href.as_str() {
            Ok(())
        } else {
            Err(Failure(
                "GET view: the answer carries a new token; a read should not sign".to_owned(),
            ))
        }
    }
}

/// Runs `view`: the basket read through its `self` link, each one request.
pub async fn view(options: &Options) -> anyhow::Result<Report> {
    let http = Http::new(&options.target, options.concurrency)?;
    Ok(driver::drive("view", "requests", options, &http, Arc::new(View))
        .await
        .note("one read of a basket with one item: verify the token, render the same answer as a turn; no signature, no journal"))
}

/// Runs `turn`: add-item / remove-item turns, each one request.
pub async fn turn(options: &Options) -> anyhow::Result<Report> {
    let http = Http::new(&options.target, options.concurrency)?;
    let turn = Arc::new(Turn { stateful: false });
    Ok(driver::drive("turn", "requests", options, &http, turn)
        .await
        .note("one stateless turn per request: verify, add or remove an item, sign, render"))
}

/// Runs `turn-stateful`: the same turns against a server that keeps its
/// baskets in the store (`--basket-state store`).
pub async fn turn_stateful(options: &Options) -> anyhow::Result<Report> {
    let http = Http::new(&options.target, options.concurrency)?;
    let turn = Arc::new(Turn { stateful: true });
    Ok(driver::drive("turn-stateful", "requests", options, &http, turn)
        .await
        .note("one turn per request with the basket in the store: verify, read the basket, add or remove an item, compare-and-set it, sign, render"))
}

/// Runs `token-growth`: `turns` add/remove turns on one basket, one after
/// the other, reporting the token's length before and after.
pub async fn token_growth(target: &str, turns: usize) -> anyhow::Result<Report> {
    let http = Http::new(target, 1)?;
    let mut basket = Basket::open(&http).await.map_err(anyhow::Error::msg)?;
    let initial = basket.doc.token("self").map_err(anyhow::Error::msg)?.len();
    let mut longest = initial;
    let mut steps = Steps::default();
    let began = Instant::now();
    for _ in 0..turns {
        let step = next_turn(&http, &mut basket);
        steps.time("turn", step).await.map_err(anyhow::Error::msg)?;
        longest = longest.max(basket.doc.token("self").map_err(anyhow::Error::msg)?.len());
    }
    let seconds = began.elapsed().as_secs_f64();
    let last = basket.doc.token("self").map_err(anyhow::Error::msg)?.len();
    let mut report = Report {
        scenario: "token-growth".to_owned(),
        unit: "turns",
        concurrency: 1,
        seconds,
        count: turns as u64,
        rate: turns as f64 / seconds.max(1e-9),
        errors: 0,
        first_error: None,
        latency: steps.percentiles("turn"),
        steps: Default::default(),
        extra: Default::default(),
        notes: Vec::new(),
    };
    report = report
        .with("turns", turns)
        .with("token_bytes_at_start", initial)
        .with("token_bytes_after", last)
        .with("token_bytes_longest", longest)
        .note("one basket, add and remove alternately: the state returns to where it began, the chain claim keeps its size, only `seq` grows");
    Ok(report)
}
