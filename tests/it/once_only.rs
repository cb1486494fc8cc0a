//! Once means once (DESIGN §4): a token cannot be revoked, so a client may
//! replay an older link or fork the conversation from it (the browser's
//! Back button does exactly that), and every branch must still lead to at
//! most one effect: one capture, one order and one delivery per conversation.

use std::time::Duration;

use futures::future::join_all;
use serde_json::{Value, json};

use crate::support::{Response, TestApp, spawn_app, spawn_with};

const CARD: &str = "4242424242424242";

/// A basket of two pizzas, not yet checked out.
async fn basket(app: &TestApp) -> Response {
    let basket = app.post_empty("/basket/checkouts").await;
    let basket = app
        .post_json(
            &basket.link("add-item"),
            json!({ "sku": "margherita", "quantity": 2 }),
        )
        .await;
    assert_eq!(basket.status, 200, "{:#}", basket.body);
    basket
}

async fn pay(app: &TestApp, priced: &Response) -> Response {
    app.post_json(&priced.link("pay"), json!({ "card_number": CARD }))
        .await
}

/// What a conversation's branches came to, counted in the database itself
/// (not through the invariants under test).
#[derive(Debug, PartialEq)]
struct Effects {
    captures: i64,
    orders: i64,
    deliveries: i64,
}

async fn count(app: &TestApp, sql: &'static str, cid: &str) -> i64 {
    let url = app.database();
    if url.starts_with("postgres") {
        let pool = sqlx::PgPool::connect(&url).await.unwrap();
        let n = sqlx::query_scalar(sql)
            .bind(cid)
            .fetch_one(&pool)
            .await
            .unwrap();
        pool.close().await;
        n
    } else {
        let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
        let n = sqlx::query_scalar(sql)
            .bind(cid)
            .fetch_one(&pool)
            .await
            .unwrap();
        pool.close().await;
        n
    }
}

async fn effects_now(app: &TestApp, cid: &str) -> (Effects, i64) {
    let effects = Effects {
        captures: count(
            app,
            "SELECT count(*) FROM payments WHERE conversation_id = $1 AND status <> 'declined'",
            cid,
        )
        .await,
        orders: count(
            app,
            "SELECT count(*) FROM orders WHERE conversation_id = $1",
            cid,
        )
        .await,
        deliveries: count(
            app,
            "SELECT count(*) FROM deliveries WHERE order_id IN \
             (SELECT id FROM orders WHERE conversation_id = $1)",
            cid,
        )
        .await,
    };
    let pending = count(
        app,
        "SELECT count(*) FROM outbox WHERE status = 'pending' AND participant <> $1",
        "couriers",
    )
    .await;
    (effects, pending)
}

