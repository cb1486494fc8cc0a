//! Robust Out-Only between store information and search, over real HTTP:
//! updates are published as `store.updated`, search indexes what it can and
//! faults back on what it cannot, the listing needs attention until a repair.
//! Every wait polls with a deadline; nothing sleeps a fixed time.

use std::time::Duration;

use conversant::conversation::KeyRing;
use conversant::participant::Participant;
use conversant::store::{JournalEntry, MessageKind, Store};
use serde_json::{Value, json};

use crate::support::{Response, TestApp, spawn_app, token_of};
use crate::tokens::{decode, ed_signed};

/// GETs `url` until `ready` holds, failing after 10 s with the last answer.
async fn eventually(
    app: &TestApp,
    url: &str,
    what: &str,
    ready: impl Fn(&Response) -> bool,
) -> Response {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let response = app.get(url).await;
        if ready(&response) {
            return response;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "waited 10 s for {what}; last answer {}: {:#}",
            response.status,
            response.body
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// A server whose search has subscribed and indexed the seeded stores.
async fn spawn_with_search() -> TestApp {
    let app = spawn_app().await;
    eventually(
        &app,
        "/search/stores?near=52.52,13.405",
        "search to index the seeded stores",
        |r| r.status == 200 && r.body["count"].as_u64() > Some(0),
    )
    .await;
    app
}

fn found<'a>(search: &'a Response, id: &str) -> Option<&'a Value> {
    search.body["_embedded"]["stores"]
        .as_array()?
        .iter()
        .find(|s| s["id"] == id)
}

/// Updates a store (the listing's own `update` link) and checks the answer.
async fn update(app: &TestApp, id: &str, change: Value) -> Response {
    let listing = app.get(&format!("/stores/stores/{id}")).await;
    let updated = app.post_json(&listing.link("update"), change).await;
    assert_eq!(updated.status, 200, "{:#}", updated.body);
    updated
}

/// The fault-to link of the latest `store.updated` on the pull feed.
async fn latest_fault_to(app: &TestApp) -> String {
    let feed = app.get("/stores/events").await;
    let events = feed.body["_embedded"]["events"].as_array().unwrap();
    let event = events.last().expect("an event on the feed");
    assert_eq!(event["type"], "store.updated");
    event["data"]["fault_to"].as_str().unwrap().to_owned()
}

