//! `checkout`: the whole checkout conversation per iteration; and
//! `pay-async`: its payment turn taken asynchronously, the way pricing
//! keeps its pending state either in the token or in its store.
//!
//! A checkout is four requests, each to a link of the previous answer:
//! start (basket, 201) → add-item (basket) → checkout (basket asks pricing,
//! In-Out query-result) → pay (pricing takes the payment from payments,
//! command-acknowledgement, then raises the order In-Only through its outbox:
//! the relay delivers it to orders after the client has its answer).
//!
//! `pay-async` takes `pay` with `Prefer: respond-async`: pricing's pending
//! state then goes either in the signed Reply-To continuation
//! (`--requestor-state token`, the default) or in its correlation store
//! (`--requestor-state store`), the talk's stateless and stateful requestor.
//! Run it against one server of each kind to compare; the reported latency
//! is the `pay` step's alone. (The stateful twin of the basket's own turn is
//! `turn-stateful`, in `turn.rs`.)

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use serde_json::json;

use super::client::{Failure, Http};
use super::driver::{self, Options, Steps, Workload};
use super::report::Report;
use super::turn;

/// The test card that always succeeds.
pub const CARD: &str = "4242424242424242";

/// The checkout conversation; `paid` counts the orders it raised.
#[derive(Default)]
pub(crate) struct Checkout {
    respond_async: bool,
    pub paid: AtomicU64,
    /// When set, the ids of the orders raised (from each answer's `order` link).
    pub orders: Option<Mutex<HashSet<String>>>,
}

impl Checkout {
    pub fn synchronous() -> Self {
        Checkout::default()
    }

    /// A synchronous checkout that remembers the orders it raised.
    pub fn remembering_orders() -> Self {
        Checkout {
            orders: Some(Mutex::default()),
            ..Checkout::default()
        }
    }
}

impl Workload for Checkout {
    type Worker = ();

    async fn begin(&self, _: &Http) -> Result<(), Failure> {
        Ok(())
    }

    async fn iterate(&self, http: &Http, _: &mut (), steps: &mut Steps) -> Result<(), Failure> {
        let basket = steps.time("start", turn::start(http)).await?;
        let body = json!({ "sku": turn::SKU, "quantity": 2 });
        let basket = steps
            .time(
                "add-item",
                http.post(basket.link("add-item")?, Some(&body), &[], 200),
            )
            .await?;
        let priced = steps
            .time(
                "checkout",
                http.post(basket.link("checkout")?, None, &[], 200),
            )
            .await?;
        let card = json!({ "card_number": CARD });
        let (headers, expect, status): (&[_], _, _) = if self.respond_async {
            (&[("prefer", "respond-async")], 202, "payment-pending")
        } else {
            (&[], 200, "paid")
        };
        let paid = steps
            .time(
                "pay",
                http.post(priced.link("pay")?, Some(&card), headers, expect),
            )
            .await?;
        if paid.state_status.as_deref() != Some(status) {
            return Err(Failure(format!(
                "pay answered status {:?}, not {status}",
                paid.state_status
            )));
        }
        if let Some(orders) = &self.orders {
            let order = paid.link("order")?;
            let id = order.rsplit('/').next().unwrap_or(order).to_owned();
            orders.lock().expect("orders lock").insert(id);
        }
        self.paid.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
}

/// The asynchronous payment turn: its latency is what is reported.
struct PayAsync(Checkout);

impl Workload for PayAsync {
    type Worker = ();
    const MEASURED_STEP: Option<&'static str> = Some("pay");

    async fn begin(&self, _: &Http) -> Result<(), Failure> {
        Ok(())
    }

    async fn iterate(&self, http: &Http, w: &mut (), steps: &mut Steps) -> Result<(), Failure> {
        self.0.iterate(http, w, steps).await
    }
}

/// Runs `checkout`: whole conversations, reported per conversation.
pub async fn checkout(options: &Options) -> anyhow::Result<Report> {
    let http = Http::new(&options.target, options.concurrency)?;
    let report = driver::drive(
        "checkout",
        "conversations",
        options,
        &http,
        Arc::new(Checkout::synchronous()),
    )
    .await;
    Ok(report.note(
        "a conversation = start, add-item, checkout (→ pricing), pay (→ payments; order raised In-Only via the outbox, delivered after the answer)",
    ))
}

/// Runs `pay-async`: the asynchronous `pay` turn (see the module docs).
pub async fn pay_async(options: &Options) -> anyhow::Result<Report> {
    let http = Http::new(&options.target, options.concurrency)?;
    let workload = PayAsync(Checkout {
        respond_async: true,
        ..Checkout::default()
    });
    let report = driver::drive(
        "pay-async",
        "conversations",
        options,
        &http,
        Arc::new(workload),
    )
    .await;
    Ok(report.note(
        "pricing's `pay` with Prefer: respond-async, whose pending state is in the token or the store per the server's --requestor-state; latency is the pay step's; the rate counts whole conversations (start, add-item, checkout, pay)",
    ))
}
