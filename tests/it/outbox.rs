//! The outbox relay as a whole: a burst of messages goes out once each and
//! is recorded, failures become dead letters, and delivered messages are
//! deleted after the retention while dead letters stay.

use std::time::Duration;

use conversant::messaging::outbox::RetrySchedule;
use conversant::store::{NewOutboxMessage, OutboxCounts, Store};
use serde_json::json;

use crate::receiver::Receiver;
use crate::support::{TestApp, spawn_with};

/// The test's own participant name, so the counts are only its messages.
const SENDER: &str = "outbox-test";

fn message(destination: String, n: usize) -> NewOutboxMessage {
    NewOutboxMessage {
        id: uuid::Uuid::now_v7().to_string(),
        participant: SENDER.to_owned(),
        destination,
        kind: "in_only".to_owned(),
        headers: json!({ "content-type": "application/json", "x-n": n.to_string() }),
        body: json!({ "n": n }),
    }
}

/// Waits until the outbox counts of the test's messages are `expected`.
async fn counts_become(store: &Store, expected: OutboxCounts) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let counts = store.outbox_counts(SENDER).await.unwrap();
        if counts == expected {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "outbox counts stayed {counts:?}, expected {expected:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The server's database, opened beside it once the server is up (its relay
/// finds the rows on its poll).
async fn store_of(app: &TestApp) -> Store {
    assert_eq!(app.get("/health").await.status, 200);
    Store::connect(&app.database()).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_is_delivered_once_each_and_recorded() {
    const BURST: usize = 600;
    let receiver = Receiver::start().await;
    let app = spawn_with(|c| c.relay_poll = Duration::from_millis(50)).await;
    let store = store_of(&app).await;
    for n in 0..BURST {
        store
            .outbox_enqueue(&message(receiver.url("/burst"), n))
            .await
            .unwrap();
    }
    let received = receiver.wait_for(BURST, 30).await;
    let mut seen: Vec<&str> = received.iter().map(|r| r.header("x-n")).collect();
    seen.sort_unstable();
    seen.dedup();
    assert_eq!(seen.len(), BURST, "every message arrived");
    counts_become(
        &store,
        OutboxCounts {
            delivered: BURST as i64,
            ..OutboxCounts::default()
        },
    )
    .await;
    assert_eq!(receiver.received().len(), BURST, "and none twice");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delivered_messages_are_pruned_after_the_retention_dead_letters_stay() {
    let receiver = Receiver::start().await;
    let app = spawn_with(|c| {
        c.relay_poll = Duration::from_millis(50);
        c.outbox_retention = Duration::from_millis(300);
        c.retry_schedule = RetrySchedule(vec![]);
    })
    .await;
    let store = store_of(&app).await;
    for n in 0..3 {
        store
            .outbox_enqueue(&message(receiver.url("/kept-briefly"), n))
            .await
            .unwrap();
    }
    // Nobody listens on port 9: refused, and with no retries left, dead.
    store
        .outbox_enqueue(&message("http://127.0.0.1:9/nobody".to_owned(), 3))
        .await
        .unwrap();
    receiver.wait_for(3, 20).await;
    counts_become(
        &store,
        OutboxCounts {
            dead: 1,
            ..OutboxCounts::default()
        },
    )
    .await;
    assert_eq!(
        store.outbox_dead_letters(SENDER, 10).await.unwrap().len(),
        1
    );
}

/// A token whose `exp` is `exp`, signed by nobody: the relay reads only its
/// expiry (the receiver would verify it).
fn token_expiring_at(exp: i64) -> String {
    use base64::Engine as _;
    let part = |v: serde_json::Value| {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
    };
    format!(
        "{}.{}.c2lnbmF0dXJl",
        part(json!({ "alg": "EdDSA", "typ": "conv+jwt" })),
        part(json!({ "exp": exp }))
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_whose_token_expired_is_dead_at_once_and_never_sent() {
    // A late redelivery (an order.placed a day after it was raised) meets
    // the same fate every time: not sent, a dead letter that says why.
    let receiver = Receiver::start().await;
    let app = spawn_with(|c| c.relay_poll = Duration::from_millis(50)).await;
    let store = store_of(&app).await;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    for (n, exp) in [(0, now - 60), (1, now + 600)] {
        let mut late = message(receiver.url("/late"), n);
        late.headers["conversation-state"] = json!(token_expiring_at(exp));
        store.outbox_enqueue(&late).await.unwrap();
    }
    receiver.wait_for(1, 20).await;
    counts_become(
        &store,
        OutboxCounts {
            dead: 1,
            delivered: 1,
            ..OutboxCounts::default()
        },
    )
    .await;
    let received = receiver.received();
    assert_eq!(received.len(), 1);
    assert_eq!(received[0].header("x-n"), "1", "only the live one was sent");
    let dead = store.outbox_dead_letters(SENDER, 10).await.unwrap();
    assert_eq!(dead.len(), 1);
    let error = dead[0].last_error.as_deref().unwrap_or_default();
    assert!(error.contains("expired"), "{error}");
}