/// One participant's journal of a conversation, once `ready` holds.
async fn journal(
    app: &TestApp,
    participant: &str,
    cid: &str,
    ready: impl Fn(&[JournalEntry]) -> bool,
) -> Vec<JournalEntry> {
    let store = Store::connect(&app.database()).await.unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let entries = store
            .journal_for_conversation(participant, cid)
            .await
            .unwrap();
        if ready(&entries) {
            return entries;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{participant}'s journal of {cid}: {entries:#?}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

#[tokio::test]
async fn a_valid_update_is_indexed_and_found_near_its_new_place() {
    let app = spawn_with_search().await;
    let updated = update(
        &app,
        "luigis",
        json!({ "name": "Luigi's Paris", "lat": 48.8566, "lon": 2.3522 }),
    )
    .await;
    assert_eq!(updated.body["version"], 2);
    assert_eq!(updated.body["status"], "ok");
    assert!(updated.has_link("listing") && updated.has_link("conversation"));

    let near_paris = eventually(
        &app,
        "/search/stores?near=48.85,2.35&limit=2",
        "search to index the update",
        |r| found(r, "luigis").is_some_and(|s| s["version"] == 2),
    )
    .await;
    let first = &near_paris.body["_embedded"]["stores"][0];
    assert_eq!(first["id"], "luigis", "nearest first");
    assert_eq!(first["name"], "Luigi's Paris");
    assert!(first["distance_km"].as_f64().unwrap() < 1.0);
    let second = near_paris.body["_embedded"]["stores"][1]["distance_km"]
        .as_f64()
        .unwrap();
    assert!(second > 800.0, "the others are in Berlin: {second}");

    let listing = app.get(&updated.link("listing")).await;
    assert_eq!(listing.body["status"], "ok");
    assert!(!listing.has_link("repair"));
}

#[tokio::test]
async fn an_impossible_location_faults_back_and_the_repair_clears_the_mark() {
    let app = spawn_with_search().await;
    let updated = update(&app, "sakura", json!({ "lat": 123.4 })).await;
    assert_eq!(
        updated.body["lat"], 123.4,
        "store information keeps what it was told"
    );
    let cid = updated.body["conversation"].as_str().unwrap().to_owned();

    let marked = eventually(
        &app,
        &updated.link("listing"),
        "search's fault to mark the listing",
        |r| r.body["status"] == "needs-attention",
    )
    .await;
    assert!(
        marked.body["reason"]
            .as_str()
            .unwrap()
            .contains("impossible latitude"),
        "{:#}",
        marked.body
    );
    assert_eq!(marked.body["_templates"]["repair"]["method"], "POST");
    let near = app.get("/search/stores?near=52.5163,13.3777").await;
    let kept = found(&near, "sakura").expect("the last good version stays indexed");
    assert_eq!(
        (kept["lat"].as_f64(), kept["version"].as_i64()),
        (Some(52.5163), Some(1))
    );

    // Both sides journaled the fault: search sent it, store information took it.
    let search = journal(&app, "search", &cid, |j| {
        j.iter().any(|e| e.kind == MessageKind::Fault)
    })
    .await;
    let sent = search
        .iter()
        .find(|e| e.kind == MessageKind::Fault)
        .unwrap();
    assert_eq!(
        (sent.to_participant.as_str(), sent.status.as_str()),
        ("stores", "sent")
    );
    let stores = journal(&app, "stores", &cid, |j| {
        j.iter().any(|e| e.kind == MessageKind::Fault)
    })
    .await;
    assert!(
        stores
            .iter()
            .any(|e| e.kind == MessageKind::Event && e.step == "store.updated")
    );
    assert!(
        stores
            .iter()
            .any(|e| e.message_id == sent.message_id && e.status == "received")
    );
    let note = stores
        .iter()
        .find(|e| e.kind == MessageKind::Fault)
        .unwrap();
    assert_eq!(
        (note.from_participant.as_str(), note.status.as_str()),
        ("search", "unindexable-store")
    );

    let repaired = app
        .post_json(&marked.link("repair"), json!({ "lat": 52.5163 }))
        .await;
    assert_eq!(repaired.status, 200, "{:#}", repaired.body);
    assert_eq!(repaired.body["status"], "ok");
    assert_eq!(repaired.body["version"], 3);
    assert!(!repaired.has_link("repair"));
    eventually(
        &app,
        "/search/stores?near=52.5163,13.3777",
        "search to index the repair",
        |r| found(r, "sakura").is_some_and(|s| s["version"] == 3),
    )
    .await;
    let listing = app.get(&repaired.link("listing")).await;
    assert_eq!(listing.body["status"], "ok", "{:#}", listing.body);
    assert!(listing.body["reason"].is_null());
}

#[tokio::test]
async fn a_forged_delivery_is_refused_and_never_indexed() {
    let app = spawn_with_search().await;
    let event = json!({
        "specversion": "1.0", "id": "evt_forged", "type": "store.updated",
        "source": "elsewhere", "data": { "id": "luigis", "name": "Forged", "lat": 0.0, "lon": 0.0, "open": true, "version": 99 }
    });
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let forged = app
        .client
        .post(app.url("/search/notifications"))
        .header("webhook-id", "evt_forged")
        .header("webhook-timestamp", now.to_string())
        .header("webhook-signature", "v1,bm90IGEgc2lnbmF0dXJl")
        .json(&event)
        .send()
        .await
        .unwrap();
    let forged = Response::read(forged).await;
    assert_eq!(forged.status, 401);
    assert_eq!(forged.problem_type(), "/problems/bad-webhook-signature");
    assert_eq!(
        forged.headers["www-authenticate"],
        r#"Webhook-Signature realm="conversant""#
    );
    let near = app.get("/search/stores?near=0,0").await;
    assert_ne!(found(&near, "luigis").unwrap()["name"], "Forged");
}

#[tokio::test]
async fn a_fault_signed_by_another_participant_is_refused_403() {
    let app = spawn_app().await;
    update(&app, "green-bowl", json!({ "open": false })).await;
    let fault_to = latest_fault_to(&app).await;
    let basket = app.post_empty("/basket/checkouts").await;
    let foreign = token_of(&basket.link("add-item"));
    for token in [foreign, token_of(&fault_to)] {
        let refused = app
            .client
            .post(&fault_to)
            .header("conversation-state", token)
            .json(&json!({ "type": "/problems/unindexable-store", "detail": "not from search" }))
            .send()
            .await
            .unwrap();
        let refused = Response::read(refused).await;
        assert_eq!(refused.status, 403, "{:#}", refused.body);
        assert_eq!(refused.problem_type(), "/problems/wrong-issuer");
    }
    let listing = app.get("/stores/stores/green-bowl").await;
    assert_eq!(listing.body["status"], "ok");
}

#[tokio::test]
async fn a_fault_to_an_unknown_or_expired_continuation_is_refused_401() {
    let app = spawn_app().await;
    update(&app, "luigis", json!({ "lat": 95.0 })).await;
    let fault_to = latest_fault_to(&app).await;

    // Store information's own continuation, expired, re-signed with its real key.
    let (header, mut claims) = decode(&token_of(&fault_to));
    claims["iat"] = json!(claims["iat"].as_i64().unwrap() - 7200);
    claims["nbf"] = claims["iat"].clone();
    claims["exp"] = json!(claims["iat"].as_i64().unwrap() + 60);
    let key = KeyRing::load_or_create(app.data_dir.path(), Participant::Stores)
        .unwrap()
        .live()
        .unwrap()
        .pop()
        .unwrap();
    let expired = ed_signed(&header, &claims, &key.pair);
    let base = fault_to.split_once('?').unwrap().0;
    for (url, problem) in [
        (format!("{base}?state={expired}"), "/problems/expired-token"),
        (
            format!("{base}?state=not.a.token"),
            "/problems/invalid-token",
        ),
        (base.to_owned(), "/problems/missing-token"),
    ] {
        let refused = app
            .post_json(&url, json!({ "type": "/problems/unindexable-store" }))
            .await;
        assert_eq!(refused.status, 401, "{url}: {:#}", refused.body);
        assert_eq!(refused.problem_type(), problem, "{url}");
    }
}

#[tokio::test]
async fn a_bad_near_is_refused_422() {
    let app = spawn_app().await;
    for query in [
        "",
        "?near=",
        "?near=52.52",
        "?near=north,east",
        "?near=91,0",
        "?near=0,200",
        "?near=52.52,13.405&limit=0",
        "?near=52.52,13.405&limit=many",
    ] {
        let refused = app.get(&format!("/search/stores{query}")).await;
        assert_eq!(refused.status, 422, "{query}: {:#}", refused.body);
        assert_eq!(refused.problem_type(), "/problems/invalid-query", "{query}");
    }
}

#[tokio::test]
async fn the_catalog_tries_robust_out_only_down_the_faulty_path() {
    let app = spawn_with_search().await;
    let pattern = app.get("/patterns/robust-out-only").await;
    assert_eq!(pattern.body["status"], "available");
    let tried = app.post_empty(&pattern.link("try")).await;
    assert_eq!(tried.status, 200, "{:#}", tried.body);
    assert_eq!(tried.body["lat"], 123.4);
    assert!(tried.has_link("conversation"));
    let listing = eventually(
        &app,
        &tried.link("listing"),
        "the example's listing to need attention",
        |r| r.body["status"] == "needs-attention",
    )
    .await;
    assert!(listing.has_link("repair"));
}

/// A webhook's timestamp is whatever number its sender wrote: the farthest
/// ones are refused like any stale one (401), never a server error.
#[tokio::test]
async fn a_webhook_timestamp_at_the_ends_of_the_number_line_is_refused_not_a_500() {
    let app = spawn_app().await;
    for path in ["/search/notifications", "/deliveries/notifications"] {
        for timestamp in [i64::MIN, i64::MAX, -1] {
            let answer = app
                .client
                .post(app.url(path))
                .header("webhook-id", "msg_1")
                .header("webhook-timestamp", timestamp.to_string())
                .header("webhook-signature", "v1,AAAA")
                .body("{}")
                .send()
                .await
                .unwrap();
            assert_eq!(answer.status(), 401, "{path} with {timestamp}");
        }
    }
}
