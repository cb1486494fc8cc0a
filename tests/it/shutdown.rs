//! Graceful shutdown: the relay stops claiming even with a backlog (of
//! messages to its own server, too), deliveries in flight get a short grace,
//! nothing is lost, and the journal's last records are written.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use conversant::messaging::outbox::{GRACE, RetrySchedule};
use conversant::store::{NewOutboxMessage, OutboxCounts, Store};
use serde_json::json;

use crate::receiver::Receiver;
use crate::support::spawn_with;

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
