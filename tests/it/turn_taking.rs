//! Turn Taking, the whole checkout: from `GET /` to a delivered order by
//! following links only — start, add an item, check out (pricing), pay
//! (payments), the order raised In-Only (orders), `order.placed`, and the
//! delivery saga taking the same conversation up to the courier's drop-off.
//! Then the failure path: a paid order that every courier declines, which
//! the saga compensates (the order cancelled, the payment refunded).
//!
//! No URL is written here but the entry point's: every step is a link or a
//! HAL-FORMS template picked by name. Resources that change on their own
//! (the order placed In-Only, the delivery moving) are polled with a
//! deadline.

use std::time::{Duration, Instant};

use conversant::conversation::chain;
use conversant::ids::MessageId;
use serde_json::{Value, json};

use crate::support::{Response, TestApp, spawn_app, token_of};
use crate::tokens::decode;

const GOOD_CARD: &str = "4242424242424242";
/// Luigi's Pizzeria, where margherita comes from.
const LUIGIS: (f64, f64) = (52.5200, 13.4050);

/// Takes the step `rel` of `doc`: a HAL-FORMS template is sent with its
/// method to its target (with `body`), a plain link is read with GET.
async fn follow(app: &TestApp, doc: &Response, rel: &str, body: Option<Value>) -> Response {
    let template = &doc.body["_templates"][rel];
    if template.is_object() {
        assert_eq!(template["method"], "POST", "{rel}: {template:#}");
        let target = template["target"].as_str().unwrap();
        return match body {
            Some(body) => app.post_json(target, body).await,
            None => app.post_empty(target).await,
        };
    }
    assert!(body.is_none(), "`{rel}` is a link, not a form");
    app.get(&doc.link(rel)).await
}

