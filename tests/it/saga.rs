//! The delivery saga (Process Manager) over real HTTP: the happy path, a
//! delivery every courier declines, a timer that fires after a restart, the
//! compensation of a checkout's order, and a delivery whose order is
//! cancelled under it.

use std::time::{Duration, Instant};

use conversant::conversation::KeyRing;
use conversant::messaging::exchange::KIND_REPLY;
use conversant::participant::Participant;
use conversant::store::{NewOutboxMessage, Store};
use serde_json::{Value, json};

use crate::support::{Response, TestApp, spawn_app, spawn_in};
use crate::tokens::ed_signed;

const LUIGIS: (f64, f64) = (52.5200, 13.4050);

fn delivery_body(pickup: (f64, f64), extra: Value) -> Value {
    let mut body = json!({
        "pickup": { "lat": pickup.0, "lon": pickup.1 },
        "dropoff": { "lat": pickup.0 + 0.01, "lon": pickup.1 + 0.01 },
        "size": "small",
        "weight_kg": 1.5,
        "deadline_ms": 400,
    });
    if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
        b.extend(e.clone());
    }
    body
}

/// Polls a delivery until it reaches `state`, or fails after `within`.
async fn until_state(app: &TestApp, href: &str, state: &str, within: Duration) -> Value {
    let deadline = Instant::now() + within;
    loop {
        let got = app.get(href).await;
        assert_eq!(got.status, 200, "{:#}", got.body);
        if got.body["state"] == state {
            return got.body;
        }
        assert!(
            Instant::now() < deadline,
            "still {} after {within:?}: {:#}",
            got.body["state"],
            got.body
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn states_of(history: &Value) -> Vec<String> {
    history
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["state"].as_str().unwrap().to_owned())
        .collect()
}

/// Waits until the simulated couriers have registered.
async fn couriers_registered(app: &TestApp) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while app.get("/deliveries/couriers").await.body["count"] != 5 {
        assert!(Instant::now() < deadline, "couriers did not register");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    // A paid order reaches deliveries only once it has subscribed.
    app.deliveries_subscribed().await;
}

#[tokio::test]
async fn a_delivery_is_solicited_assigned_picked_up_and_delivered() {
    let app = spawn_app().await;
    couriers_registered(&app).await;
    let created = app
        .post_json("/deliveries/deliveries", delivery_body(LUIGIS, json!({})))
        .await;
    assert_eq!(created.status, 201, "{:#}", created.body);
    assert_eq!(created.body["state"], "soliciting");
    let href = created.link("self");
    let done = until_state(&app, &href, "delivered", Duration::from_secs(20)).await;
    assert_eq!(done["courier_id"], "anna", "the soonest courier: {done:#}");
    let states = states_of(&done["history"]);
    for expected in [
        "soliciting",
        "offered",
        "assigned",
        "picked-up",
        "delivered",
    ] {
        assert!(states.contains(&expected.to_owned()), "{states:?}");
    }
    assert!(
        !done["_links"]["cancel"].is_object(),
        "a delivered delivery has no cancel"
    );

    let listed = app.get("/deliveries/deliveries?state=delivered").await;
    assert_eq!(listed.status, 200);
    assert_eq!(listed.body["_embedded"]["deliveries"][0]["id"], done["id"]);
    let summary = app.get("/deliveries/deliveries/summary").await;
    assert_eq!(summary.body["counts"]["delivered"], 1, "{:#}", summary.body);
    assert!(summary.body["mean_seconds_per_stage"]["assigned"].is_number());
    app.stop().await;
}

#[tokio::test]
async fn a_delivery_every_courier_declines_is_re_solicited_then_fails() {
    let app = spawn_app().await;
    couriers_registered(&app).await;
    // Far from every courier: all decline (or do not answer in time).
    let created = app
        .post_json(
            "/deliveries/deliveries",
            delivery_body((48.1, 11.6), json!({})),
        )
        .await;
    assert_eq!(created.status, 201, "{:#}", created.body);
    let failed = until_state(
        &app,
        &created.link("self"),
        "failed",
        Duration::from_secs(30),
    )
    .await;
    assert_eq!(failed["attempts"], 3, "{failed:#}");
    let notes: Vec<&str> = failed["history"]
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
        "{notes:?}"
    );
    assert!(
        notes.iter().any(|n| n.contains("no courier confirmed")),
        "{notes:?}"
    );
    assert_eq!(states_of(&failed["history"]).last().unwrap(), "failed");
    let again = app
        .post_empty(&format!("{}/cancel", created.link("self")))
        .await;
    assert_eq!(again.status, 409, "a failed delivery cannot be cancelled");
    app.stop().await;
}

#[tokio::test]
async fn a_saga_timer_fires_after_a_restart() {
    let app = spawn_app().await;
    couriers_registered(&app).await;
    let created = app
        .post_json(
            "/deliveries/deliveries",
            delivery_body(LUIGIS, json!({ "ready_in_ms": 1500 })),
        )
        .await;
    assert_eq!(created.status, 201, "{:#}", created.body);
    let id = created.body["id"].as_str().unwrap().to_owned();
    let dir = app.stop().await;

    let app = spawn_in(dir, |_| {}).await;
    couriers_registered(&app).await;
    let href = format!("/deliveries/deliveries/{id}");
    let done = until_state(&app, &href, "delivered", Duration::from_secs(20)).await;
    assert_eq!(states_of(&done["history"])[0], "soliciting");
    let notes = done["history"].to_string();
    assert!(
        notes.contains("solicitation 1 of") && !notes.contains("soliciting again"),
        "the timer fired once, on the restarted server: {notes}"
    );
    // The saga kept its place in the conversation across the restart: one
    // chain from the delivery's first message to its last.
    let view = app
        .get(done["_links"]["conversation"]["href"].as_str().unwrap())
        .await;
    assert_eq!(view.status, 200, "{:#}", view.body);
    assert_eq!(view.body["complete"], true, "{:#}", view.body);
    let messages = view.body["_embedded"]["messages"].as_array().unwrap();
    assert_eq!(messages[0]["step"], "create-delivery");
    let last = messages
        .iter()
        .find(|m| m["message_id"] == view.body["final_message"])
        .unwrap();
    assert_eq!(last["step"], "delivered");
    assert_eq!(
        done["turn"].as_u64().unwrap() + 1,
        view.body["turns"].as_u64().unwrap()
    );
    app.stop().await;
}

#[tokio::test]
async fn cancelling_a_delivery_from_a_paid_checkout_cancels_the_order_and_refunds() {
    let app = spawn_app().await;
    couriers_registered(&app).await;
    let priced = crate::exchanges::priced(&app).await;
    let paid = app
        .post_json(
            &priced.link("pay"),
            json!({ "card_number": "4242424242424242" }),
        )
        .await;
    assert_eq!(paid.status, 200, "{:#}", paid.body);
    let order_id = paid.body["order_id"].as_str().unwrap().to_owned();
    let deadline = Instant::now() + Duration::from_secs(10);
    let delivery = loop {
        let listed = app.get("/deliveries/deliveries").await;
        let found = listed.body["_embedded"]["deliveries"]
            .as_array()
            .and_then(|ds| {
                ds.iter()
                    .find(|d| d["order_id"] == order_id.as_str())
                    .cloned()
            });
        if let Some(found) = found {
            break found;
        }
        assert!(
            Instant::now() < deadline,
            "no delivery for the order: {:#}",
            listed.body
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let href = delivery["_links"]["self"]["href"]
        .as_str()
        .unwrap()
        .to_owned();
    let cancelled = app.post_empty(&format!("{href}/cancel")).await;
    assert_eq!(cancelled.status, 200, "{:#}", cancelled.body);
    let done = until_state(&app, &href, "cancelled", Duration::from_secs(20)).await;
    let last = done["history"].as_array().unwrap().last().unwrap()["note"].to_string();
    assert!(
        last.contains("cancelled") && last.contains("refunded"),
        "{last}"
    );
    let order = app.get(&format!("/orders/orders/{order_id}")).await;
    assert_eq!(order.body["status"], "cancelled", "{:#}", order.body);
    app.stop().await;
}

#[tokio::test]
async fn the_process_manager_try_link_starts_a_delivery() {
    let app = spawn_app().await;
    let tried = app.post_empty("/patterns/process-manager/try").await;
    assert_eq!(tried.status, 201, "{:#}", tried.body);
    assert_eq!(tried.body["state"], "soliciting");
    assert!(tried.has_link("cancel") && tried.has_link("reassign"));
    app.stop().await;
}

/// A token signed with `participant`'s real key, as that participant would
/// sign it: `st` the state, `nxt` the one step it allows, for `aud`.
pub fn signed_by(
    app: &TestApp,
    participant: Participant,
    aud: &str,
    nxt: &str,
    cid: &Value,
    st: Value,
) -> String {
    let key = KeyRing::load_or_create(app.data_dir.path(), participant)
        .unwrap()
        .live()
        .unwrap()
        .pop()
        .unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let claims = json!({
        "iss": participant.as_str(), "aud": [aud], "iat": now, "nbf": now, "exp": now + 600,
        "jti": uuid::Uuid::now_v7(), "cid": cid, "pat": "process-manager",
        "seq": 90, "nxt": [nxt], "chn": "", "st": st,
    });
    let header = json!({ "alg": "EdDSA", "typ": "conv+jwt", "kid": key.kid });
    ed_signed(&header, &claims, &key.pair)
}

#[tokio::test]
async fn a_delivery_whose_order_is_cancelled_stops_refunds_nothing_and_refuses_its_courier() {
    let app = spawn_app().await;
    couriers_registered(&app).await;
    let root = app.get("/").await;
    let slip = app
        .post_json(
            &root.link("start-routing-slip"),
            json!({
                "steps": ["price", "take-payment", "raise-order"],
                "items": [{ "sku": "margherita", "qty": 1 }],
                "card_number": "4242424242424242",
                "address": { "lat": LUIGIS.0 + 0.01, "lon": LUIGIS.1 + 0.01 },
            }),
        )
        .await;
    assert_eq!(slip.status, 202, "{:#}", slip.body);
    let cid = slip.body["slip"].clone();

    // The order's delivery, once a courier took the job (its ride to the
    // pickup takes a second).
    let deadline = Instant::now() + Duration::from_secs(20);
    let assigned = loop {
        let list = app.get("/deliveries/deliveries?state=assigned").await;
        let found = list.body["_embedded"]["deliveries"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|d| d["conversation"] == cid)
            .cloned();
        if let Some(found) = found {
            break found;
        }
        assert!(Instant::now() < deadline, "no courier took the delivery");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let href = assigned["_links"]["self"]["href"]
        .as_str()
        .unwrap()
        .to_owned();
    let order = assigned["order_id"].as_str().unwrap().to_owned();
    let courier = assigned["courier_id"].clone();

    // The checkout cancels the order through orders' cancel-order command.
    let cancel = app
        .client
        .post(app.url(&format!("/orders/orders/{order}/cancel")))
        .header(
            "conversation-state",
            signed_by(
                &app,
                Participant::Pricing,
                "orders",
                "cancel-order",
                &cid,
                json!({ "reason": "changed-mind" }),
            ),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(cancel.status(), 200);

    let cancelled = until_state(&app, &href, "cancelled", Duration::from_secs(10)).await;
    let last = cancelled["history"].as_array().unwrap().last().unwrap()["note"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        last.contains(&format!("order {order} was cancelled (changed-mind)")),
        "{last}"
    );
    let payment = app
        .get(cancelled["_links"]["payment"]["href"].as_str().unwrap())
        .await;
    assert_eq!(
        payment.body["status"], "captured",
        "the delivery refunds nothing: whoever cancelled the order owns the refund"
    );
    let order_now = app
        .get(cancelled["_links"]["order"]["href"].as_str().unwrap())
        .await;
    assert_eq!(order_now.body["status"], "cancelled");
    assert_eq!(order_now.body["reason"], "changed-mind");

    // The courier's report, arriving after: refused for good (410, not a
    // 409 its relay would retry), with a problem document.
    let delivery_id = cancelled["id"].as_str().unwrap();
    let own = signed_by(
        &app,
        Participant::Deliveries,
        "deliveries",
        "delivery-report",
        &cid,
        json!({ "delivery": delivery_id, "courier": courier, "attempt": cancelled["attempts"] }),
    );
    let report =
        json!({ "delivery_id": delivery_id, "courier_id": courier, "status": "picked-up" });
    let theirs = signed_by(
        &app,
        Participant::Couriers,
        "deliveries",
        "delivery-report",
        &cid,
        report.clone(),
    );
    let reply_to = app.url(&format!(
        "/deliveries/deliveries/{delivery_id}/reports?state={own}"
    ));
    let refused = app
        .client
        .post(&reply_to)
        .header("conversation-state", &theirs)
        .json(&report)
        .send()
        .await
        .unwrap();
    let refused = Response::read(refused).await;
    assert_eq!(refused.status, 410, "{:#}", refused.body);
    assert_eq!(refused.content_type(), "application/problem+json");
    assert_eq!(refused.problem_type(), "/problems/delivery-cancelled");
    assert_eq!(refused.body["conversation"], cid);
    assert_eq!(app.get(&href).await.body["state"], "cancelled");

    // The same report sent as the courier sends it, a reply through an
    // outbox: the relay's first attempt is its last, where a 409 kept it
    // pending on the retry schedule (1 s, 5 s, 30 s...) before it became a
    // dead letter. (The outbox is a participant of its own, so the courier's
    // own reports of its ride are not counted.)
    const REPORTER: &str = "saga-test-courier";
    let store = Store::connect(&app.database()).await.unwrap();
    let mut tx = store.begin().await.unwrap();
    tx.outbox_enqueue(&NewOutboxMessage {
        id: uuid::Uuid::now_v7().to_string(),
        participant: REPORTER.to_owned(),
        destination: reply_to,
        kind: KIND_REPLY.to_owned(),
        headers: json!({ "conversation-state": theirs, "content-type": "application/json" }),
        body: report,
    })
    .await
    .unwrap();
    tx.commit().await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let counts = loop {
        let counts = store.outbox_counts(REPORTER).await.unwrap();
        if counts.pending == 0 {
            break counts;
        }
        assert!(
            Instant::now() < deadline,
            "the report is still pending: {counts:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(counts.delivered + counts.dead, 1, "{counts:?}");
    app.stop().await;
}

/// The body a generic client sends for a HAL-FORMS template: each
/// property's suggested value.
fn filled_in(template: &Value) -> Value {
    template["properties"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["name"].as_str().unwrap().to_owned(), p["value"].clone()))
        .collect::<serde_json::Map<_, _>>()
        .into()
}

#[tokio::test]
async fn a_generic_client_starts_a_delivery_from_the_entry_point_form() {
    let app = spawn_app().await;
    let root = app.get("/").await;
    let form = &root.body["_templates"]["start-delivery"];
    assert_eq!(form["method"], "POST", "{:#}", root.body);
    let by_name = |name: &str| {
        form["properties"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == name)
            .unwrap_or_else(|| panic!("no property {name}: {form:#}"))
            .clone()
    };
    let weight = by_name("weight_kg");
    assert_eq!(
        (
            &weight["type"],
            &weight["required"],
            &weight["min"],
            &weight["max"]
        ),
        (&json!("number"), &json!(true), &json!(0), &json!(50))
    );
    assert_eq!(
        by_name("size")["options"]["inline"]
            .as_array()
            .unwrap()
            .len(),
        3
    );
    assert_eq!(by_name("deadline_ms")["min"], 100);
    assert_eq!(by_name("pickup")["required"], true);
    assert_eq!(by_name("ready_in_ms")["required"], false);

    // The list offers the same form.
    let list = app.get(&root.link("deliveries")).await;
    let list = app.get(&list.link("deliveries")).await;
    assert_eq!(
        list.body["_templates"]["create"]["properties"],
        form["properties"]
    );

    // Filled in with its own values, as JSON...
    let mut body = filled_in(form);
    body["ready_in_ms"] = json!(86_400_000);
    let target = form["target"].as_str().unwrap();
    let created = app.post_json(target, body).await;
    assert_eq!(created.status, 201, "{:#}", created.body);
    assert_eq!(created.body["state"], "soliciting");
    assert_eq!(created.body["size"], "small");

    // ... and as an HTML form would send it: places as JSON text.
    let form_body = serde_urlencoded::to_string([
        ("pickup", r#"{"lat": 52.52, "lon": 13.405}"#),
        ("dropoff", r#"{"lat": 52.53, "lon": 13.415}"#),
        ("size", "large"),
        ("weight_kg", "12.5"),
        ("ready_in_ms", "86400000"),
    ])
    .unwrap();
    let posted = app
        .client
        .post(target)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form_body)
        .send()
        .await
        .unwrap();
    let posted = Response::read(posted).await;
    assert_eq!(posted.status, 201, "{:#}", posted.body);
    assert_eq!(
        posted.body["pickup"],
        json!({ "lat": 52.52, "lon": 13.405 })
    );
    assert_eq!(posted.body["weight_kg"], 12.5);
    app.stop().await;
}

/// The link of `rel` named `name`, in a HAL link array.
fn named(doc: &Response, rel: &str, name: &str) -> String {
    doc.body["_links"][rel]
        .as_array()
        .unwrap_or_else(|| panic!("no {rel} links: {:#}", doc.body))
        .iter()
        .find(|l| l["name"] == name)
        .unwrap_or_else(|| panic!("no {rel} link named {name}"))["href"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn the_list_links_each_state_s_view_and_its_pages() {
    let app = spawn_app().await;
    // Parcels ready in a day: nothing moves while the test reads.
    let later = json!({ "ready_in_ms": 86_400_000 });
    let mut last = Value::Null;
    for _ in 0..21 {
        let created = app
            .post_json(
                "/deliveries/deliveries",
                delivery_body(LUIGIS, later.clone()),
            )
            .await;
        assert_eq!(created.status, 201, "{:#}", created.body);
        last = created.body;
    }
    let cancel = last["_links"]["cancel"]["href"].as_str().unwrap();
    assert_eq!(app.post_empty(cancel).await.status, 200);
    let own = last["_links"]["self"]["href"].as_str().unwrap();
    until_state(&app, own, "cancelled", Duration::from_secs(10)).await;

    let first = app.get("/deliveries/deliveries").await;
    assert_eq!(first.body["count"], 20);
    assert!(first.has_link("first") && !first.has_link("prev") && !first.has_link("all"));
    let second = app.get(&first.link("next")).await;
    assert_eq!(second.body["count"], 1);
    assert!(!second.has_link("next"));
    assert_eq!(app.get(&second.link("prev")).await.body, first.body);
    assert_eq!(app.get(&second.link("first")).await.body, first.body);

    let states: Vec<&str> = first.body["_links"]["by-state"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|l| l["name"].as_str())
        .collect();
    assert_eq!(
        states,
        [
            "soliciting",
            "offered",
            "assigned",
            "picked-up",
            "delivered",
            "compensating",
            "failed",
            "cancelled"
        ]
    );
    let cancelled = app.get(&named(&first, "by-state", "cancelled")).await;
    assert_eq!(cancelled.body["state"], "cancelled");
    assert_eq!(cancelled.body["count"], 1);
    let only = &cancelled.body["_embedded"]["deliveries"][0];
    assert_eq!(only["id"], last["id"]);
    let soliciting = app.get(&named(&cancelled, "by-state", "soliciting")).await;
    assert_eq!(soliciting.body["count"], 20);
    assert!(!soliciting.has_link("next"), "20 soliciting: one page");
    let all = app.get(&cancelled.link("all")).await;
    assert_eq!(all.body, first.body);

    let summary = app.get(&first.link("summary")).await;
    assert_eq!(summary.body["counts"]["cancelled"], 1);
    assert_eq!(
        app.get(&named(&summary, "by-state", "cancelled"))
            .await
            .body,
        cancelled.body
    );

    let unknown = app.get("/deliveries/deliveries?state=lost").await;
    assert_eq!(unknown.status, 422, "{:#}", unknown.body);
    assert!(
        unknown.body["detail"]
            .as_str()
            .unwrap()
            .contains("picked-up")
    );
    assert!(unknown.has_link("deliveries"));
    app.stop().await;
}

#[tokio::test]
async fn a_subscription_kept_from_before_order_cancelled_is_replaced_at_start() {
    let app = spawn_app().await;
    let callback = app.url("/deliveries/notifications");
    let old = app
        .post_json(
            "/orders/subscriptions",
            json!({ "callback_url": callback, "event_types": ["order.placed"] }),
        )
        .await;
    assert_eq!(old.status, 201, "{:#}", old.body);
    let old_id = old.body["id"].as_str().unwrap().to_owned();
    // Once deliveries has subscribed itself, the old one takes its place.
    app.deliveries_subscribed().await;
    let store = conversant::store::Store::connect(&app.database())
        .await
        .unwrap();
    store
        .saga_subscription_save("orders", &old_id, old.body["secret"].as_str().unwrap())
        .await
        .unwrap();
    drop(store);
    let dir = app.stop().await;

    // Restarted with the old subscription kept: orders is asked, the
    // subscription replaced by one with order.cancelled, the old one deleted.
    let app = spawn_in(dir, |_| {}).await;
    let gone = format!("/orders/subscriptions/{old_id}");
    let deadline = Instant::now() + Duration::from_secs(10);
    while app.get(&gone).await.status != 404 {
        assert!(
            Instant::now() < deadline,
            "the old subscription is still there"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let store = conversant::store::Store::connect(&app.database())
        .await
        .unwrap();
    let (new_id, _) = store.saga_subscription("orders").await.unwrap().unwrap();
    assert_ne!(new_id, old_id);
    let new = app.get(&format!("/orders/subscriptions/{new_id}")).await;
    assert_eq!(
        new.body["event_types"],
        json!(["order.placed", "order.cancelled"])
    );
    app.stop().await;
}

/// The listing's query is what the OpenAPI document says: a page beyond
/// the last is refused (422), never a server error, and the document's
/// pattern for `state` names every state there is.
#[tokio::test]
async fn the_deliveries_listing_refuses_a_page_beyond_the_last() {
    let app = spawn_app().await;
    for page in ["1000001", "9223372036854775808", "18446744073709551615"] {
        let answer = app
            .get(&format!("/deliveries/deliveries?page={page}"))
            .await;
        assert_eq!(answer.status, 422, "page {page}: {:#}", answer.body);
        assert_eq!(answer.problem_type(), "/problems/invalid-query");
    }
    assert_eq!(
        app.get("/deliveries/deliveries?page=1000000").await.status,
        200
    );
    let doc: Value = serde_json::from_str(&conversant::openapi::to_pretty_json()).unwrap();
    let params = doc["paths"]["/deliveries/deliveries"]["get"]["parameters"]
        .as_array()
        .unwrap();
    let state = params.iter().find(|p| p["name"] == "state").unwrap();
    let pattern = state["schema"]["pattern"].as_str().unwrap();
    for s in conversant::store::sagas::DeliveryState::ALL {
        assert!(pattern.contains(s.as_str()), "{pattern} lacks {s}");
    }
}