/// The effects of conversation `cid` once everything it set moving has
/// arrived: its delivery exists and no message of the checkout is pending.
async fn effects(app: &TestApp, cid: &Value) -> Effects {
    let cid = cid.as_str().expect("a conversation id");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let (effects, pending) = effects_now(app, cid).await;
        if (effects.deliveries >= 1 && pending == 0) || tokio::time::Instant::now() > deadline {
            return effects;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

const ONCE: Effects = Effects {
    captures: 1,
    orders: 1,
    deliveries: 1,
};

/// A `409 already-paid` that says where the payment and its order are.
fn assert_already_paid(refused: &Response, paid: &Response) {
    assert_eq!(refused.status, 409, "{:#}", refused.body);
    assert_eq!(refused.problem_type(), "/problems/already-paid");
    assert_eq!(refused.body["conversation"], paid.body["conversation"]);
    let payment = &paid.body["state"]["payment"]["payment_id"];
    assert_eq!(&refused.body["payment_id"], payment, "{:#}", refused.body);
    assert_eq!(refused.body["order_id"], paid.body["order_id"]);
    assert_eq!(refused.link("order"), paid.link("order"));
    assert!(refused.link("payment").ends_with(payment.as_str().unwrap()));
}

#[tokio::test]
async fn back_to_the_basket_and_checking_out_again_after_paying_is_refused() {
    let app = spawn_app().await;
    app.deliveries_subscribed().await;
    let basket = basket(&app).await;
    let priced = app.post_empty(&basket.link("checkout")).await;
    let paid = pay(&app, &priced).await;
    assert_eq!(paid.status, 200, "{:#}", paid.body);
    // Back, Back, and the basket's `checkout` again: no second priced basket.
    let again = app.post_empty(&basket.link("checkout")).await;
    assert_already_paid(&again, &paid);
    // And the priced basket's `pay` again, from the page before: the same
    // attempt, answered with the same payment (In-Out-Retry).
    let replayed = pay(&app, &priced).await;
    assert_eq!(replayed.status, 200, "{:#}", replayed.body);
    assert_eq!(
        replayed.body["state"]["payment"]["payment_id"],
        paid.body["state"]["payment"]["payment_id"]
    );
    assert_eq!(effects(&app, &paid.body["conversation"]).await, ONCE);
}

#[tokio::test]
async fn two_checkouts_of_one_basket_paid_at_the_same_moment_charge_once() {
    let app = spawn_app().await;
    app.deliveries_subscribed().await;
    let basket = basket(&app).await;
    let first = app.post_empty(&basket.link("checkout")).await;
    let second = app.post_empty(&basket.link("checkout")).await;
    assert_eq!(first.status, 200, "{:#}", first.body);
    assert_eq!(second.status, 200, "{:#}", second.body);
    assert_ne!(first.link("pay"), second.link("pay"), "two branches");
    let (a, b) = tokio::join!(pay(&app, &first), pay(&app, &second));
    let (paid, refused) = match (a.status, b.status) {
        (200, _) => (a, b),
        _ => (b, a),
    };
    assert_eq!(paid.status, 200, "{:#}", paid.body);
    assert_already_paid(&refused, &paid);
    assert_eq!(effects(&app, &paid.body["conversation"]).await, ONCE);
}

#[tokio::test]
async fn an_older_basket_changed_and_checked_out_after_paying_is_refused_every_time() {
    let app = spawn_app().await;
    app.deliveries_subscribed().await;
    let basket = basket(&app).await;
    let priced = app.post_empty(&basket.link("checkout")).await;
    let paid = pay(&app, &priced).await;
    assert_eq!(paid.status, 200, "{:#}", paid.body);
    let mut older = basket;
    for _ in 0..2 {
        // The stateless turn itself stays a pure function of its token...
        older = app
            .post_json(
                &older.link("add-item"),
                json!({ "sku": "tiramisu", "quantity": 1 }),
            )
            .await;
        assert_eq!(older.status, 200, "{:#}", older.body);
        // ...but the branch cannot lead to a second payment.
        let checkout = app.post_empty(&older.link("checkout")).await;
        assert_already_paid(&checkout, &paid);
    }
    assert_eq!(effects(&app, &paid.body["conversation"]).await, ONCE);
}

#[tokio::test]
async fn fifty_branches_of_one_basket_paying_at_once_capture_once() {
    let app = spawn_app().await;
    app.deliveries_subscribed().await;
    let basket = basket(&app).await;
    let mut branches = Vec::new();
    for _ in 0..50 {
        let priced = app.post_empty(&basket.link("checkout")).await;
        assert_eq!(priced.status, 200, "{:#}", priced.body);
        branches.push(priced);
    }
    let answers = join_all(branches.iter().map(|priced| pay(&app, priced))).await;
    let paid: Vec<&Response> = answers.iter().filter(|a| a.status == 200).collect();
    assert_eq!(paid.len(), 1, "exactly one branch pays");
    for refused in answers.iter().filter(|a| a.status != 200) {
        assert_already_paid(refused, paid[0]);
    }
    assert_eq!(effects(&app, &paid[0].body["conversation"]).await, ONCE);
}

#[tokio::test]
async fn a_declined_branch_does_not_count_and_another_card_still_pays() {
    let app = spawn_app().await;
    app.deliveries_subscribed().await;
    let basket = basket(&app).await;
    let first = app.post_empty(&basket.link("checkout")).await;
    let declined = app
        .post_json(
            &first.link("pay"),
            json!({ "card_number": "4000000000000002" }),
        )
        .await;
    assert_eq!(declined.status, 402, "{:#}", declined.body);
    // The basket may be checked out again: nothing was taken.
    let second = app.post_empty(&basket.link("checkout")).await;
    assert_eq!(second.status, 200, "{:#}", second.body);
    let paid = pay(&app, &second).await;
    assert_eq!(paid.status, 200, "{:#}", paid.body);
    // The repair link of the declined branch leads nowhere new now.
    let repaired = pay_at(&app, &declined.link("pay")).await;
    assert_already_paid(&repaired, &paid);
    assert_eq!(effects(&app, &paid.body["conversation"]).await, ONCE);
}

async fn pay_at(app: &TestApp, href: &str) -> Response {
    app.post_json(href, json!({ "card_number": CARD })).await
}

#[tokio::test]
async fn an_asynchronous_branch_of_a_paid_conversation_charges_nothing() {
    let app = spawn_app().await;
    app.deliveries_subscribed().await;
    let basket = basket(&app).await;
    let first = app.post_empty(&basket.link("checkout")).await;
    let second = app.post_empty(&basket.link("checkout")).await;
    let paid = pay(&app, &first).await;
    assert_eq!(paid.status, 200, "{:#}", paid.body);
    let pending = app
        .client
        .post(second.link("pay"))
        .header("prefer", "respond-async")
        .json(&json!({ "card_number": CARD }))
        .send()
        .await
        .unwrap();
    assert_eq!(pending.status(), 202);
    let cid = paid.body["conversation"].clone();
    // Payments' 409 reaches pricing's continuation, which raises nothing.
    let journal = format!("/pricing/journal?conversation={}", cid.as_str().unwrap());
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let seen = app.get(&journal).await;
        if seen.body.to_string().contains("already-paid") {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "pricing never heard: {:#}",
            seen.body
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(effects(&app, &cid).await, ONCE);
}

#[tokio::test]
async fn a_refund_is_made_once_and_does_not_free_the_conversation_for_a_second_charge() {
    // Orders rejects the order (an address out of reach), faults back, and
    // the checkout refunds: the conversation ended with that refund.
    let app = spawn_app().await;
    let basket = basket(&app).await;
    let first = app.post_empty(&basket.link("checkout")).await;
    let second = app.post_empty(&basket.link("checkout")).await;
    let paris = json!({ "card_number": CARD, "address": { "lat": 48.8566, "lon": 2.3522 } });
    let paid = app.post_json(&first.link("pay"), paris).await;
    assert_eq!(paid.status, 200, "{:#}", paid.body);
    let payment = paid.link("payment");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while app.get(&payment).await.body["status"] != "refunded" {
        assert!(tokio::time::Instant::now() < deadline, "never refunded");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let again = pay(&app, &second).await;
    assert_eq!(again.status, 409, "{:#}", again.body);
    assert_eq!(again.problem_type(), "/problems/already-paid");
    let cid = paid.body["conversation"].as_str().unwrap().to_owned();
    let (effects, _) = effects_now(&app, &cid).await;
    assert_eq!(
        effects.captures, 1,
        "one payment took money, and was given back"
    );
}

/// A routing slip's hops replayed (the relay's redelivery after a lost
/// answer) and forked (every request to a step duplicated, both copies at
/// the same time): the slip still pays once and raises one order.
#[tokio::test]
async fn a_routing_slip_whose_hops_are_replayed_and_forked_pays_once() {
    let chaos = "payments:duplicate=1,drop-first=1;orders:duplicate=1;pricing:duplicate=1";
    let app = spawn_with(|c| {
        c.chaos = conversant::messaging::chaos::ChaosConfig::parse(chaos).unwrap();
        c.retry_schedule =
            conversant::messaging::outbox::RetrySchedule::parse("50ms,100ms,200ms,500ms,1s")
                .unwrap();
    })
    .await;
    app.deliveries_subscribed().await;
    let body = json!({
        "steps": ["price", "take-payment", "raise-order"],
        "items": [{ "sku": "margherita", "qty": 2 }],
        "card_number": CARD,
    });
    // The start replayed with its Idempotency-Key is the same slip.
    let start = |key: &'static str| {
        app.client
            .post(app.url("/routing-slips"))
            .header("idempotency-key", key)
            .json(&body)
            .send()
    };
    let (one, two) = tokio::join!(start("slip-once"), start("slip-once"));
    let (one, two) = (one.unwrap(), two.unwrap());
    let statuses = (one.status().as_u16(), two.status().as_u16());
    let one: Value = one.json().await.unwrap();
    let two: Value = two.json().await.unwrap();
    let started = match statuses {
        (202, 202) => {
            assert_eq!(one["conversation"], two["conversation"]);
            one
        }
        // The copy that arrived while the first was running.
        (202, 409) => one,
        (409, 202) => two,
        other => panic!("{other:?}: {one:#} {two:#}"),
    };
    let replayed = start("slip-once").await.unwrap();
    assert_eq!(replayed.status(), 202);
    let replayed: Value = replayed.json().await.unwrap();
    assert_eq!(replayed["conversation"], started["conversation"]);
    assert_eq!(effects(&app, &started["conversation"]).await, ONCE);
}

/// A second "raise order" for a conversation that has its order (what a
/// second paid branch would send, were payments to let one through): orders
/// places nothing, and its redelivery is a duplicate.
#[tokio::test]
async fn a_second_order_for_a_conversation_places_nothing() {
    use conversant::participant::Participant;

    let app = spawn_app().await;
    let basket = basket(&app).await;
    let priced = app.post_empty(&basket.link("checkout")).await;
    let paid = pay(&app, &priced).await;
    assert_eq!(paid.status, 200, "{:#}", paid.body);
    let cid = paid.body["conversation"].as_str().unwrap().to_owned();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let claims = json!({
        "iss": "pricing", "aud": ["orders"], "iat": now, "nbf": now, "exp": now + 300,
        "jti": uuid::Uuid::now_v7().to_string(), "cid": cid, "pat": "turn-taking",
        "seq": 9, "nxt": ["raise-order"], "chn": "second-branch",
        "st": {
            "order_id": uuid::Uuid::now_v7().to_string(),
            "payment_id": paid.body["state"]["payment"]["payment_id"],
            "items": [], "total": 2150, "currency": "EUR",
            "stores": ["luigis"], "address": null,
        },
    });
    let token = crate::routing_slip::signed_by(&app, Participant::Pricing, &claims);
    let raise = |token: String| {
        app.client
            .post(app.url("/orders/orders"))
            .header("conversation-state", token)
            .send()
    };
    // Wait for the first order, so the second meets it.
    crate::exchanges::eventually_ok(&app, &paid.link("order")).await;
    for _ in 0..2 {
        let answer = raise(token.clone()).await.unwrap();
        assert_eq!(answer.status(), 202);
    }
    let orders = count(
        &app,
        "SELECT count(*) FROM orders WHERE conversation_id = $1",
        &cid,
    )
    .await;
    assert_eq!(orders, 1, "one order per conversation");
}