/// Reads the link `rel` of `doc` until `done` says the answer is the one
/// awaited, or fails after `within`.
async fn until(
    app: &TestApp,
    doc: &Response,
    rel: &str,
    within: Duration,
    done: impl Fn(&Response) -> bool,
) -> Response {
    let deadline = Instant::now() + within;
    loop {
        let got = follow(app, doc, rel, None).await;
        if done(&got) {
            return got;
        }
        assert!(
            Instant::now() < deadline,
            "`{rel}` still {} after {within:?}: {:#}",
            got.status,
            got.body
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The claims of the token a link carries.
fn claims_of(doc: &Response, rel: &str) -> Value {
    decode(&token_of(&doc.link(rel))).1
}

fn messages(view: &Response) -> &Vec<Value> {
    view.body["_embedded"]["messages"]
        .as_array()
        .unwrap_or_else(|| panic!("no embedded messages in {:#}", view.body))
}

/// The walk from the final message back to the first along `causation_id`,
/// first message first.
fn walk(messages: &[Value], final_message: &str) -> Vec<Value> {
    let by_id = |id: &str| {
        messages
            .iter()
            .find(|m| m["message_id"] == id)
            .unwrap_or_else(|| panic!("no message {id}"))
            .clone()
    };
    let mut path = vec![by_id(final_message)];
    while let Some(cause) = path.last().unwrap()["causation_id"].as_str() {
        path.push(by_id(cause));
    }
    path.reverse();
    path
}

/// Replays the chain digest along `path` from the genesis digest.
fn replay(path: &[Value]) -> String {
    path.iter().fold(chain::GENESIS.to_owned(), |previous, m| {
        let jti: MessageId = m["message_id"].as_str().unwrap().parse().unwrap();
        chain::extend(
            &previous,
            jti,
            m["from"].as_str().unwrap(),
            m["step"].as_str().unwrap(),
        )
    })
}

/// `(from, step)` of each message of `path`.
fn turns(path: &[Value]) -> Vec<(String, String)> {
    path.iter()
        .map(|m| {
            (
                m["from"].as_str().unwrap().to_owned(),
                m["step"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

/// Whether `wanted` appear in `seen` in this order (not necessarily adjacent).
fn in_order(seen: &[(String, String)], wanted: &[(&str, &str)]) -> bool {
    let mut rest = seen.iter();
    wanted
        .iter()
        .all(|(from, step)| rest.any(|(f, s)| f == from && s == step))
}

fn states_of(delivery: &Response) -> Vec<String> {
    delivery.body["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["state"].as_str().unwrap().to_owned())
        .collect()
}

/// Waits until the simulated couriers have registered with deliveries, by
/// the entry point's `deliveries` link and deliveries' `couriers` link.
async fn couriers_registered(app: &TestApp, entry: &Response) {
    let deliveries = follow(app, entry, "deliveries", None).await;
    until(app, &deliveries, "couriers", Duration::from_secs(10), |r| {
        r.body["count"] == 5
    })
    .await;
    // A paid order reaches deliveries only once it has subscribed.
    app.deliveries_subscribed().await;
}

/// A turn the client saw: its token's message id and the `turn` shown.
struct Seen {
    jti: Value,
    turn: u64,
}

fn seen(doc: &Response, rel: &str) -> Seen {
    Seen {
        jti: claims_of(doc, rel)["jti"].clone(),
        turn: doc.body["turn"].as_u64().unwrap(),
    }
}

/// The checkout's turns up to the priced basket, from the entry point, with
/// the turns the client saw.
async fn priced_checkout(app: &TestApp, entry: &Response) -> (Response, Vec<Seen>) {
    let basket = follow(app, entry, "start-checkout", None).await;
    assert_eq!(basket.status, 201, "{:#}", basket.body);
    assert_eq!(basket.body["status"], "open");
    assert_eq!(basket.body["state"]["items"], json!([]));
    let cid = basket.body["conversation"].clone();
    assert_eq!(claims_of(&basket, "add-item")["cid"], cid);
    let mut turns = vec![seen(&basket, "add-item")];

    let basket = follow(
        app,
        &basket,
        "add-item",
        Some(json!({ "sku": "margherita", "quantity": 2 })),
    )
    .await;
    assert_eq!(basket.status, 200, "{:#}", basket.body);
    assert_eq!(
        basket.body["state"]["items"],
        json!([{ "sku": "margherita", "qty": 2 }])
    );
    assert_eq!(claims_of(&basket, "checkout")["cid"], cid);
    turns.push(seen(&basket, "checkout"));

    let priced = follow(app, &basket, "checkout", None).await;
    assert_eq!(priced.status, 200, "{:#}", priced.body);
    assert_eq!(priced.body["status"], "priced");
    assert_eq!(priced.body["conversation"], cid);
    assert_eq!(priced.body["state"]["total"], 2 * 950 + 250);
    assert_eq!(claims_of(&priced, "pay")["iss"], "pricing");
    turns.push(seen(&priced, "pay"));
    assert!(
        turns.windows(2).all(|w| w[0].turn < w[1].turn),
        "turn numbers grow"
    );
    (priced, turns)
}

#[tokio::test]
async fn from_the_entry_point_to_a_delivered_order_by_following_links() {
    let app = spawn_app().await;
    let entry = app.get("/").await;
    assert_eq!(entry.status, 200, "{:#}", entry.body);
    couriers_registered(&app, &entry).await;

    let (priced, seen) = priced_checkout(&app, &entry).await;
    let cid = priced.body["conversation"].as_str().unwrap().to_owned();

    // Pay: pricing takes the payment with payments and raises the order.
    let paid = follow(
        &app,
        &priced,
        "pay",
        Some(json!({ "card_number": GOOD_CARD })),
    )
    .await;
    assert_eq!(paid.status, 200, "{:#}", paid.body);
    assert_eq!(paid.body["status"], "paid");
    assert_eq!(paid.body["conversation"], cid.as_str());
    assert_eq!(paid.body["state"]["payment"]["status"], "captured");
    assert!(!paid.has_link("pay"), "the payment turn is over");

    // The order, placed In-Only: it appears a moment later.
    let order = until(&app, &paid, "order", Duration::from_secs(10), |r| {
        r.status == 200
    })
    .await;
    assert_eq!(order.body["status"], "placed", "{:#}", order.body);
    assert_eq!(order.body["id"], paid.body["order_id"]);
    assert_eq!(order.body["conversation_id"], cid.as_str());
    let payment = follow(&app, &order, "payment", None).await;
    assert_eq!(payment.body["status"], "captured", "{:#}", payment.body);

    // Its delivery: the saga started by order.placed, in the same conversation.
    let delivery = until(&app, &order, "delivery", Duration::from_secs(10), |r| {
        r.status == 200
    })
    .await;
    assert_eq!(delivery.body["order_id"], order.body["id"]);
    assert_eq!(delivery.body["conversation"], cid.as_str());
    assert_eq!(delivery.link("order"), order.link("self"));
    assert_eq!(delivery.link("self"), order.link("delivery"));
    let delivered = until(&app, &delivery, "self", Duration::from_secs(30), |r| {
        r.body["state"] == "delivered"
    })
    .await;
    assert_eq!(delivered.body["courier_id"], "anna", "{:#}", delivered.body);
    let states = states_of(&delivered);
    let expected = [
        "soliciting",
        "offered",
        "assigned",
        "picked-up",
        "delivered",
    ];
    let mut at = states.iter();
    assert!(
        expected.iter().all(|s| at.any(|seen| seen == s)),
        "the delivery's history, in order: {states:?}"
    );
    assert!(
        !delivered.has_link("cancel") && !delivered.has_link("reassign"),
        "nothing left to do"
    );
    let back = follow(&app, &delivered, "order", None).await;
    assert_eq!(back.body["status"], "placed", "{:#}", back.body);

    // The transcript: every participant's journal, one conversation, and
    // its chain verifies from the first turn to the delivery's last.
    let view = follow(&app, &delivered, "conversation", None).await;
    assert_eq!(view.status, 200, "{:#}", view.body);
    assert_eq!(view.body["conversation"], cid.as_str());
    assert_eq!(view.body["complete"], true, "{:#}", view.body);
    assert_eq!(view.body["chain_verified"], true);
    for who in [
        "client",
        "basket",
        "pricing",
        "payments",
        "orders",
        "deliveries",
        "couriers",
    ] {
        assert!(
            view.body["participants"]
                .as_array()
                .unwrap()
                .contains(&json!(who)),
            "{who} takes part: {:#}",
            view.body["participants"]
        );
    }
    let messages = messages(&view);
    let final_message = view.body["final_message"].as_str().unwrap();
    let last = messages
        .iter()
        .find(|m| m["message_id"] == final_message)
        .unwrap();
    assert_eq!(
        (&last["from"], &last["step"]),
        (&json!("deliveries"), &json!("delivered")),
        "the saga's outcome is the latest turn"
    );
    let path = walk(messages, final_message);
    assert_eq!(replay(&path), view.body["final_chain"].as_str().unwrap());
    assert_eq!(view.body["turns"], path.len());
    assert_eq!(
        delivered.body["turn"].as_u64().unwrap() + 1,
        path.len() as u64,
        "the delivery's turn number counts every turn of the chain before it"
    );
    let walked = turns(&path);
    assert!(
        in_order(
            &walked,
            &[
                ("basket", "start-checkout"),
                ("basket", "add-item"),
                ("basket", "checkout"),
                ("pricing", "price"),
                ("pricing", "pay"),
                ("payments", "take-payment"),
                ("pricing", "raise-order"),
                ("orders", "order.placed"),
                ("deliveries", "find-courier"),
                ("deliveries", "solicit"),
                ("deliveries", "solicited"),
                ("deliveries", "offer"),
                ("couriers", "offer"),
                ("deliveries", "deliver"),
                ("couriers", "picked-up"),
                ("couriers", "delivered"),
                ("deliveries", "delivered"),
            ]
        ),
        "the chain's turns, in order: {walked:#?}"
    );
    // The tokens the client held are turns of that chain, each at the
    // place its turn number says.
    for turn in &seen {
        let at = path.iter().position(|m| m["message_id"] == turn.jti);
        assert_eq!(
            at,
            Some(turn.turn as usize),
            "the client's turn {} is that far along the chain",
            turn.turn
        );
    }

    let diagram = app
        .client
        .get(delivered.link("conversation"))
        .header("accept", "text/vnd.mermaid")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for arrow in [
        "client->>basket: start-checkout",
        "pricing->>orders: raise-order",
        "orders-)subscribers: order.placed",
        "deliveries->>deliveries: find-courier",
        "deliveries->>couriers: deliver",
        "couriers-->>deliveries: picked-up",
        "couriers-->>deliveries: delivered",
        "deliveries-->>client: delivered",
        &format!("complete: the chain verifies over {} turns", path.len()),
    ] {
        assert!(diagram.contains(arrow), "`{arrow}` in:\n{diagram}");
    }
    // order.placed is a chained event, and deliveries took it up.
    let placed = messages
        .iter()
        .find(|m| m["step"] == "order.placed")
        .unwrap();
    assert_eq!(placed["kind"], "event");
    assert_eq!(placed["to"], "subscribers");
    assert!(!placed["chain"].as_str().unwrap().is_empty());
    assert_eq!(placed["received"][0]["participant"], "deliveries");
    app.stop().await;
}

#[tokio::test]
async fn a_paid_order_no_courier_will_ride_to_is_cancelled_and_refunded() {
    let app = spawn_app().await;
    let entry = app.get("/").await;
    couriers_registered(&app, &entry).await;
    let (priced, _) = priced_checkout(&app, &entry).await;
    let cid = priced.body["conversation"].as_str().unwrap().to_owned();

    // 9 km north of Luigi's: inside orders' 10 km, beyond every courier's 8 km ride.
    let far = json!({ "lat": LUIGIS.0 + 0.081, "lon": LUIGIS.1 });
    let paid = follow(
        &app,
        &priced,
        "pay",
        Some(json!({ "card_number": GOOD_CARD, "address": far })),
    )
    .await;
    assert_eq!(paid.status, 200, "{:#}", paid.body);
    let order = until(&app, &paid, "order", Duration::from_secs(10), |r| {
        r.status == 200
    })
    .await;
    assert_eq!(order.body["status"], "placed", "{:#}", order.body);
    let delivery = until(&app, &order, "delivery", Duration::from_secs(10), |r| {
        r.status == 200
    })
    .await;
    assert_eq!(delivery.body["dropoff"], far, "the address paid with");

    let failed = until(&app, &delivery, "self", Duration::from_secs(40), |r| {
        r.body["state"] == "failed"
    })
    .await;
    assert_eq!(failed.body["attempts"], 3, "{:#}", failed.body);
    assert_eq!(failed.body["courier_id"], Value::Null);
    let notes: Vec<&str> = failed.body["history"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|h| h["note"].as_str())
        .collect();
    assert_eq!(
        notes
            .iter()
            .filter(|n| n.starts_with("solicitation "))
            .count(),
        3,
        "{notes:#?}"
    );
    assert!(
        notes
            .iter()
            .any(|n| n.contains("no courier confirmed") && n.contains("a ride of 9.0 km")),
        "the declines say why: {notes:#?}"
    );
    let last = notes.last().unwrap();
    assert!(
        last.starts_with("failed: no courier took the delivery")
            && last.contains("cancelled")
            && last.contains("refunded"),
        "{last}"
    );
    assert!(!failed.has_link("cancel"), "nothing left to compensate");

    // The compensation, at the resources themselves.
    let order = follow(&app, &failed, "order", None).await;
    assert_eq!(order.body["status"], "cancelled", "{:#}", order.body);
    assert_eq!(order.body["reason"], "no-courier");
    let payment = follow(&app, &failed, "payment", None).await;
    assert_eq!(payment.body["status"], "refunded", "{:#}", payment.body);
    assert_eq!(
        follow(&app, &order, "payment", None).await.body,
        payment.body
    );

    // Orders announces the cancellation; the saga hears the echo of its own
    // cancel-order and does nothing twice: no second compensation, no error.
    let view = until(
        &app,
        &failed,
        "conversation",
        Duration::from_secs(10),
        |r| {
            messages(r).iter().any(|m| {
                m["from"] == "orders"
                    && m["step"] == "order.cancelled"
                    && m["received"]
                        .as_array()
                        .is_some_and(|r| r.iter().any(|s| s["participant"] == "deliveries"))
            })
        },
    )
    .await;
    let again = follow(&app, &failed, "self", None).await;
    assert_eq!(again.body["state"], "failed");
    assert_eq!(
        again.body["history"], failed.body["history"],
        "nothing moved"
    );
    let echo = messages(&view)
        .iter()
        .find(|m| m["step"] == "order.cancelled")
        .unwrap();
    let cause = messages(&view)
        .iter()
        .find(|m| m["message_id"] == echo["causation_id"])
        .unwrap();
    assert_eq!(
        (&cause["from"], &cause["step"]),
        (&json!("deliveries"), &json!("cancel-order")),
        "the event follows the saga's own cancel-order"
    );
    let steps: Vec<&str> = messages(&view)
        .iter()
        .filter_map(|m| m["step"].as_str())
        .collect();
    assert_eq!(
        steps.iter().filter(|s| **s == "refund").count(),
        2,
        "one refund asked, one acknowledged: {steps:?}"
    );

    // The transcript shows the declines, the compensation and the failure,
    // in one chain with the checkout.
    let view = follow(&app, &failed, "conversation", None).await;
    assert_eq!(view.status, 200, "{:#}", view.body);
    assert_eq!(view.body["conversation"], cid.as_str());
    assert_eq!(view.body["complete"], true, "{:#}", view.body);
    let messages = messages(&view);
    let final_message = view.body["final_message"].as_str().unwrap();
    let path = walk(messages, final_message);
    assert_eq!(replay(&path), view.body["final_chain"].as_str().unwrap());
    let walked = turns(&path);
    assert!(
        in_order(
            &walked,
            &[
                ("basket", "start-checkout"),
                ("pricing", "raise-order"),
                ("orders", "order.placed"),
                ("deliveries", "find-courier"),
                ("deliveries", "solicited"),
                ("deliveries", "find-courier"),
                ("deliveries", "solicited"),
                ("deliveries", "find-courier"),
                ("deliveries", "solicited"),
                ("deliveries", "cancel-order"),
                ("orders", "cancel-order"),
                ("deliveries", "refund"),
                ("payments", "refund"),
                ("deliveries", "failed"),
            ]
        ),
        "the chain's turns, in order: {walked:#?}"
    );
    let declines = messages
        .iter()
        .filter(|m| m["from"] == "couriers" && m["step"] == "solicit")
        .count();
    assert!(
        declines >= 3 * 4,
        "every courier that answered in time declined, three times: {declines}"
    );
    let cancel = messages
        .iter()
        .find(|m| m["from"] == "deliveries" && m["step"] == "cancel-order")
        .unwrap();
    assert_eq!(cancel["pattern"], "process-manager");
    assert_eq!(cancel["received"][0]["participant"], "orders");
    app.stop().await;
}
