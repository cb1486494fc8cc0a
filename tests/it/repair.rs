//! Repair and clarification: every fault rule of the talk, for real.

use std::time::Duration;

use conversant::messaging::chaos::ChaosConfig;
use serde_json::{Value, json};

use crate::exchanges::{eventually_ok, priced};
use crate::support::{Response, TestApp, spawn_app, spawn_with};

/// A basket with an item from the closed store, priced.
async fn priced_from_closed_store(app: &TestApp) -> Response {
    let basket = app.post_empty("/basket/checkouts").await;
    let basket = app
        .post_json(&basket.link("add-item"), json!({ "sku": "pancakes" }))
        .await;
    let priced = app.post_empty(&basket.link("checkout")).await;
    assert_eq!(priced.status, 200, "{:#}", priced.body);
    priced
}

/// Polls `url` until `field` equals `value`.
async fn eventually(app: &TestApp, url: &str, field: &str, value: &str) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let response = app.get(url).await;
        if response.body[field] == value {
            return response.body;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{url}: {field} never became {value}: {:#}",
            response.body
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

fn payment_url(app: &TestApp, paid: &Response) -> String {
    app.url(&format!(
        "/payments/payments/{}",
        paid.body["state"]["payment"]["payment_id"]
            .as_str()
            .unwrap()
    ))
}

#[tokio::test]
async fn no_fault_an_in_only_failure_stays_with_orders_as_a_dead_letter() {
    let app = spawn_app().await;
    let priced = priced_from_closed_store(&app).await;
    let paid = app
        .post_json(
            &priced.link("pay"),
            json!({ "card_number": "4242424242424242", "robust": false }),
        )
        .await;
    assert_eq!(
        paid.status, 200,
        "the requestor holds its answer: {:#}",
        paid.body
    );
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let letters = loop {
        let letters = app.get("/orders/dead-letters").await;
        if letters.body["count"] == 1 {
            break letters;
        }
        assert!(tokio::time::Instant::now() < deadline, "{:#}", letters.body);
        tokio::time::sleep(Duration::from_millis(25)).await;
    };
    let letter = &letters.body["_embedded"]["dead-letters"][0];
    assert!(
        letter["last_error"]
            .as_str()
            .unwrap()
            .starts_with("store-closed")
    );
    assert_eq!(letter["attempts"], 0, "the relay never sent it");
    assert!(letter["_links"]["redeliver"]["href"].is_string());
    assert_eq!(
        app.get(&paid.link("order")).await.status,
        404,
        "no order was placed"
    );
    let payment = app.get(&payment_url(&app, &paid)).await;
    assert_eq!(
        payment.body["status"], "captured",
        "the requestor never heard, so nothing was refunded"
    );
}

#[tokio::test]
async fn robust_in_only_a_closed_store_faults_back_and_the_checkout_refunds() {
    let app = spawn_app().await;
    let priced = priced_from_closed_store(&app).await;
    let paid = app
        .post_json(
            &priced.link("pay"),
            json!({ "card_number": "4242424242424242" }),
        )
        .await;
    assert_eq!(paid.status, 200);
    let order = eventually(&app, &paid.link("order"), "status", "rejected").await;
    assert_eq!(order["reason"], "store-closed");
    eventually(&app, &payment_url(&app, &paid), "status", "refunded").await;
}

#[tokio::test]
async fn robust_in_only_an_address_outside_the_area_is_refunded_too() {
    let app = spawn_app().await;
    let priced = priced(&app).await;
    let paid = app
        .post_json(
            &priced.link("pay"),
            json!({ "card_number": "4242424242424242", "address": { "lat": 48.8566, "lon": 2.3522 } }),
        )
        .await;
    assert_eq!(paid.status, 200);
    let order = eventually(&app, &paid.link("order"), "status", "rejected").await;
    assert_eq!(order["reason"], "outside-delivery-area");
    eventually(&app, &payment_url(&app, &paid), "status", "refunded").await;
}

#[tokio::test]
async fn robust_in_out_insufficient_funds_is_its_own_fault() {
    let app = spawn_app().await;
    let priced = priced(&app).await;
    let fault = app
        .post_json(
            &priced.link("pay"),
            json!({ "card_number": "4000000000009995" }),
        )
        .await;
    assert_eq!(fault.status, 402);
    assert_eq!(fault.problem_type(), "/problems/insufficient-funds");
    assert!(fault.has_link("pay") && fault.has_link("cancel"));
    assert!(
        !fault.has_link("retry"),
        "retrying the same card will not help"
    );
}

#[tokio::test]
async fn robust_in_out_an_unavailable_processor_says_when_to_retry() {
    let app = spawn_app().await;
    let priced = priced(&app).await;
    let fault = app
        .post_json(
            &priced.link("pay"),
            json!({ "card_number": "4000000000000119" }),
        )
        .await;
    assert_eq!(fault.status, 503, "{:#}", fault.body);
    assert_eq!(fault.problem_type(), "/problems/processor-unavailable");
    assert!(fault.headers.get("retry-after").is_some());
    assert!(fault.has_link("retry") && fault.has_link("pay") && fault.has_link("cancel"));
}

#[tokio::test]
async fn in_out_retry_a_slow_card_is_answered_on_the_retry_and_charged_once() {
    let app = spawn_with(|c| {
        c.slow_card_delay = Duration::from_millis(700);
        c.peer_timeout = Duration::from_millis(250);
    })
    .await;
    let priced = priced(&app).await;
    let paid = app
        .post_json(
            &priced.link("pay"),
            json!({ "card_number": "4000000000000259" }),
        )
        .await;
    assert_eq!(
        paid.status, 200,
        "the retry got the stored acknowledgement: {:#}",
        paid.body
    );
    assert_eq!(captured_in(&app, &paid).await, 1);
}

#[tokio::test]
async fn in_out_retry_the_first_reply_is_dropped_and_the_payment_is_taken_once() {
    let app = spawn_with(|c| {
        c.peer_timeout = Duration::from_millis(300);
        c.chaos = ChaosConfig::parse("payments:drop-first=1").unwrap();
    })
    .await;
    let priced = priced(&app).await;
    let paid = app
        .post_json(
            &priced.link("pay"),
            json!({ "card_number": "4242424242424242" }),
        )
        .await;
    assert_eq!(paid.status, 200, "{:#}", paid.body);
    assert_eq!(captured_in(&app, &paid).await, 1);
}

#[tokio::test]
async fn without_retries_a_timeout_offers_a_retry_that_charges_nothing_twice() {
    let app = spawn_with(|c| {
        c.slow_card_delay = Duration::from_millis(600);
        c.peer_timeout = Duration::from_millis(200);
        c.exchange_retry = conversant::messaging::outbox::RetrySchedule(vec![]);
    })
    .await;
    let priced = priced(&app).await;
    let timed_out = app
        .post_json(
            &priced.link("pay"),
            json!({ "card_number": "4000000000000259" }),
        )
        .await;
    assert_eq!(timed_out.status, 504, "{:#}", timed_out.body);
    let paid = app
        .post_json(
            &timed_out.link("retry"),
            json!({ "card_number": "4000000000000259" }),
        )
        .await;
    assert_eq!(paid.status, 200, "{:#}", paid.body);
    assert_eq!(captured_in(&app, &paid).await, 1);
}

#[tokio::test]
async fn fifty_concurrent_duplicates_of_one_payment_charge_once() {
    let app = spawn_app().await;
    let priced = priced(&app).await;
    let pay = priced.link("pay");
    let attempts = (0..50).map(|_| {
        let (client, pay) = (app.client.clone(), pay.clone());
        tokio::spawn(async move {
            let response = client
                .post(pay)
                .json(&json!({ "card_number": "4242424242424242" }))
                .send()
                .await
                .unwrap();
            let status = response.status().as_u16();
            (status, response.json::<Value>().await.unwrap())
        })
    });
    let mut payment_ids = std::collections::HashSet::new();
    let mut order_ids = std::collections::HashSet::new();
    for attempt in attempts {
        let (status, body) = attempt.await.unwrap();
        assert_eq!(status, 200, "{body:#}");
        payment_ids.insert(
            body["state"]["payment"]["payment_id"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
        order_ids.insert(body["order_id"].as_str().unwrap().to_owned());
    }
    assert_eq!(order_ids.len(), 1, "every duplicate raised the one order");
    assert_eq!(payment_ids.len(), 1, "every duplicate got the one payment");
    let paid = Response {
        status: 200,
        headers: Default::default(),
        body: json!({ "state": { "payment": { "payment_id": payment_ids.into_iter().next().unwrap() } } }),
    };
    assert_eq!(captured_in(&app, &paid).await, 1);
    let order_id = order_ids.into_iter().next().unwrap();
    let order = eventually_ok(&app, &app.url(&format!("/orders/orders/{order_id}"))).await;
    assert_eq!(order.status, 200);
}

/// How many payments were captured in the paid checkout's conversation.
async fn captured_in(app: &TestApp, paid: &Response) -> usize {
    let payment = app.get(&payment_url(app, paid)).await;
    assert_eq!(payment.body["status"], "captured");
    let conversation = payment.body["conversation_id"].as_str().unwrap().to_owned();
    let payments = app
        .get(&format!("/payments/payments?conversation={conversation}"))
        .await;
    payments.body["_embedded"]["payments"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["status"] == "captured")
        .count()
}

#[tokio::test]
async fn idempotency_keys_replay_refuse_in_flight_and_refuse_another_body() {
    let app = spawn_app().await;
    let basket = app.post_empty("/basket/checkouts").await;
    let add = basket.link("add-item");
    let send = |key: &'static str, body: Value| {
        let (client, add) = (app.client.clone(), add.clone());
        async move {
            let response = client
                .post(add)
                .header("idempotency-key", key)
                .json(&body)
                .send()
                .await
                .unwrap();
            let replayed = response.headers().get("idempotent-replayed").is_some();
            (
                response.status().as_u16(),
                replayed,
                response.json::<Value>().await.unwrap(),
            )
        }
    };
    let (status, replayed, first) = send("k-1", json!({ "sku": "tiramisu" })).await;
    assert_eq!((status, replayed), (200, false));
    let (status, replayed, again) = send("k-1", json!({ "sku": "tiramisu" })).await;
    assert_eq!((status, replayed), (200, true));
    assert_eq!(again, first, "the stored response, token and all");
    let (status, _, other) = send("k-1", json!({ "sku": "diavola" })).await;
    assert_eq!(status, 422);
    assert_eq!(other["type"], "/problems/idempotency-key-reused");

    let slow = spawn_with(|c| {
        c.chaos = ChaosConfig::parse("basket:delay=400ms").unwrap();
    })
    .await;
    let basket = slow.post_empty("/basket/checkouts").await;
    let add = basket.link("add-item");
    let first = {
        let (client, add) = (slow.client.clone(), add.clone());
        tokio::spawn(async move {
            client
                .post(add)
                .header("idempotency-key", "k-2")
                .json(&json!({ "sku": "tiramisu" }))
                .send()
                .await
                .unwrap()
                .status()
        })
    };
    tokio::time::sleep(Duration::from_millis(150)).await;
    let second = slow
        .client
        .post(&add)
        .header("idempotency-key", "k-2")
        .json(&json!({ "sku": "tiramisu" }))
        .send()
        .await
        .unwrap();
    assert_eq!(second.status(), 409);
    assert!(second.headers().get("retry-after").is_some());
    assert_eq!(first.await.unwrap(), 200);
}
