//! "Activities know messages sent and received": each participant's journal,
//! and `GET /conversations/{cid}` merging them in causal order, checked
//! against the chain digest — in one process, split across two, and after
//! a journal record has been deleted or altered behind the service's back.

use conversant::conversation::chain;
use conversant::ids::MessageId;
use conversant::participant::Participant::{Basket, Couriers, Deliveries, Pricing, Stores};
use serde_json::{Value, json};

use crate::exchanges::{eventually_ok, priced};
use crate::support::{Response, TestApp, spawn_app, spawn_pair, spawn_with, token_of};
use crate::tokens::decode;

const GOOD_CARD: &str = "4242424242424242";
const DECLINED_CARD: &str = "4000000000000002";

/// A server with every participant but deliveries and its couriers. The
/// delivery saga takes a paid checkout's conversation up after
/// `order.placed` and keeps it moving for seconds; these tests look at the
/// checkout's part, so they leave it out (`turn_taking` follows the whole
/// journey to the delivered order).
async fn spawn_checkout() -> TestApp {
    spawn_with(|c| {
        c.participants
            .retain(|p| !matches!(p, Deliveries | Couriers))
    })
    .await
}

/// Walks a checkout to paid and waits for the order (In-Only); returns the
/// conversation id.
async fn paid_checkout(app: &TestApp) -> (String, Response) {
    let priced = priced(app).await;
    let paid = app
        .post_json(&priced.link("pay"), json!({ "card_number": GOOD_CARD }))
        .await;
    assert_eq!(paid.status, 200, "{:#}", paid.body);
    let order = eventually_ok(app, &paid.link("order")).await;
    assert_eq!(order.status, 200, "{:#}", order.body);
    let cid = paid.body["conversation"].as_str().unwrap().to_owned();
    (cid, priced)
}

fn messages(view: &Response) -> &Vec<Value> {
    view.body["_embedded"]["messages"]
        .as_array()
        .unwrap_or_else(|| panic!("no embedded messages in {:#}", view.body))
}

/// The position of the first message with this step (the sender's).
fn position(messages: &[Value], step: &str) -> usize {
    messages
        .iter()
        .position(|m| m["step"] == step)
        .unwrap_or_else(|| panic!("no `{step}` message"))
}

/// Replays the chain independently: from the final message back along
/// `causation_id`, then forward from the genesis digest.
fn replay_from_final(messages: &[Value], final_message: &str) -> String {
    let by_id = |id: &str| {
        messages
            .iter()
            .find(|m| m["message_id"] == id)
            .unwrap_or_else(|| panic!("no message {id}"))
    };
    let mut path = vec![by_id(final_message)];
    while let Some(cause) = path.last().unwrap()["causation_id"].as_str() {
        path.push(by_id(cause));
    }
    path.iter()
        .rev()
        .fold(chain::GENESIS.to_owned(), |prev, m| {
            let jti: MessageId = m["message_id"].as_str().unwrap().parse().unwrap();
            chain::extend(
                &prev,
                jti,
                m["from"].as_str().unwrap(),
                m["step"].as_str().unwrap(),
            )
        })
}

