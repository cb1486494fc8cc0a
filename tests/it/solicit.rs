//! Out-In (solicit-response) between deliveries and the couriers it tracks:
//! confirmations and declines before the deadline, a late answer refused,
//! a courier registered over HTTP, the offer, and the faults.

use std::time::Duration;

use conversant::store::Store;
use serde_json::{Value, json};

use crate::receiver::{Received, Receiver};
use crate::support::{Response, TestApp, spawn_app, spawn_with};

/// Luigi's Pizzeria, the first example store.
const PICKUP: (f64, f64) = (52.5200, 13.4050);
/// The simulated couriers that register when the server starts.
const FLEET: usize = 5;

/// Waits until deliveries tracks at least `n` couriers.
async fn registered(app: &TestApp, n: u64) -> Response {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let registry = app.get("/deliveries/couriers").await;
        if registry.body["count"].as_u64() >= Some(n) {
            return registry;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the couriers did not register: {:#}",
            registry.body
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn solicit(app: &TestApp, deadline_ms: u64) -> Response {
    let answered = app
        .post_json(
            "/deliveries/solicitations",
            json!({ "pickup": { "lat": PICKUP.0, "lon": PICKUP.1 }, "deadline_ms": deadline_ms }),
        )
        .await;
    assert_eq!(answered.status, 200, "{:#}", answered.body);
    answered
}

/// The courier ids of one list of the solicitation's answer, sorted.
fn ids(answered: &Response, list: &str) -> Vec<String> {
    let mut ids: Vec<String> = answered.body[list]
        .as_array()
        .unwrap_or_else(|| panic!("no `{list}` in {:#}", answered.body))
        .iter()
        .map(|c| c["courier_id"].as_str().unwrap().to_owned())
        .collect();
    ids.sort();
    ids
}

async fn store_of(app: &TestApp) -> Store {
    Store::connect(&app.database()).await.unwrap()
}

/// Polls `check` every 50 ms for up to 10 s.
async fn eventually<T>(mut check: impl AsyncFnMut() -> Option<T>) -> T {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(found) = check().await {
            return found;
        }
        assert!(tokio::time::Instant::now() < deadline, "gave up waiting");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_solicitation_where_some_couriers_decline_and_one_answers_after_the_deadline() {
    let app = spawn_app().await;
    registered(&app, FLEET as u64).await;
    let answered = solicit(&app, 2000).await;
    assert_eq!(answered.body["status"], "confirmed");
    assert_eq!(answered.body["asked"], FLEET);
    assert_eq!(
        ids(&answered, "confirmed"),
        ["anna", "emil"],
        "close and free"
    );
    assert_eq!(ids(&answered, "declined"), ["ben", "chloe"], "busy, far");
    let declined = answered.body["declined"].as_array().unwrap();
    assert!(declined.iter().any(|d| d["reason"] == "too busy"));
    assert_eq!(
        ids(&answered, "no_answer"),
        ["dario"],
        "the slow courier missed the deadline"
    );
    assert_eq!(answered.body["best"]["courier_id"], "anna", "the soonest");
    assert!(answered.has_link("offer"));

    // Dario's answer arrives later: refused 410, and nothing changes.
    let solicitation = answered.body["solicitation"].as_str().unwrap().to_owned();
    let store = store_of(&app).await;
    let dead = eventually(async || {
        let dead = store.outbox_dead_letters("couriers", 10).await.unwrap();
        dead.into_iter()
            .find(|m| m.destination.contains(&solicitation))
    })
    .await;
    let body: serde_json::Value = serde_json::from_str(&dead.body).unwrap();
    assert_eq!(body["courier_id"], "dario");
    assert_eq!(dead.last_error.as_deref(), Some("410 Gone"));
    let replies = store.solicitation_replies(&solicitation).await.unwrap();
    assert_eq!(replies.len(), 4);
    assert!(replies.iter().all(|r| r.courier_id != "dario"));
    let cid = answered.body["conversation"].as_str().unwrap().to_owned();
    let late = eventually(async || {
        let journal = store
            .journal_for_conversation("deliveries", &cid)
            .await
            .unwrap();
        journal.into_iter().find(|e| e.status == "late-reply")
    })
    .await;
    assert_eq!(late.from_participant, "couriers");
}

#[tokio::test]
async fn offering_the_job_to_the_best_courier_gets_an_acknowledgement() {
    let app = spawn_app().await;
    registered(&app, FLEET as u64).await;
    let answered = solicit(&app, 1500).await;
    let assigned = app.post_empty(&answered.link("offer")).await;
    assert_eq!(assigned.status, 200, "{:#}", assigned.body);
    assert_eq!(assigned.body["status"], "assigned");
    assert_eq!(assigned.body["courier_id"], "anna");
    assert_eq!(
        assigned.body["eta_minutes"],
        answered.body["best"]["eta_minutes"]
    );
    assert_eq!(assigned.body["solicitation"], answered.body["solicitation"]);
    assert_eq!(assigned.body["conversation"], answered.body["conversation"]);
    assert!(
        assigned.body["assignment_id"]
            .as_str()
            .unwrap()
            .starts_with("asg_")
    );
    let again = app.post_empty(&answered.link("offer")).await;
    assert_eq!(
        again.body["assignment_id"], assigned.body["assignment_id"],
        "the same offer is acknowledged the same way"
    );
}

/// Registers the receiver as courier `zoe`, close to the pickup and free.
async fn register_zoe(app: &TestApp, receiver: &Receiver) -> Response {
    app.post_json(
        "/deliveries/couriers",
        json!({
            "id": "zoe", "name": "Zoé (external)", "lat": 52.5201, "lon": 13.4049,
            "busyness": 0.0, "solicit_url": receiver.url("/zoe/solicitations"),
        }),
    )
    .await
}

#[tokio::test]
async fn a_courier_registered_over_http_is_solicited_next_time() {
    let receiver = Receiver::start().await;
    let app = spawn_with(|c| c.callback_allow = vec![receiver.authority()]).await;
    registered(&app, FLEET as u64).await;
    let zoe = register_zoe(&app, &receiver).await;
    assert_eq!(zoe.status, 201, "{:#}", zoe.body);
    assert_eq!(register_zoe(&app, &receiver).await.status, 200, "refreshed");
    let registry = registered(&app, FLEET as u64 + 1).await;
    let couriers = registry.body["_embedded"]["couriers"].as_array().unwrap();
    assert!(couriers.iter().any(|c| c["id"] == "zoe"));
    assert!(registry.has_link("solicit"));

    let answered = solicit(&app, 1000).await;
    assert_eq!(answered.body["asked"], FLEET + 1);
    assert_eq!(ids(&answered, "no_answer"), ["dario", "zoe"]);
    let asked = &receiver.received()[0];
    assert_eq!(asked.path, "/zoe/solicitations");
    assert_eq!(asked.header("prefer"), "respond-async");
    let solicitation = answered.body["solicitation"].as_str().unwrap();
    assert!(asked.header("reply-to").contains(&format!(
        "/deliveries/solicitations/{solicitation}/replies?state="
    )));
    assert!(!asked.header("conversation-state").is_empty());
    assert_eq!(asked.json()["solicitation"], solicitation);
    assert_eq!(asked.json()["pickup"]["lat"], PICKUP.0);

    // The solicitation token is good only for the simulated couriers it names.
    let unknown = app
        .client
        .post(app.url("/couriers/nobody/solicitations"))
        .header("conversation-state", asked.header("conversation-state"))
        .header("prefer", "respond-async")
        .header("reply-to", asked.header("reply-to"))
        .send()
        .await
        .unwrap();
    let unknown = Response::read(unknown).await;
    assert_eq!(unknown.status, 404, "{:#}", unknown.body);
    assert_eq!(unknown.problem_type(), "/problems/not-found");
}

/// POSTs an answer to `reply_to`, signed with `token`.
async fn answer(app: &TestApp, reply_to: &str, token: Option<&str>) -> Response {
    let mut request = app.client.post(reply_to).json(&json!({
        "courier_id": "zoe", "available": true, "eta_minutes": 1
    }));
    if let Some(token) = token {
        request = request.header("conversation-state", token);
    }
    Response::read(request.send().await.unwrap()).await
}

#[tokio::test]
async fn a_reply_signed_by_another_participant_than_couriers_is_refused_403() {
    let receiver = Receiver::start().await;
    let app = spawn_with(|c| c.callback_allow = vec![receiver.authority()]).await;
    registered(&app, FLEET as u64).await;
    assert_eq!(register_zoe(&app, &receiver).await.status, 201);
    let pending = {
        let (client, url) = (app.client.clone(), app.url("/deliveries/solicitations"));
        tokio::spawn(async move {
            let body =
                json!({ "pickup": { "lat": PICKUP.0, "lon": PICKUP.1 }, "deadline_ms": 2500 });
            Response::read(client.post(url).json(&body).send().await.unwrap()).await
        })
    };
    let asked: Received = receiver.wait_for(1, 10).await.remove(0);
    let reply_to = asked.header("reply-to");

    let basket = app.post_empty("/basket/checkouts").await;
    let basket_token = crate::support::token_of(&basket.link("add-item"));
    let forged = answer(&app, reply_to, Some(&basket_token)).await;
    assert_eq!(forged.status, 403, "{:#}", forged.body);
    assert_eq!(forged.problem_type(), "/problems/wrong-issuer");
    let deliveries_own = answer(&app, reply_to, Some(asked.header("conversation-state"))).await;
    assert_eq!(deliveries_own.status, 403, "{:#}", deliveries_own.body);
    let unsigned = answer(&app, reply_to, None).await;
    assert_eq!(unsigned.status, 401, "{:#}", unsigned.body);

    let answered = pending.await.unwrap();
    assert_eq!(answered.status, 200, "{:#}", answered.body);
    assert!(
        ids(&answered, "no_answer").contains(&"zoe".to_owned()),
        "refused answers changed nothing: {:#}",
        answered.body
    );
}

#[tokio::test]
async fn bad_coordinates_deadlines_and_registrations_are_refused_422() {
    let app = spawn_app().await;
    let pickups: [Value; 4] = [
        json!({ "pickup": { "lat": 91.0, "lon": 13.4 } }),
        json!({ "pickup": { "lat": 52.5, "lon": -180.5 } }),
        json!({ "pickup": { "lat": "north", "lon": 13.4 } }),
        json!({ "pickup": { "lat": 52.5, "lon": 13.4 }, "deadline_ms": 60000 }),
    ];
    for body in pickups {
        let refused = app
            .post_json("/deliveries/solicitations", body.clone())
            .await;
        assert_eq!(refused.status, 422, "{body}: {:#}", refused.body);
        assert_eq!(refused.problem_type(), "/problems/invalid-body", "{body}");
    }
    let courier = |lat: f64, busyness: f64, url: &str| json!({ "id": "x", "name": "X", "lat": lat, "lon": 13.4, "busyness": busyness, "solicit_url": url });
    let allowed = app.url("/couriers/x/solicitations");
    for (body, problem) in [
        (courier(100.0, 0.1, &allowed), "/problems/invalid-body"),
        (courier(52.5, 1.5, &allowed), "/problems/invalid-body"),
        (
            courier(52.5, 0.1, "http://10.0.0.1/solicit"),
            "/problems/callback-not-allowed",
        ),
    ] {
        let refused = app.post_json("/deliveries/couriers", body.clone()).await;
        assert_eq!(refused.status, 422, "{body}: {:#}", refused.body);
        assert_eq!(refused.problem_type(), problem, "{body}");
    }
}

#[tokio::test]
async fn the_out_in_try_link_runs_a_solicitation() {
    let app = spawn_app().await;
    registered(&app, FLEET as u64).await;
    let pattern = app.get("/patterns/out-in").await;
    assert_eq!(pattern.body["status"], "available");
    let tried = app.post_empty(&pattern.link("try")).await;
    assert_eq!(tried.status, 200, "{:#}", tried.body);
    assert!(
        tried.body["solicitation"]
            .as_str()
            .unwrap()
            .starts_with("sol_")
    );
    assert_eq!(tried.body["best"]["courier_id"], "anna");
}
