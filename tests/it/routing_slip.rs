//! Routing Slip, end to end over real HTTP: the requestor chooses the steps,
//! the signed slip travels from participant to participant through their
//! outboxes, each step marks itself done with its own signed receipt, and a
//! failed step compensates the completed ones in reverse order.

use std::time::Duration;

use conversant::conversation::KeyRing;
use conversant::participant::Participant;
use serde_json::{Value, json};

use crate::receiver::Receiver;
use crate::support::{Response, TestApp, spawn_app, spawn_in, spawn_with, token_of};
use crate::tokens::{decode, ed_signed};

const GOOD_CARD: &str = "4242424242424242";
const DECLINED_CARD: &str = "4000000000000002";

/// An address a few hundred metres from Luigi's.
fn near() -> Value {
    json!({ "lat": 52.5219, "lon": 13.4132 })
}

/// The largest order a slip takes: ten lines from the three open stores.
fn ten_lines() -> Value {
    let skus = [
        "margherita",
        "diavola",
        "tiramisu",
        "salmon-nigiri",
        "maki-mix",
        "miso-soup",
        "quinoa-bowl",
        "falafel-wrap",
        "margherita",
        "diavola",
    ];
    skus.iter()
        .map(|sku| json!({ "sku": sku, "qty": 1 }))
        .collect()
}

fn paris() -> Value {
    json!({ "lat": 48.8566, "lon": 2.3522 })
}

/// Starts a slip by following `start-routing-slip` from the entry point.
async fn start(app: &TestApp, body: Value) -> Response {
    let root = app.get("/").await;
    app.post_json(&root.link("start-routing-slip"), body).await
}

/// Starts a slip that must be accepted; returns its id.
async fn started(app: &TestApp, body: Value) -> String {
    let slip = start(app, body).await;
    assert_eq!(slip.status, 202, "{:#}", slip.body);
    assert!(slip.has_link("inspect") && slip.has_link("feed"));
    assert!(
        !slip.body.to_string().contains(GOOD_CARD),
        "the card is in no token and no representation"
    );
    slip.body["slip"].as_str().unwrap().to_owned()
}

/// Polls the outcome feed until the slip's outcome is on it.
async fn outcome(app: &TestApp, slip: &str) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let feed = app.get("/routing-slips/events?limit=100").await;
        assert_eq!(feed.status, 200, "{:#}", feed.body);
        let found = feed.body["_embedded"]["events"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|e| e["data"]["slip"] == slip);
        if let Some(event) = found {
            assert_eq!(
                event["type"],
                format!(
                    "routing-slip.{}",
                    event["data"]["outcome"].as_str().unwrap()
                )
            );
            return event["data"].clone();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no outcome for {slip}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

fn steps_of(list: &Value) -> Vec<&str> {
    list.as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().or(s["step"].as_str()).unwrap())
        .collect()
}