#[tokio::test]
async fn a_paid_checkout_is_rebuilt_from_every_journal_in_causal_order() {
    let app = spawn_checkout().await;
    let (cid, priced) = paid_checkout(&app).await;

    let view = app.get(&format!("/conversations/{cid}")).await;
    assert_eq!(view.status, 200, "{:#}", view.body);
    assert_eq!(view.content_type(), "application/hal+json");
    assert_eq!(view.body["conversation"], cid.as_str());
    assert_eq!(view.body["complete"], true, "{:#}", view.body);
    assert_eq!(view.body["chain_verified"], true);
    assert_eq!(view.body["gaps"], json!([]));
    assert!(view.has_link("mermaid") && view.has_link("start"));
    assert_eq!(view.link("self"), app.url(&format!("/conversations/{cid}")));
    for who in ["client", "basket", "pricing", "payments", "orders"] {
        assert!(
            view.body["participants"]
                .as_array()
                .unwrap()
                .contains(&json!(who)),
            "{who} takes part"
        );
    }

    let messages = messages(&view);
    // Causal order: every cause comes before what it caused.
    for (i, m) in messages.iter().enumerate() {
        if let Some(cause) = m["causation_id"].as_str() {
            let at = messages.iter().position(|c| c["message_id"] == cause);
            assert!(at.is_some_and(|at| at < i), "{m:#} before its cause");
        }
    }
    let steps = ["start-checkout", "add-item", "checkout", "price", "pay"];
    let mut last = 0;
    for step in steps.iter().chain(&["take-payment", "raise-order", "paid"]) {
        let at = position(messages, step);
        assert!(at >= last, "`{step}` is out of order");
        last = at;
    }
    // A message between two participants is one line with both sides.
    let request = &messages[position(messages, "take-payment")];
    assert_eq!(request["from"], "payments");
    let pay = &messages[position(messages, "pay")];
    assert_eq!(pay["sent"]["participant"], "pricing");
    assert_eq!(pay["received"][0]["participant"], "payments");
    assert_eq!(pay["received"][0]["step"], "take-payment");
    let raise = &messages[position(messages, "raise-order")];
    assert_eq!(raise["received"][0]["participant"], "orders");
    assert!(
        messages
            .iter()
            .any(|m| m["kind"] == "event" && m["from"] == "orders" && m["step"] == "order.placed"),
        "orders' event is in the transcript"
    );

    // The chain: the latest turn is orders' `order.placed`, signed as the
    // turn after "raise order", and replaying the walk from it reproduces
    // its digest. Pricing's `paid` answer to the client is a branch off
    // "raise order", checked against its cause like every chained message.
    let final_message = view.body["final_message"].as_str().unwrap();
    let placed = &messages[position(messages, "order.placed")];
    assert_eq!(placed["message_id"], final_message);
    assert_eq!(
        placed["causation_id"],
        messages[position(messages, "raise-order")]["message_id"]
    );
    assert_eq!(
        replay_from_final(messages, final_message),
        view.body["final_chain"].as_str().unwrap()
    );
    let paid = &messages[position(messages, "paid")];
    assert_eq!(paid["causation_id"], placed["causation_id"]);
    // The journals recorded the very digest the client's token carries.
    let (_, claims) = decode(&token_of(&priced.link("pay")));
    let price = messages
        .iter()
        .find(|m| m["message_id"] == claims["jti"])
        .expect("the priced basket's message");
    assert_eq!(price["chain"], claims["chn"]);
    assert_eq!(price["step"], "price");
}

#[tokio::test]
async fn the_conversation_renders_as_a_mermaid_sequence_diagram() {
    let app = spawn_checkout().await;
    let (cid, _) = paid_checkout(&app).await;
    let response = app
        .client
        .get(app.url(&format!("/conversations/{cid}")))
        .header("accept", "text/vnd.mermaid")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-type"],
        "text/vnd.mermaid; charset=utf-8"
    );
    let diagram = response.text().await.unwrap();
    assert!(diagram.starts_with("sequenceDiagram\n"), "{diagram}");
    for who in ["client", "basket", "pricing", "payments", "orders"] {
        assert!(
            diagram.contains(&format!("participant {who}\n")),
            "{who}: {diagram}"
        );
    }
    for arrow in [
        "client->>basket: start-checkout",
        "basket->>pricing: price",
        "pricing-->>client: price",
        "client->>pricing: pay",
        "pricing->>payments: take-payment",
        "payments-->>pricing: take-payment",
        "pricing->>orders: raise-order",
        "orders-)subscribers: order.placed",
        "pricing-->>client: paid",
        "Note over client,",
    ] {
        assert!(diagram.contains(arrow), "`{arrow}` in:\n{diagram}");
    }
    assert!(
        diagram.contains("complete: the chain verifies"),
        "{diagram}"
    );
}

