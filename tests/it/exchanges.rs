//! The message exchange patterns between real participants over HTTP:
//! In-Out command-acknowledgement (sync and async, stateless and stateful
//! requestor), In-Only, Out-Only with webhooks and the pull feed.

use std::time::Duration;

use conversant::config::RequestorState;
use conversant::messaging::webhooks;
use serde_json::{Value, json};

use crate::receiver::Receiver;
use crate::support::{Response, TestApp, spawn_app, spawn_with};

/// Walks a new checkout to a priced basket holding two pizzas.
pub async fn priced(app: &TestApp) -> Response {
    let basket = app.post_empty("/basket/checkouts").await;
    let basket = app
        .post_json(
            &basket.link("add-item"),
            json!({ "sku": "margherita", "quantity": 2 }),
        )
        .await;
    let priced = app.post_empty(&basket.link("checkout")).await;
    assert_eq!(priced.status, 200, "{:#}", priced.body);
    priced
}

/// GETs `url` until it answers 200 (In-Only effects appear a moment later).
pub async fn eventually_ok(app: &TestApp, url: &str) -> Response {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let response = app.get(url).await;
        if response.status == 200 || tokio::time::Instant::now() > deadline {
            return response;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

#[tokio::test]
async fn paying_takes_the_payment_and_raises_the_order_in_only() {
    let app = spawn_app().await;
    let priced = priced(&app).await;
    let paid = app
        .post_json(
            &priced.link("pay"),
            json!({ "card_number": "4242 4242 4242 4242" }),
        )
        .await;
    assert_eq!(paid.status, 200, "{:#}", paid.body);
    assert_eq!(paid.body["status"], "paid");
    let payment = &paid.body["state"]["payment"];
    assert_eq!(payment["last4"], "4242");
    assert_eq!(payment["amount"], 2 * 950 + 250);
    assert!(
        !paid.body.to_string().contains("4242424242424242"),
        "no card number anywhere"
    );

    let order = eventually_ok(&app, &paid.link("order")).await;
    assert_eq!(order.status, 200, "{:#}", order.body);
    assert_eq!(order.body["status"], "placed");
    assert_eq!(order.body["payment_id"], payment["payment_id"]);
    assert_eq!(
        order.body["conversation"].as_str(),
        None,
        "orders names it conversation_id"
    );
    assert_eq!(order.body["conversation_id"], paid.body["conversation"]);
}

#[tokio::test]
async fn a_card_failing_the_luhn_check_is_refused_422() {
    let app = spawn_app().await;
    let priced = priced(&app).await;
    let refused = app
        .post_json(
            &priced.link("pay"),
            json!({ "card_number": "4242424242424241" }),
        )
        .await;
    assert_eq!(refused.status, 422);
    assert_eq!(refused.problem_type(), "/problems/invalid-card");
}

#[tokio::test]
async fn a_declined_card_is_a_fault_with_links_to_pay_again() {
    let app = spawn_app().await;
    let priced = priced(&app).await;
    let declined = app
        .post_json(
            &priced.link("pay"),
            json!({ "card_number": "4000000000000002" }),
        )
        .await;
    assert_eq!(declined.status, 402, "{:#}", declined.body);
    assert_eq!(declined.problem_type(), "/problems/card-declined");
    assert_eq!(declined.body["conversation"], priced.body["conversation"]);
    let paid = app
        .post_json(
            &declined.link("pay"),
            json!({ "card_number": "4242424242424242" }),
        )
        .await;
    assert_eq!(paid.status, 200, "{:#}", paid.body);
    // The declined attempt's `cancel` still verifies, but the checkout is paid now.
    let too_late = app.post_empty(&declined.link("cancel")).await;
    assert_eq!(too_late.problem_type(), "/problems/already-paid");
}

#[tokio::test]
async fn paying_twice_with_the_same_link_charges_once() {
    let app = spawn_app().await;
    let priced = priced(&app).await;
    let first = app
        .post_json(
            &priced.link("pay"),
            json!({ "card_number": "4242424242424242" }),
        )
        .await;
    let second = app
        .post_json(
            &priced.link("pay"),
            json!({ "card_number": "4242424242424242" }),
        )
        .await;
    assert_eq!(first.status, 200);
    assert_eq!(second.status, 200);
    assert_eq!(
        first.body["state"]["payment"]["payment_id"], second.body["state"]["payment"]["payment_id"],
        "the replayed attempt is answered with the first acknowledgement"
    );
}

async fn pay_async(app: &TestApp, card: &str) -> Response {
    let priced = priced(app).await;
    let response = app
        .client
        .post(priced.link("pay"))
        .header("prefer", "respond-async")
        .json(&json!({ "card_number": card }))
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let applied = response.headers().get("preference-applied").cloned();
    let body: Value = response.json().await.unwrap();
    assert_eq!(status, 202, "{body:#}");
    assert_eq!(applied.unwrap(), "respond-async");
    Response {
        status,
        headers: Default::default(),
        body,
    }
}

async fn async_payment_completes(mode: RequestorState) {
    let app = spawn_with(|c| {
        c.requestor_state = mode;
        c.slow_card_delay = Duration::from_millis(300);
        c.peer_timeout = Duration::from_millis(200);
    })
    .await;
    let pending = pay_async(&app, "4000000000000259").await;
    assert_eq!(pending.body["status"], "payment-pending");
    let order = eventually_ok(&app, &pending.link("order")).await;
    assert_eq!(
        order.status, 200,
        "the reply reached pricing and the order was raised: {:#}",
        order.body
    );
}

#[tokio::test]
async fn an_async_reply_reaches_a_stateless_requestor_that_kept_nothing() {
    async_payment_completes(RequestorState::Token).await;
}

#[tokio::test]
async fn an_async_reply_is_correlated_by_a_stateful_requestor() {
    async_payment_completes(RequestorState::Store).await;
}

#[tokio::test]
async fn a_reply_to_an_unknown_correlation_changes_nothing() {
    let app = spawn_with(|c| c.requestor_state = RequestorState::Store).await;
    let reply = app
        .post_json(
            "/pricing/checkouts/payment-reply?correlation=nobody",
            json!({}),
        )
        .await;
    assert_eq!(reply.status, 404);
    assert_eq!(reply.problem_type(), "/problems/unknown-continuation");
}

#[tokio::test]
async fn a_reply_signed_by_anyone_but_payments_is_refused() {
    let app = spawn_app().await;
    let priced = priced(&app).await;
    // A token of pricing's own stands in for payments' signature: wrong issuer.
    let own = crate::support::token_of(&priced.link("pay"));
    let reply = app
        .client
        .post(app.url(&format!("/pricing/checkouts/payment-reply?state={own}")))
        .header("conversation-state", &own)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert!(
        matches!(reply.status().as_u16(), 401 | 403),
        "{}",
        reply.status()
    );
}

#[tokio::test]
async fn subscribers_get_signed_cloud_events_and_the_feed_has_them_too() {
    let receiver = Receiver::start().await;
    let app = spawn_with(|c| c.callback_allow = vec![receiver.authority()]).await;
    let subscription = app
        .post_json(
            "/orders/subscriptions",
            json!({ "callback_url": receiver.url("/hooks/orders"), "event_types": ["order.placed"] }),
        )
        .await;
    assert_eq!(subscription.status, 201, "{:#}", subscription.body);
    let secret = subscription.body["secret"].as_str().unwrap().to_owned();
    assert!(subscription.has_link("delete"));

    let priced = priced(&app).await;
    let paid = app
        .post_json(
            &priced.link("pay"),
            json!({ "card_number": "4242424242424242" }),
        )
        .await;
    assert_eq!(paid.status, 200);

    let delivered = receiver.wait_for(1, 10).await;
    let hook = &delivered[0];
    assert_eq!(hook.path, "/hooks/orders");
    assert_eq!(hook.header("content-type"), "application/cloudevents+json");
    let timestamp: i64 = hook.header("webhook-timestamp").parse().unwrap();
    assert!(webhooks::verify(
        &secret,
        hook.header("webhook-id"),
        timestamp,
        &hook.body,
        hook.header("webhook-signature")
    ));
    let event = hook.json();
    assert_eq!(event["specversion"], "1.0");
    assert_eq!(event["type"], "order.placed");
    assert_eq!(event["id"], hook.header("webhook-id"));
    assert_eq!(event["data"]["order_id"], paid.body["order_id"]);

    let feed = app.get("/orders/events").await;
    assert_eq!(feed.status, 200);
    let events = feed.body["_embedded"]["events"].as_array().unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["id"], event["id"]);
    let next = app.get(&feed.link("next")).await;
    assert_eq!(next.body["count"], 0, "the cursor moved past the event");

    let gone = app
        .client
        .delete(subscription.link("delete"))
        .send()
        .await
        .unwrap();
    assert_eq!(gone.status(), 204);
    assert_eq!(app.get(&subscription.link("self")).await.status, 404);
}

#[tokio::test]
async fn subscriptions_to_private_or_unknown_addresses_are_refused() {
    let app = spawn_app().await;
    for (url, expected) in [
        ("http://127.0.0.1:9/hook", "/problems/callback-not-allowed"),
        (
            "http://169.254.169.254/latest",
            "/problems/callback-not-allowed",
        ),
        (
            "https://evil.example.com/hook",
            "/problems/callback-not-allowed",
        ),
        ("not a url", "/problems/callback-not-allowed"),
    ] {
        let refused = app
            .post_json("/orders/subscriptions", json!({ "callback_url": url }))
            .await;
        assert_eq!(refused.status, 422, "{url}");
        assert_eq!(refused.problem_type(), expected, "{url}");
    }
    let unknown = app
        .post_json(
            "/orders/subscriptions",
            json!({ "callback_url": app.url("/couriers"), "event_types": ["order.eaten"] }),
        )
        .await;
    assert_eq!(unknown.status, 422);
    assert_eq!(unknown.problem_type(), "/problems/unknown-event-type");
}

#[tokio::test]
async fn a_subscription_belongs_to_its_publisher() {
    let app = spawn_app().await;
    let to_stores = app
        .post_json(
            "/stores/subscriptions",
            json!({ "callback_url": app.url("/couriers") }),
        )
        .await;
    assert_eq!(to_stores.status, 201, "{:#}", to_stores.body);
    assert_eq!(to_stores.body["event_types"], json!(["store.updated"]));
    let id = to_stores.body["id"].as_str().unwrap();
    // Orders does not know it: neither shows it nor deletes it.
    let elsewhere = format!("/orders/subscriptions/{id}");
    assert_eq!(app.get(&elsewhere).await.status, 404);
    let deleted = app.client.delete(app.url(&elsewhere)).send().await.unwrap();
    assert_eq!(deleted.status(), 404);
    let own = app.get(&to_stores.link("self")).await;
    assert_eq!(own.status, 200);
    assert_eq!(own.body["active"], true);
    assert!(own.body.get("secret").is_none(), "the secret is shown once");
}

#[tokio::test]
async fn a_subscriber_answering_410_gone_is_unsubscribed() {
    let receiver = Receiver::start().await;
    receiver.answer_with(&[410]);
    let app = spawn_with(|c| c.callback_allow = vec![receiver.authority()]).await;
    let subscription = app
        .post_json(
            "/orders/subscriptions",
            json!({ "callback_url": receiver.url("/gone") }),
        )
        .await;
    let priced = priced(&app).await;
    app.post_json(
        &priced.link("pay"),
        json!({ "card_number": "4242424242424242" }),
    )
    .await;
    receiver.wait_for(1, 10).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let current = app.get(&subscription.link("self")).await;
        if current.body["active"] == false {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "still active: {:#}",
            current.body
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A signed token cannot be revoked: after `pay`, the priced checkout's
/// `cancel` link still verifies, so pricing asks payments and refuses.
#[tokio::test]
async fn a_paid_checkout_can_no_longer_be_cancelled() {
    let app = spawn_app().await;
    let priced = priced(&app).await;
    let paid = app
        .post_json(
            &priced.link("pay"),
            json!({ "card_number": "4242424242424242" }),
        )
        .await;
    assert!(paid.status < 300, "{:#}", paid.body);
    let refused = app.post_empty(&priced.link("cancel")).await;
    assert_eq!(refused.status, 409, "{:#}", refused.body);
    assert_eq!(refused.problem_type(), "/problems/already-paid");
    let payment = app.get(&refused.link("payment")).await;
    assert_eq!(payment.body["status"], "captured");
    assert!(refused.has_link("conversation"));
}

/// A page's `limit` is what the OpenAPI document says, 1 to 100: outside
/// it is refused (422), not quietly changed; a journal needs a conversation.
#[tokio::test]
async fn feeds_and_listings_refuse_a_limit_outside_1_to_100() {
    let app = spawn_app().await;
    for path in [
        "/orders/events",
        "/stores/events",
        "/routing-slips/events",
        "/orders/dead-letters",
    ] {
        for (limit, status) in [("1", 200), ("100", 200), ("0", 422), ("101", 422)] {
            let answer = app.get(&format!("{path}?limit={limit}")).await;
            assert_eq!(
                answer.status, status,
                "{path}?limit={limit}: {:#}",
                answer.body
            );
            if status == 422 {
                assert_eq!(answer.problem_type(), "/problems/invalid-query");
            }
        }
    }
}
