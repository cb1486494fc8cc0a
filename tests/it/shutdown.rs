//! Graceful shutdown: the relay stops claiming even with a backlog (of
//! messages to its own server, too), deliveries in flight get a short grace,
//! nothing is lost, and the journal's last records are written. The other
//! background work (the saga's timers, subscribing and registering at
//! start, couriers' rides and answers, an asynchronous payment) sends and
//! writes nothing once `run` has returned.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use conversant::messaging::outbox::{GRACE, RetrySchedule};
use conversant::participant::Participant::{self, Couriers, Deliveries, Orders, Payments, Stores};
use conversant::store::{NewOutboxMessage, OutboxCounts, Store};
use serde_json::{Value, json};

use crate::receiver::Receiver;
use crate::saga::signed_by;
use crate::support::{Response, TestApp, spawn_with};

/// The test's participant names, one per kind of destination.
const TO_ITSELF: &str = "shutdown-to-itself";
const TO_RECEIVER: &str = "shutdown-to-receiver";
const TO_HOLE: &str = "shutdown-to-hole";

fn message(participant: &str, destination: &str, n: usize) -> NewOutboxMessage {
    NewOutboxMessage {
        id: uuid::Uuid::now_v7().to_string(),
        participant: participant.to_owned(),
        destination: destination.to_owned(),
        kind: "in_only".to_owned(),
        headers: json!({ "content-type": "application/json" }),
        body: json!({ "n": n }),
    }
}

/// A destination that accepts connections and never answers: its
/// deliveries are in flight until abandoned. Returns its URL and how many
/// connections it accepted.
async fn black_hole() -> (String, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hole", listener.local_addr().unwrap());
    let accepted = Arc::new(AtomicUsize::new(0));
    let counter = accepted.clone();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            held.push(stream);
            counter.fetch_add(1, Ordering::SeqCst);
        }
    });
    (url, accepted)
}