#[tokio::test]
async fn a_participants_journal_lists_what_it_sent_and_received() {
    let app = spawn_app().await;
    // Deliveries' side of the journal below starts from order.placed.
    app.deliveries_subscribed().await;
    let (cid, _) = paid_checkout(&app).await;
    let journal = app
        .get(&format!("/pricing/journal?conversation={cid}"))
        .await;
    assert_eq!(journal.status, 200, "{:#}", journal.body);
    assert_eq!(journal.body["participant"], "pricing");
    assert!(journal.has_link("conversation"));
    let entries = journal.body["_embedded"]["entries"].as_array().unwrap();
    assert_eq!(journal.body["count"], entries.len());
    assert!(entries.iter().all(|e| e["participant"] == "pricing"));
    assert!(entries.iter().all(|e| e["conversation_id"] == cid.as_str()));
    let has = |status: &str, step: &str, from: &str| {
        entries
            .iter()
            .any(|e| e["status"] == status && e["step"] == step && e["from_participant"] == from)
    };
    assert!(has("received", "price", "basket"), "{entries:#?}");
    assert!(has("sent", "pay", "pricing"));
    assert!(has("received", "payment-reply", "payments"));
    assert!(has("sent", "raise-order", "pricing"));

    let orders = app
        .get(&format!("/orders/journal?conversation={cid}"))
        .await;
    let entries = orders.body["_embedded"]["entries"].as_array().unwrap();
    assert!(
        entries
            .iter()
            .any(|e| e["status"] == "received" && e["step"] == "raise-order")
    );
    assert!(entries.iter().any(|e| e["kind"] == "event"));

    // Deliveries takes the conversation up from the event it received.
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let deliveries = app
            .get(&format!("/deliveries/journal?conversation={cid}"))
            .await;
        assert_eq!(deliveries.status, 200);
        let entries = deliveries.body["_embedded"]["entries"].as_array().unwrap();
        if entries
            .iter()
            .any(|e| e["status"] == "received" && e["step"] == "order.placed")
        {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "deliveries never received order.placed: {:#}",
            deliveries.body
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_journal_needs_a_conversation_id() {
    let app = spawn_app().await;
    let missing = app.get("/basket/journal").await;
    assert_eq!(missing.status, 400, "{:#}", missing.body);
    assert_eq!(missing.content_type(), "application/problem+json");
    let invalid = app.get("/basket/journal?conversation=yesterday").await;
    assert_eq!(invalid.status, 422, "{:#}", invalid.body);
    assert_eq!(invalid.content_type(), "application/problem+json");
}

#[tokio::test]
async fn a_declined_payment_shows_as_a_fault_and_the_chain_still_verifies() {
    let app = spawn_app().await;
    let priced = priced(&app).await;
    let declined = app
        .post_json(&priced.link("pay"), json!({ "card_number": DECLINED_CARD }))
        .await;
    assert_eq!(declined.status, 402, "{:#}", declined.body);
    let cid = declined.body["conversation"].as_str().unwrap();

    let view = app.get(&format!("/conversations/{cid}")).await;
    assert_eq!(view.status, 200, "{:#}", view.body);
    let messages = messages(&view);
    let faults: Vec<&Value> = messages.iter().filter(|m| m["kind"] == "fault").collect();
    assert!(
        faults.iter().any(|f| f["from"] == "payments"
            && f["received"][0]["participant"] == "pricing"
            && f["received"][0]["status"] == "card-declined"),
        "pricing journaled the fault it received: {faults:#?}"
    );
    assert!(
        faults
            .iter()
            .any(|f| f["sent"]["participant"] == "payments"),
        "payments journaled the fault it sent: {faults:#?}"
    );
    assert_eq!(view.body["complete"], true, "{:#}", view.body);
    assert_eq!(
        messages[position(messages, "payment-failed")]["message_id"],
        view.body["final_message"],
        "the repair token is the latest turn"
    );

    let diagram = app
        .client
        .get(app.url(&format!("/conversations/{cid}")))
        .header("accept", "text/vnd.mermaid")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(diagram.contains("payments--xpricing"), "{diagram}");
}

#[tokio::test]
async fn an_unknown_conversation_is_404() {
    let app = spawn_app().await;
    for cid in [
        MessageId::new().to_string(),
        "not-a-conversation".to_owned(),
    ] {
        let view = app.get(&format!("/conversations/{cid}")).await;
        assert_eq!(view.status, 404, "{:#}", view.body);
        assert_eq!(view.problem_type(), "/problems/not-found");
    }
}

/// Runs `sql` (with the conversation id bound) against the app's database.
async fn tamper(app: &TestApp, sql: &'static str, cid: &str) -> u64 {
    let url = app.database();
    if url.starts_with("postgres") {
        let pool = sqlx::PgPool::connect(&url).await.unwrap();
        let done = sqlx::query(sql).bind(cid).execute(&pool).await.unwrap();
        pool.close().await;
        done.rows_affected()
    } else {
        let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
        let done = sqlx::query(sql).bind(cid).execute(&pool).await.unwrap();
        pool.close().await;
        done.rows_affected()
    }
}

#[tokio::test]
async fn a_deleted_journal_record_leaves_a_gap_the_chain_shows() {
    let app = spawn_checkout().await;
    let (cid, _) = paid_checkout(&app).await;
    let before = app.get(&format!("/conversations/{cid}")).await;
    assert_eq!(before.body["complete"], true, "{:#}", before.body);

    let deleted = tamper(
        &app,
        "DELETE FROM journal WHERE participant = 'basket' AND step = 'add-item' AND conversation_id = $1",
        &cid,
    )
    .await;
    assert_eq!(deleted, 1);

    let after = app.get(&format!("/conversations/{cid}")).await;
    assert_eq!(after.status, 200);
    assert_eq!(after.body["complete"], false, "{:#}", after.body);
    assert_eq!(after.body["chain_verified"], false);
    let gaps = after.body["gaps"].as_array().unwrap();
    assert!(
        gaps.iter().any(|g| g["problem"]
            .as_str()
            .unwrap()
            .contains("is missing from every journal")),
        "{gaps:#?}"
    );
}

#[tokio::test]
async fn an_altered_chain_digest_is_a_mismatch() {
    let app = spawn_checkout().await;
    let (cid, _) = paid_checkout(&app).await;
    app.get(&format!("/conversations/{cid}")).await;
    let altered = tamper(
        &app,
        "UPDATE journal SET step = 'raise-order-twice' WHERE participant = 'pricing' AND step = 'raise-order' AND status = 'sent' AND conversation_id = $1",
        &cid,
    )
    .await;
    assert_eq!(altered, 1);

    let after = app.get(&format!("/conversations/{cid}")).await;
    assert_eq!(after.body["complete"], false, "{:#}", after.body);
    let gaps = after.body["gaps"].as_array().unwrap();
    assert!(
        gaps.iter().any(|g| g["problem"]
            .as_str()
            .unwrap()
            .contains("chain digest mismatch")),
        "{gaps:#?}"
    );
}

#[tokio::test]
async fn a_split_deployment_merges_journals_from_both_servers_over_http() {
    let (a, b) = spawn_pair(|a, base_a, b, base_b| {
        a.participants = vec![Basket, Stores];
        a.peers.insert(Pricing, base_b.to_owned());
        b.participants = vec![Pricing];
        b.peers.insert(Basket, base_a.to_owned());
        b.peers.insert(Stores, base_a.to_owned());
    })
    .await;
    let priced = priced(&a).await;
    let cid = priced.body["conversation"].as_str().unwrap();
    assert_eq!(
        a.get("/pricing/journal").await.status,
        404,
        "A does not host pricing"
    );

    for server in [&a, &b] {
        let view = server.get(&format!("/conversations/{cid}")).await;
        assert_eq!(view.status, 200, "{:#}", view.body);
        assert_eq!(view.body["complete"], true, "{:#}", view.body);
        let journals = view.body["journals"].as_array().unwrap();
        let read = |who: &str| {
            journals
                .iter()
                .find(|j| j["participant"] == who)
                .and_then(|j| j["entries"].as_u64())
        };
        assert!(read("basket").unwrap() >= 3, "{journals:#?}");
        assert!(read("pricing").unwrap() >= 2, "{journals:#?}");
        let price = &messages(&view)[position(messages(&view), "checkout")];
        assert_eq!(price["sent"]["participant"], "basket");
        assert_eq!(price["received"][0]["participant"], "pricing");
    }
}

#[tokio::test]
async fn the_journals_example_links_to_its_conversation() {
    let app = spawn_checkout().await;
    let pattern = app.get("/patterns/journals").await;
    assert_eq!(pattern.body["status"], "available");
    let example = app.post_empty(&pattern.link("try")).await;
    assert_eq!(example.status, 200, "{:#}", example.body);
    assert!(example.has_link("mermaid"));
    let order = eventually_ok(&app, &example.link("order")).await;
    assert_eq!(order.status, 200);
    let view = app.get(&example.link("conversation")).await;
    assert_eq!(view.status, 200, "{:#}", view.body);
    assert_eq!(view.body["complete"], true, "{:#}", view.body);
}