async fn payments_of(app: &TestApp, slip: &str) -> Vec<Value> {
    let payments = app
        .get(&format!("/payments/payments?conversation={slip}"))
        .await;
    payments.body["_embedded"]["payments"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

#[tokio::test]
async fn a_routing_slip_takes_every_step_and_each_receipt_verifies() {
    let receiver = Receiver::start().await;
    let app = spawn_with(|c| c.callback_allow = vec![receiver.authority()]).await;
    let slip = started(
        &app,
        json!({
            "steps": ["validate-address", "price", "take-payment", "raise-order", "notify"],
            "items": ten_lines(),
            "card_number": GOOD_CARD,
            "address": near(),
            "reply_to": receiver.url("/slips/outcome"),
        }),
    )
    .await;

    let done = outcome(&app, &slip).await;
    assert_eq!(done["outcome"], "completed", "{done:#}");
    assert_eq!(
        steps_of(&done["completed"]),
        [
            "validate-address",
            "price",
            "take-payment",
            "raise-order",
            "notify"
        ]
    );
    assert_eq!(done["held_by"], "basket", "notify brought the slip home");

    let told = receiver.wait_for(1, 10).await;
    assert_eq!(told[0].path, "/slips/outcome");
    assert_eq!(told[0].json()["slip"], slip);
    assert_eq!(told[0].json()["outcome"], "completed");
    assert!(!told[0].header("conversation-state").is_empty());

    let inspect_href = done["_links"]["inspect"]["href"].as_str().unwrap();
    assert!(
        token_of(inspect_href).len() < 8 * 1024 - 256,
        "the largest slip fits a token, with room to spare"
    );
    let inspected = app.get(inspect_href).await;
    assert_eq!(inspected.status, 200, "{:#}", inspected.body);
    assert_eq!(inspected.body["verified"], true);
    assert_eq!(inspected.body["status"], "completed");
    let receipts = inspected.body["receipts"].as_array().unwrap();
    let signers: Vec<&str> = receipts.iter().map(|r| r["by"].as_str().unwrap()).collect();
    assert_eq!(
        signers,
        ["stores", "pricing", "payments", "orders", "basket"]
    );
    let total = 2 * 950 + 2 * 1150 + 550 + 890 + 1290 + 390 + 1050 + 790 + 250 + 350 + 200;
    assert_eq!(receipts[1]["result"]["total"], total);

    let payment_id = receipts[2]["result"]["payment_id"].as_str().unwrap();
    let payment = app.get(&format!("/payments/payments/{payment_id}")).await;
    assert_eq!(payment.body["status"], "captured");
    assert_eq!(payment.body["amount"], total);
    let order_id = receipts[3]["result"]["order_id"].as_str().unwrap();
    let order = app.get(&format!("/orders/orders/{order_id}")).await;
    assert_eq!(order.body["status"], "placed");
    assert_eq!(order.body["payment_id"], payment_id);
    assert_eq!(order.body["conversation_id"], slip);

    for seen in [&inspected.body, &done, &told[0].json()] {
        assert!(!seen.to_string().contains(GOOD_CARD));
    }
}

#[tokio::test]
async fn a_routing_slip_whose_payment_step_is_declined_after_the_address_step_completed() {
    let app = spawn_app().await;
    let slip = started(
        &app,
        json!({
            "steps": ["validate-address", "price", "take-payment", "raise-order"],
            "items": [{ "sku": "margherita", "qty": 1 }],
            "card_number": DECLINED_CARD,
            "address": near(),
        }),
    )
    .await;
    let faulted = outcome(&app, &slip).await;
    assert_eq!(faulted["outcome"], "faulted", "{faulted:#}");
    assert_eq!(
        steps_of(&faulted["completed"]),
        ["validate-address", "price"]
    );
    assert_eq!(faulted["failed"]["step"], "take-payment");
    assert_eq!(faulted["failed"]["by"], "payments");
    assert_eq!(
        faulted["failed"]["problem"]["type"],
        "/problems/card-declined"
    );
    assert_eq!(
        faulted["compensated"],
        json!([]),
        "nothing was captured, so nothing is refunded"
    );
    let payments = payments_of(&app, &slip).await;
    assert_eq!(payments.len(), 1);
    assert_eq!(payments[0]["status"], "declined");
    let orders = app.get("/orders/events").await;
    assert_eq!(orders.body["count"], 0, "no order was raised");

    let inspected = app
        .get(faulted["_links"]["inspect"]["href"].as_str().unwrap())
        .await;
    assert_eq!(inspected.body["status"], "faulted");
    assert_eq!(inspected.body["fault"]["by"], "payments");
}

#[tokio::test]
async fn a_raise_order_failing_after_the_payment_refunds_it() {
    let app = spawn_app().await;
    let slip = started(
        &app,
        json!({
            "steps": ["price", "take-payment", "raise-order"],
            "items": [{ "sku": "pancakes", "qty": 1 }],
            "card_number": GOOD_CARD,
        }),
    )
    .await;
    let faulted = outcome(&app, &slip).await;
    assert_eq!(faulted["outcome"], "faulted", "{faulted:#}");
    assert_eq!(faulted["failed"]["step"], "raise-order");
    assert_eq!(
        faulted["failed"]["problem"]["type"],
        "/problems/store-closed"
    );
    assert_eq!(steps_of(&faulted["compensated"]), ["refund-payment"]);
    let payments = payments_of(&app, &slip).await;
    assert_eq!(payments.len(), 1);
    assert_eq!(payments[0]["status"], "refunded");
    let inspected = app
        .get(faulted["_links"]["inspect"]["href"].as_str().unwrap())
        .await;
    assert_eq!(inspected.body["verified"], true);
    assert_eq!(inspected.body["compensations"][0]["by"], "payments");
}

#[tokio::test]
async fn compensations_run_in_reverse_the_order_cancelled_then_the_payment_refunded() {
    let app = spawn_app().await;
    let slip = started(
        &app,
        json!({
            "steps": ["price", "take-payment", "raise-order", "validate-address"],
            "items": [{ "sku": "diavola", "qty": 1 }],
            "card_number": GOOD_CARD,
            "address": paris(),
        }),
    )
    .await;
    let faulted = outcome(&app, &slip).await;
    assert_eq!(faulted["outcome"], "faulted", "{faulted:#}");
    assert_eq!(faulted["failed"]["step"], "validate-address");
    assert_eq!(
        faulted["failed"]["problem"]["type"],
        "/problems/outside-delivery-area"
    );
    assert_eq!(
        steps_of(&faulted["compensated"]),
        ["cancel-order", "refund-payment"]
    );
    let inspected = app
        .get(faulted["_links"]["inspect"]["href"].as_str().unwrap())
        .await;
    assert_eq!(inspected.status, 200, "{:#}", inspected.body);
    let receipts = inspected.body["receipts"].as_array().unwrap();
    let order_id = receipts[2]["result"]["order_id"].as_str().unwrap();
    let order = app.get(&format!("/orders/orders/{order_id}")).await;
    assert_eq!(order.body["status"], "cancelled");
    assert_eq!(payments_of(&app, &slip).await[0]["status"], "refunded");
}

/// Reads `href` until `done` says the answer is the one awaited, or fails
/// after `within`.
async fn until(
    app: &TestApp,
    href: &str,
    within: Duration,
    done: impl Fn(&Response) -> bool,
) -> Response {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let got = app.get(href).await;
        if done(&got) {
            return got;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{href} still {} after {within:?}: {:#}",
            got.status,
            got.body
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_slip_that_cancels_its_order_stops_the_order_s_delivery_too() {
    let app = spawn_app().await;
    // The order's delivery starts from order.placed, once deliveries has subscribed.
    app.deliveries_subscribed().await;
    let slip = started(
        &app,
        json!({
            "steps": ["price", "take-payment", "raise-order", "validate-address"],
            "items": [{ "sku": "margherita", "qty": 1 }],
            "card_number": GOOD_CARD,
            "address": paris(),
        }),
    )
    .await;
    let faulted = outcome(&app, &slip).await;
    assert_eq!(
        steps_of(&faulted["compensated"]),
        ["cancel-order", "refund-payment"],
        "{faulted:#}"
    );
    let inspected = app
        .get(faulted["_links"]["inspect"]["href"].as_str().unwrap())
        .await;
    let order_id = inspected.body["receipts"][2]["result"]["order_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let order = app.get(&format!("/orders/orders/{order_id}")).await;
    assert_eq!(order.body["status"], "cancelled", "{:#}", order.body);

    // The order's delivery started from order.placed; order.cancelled stops it.
    let delivery = until(
        &app,
        &order.link("delivery"),
        Duration::from_secs(10),
        |r| r.status == 200 && r.body["state"] == "cancelled",
    )
    .await;
    let notes: Vec<&str> = delivery.body["history"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|h| h["note"].as_str())
        .collect();
    let last = notes.last().unwrap();
    assert!(
        last.contains(&format!("order {order_id} was cancelled")),
        "{notes:#?}"
    );
    assert!(
        notes.iter().all(|n| !n.contains("refunded")),
        "the slip refunds, not the delivery: {notes:#?}"
    );
    assert!(!delivery.has_link("cancel") && !delivery.has_link("reassign"));
    assert_eq!(delivery.body["order_id"], order_id.as_str());
    assert!(
        delivery
            .link("order")
            .ends_with(&format!("/orders/orders/{order_id}"))
    );
    assert!(
        delivery
            .link("conversation")
            .ends_with(&format!("/conversations/{slip}"))
    );

    // Refunded once, by the slip; the order cancelled once, announced once.
    let payments = payments_of(&app, &slip).await;
    assert_eq!(payments.len(), 1);
    assert_eq!(payments[0]["status"], "refunded");
    let feed = app.get("/orders/events?limit=100").await;
    let announced: Vec<&str> = feed.body["_embedded"]["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["data"]["order_id"] == order_id.as_str())
        .filter_map(|e| e["type"].as_str())
        .collect();
    assert_eq!(announced, ["order.placed", "order.cancelled"]);
    let order = app.get(&order.link("self")).await;
    assert_eq!(
        order.body["reason"],
        "routing slip: validate-address failed"
    );
}

#[tokio::test]
async fn bad_itineraries_are_refused_with_problem_documents() {
    let app = spawn_app().await;
    let body = |steps: Value| json!({ "steps": steps, "items": [{ "sku": "margherita", "qty": 1 }], "card_number": GOOD_CARD });
    for (steps, status, problem) in [
        (json!([]), 422, "empty-itinerary"),
        (json!(["price", "teleport"]), 422, "unknown-step"),
        (json!(["price", "price"]), 422, "duplicate-step"),
        (
            json!(["take-payment", "price"]),
            422,
            "step-before-prerequisite",
        ),
        (
            json!(["price", "notify", "take-payment"]),
            422,
            "step-before-prerequisite",
        ),
        (json!(["price", "notify"]), 400, "missing-reply-to"),
        (json!(["validate-address"]), 422, "invalid-body"),
    ] {
        let refused = start(&app, body(steps.clone())).await;
        assert_eq!(refused.status, status, "{steps}: {:#}", refused.body);
        assert_eq!(
            refused.problem_type(),
            format!("/problems/{problem}"),
            "{steps}"
        );
        assert!(
            refused
                .content_type()
                .starts_with("application/problem+json")
        );
    }
    let eleven = start(
        &app,
        json!({ "steps": ["price"], "items": vec![json!({ "sku": "tiramisu", "qty": 1 }); 11] }),
    )
    .await;
    assert_eq!(eleven.problem_type(), "/problems/invalid-body");
    let too_long = start(
        &app,
        json!({ "steps": ["price"], "items": [{ "sku": "margherita", "qty": 1 }], "reply_to": app.url(&format!("/basket/{}", "x".repeat(1200))) }),
    )
    .await;
    assert_eq!(too_long.status, 422, "{:#}", too_long.body);
    assert!(
        too_long.body["detail"]
            .as_str()
            .unwrap()
            .contains("would not fit")
    );
    let elsewhere = start(
        &app,
        json!({ "steps": ["price"], "items": [{ "sku": "margherita", "qty": 1 }], "reply_to": "http://127.0.0.1:9/hook" }),
    )
    .await;
    assert_eq!(elsewhere.problem_type(), "/problems/callback-not-allowed");
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// A token signed with `participant`'s real key: a step that misbehaves.
pub fn signed_by(app: &TestApp, participant: Participant, claims: &Value) -> String {
    let key = KeyRing::load_or_create(app.data_dir.path(), participant)
        .unwrap()
        .live()
        .unwrap()
        .pop()
        .unwrap();
    let header = json!({ "alg": "EdDSA", "typ": "conv+jwt", "kid": key.kid });
    ed_signed(&header, claims, &key.pair)
}

#[tokio::test]
async fn a_step_cannot_alter_the_itinerary() {
    let app = spawn_app().await;
    let slip = started(
        &app,
        json!({ "steps": ["validate-address", "price"], "items": [{ "sku": "margherita", "qty": 1 }], "address": near() }),
    )
    .await;
    let done = outcome(&app, &slip).await;
    let (_, final_claims) = decode(&token_of(
        done["_links"]["inspect"]["href"].as_str().unwrap(),
    ));
    let real = final_claims["slip"].clone();

    // Stores, having done its step, hands pricing the slip: once faithfully,
    // once with the price step sent somewhere else.
    let mut faithful = real.clone();
    faithful["cur"] = json!(1);
    faithful["done"] = json!([real["done"][0]]);
    let mut rerouted = faithful.clone();
    rerouted["terms"]["itinerary"][1]["url"] = json!("https://evil.example/price");
    let hop = |slip: &Value, aud: &str, nxt: &str| {
        let now = unix_now();
        signed_by(
            &app,
            Participant::Stores,
            &json!({
                "iss": "stores", "aud": [aud], "iat": now, "nbf": now, "exp": now + 600,
                "jti": uuid::Uuid::now_v7(), "cid": final_claims["cid"], "pat": "routing-slip",
                "seq": 9, "nxt": [nxt], "chn": "forged", "st": null, "slip": slip,
            }),
        )
    };
    let send = |token: String| {
        let client = app.client.clone();
        let url = app.url("/pricing/routing-slips/price");
        async move {
            Response::read(
                client
                    .post(url)
                    .header("conversation-state", token)
                    .json(&json!({}))
                    .send()
                    .await
                    .unwrap(),
            )
            .await
        }
    };
    let accepted = send(hop(&faithful, "pricing", "price")).await;
    assert_eq!(
        accepted.status, 202,
        "a faithful slip from its last holder is taken (here: a duplicate, done once): {:#}",
        accepted.body
    );
    let refused = send(hop(&rerouted, "pricing", "price")).await;
    assert_eq!(refused.status, 403, "{:#}", refused.body);
    assert_eq!(refused.problem_type(), "/problems/tampered-slip");

    let inspect = app
        .client
        .get(app.url("/routing-slips/inspect"))
        .header("conversation-state", hop(&rerouted, "basket", "inspect"))
        .send()
        .await
        .unwrap();
    let inspect = Response::read(inspect).await;
    assert_eq!(inspect.status, 403);
    assert_eq!(inspect.problem_type(), "/problems/tampered-slip");

    let mut forged_receipt = real.clone();
    forged_receipt["done"][1]["result"]["total"] = json!(1);
    let inspect = app
        .client
        .get(app.url("/routing-slips/inspect"))
        .header(
            "conversation-state",
            hop(&forged_receipt, "basket", "inspect"),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(
        Response::read(inspect).await.problem_type(),
        "/problems/tampered-slip",
        "a result changed after its step signed it"
    );
}

#[tokio::test]
async fn inspecting_a_slip_needs_nothing_but_the_token() {
    let app = spawn_app().await;
    let tried = app.post_empty("/patterns/routing-slip/try").await;
    assert_eq!(tried.status, 202, "{:#}", tried.body);
    let at_start = app.get(&tried.link("inspect")).await;
    assert_eq!(at_start.body["status"], "routing");
    assert_eq!(at_start.body["next"], "validate-address");
    assert_eq!(at_start.body["receipts"], json!([]));

    let slip = tried.body["slip"].as_str().unwrap().to_owned();
    let done = outcome(&app, &slip).await;
    assert_eq!(done["outcome"], "completed", "{done:#}");
    let token = token_of(done["_links"]["inspect"]["href"].as_str().unwrap());
    let here = app
        .get(&format!("/routing-slips/inspect?state={token}"))
        .await;
    assert_eq!(here.status, 200, "{:#}", here.body);

    // The same keys, an empty database: the slip reads the same.
    let data_dir = app.stop().await;
    let empty = tempfile::tempdir().unwrap();
    let url = format!(
        "sqlite://{}?mode=rwc",
        empty.path().join("empty.db").display()
    );
    let fresh = spawn_in(data_dir, |c| c.database_url = Some(url)).await;
    let there = fresh
        .get(&format!("/routing-slips/inspect?state={token}"))
        .await;
    assert_eq!(there.status, 200, "{:#}", there.body);
    assert_eq!(fresh.get("/routing-slips/events").await.body["count"], 0);
    for field in [
        "slip",
        "status",
        "itinerary",
        "receipts",
        "items",
        "held_by",
        "verified",
    ] {
        assert_eq!(here.body[field], there.body[field], "{field}");
    }
}

/// No card number anywhere: after a paid slip and a paid checkout, the
/// number appears in no row of any table (outbox bodies and headers, inbox
/// responses, journals, payments...).
#[tokio::test]
async fn no_card_number_is_stored_anywhere() {
    let app = spawn_app().await;
    let slip = started(
        &app,
        json!({
            "steps": ["price", "take-payment", "raise-order"],
            "items": [{ "sku": "margherita", "qty": 1 }],
            "card_number": GOOD_CARD,
        }),
    )
    .await;
    assert_eq!(outcome(&app, &slip).await["outcome"], "completed");
    let priced = crate::exchanges::priced(&app).await;
    let paid = app
        .post_json(&priced.link("pay"), json!({ "card_number": GOOD_CARD }))
        .await;
    assert_eq!(paid.status, 200);
    let tables = [
        "outbox",
        "inbox",
        "journal",
        "payments",
        "orders",
        "events",
        "idempotency",
        "correlations",
    ];
    let url = app.database();
    for table in tables {
        let sql = format!(
            "SELECT COUNT(*) FROM {table} WHERE CAST({table}.* AS TEXT) LIKE '%{GOOD_CARD}%'"
        );
        let found: i64 = if url.starts_with("postgres") {
            let pool = sqlx::PgPool::connect(&url).await.unwrap();
            sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
                .fetch_one(&pool)
                .await
                .unwrap()
        } else {
            // SQLite has no row-to-text cast: look at the file itself.
            let path = app.data_dir.path().join("conversant.db");
            let mut bytes = std::fs::read(&path).unwrap();
            bytes.extend(std::fs::read(path.with_extension("db-wal")).unwrap_or_default());
            let needle = GOOD_CARD.as_bytes();
            bytes.windows(needle.len()).filter(|w| *w == needle).count() as i64
        };
        assert_eq!(found, 0, "a card number is stored in {table}");
    }
}