async fn counts(store: &Store) -> [OutboxCounts; 3] {
    let mut all = [OutboxCounts::default(); 3];
    for (counts, participant) in all.iter_mut().zip([TO_ITSELF, TO_RECEIVER, TO_HOLE]) {
        *counts = store.outbox_counts(participant).await.unwrap();
    }
    all
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_stops_the_relay_with_a_backlog_and_loses_nothing() {
    const ITSELF: usize = 5000;
    const RECEIVER: usize = 200;
    const HOLE: usize = 20;
    let receiver = Receiver::start().await;
    let (hole, accepted) = black_hole().await;
    let app = spawn_with(|c| {
        c.relay_poll = Duration::from_millis(50);
        // One attempt each while the test runs; the hole never times out.
        c.retry_schedule = RetrySchedule(vec![Duration::from_secs(600)]);
        c.peer_timeout = Duration::from_secs(600);
    })
    .await;
    assert_eq!(app.get("/health").await.status, 200);
    let store = Store::connect(&app.database()).await.unwrap();
    // One commit, claimed in this order: the hole's first, then the
    // receiver's, then a backlog to the server itself (405s, retried later).
    let mut tx = store.begin().await.unwrap();
    for n in 0..HOLE {
        tx.outbox_enqueue(&message(TO_HOLE, &hole, n))
            .await
            .unwrap();
    }
    for n in 0..RECEIVER {
        let url = receiver.url("/shutdown");
        tx.outbox_enqueue(&message(TO_RECEIVER, &url, n))
            .await
            .unwrap();
    }
    for n in 0..ITSELF {
        let url = app.url("/health");
        tx.outbox_enqueue(&message(TO_ITSELF, &url, n))
            .await
            .unwrap();
    }
    tx.commit().await.unwrap();
    receiver.wait_for(1, 20).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    while accepted.load(Ordering::SeqCst) < HOLE {
        assert!(
            Instant::now() < deadline,
            "the hole's deliveries never began"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    let started = Instant::now();
    let _data = tokio::time::timeout(Duration::from_secs(30), app.stop())
        .await
        .expect("the server stops");
    let took = started.elapsed();
    assert!(
        took < GRACE + Duration::from_secs(3),
        "stopping took {took:?}"
    );

    let stopped = counts(&store).await;
    let received = receiver.received().len();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(counts(&store).await, stopped, "the relay went on after run");
    assert_eq!(receiver.received().len(), received, "and went on sending");

    let [itself, to_receiver, to_hole] = stopped;
    for (counts, total) in [(itself, ITSELF), (to_receiver, RECEIVER), (to_hole, HOLE)] {
        assert_eq!(counts.dead, 0, "{counts:?}");
        assert_eq!(
            counts.pending + counts.delivered,
            total as i64,
            "none lost: {counts:?}"
        );
    }
    assert!(itself.pending > 0, "a backlog was left: {itself:?}");
    assert!(
        to_receiver.delivered <= received as i64,
        "{} recorded delivered, {received} received",
        to_receiver.delivered
    );
    assert_eq!(
        to_hole.pending, HOLE as i64,
        "abandoned, to be sent again: {to_hole:?}"
    );
    // Released, not left leased: another relay can claim them at once, and
    // the abandoned attempt does not count.
    let due = store
        .outbox_claim_batch(
            "next-relay",
            (ITSELF + HOLE) as u32,
            Duration::from_secs(60),
        )
        .await
        .unwrap();
    let released: Vec<_> = due.iter().filter(|m| m.participant == TO_HOLE).collect();
    assert_eq!(
        released.len(),
        HOLE,
        "the hole's messages are due again now"
    );
    assert!(
        released.iter().all(|m| m.attempts == 1),
        "the interrupted attempt was not counted: {:?}",
        released.iter().map(|m| m.attempts).collect::<Vec<_>>()
    );
}

#[tokio::test]
async fn a_clean_shutdown_writes_the_last_journal_records() {
    let app = spawn_with(|_| {}).await;
    let basket = app.post_empty("/basket/checkouts").await;
    assert_eq!(basket.status, 201, "{:#}", basket.body);
    let cid = basket.body["conversation"].as_str().unwrap().to_owned();
    let database = app.database();
    let _data = app.stop().await;
    let store = Store::connect(&database).await.unwrap();
    let journal = store
        .journal_for_conversation("basket", &cid)
        .await
        .unwrap();
    assert!(
        !journal.is_empty(),
        "the record of the first turn is in the journal"
    );
}

/// What a stopped server could still change: the requests its peer got,
/// the outboxes of couriers and payments, and a delivery's saga.
#[derive(Debug, PartialEq)]
struct Traces {
    requests: usize,
    couriers: OutboxCounts,
    payments: OutboxCounts,
    saga: Value,
}

async fn traces(peer: &Receiver, store: &Store, delivery: &str) -> Traces {
    let saga = store.delivery_get(delivery).await.unwrap();
    Traces {
        requests: peer.received().len(),
        couriers: store.outbox_counts(Couriers.as_str()).await.unwrap(),
        payments: store.outbox_counts(Payments.as_str()).await.unwrap(),
        saga: json!({ "state": saga.state, "version": saga.version, "attempts": saga.attempts }),
    }
}

/// POSTs a step with another participant's signed token and `Prefer:
/// respond-async`, its reply going to the peer.
async fn post_async(
    app: &TestApp,
    path: &str,
    token: String,
    reply_to: String,
    body: Value,
) -> Response {
    let sent = app
        .client
        .post(app.url(path))
        .header("conversation-state", token)
        .header("prefer", "respond-async")
        .header("reply-to", reply_to)
        .json(&body)
        .send()
        .await
        .unwrap();
    Response::read(sent).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn background_work_neither_sends_nor_writes_once_run_has_returned() {
    // Orders and store information are a peer that is always unavailable,
    // so deliveries' and search's subscribing retry until the server stops.
    let peer = Receiver::start().await;
    peer.answer_with(&[503; 10_000]);
    let app = spawn_with(|c| {
        c.participants.retain(|p| ![Orders, Stores].contains(p));
        c.peers = [(Orders, peer.url("")), (Stores, peer.url(""))].into();
        c.slow_card_delay = Duration::from_millis(1500);
    })
    .await;
    assert_eq!(app.get("/health").await.status, 200);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let received = peer.received();
        let tried = |path: &str| received.iter().any(|r| r.path == path);
        if tried("/orders/subscriptions") && tried("/stores/subscriptions") {
            break;
        }
        assert!(Instant::now() < deadline, "nobody tried to subscribe");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    let store = Store::connect(&app.database()).await.unwrap();
    // A delivery whose first solicitation is due in 1.5 seconds.
    let created = app
        .post_json(
            "/deliveries/deliveries",
            json!({
                "pickup": { "lat": 52.52, "lon": 13.405 },
                "dropoff": { "lat": 52.53, "lon": 13.415 },
                "size": "small", "weight_kg": 1.5, "ready_in_ms": 1500,
            }),
        )
        .await;
    assert_eq!(created.status, 201, "{:#}", created.body);
    let delivery = created.body["id"].as_str().unwrap().to_owned();
    let cid = created.body["conversation"].clone();
    let signed = |by: Participant, aud: &str, step: &str, st: Value| {
        signed_by(&app, by, aud, step, &cid, st)
    };
    // Anna on a ride (her pickup report is due in a second), Dario thinking
    // a solicitation over (three seconds), a slow card (1.5 seconds).
    let job = json!({ "delivery_id": delivery, "courier_id": "anna" });
    let riding = post_async(
        &app,
        "/couriers/anna/jobs",
        signed(Deliveries, "couriers", "deliver", job.clone()),
        peer.url("/report"),
        job,
    )
    .await;
    assert_eq!(riding.status, 202, "{:#}", riding.body);
    let solicitation = json!({
        "solicitation": "sol_shutdown",
        "pickup": { "lat": 52.52, "lon": 13.405 },
        "reply_by": 4_102_444_800_000_i64,
    });
    let thinking = post_async(
        &app,
        "/couriers/dario/solicitations",
        signed(Deliveries, "couriers", "solicit", solicitation.clone()),
        peer.url("/answer"),
        solicitation,
    )
    .await;
    assert_eq!(thinking.status, 202, "{:#}", thinking.body);
    let charge = json!({ "amount": 1250, "currency": "EUR", "attempt": "shutdown" });
    let paying = post_async(
        &app,
        "/payments/payments",
        signed(Participant::Pricing, "payments", "take-payment", charge),
        peer.url("/payment-reply"),
        json!({ "card_number": "4000000000000259" }),
    )
    .await;
    assert_eq!(paying.status, 202, "{:#}", paying.body);

    let _data = tokio::time::timeout(Duration::from_secs(20), app.stop())
        .await
        .expect("the server stops");
    let stopped = traces(&peer, &store, &delivery).await;
    assert_eq!(
        stopped.payments.pending, 1,
        "the accepted payment was taken, and its reply queued, before run returned"
    );

    tokio::time::sleep(Duration::from_millis(3500)).await;
    assert_eq!(
        traces(&peer, &store, &delivery).await,
        stopped,
        "changed after run returned"
    );
}
