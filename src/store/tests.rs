//! Every store function, run on both engines.
//!
//! Each test body below takes a [`Store`] and is instantiated twice by
//! `on_both_engines!`: once on a SQLite file in a temporary directory
//! (`store::tests::sqlite::*`) and once on a fresh database of a throwaway
//! PostgreSQL cluster (`store::tests::postgres::*`), shared by the whole test
//! binary. Without PostgreSQL installed the second leg is skipped with a
//! warning (and fails under `CI`).

use std::collections::HashSet;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use serde_json::json;
use tokio::sync::Barrier;

use super::testing::TempPostgres;
use super::*;

struct TestDb {
    store: Store,
    _dir: Option<tempfile::TempDir>,
}

async fn sqlite() -> TestDb {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("conversant.db");
    let store = Store::connect(path.to_str().expect("utf-8 path"))
        .await
        .expect("connect");
    assert_eq!(store.engine(), Engine::Sqlite);
    TestDb {
        store,
        _dir: Some(dir),
    }
}

async fn postgres() -> Option<TestDb> {
    static CLUSTER: OnceLock<Option<TempPostgres>> = OnceLock::new();
    let cluster = CLUSTER.get_or_init(TempPostgres::start).as_ref()?;
    let store = Store::connect(&cluster.new_database().await)
        .await
        .expect("connect");
    assert_eq!(store.engine(), Engine::Postgres);
    Some(TestDb { store, _dir: None })
}

macro_rules! on_both_engines {
    ($($name:ident),+ $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let db = super::sqlite().await;
                    super::$name(db.store.clone()).await;
                }
            )+
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    if let Some(db) = super::postgres().await {
                        super::$name(db.store.clone()).await;
                    }
                }
            )+
        }
    };
}

on_both_engines!(
    journal_keeps_order_per_conversation,
    subscriptions_match_owner_type_and_activity,
    events_page_after_cursor,
    event_appended_in_rolled_back_tx_never_shows,
    orders_insert_get_set_status,
    only_a_placed_order_is_cancelled_and_only_once,
    payments_insert_get_set_status,
    one_capture_per_conversation_and_one_refund_per_payment,
    one_order_per_conversation,
    inbox_replays_stored_response_to_duplicates,
    inbox_concurrent_claims_have_one_winner,
    durable_step_is_one_transaction,
    outbox_claim_retry_dead_redeliver,
    outbox_concurrent_claimers_never_share_a_row,
    outbox_expired_lease_is_claimed_again,
    outbox_enqueued_dead_is_listed_never_claimed,
    outbox_enqueues_a_publish_in_one_transaction,
    outbox_records_many_outcomes_in_one_write,
    outbox_released_lease_is_due_at_once_uncounted,
    outbox_prunes_only_old_delivered_messages,
    concurrent_transactions_queue_for_the_writer,
    correlations_put_get_take_expire,
    baskets_replace_only_the_version_they_read,
    baskets_expire_and_are_purged,
    baskets_racing_from_one_version_have_one_winner,
    couriers_upsert_keeps_created_at,
    idempotency_new_in_flight_done_mismatch,
    idempotency_expired_or_released_key_is_new,
    idempotency_in_flight_key_whose_lease_ended_is_taken_over,
    idempotency_in_flight_key_within_its_lease_is_in_flight,
    idempotency_done_key_is_replayed_whatever_its_lease,
    idempotency_record_without_a_lease_is_leased_from_its_creation,
);

fn id() -> String {
    uuid::Uuid::now_v7().to_string()
}

fn entry(conversation_id: &str, step: &str, at: i64) -> JournalEntry {
    JournalEntry {
        participant: "pricing".into(),
        conversation_id: conversation_id.into(),
        message_id: id(),
        causation_id: None,
        from_participant: "basket".into(),
        to_participant: "pricing".into(),
        pattern: "in_out".into(),
        kind: MessageKind::Request,
        step: step.into(),
        chain: "c".into(),
        status: "received".into(),
        at,
    }
}

async fn journal_keeps_order_per_conversation(store: Store) {
    let cid = id();
    let mut second = entry(&cid, "second", 20);
    second.causation_id = Some("m1".into());
    second.kind = MessageKind::Fault;
    let mut other_participant = entry(&cid, "elsewhere", 1);
    other_participant.participant = "payments".into();
    let batch = vec![
        second.clone(),
        entry(&cid, "first", 10),
        entry(&cid, "third", 20),
        entry(&id(), "other conversation", 5),
        other_participant,
    ];
    store.journal_append_batch(&batch).await.unwrap();
    store.journal_append_batch(&[]).await.unwrap();

    let steps: Vec<_> = store
        .journal_for_conversation("pricing", &cid)
        .await
        .unwrap();
    assert_eq!(
        steps.iter().map(|e| e.step.as_str()).collect::<Vec<_>>(),
        ["first", "second", "third"]
    );
    assert_eq!(steps[1], second);

    let big_cid = id();
    let big: Vec<_> = (0..1_200)
        .map(|i| entry(&big_cid, &i.to_string(), i))
        .collect();
    store.journal_append_batch(&big).await.unwrap();
    assert_eq!(
        store
            .journal_for_conversation("pricing", &big_cid)
            .await
            .unwrap(),
        big
    );
}

fn subscription(owner: &str, types: serde_json::Value) -> Subscription {
    Subscription {
        id: id(),
        owner: owner.into(),
        callback_url: "http://127.0.0.1:9/hook".into(),
        event_types: types,
        secret: "whsec_test".into(),
        active: true,
        created_at: now_ms(),
    }
}

async fn subscriptions_match_owner_type_and_activity(store: Store) {
    let placed = subscription("orders", json!(["order.placed", "order.cancelled"]));
    let cancelled = subscription("orders", json!(["order.cancelled"]));
    let other_owner = subscription("stores", json!(["order.placed"]));
    for s in [&placed, &cancelled, &other_owner] {
        store.subscription_create(s).await.unwrap();
    }
    assert!(matches!(
        store.subscription_create(&placed).await,
        Err(StoreError::Conflict)
    ));
    assert_eq!(store.subscription_get(&placed.id).await.unwrap(), placed);
    let mut batch = store
        .subscriptions_get(&[cancelled.id.as_str(), "sub_missing", &placed.id, &placed.id])
        .await
        .unwrap();
    batch.sort_by(|a, b| a.created_at.cmp(&b.created_at).then(a.id.cmp(&b.id)));
    let mut expected = vec![placed.clone(), cancelled.clone()];
    expected.sort_by(|a, b| a.created_at.cmp(&b.created_at).then(a.id.cmp(&b.id)));
    assert_eq!(batch, expected);
    assert!(store.subscriptions_get(&[]).await.unwrap().is_empty());

    let wanted = store
        .subscriptions_active_for("orders", "order.placed")
        .await
        .unwrap();
    assert_eq!(wanted, std::slice::from_ref(&placed));
    assert_eq!(
        store
            .subscriptions_active_for("orders", "order.cancelled")
            .await
            .unwrap()
            .len(),
        2
    );

    store.subscription_disable(&placed.id).await.unwrap();
    assert!(
        store
            .subscriptions_active_for("orders", "order.placed")
            .await
            .unwrap()
            .is_empty()
    );
    assert!(!store.subscription_get(&placed.id).await.unwrap().active);

    store.subscription_delete(&cancelled.id).await.unwrap();
    assert!(matches!(
        store.subscription_get(&cancelled.id).await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        store.subscription_delete(&cancelled.id).await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        store.subscription_disable("nope").await,
        Err(StoreError::NotFound)
    ));
}

fn new_event(participant: &str, n: i64) -> NewEvent {
    NewEvent {
        id: id(),
        participant: participant.into(),
        event_type: "order.placed".into(),
        conversation_id: (n % 2 == 0).then(id),
        data: json!({ "n": n }),
        time: n,
    }
}

async fn events_page_after_cursor(store: Store) {
    let mut seqs = Vec::new();
    for n in 0..5 {
        seqs.push(store.event_append(&new_event("orders", n)).await.unwrap());
        store.event_append(&new_event("search", n)).await.unwrap();
    }
    assert!(
        seqs.windows(2).all(|w| w[0] < w[1]),
        "cursor grows: {seqs:?}"
    );

    let first = store.events_page("orders", None, 2).await.unwrap();
    assert_eq!(first.iter().map(|e| e.seq).collect::<Vec<_>>(), seqs[..2]);
    assert_eq!(first[0].data, json!({ "n": 0 }));
    assert_eq!(first[0].event_type, "order.placed");
    assert!(first[0].conversation_id.is_some() && first[1].conversation_id.is_none());

    let next = store
        .events_page("orders", Some(first[1].seq), 2)
        .await
        .unwrap();
    assert_eq!(next.iter().map(|e| e.seq).collect::<Vec<_>>(), seqs[2..4]);
    let rest = store
        .events_page("orders", Some(next[1].seq), 10)
        .await
        .unwrap();
    assert_eq!(rest.iter().map(|e| e.seq).collect::<Vec<_>>(), seqs[4..]);
    assert!(
        store
            .events_page("orders", Some(seqs[4]), 10)
            .await
            .unwrap()
            .is_empty()
    );
}

async fn event_appended_in_rolled_back_tx_never_shows(store: Store) {
    let mut tx = store.begin().await.unwrap();
    tx.event_append(&new_event("orders", 1)).await.unwrap();
    tx.rollback().await.unwrap();
    let mut tx = store.begin().await.unwrap();
    let kept = tx.event_append(&new_event("orders", 2)).await.unwrap();
    tx.commit().await.unwrap();
    let page = store.events_page("orders", None, 10).await.unwrap();
    assert_eq!(
        page.iter().map(|e| (e.seq, e.time)).collect::<Vec<_>>(),
        [(kept, 2)]
    );
}

fn order(conversation_id: &str) -> Order {
    Order {
        id: id(),
        conversation_id: conversation_id.into(),
        store: "corner-shop".into(),
        items: json!([{ "sku": "apple", "qty": 3, "price": 50 }]),
        total: 150,
        currency: "EUR".into(),
        payment_id: id(),
        status: OrderStatus::Placed,
        reason: None,
        created_at: now_ms(),
    }
}

async fn orders_insert_get_set_status(store: Store) {
    let o = order(&id());
    store.insert_order(&o).await.unwrap();
    assert!(matches!(
        store.insert_order(&o).await,
        Err(StoreError::Conflict)
    ));
    assert_eq!(store.get_order(&o.id).await.unwrap(), o);
    store
        .set_order_status(&o.id, OrderStatus::Cancelled, Some("changed mind"))
        .await
        .unwrap();
    let got = store.get_order(&o.id).await.unwrap();
    assert_eq!(
        (got.status, got.reason.as_deref()),
        (OrderStatus::Cancelled, Some("changed mind"))
    );
    assert!(matches!(
        store.get_order("nope").await,
        Err(StoreError::NotFound)
    ));
    let missing = store
        .set_order_status("nope", OrderStatus::Rejected, None)
        .await;
    assert!(matches!(missing, Err(StoreError::NotFound)));
}

async fn only_a_placed_order_is_cancelled_and_only_once(store: Store) {
    let placed = order(&id());
    store.insert_order(&placed).await.unwrap();
    let rejected = Order {
        id: id(),
        status: OrderStatus::Rejected,
        reason: Some("store-closed".into()),
        ..order(&id())
    };
    store.insert_order(&rejected).await.unwrap();
    let mut tx = store.begin().await.unwrap();
    assert!(
        tx.cancel_placed_order(&placed.id, Some("first"))
            .await
            .unwrap()
    );
    assert!(
        !tx.cancel_placed_order(&placed.id, Some("second"))
            .await
            .unwrap()
    );
    assert!(
        !tx.cancel_placed_order(&rejected.id, Some("no"))
            .await
            .unwrap()
    );
    assert!(!tx.cancel_placed_order("nope", None).await.unwrap());
    tx.commit().await.unwrap();
    let got = store.get_order(&placed.id).await.unwrap();
    assert_eq!(
        (got.status, got.reason.as_deref()),
        (OrderStatus::Cancelled, Some("first"))
    );
    let got = store.get_order(&rejected.id).await.unwrap();
    assert_eq!(got.status, OrderStatus::Rejected);
}

async fn one_capture_per_conversation_and_one_refund_per_payment(store: Store) {
    let cid = id();
    let payment = |status| Payment {
        id: id(),
        conversation_id: cid.clone(),
        amount: 150,
        currency: "EUR".into(),
        last4: Some("4242".into()),
        status,
        reason: None,
        created_at: now_ms(),
        order_id: None,
    };
    // Declined attempts take nothing: as many as the card fails.
    store
        .insert_payment(&payment(PaymentStatus::Declined))
        .await
        .unwrap();
    store
        .insert_payment(&payment(PaymentStatus::Declined))
        .await
        .unwrap();
    let captured = payment(PaymentStatus::Captured);
    store.insert_payment(&captured).await.unwrap();
    assert!(matches!(
        store
            .insert_payment(&payment(PaymentStatus::Captured))
            .await,
        Err(StoreError::Conflict)
    ));
    assert_eq!(
        store.capture_of_conversation(&cid).await.unwrap(),
        Some(captured.clone())
    );
    let mut tx = store.begin().await.unwrap();
    assert!(
        tx.refund_captured_payment(&captured.id, Some("first"))
            .await
            .unwrap()
    );
    assert!(
        !tx.refund_captured_payment(&captured.id, Some("second"))
            .await
            .unwrap()
    );
    tx.commit().await.unwrap();
    let refunded = store.get_payment(&captured.id).await.unwrap();
    assert_eq!(
        (refunded.status, refunded.reason.as_deref()),
        (PaymentStatus::Refunded, Some("first"))
    );
    // A refund does not free the conversation for a second charge.
    assert!(matches!(
        store
            .insert_payment(&payment(PaymentStatus::Captured))
            .await,
        Err(StoreError::Conflict)
    ));
}

async fn one_order_per_conversation(store: Store) {
    let cid = id();
    let first = order(&cid);
    store.insert_order(&first).await.unwrap();
    assert!(matches!(
        store.insert_order(&order(&cid)).await,
        Err(StoreError::Conflict)
    ));
    assert_eq!(
        store.order_of_conversation(&cid).await.unwrap(),
        Some(first)
    );
    assert_eq!(store.order_of_conversation(&id()).await.unwrap(), None);
}

async fn payments_insert_get_set_status(store: Store) {
    let p = Payment {
        id: id(),
        conversation_id: id(),
        amount: 150,
        currency: "EUR".into(),
        last4: Some("4242".into()),
        status: PaymentStatus::Captured,
        reason: None,
        created_at: now_ms(),
        order_id: Some(id()),
    };
    store.insert_payment(&p).await.unwrap();
    assert!(matches!(
        store.insert_payment(&p).await,
        Err(StoreError::Conflict)
    ));
    assert_eq!(store.get_payment(&p.id).await.unwrap(), p);
    store
        .set_payment_status(&p.id, PaymentStatus::Refunded, Some("order rejected"))
        .await
        .unwrap();
    assert_eq!(
        store.get_payment(&p.id).await.unwrap().status,
        PaymentStatus::Refunded
    );
    assert!(matches!(
        store.get_payment("nope").await,
        Err(StoreError::NotFound)
    ));
}

async fn inbox_replays_stored_response_to_duplicates(store: Store) {
    let (message, key) = (id(), format!("{}:pay", id()));
    let mut tx = store.begin().await.unwrap();
    assert_eq!(
        tx.inbox_claim("payments", &message, &key).await.unwrap(),
        InboxClaim::Claimed
    );
    tx.rollback().await.unwrap();

    let mut tx = store.begin().await.unwrap();
    assert_eq!(
        tx.inbox_claim("payments", &message, &key).await.unwrap(),
        InboxClaim::Claimed
    );
    tx.inbox_store_response("payments", &message, 201, &json!({ "paid": true }))
        .await
        .unwrap();
    tx.commit().await.unwrap();

    for (message_id, dedupe_key) in [(message.clone(), id()), (id(), key.clone())] {
        let mut tx = store.begin().await.unwrap();
        let InboxClaim::Duplicate(earlier) = tx
            .inbox_claim("payments", &message_id, &dedupe_key)
            .await
            .unwrap()
        else {
            panic!("a retry or a replayed step must be a duplicate");
        };
        assert_eq!(
            (earlier.message_id.as_str(), earlier.dedupe_key.as_str()),
            (&*message, &*key)
        );
        assert_eq!(
            (earlier.status, earlier.response),
            (Some(201), Some(json!({ "paid": true })))
        );
    }

    let mut tx = store.begin().await.unwrap();
    assert_eq!(
        tx.inbox_claim("orders", &message, &key).await.unwrap(),
        InboxClaim::Claimed
    );
    let missing = tx
        .inbox_store_response("orders", "nope", 200, &json!({}))
        .await;
    assert!(matches!(missing, Err(StoreError::NotFound)));
}

async fn inbox_concurrent_claims_have_one_winner(store: Store) {
    let (message, key) = (id(), id());
    let start = Arc::new(Barrier::new(2));
    let tasks: Vec<_> = (0..2)
        .map(|_| {
            let (store, start, message, key) =
                (store.clone(), start.clone(), message.clone(), key.clone());
            tokio::spawn(async move {
                start.wait().await;
                let mut tx = store.begin().await.unwrap();
                let claim = tx.inbox_claim("orders", &message, &key).await.unwrap();
                if claim == InboxClaim::Claimed {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    tx.inbox_store_response("orders", &message, 202, &json!("placed"))
                        .await
                        .unwrap();
                }
                tx.commit().await.unwrap();
                claim
            })
        })
        .collect();
    let mut outcomes = Vec::new();
    for task in tasks {
        outcomes.push(task.await.unwrap());
    }
    assert_eq!(
        outcomes
            .iter()
            .filter(|c| **c == InboxClaim::Claimed)
            .count(),
        1,
        "{outcomes:?}"
    );
    let duplicate = outcomes.iter().find_map(|c| match c {
        InboxClaim::Duplicate(earlier) => Some(earlier),
        InboxClaim::Claimed => None,
    });
    let earlier = duplicate.expect("the loser sees the winner's record");
    assert_eq!(
        (earlier.status, earlier.response.clone()),
        (Some(202), Some(json!("placed")))
    );
}

fn outbound(participant: &str) -> NewOutboxMessage {
    NewOutboxMessage {
        id: id(),
        participant: participant.into(),
        destination: "http://127.0.0.1:9/basket/faults".into(),
        kind: "fault".into(),
        headers: json!({ "content-type": "application/problem+json" }),
        body: json!({ "title": "order rejected" }),
    }
}

async fn durable_step_is_one_transaction(store: Store) {
    let cid = id();
    for commit in [false, true] {
        let (o, m) = (order(&cid), outbound("orders"));
        let mut tx = store.begin().await.unwrap();
        let claim = tx
            .inbox_claim("orders", &id(), &format!("{cid}:place"))
            .await
            .unwrap();
        assert_eq!(claim, InboxClaim::Claimed);
        tx.insert_order(&o).await.unwrap();
        tx.outbox_enqueue(&m).await.unwrap();
        if commit {
            tx.commit().await.unwrap();
            assert_eq!(store.get_order(&o.id).await.unwrap(), o);
            assert_eq!(store.outbox_counts("orders").await.unwrap().pending, 1);
        } else {
            drop(tx);
            assert!(matches!(
                store.get_order(&o.id).await,
                Err(StoreError::NotFound)
            ));
            assert_eq!(
                store.outbox_counts("orders").await.unwrap(),
                OutboxCounts::default()
            );
        }
    }
}

async fn outbox_claim_retry_dead_redeliver(store: Store) {
    let messages: Vec<_> = (0..3).map(|_| outbound("orders")).collect();
    for m in &messages {
        store.outbox_enqueue(m).await.unwrap();
    }
    store.outbox_enqueue(&outbound("payments")).await.unwrap();
    assert!(matches!(
        store.outbox_enqueue(&messages[0]).await,
        Err(StoreError::Conflict)
    ));
    let hour = Duration::from_secs(3600);

    let first = store.outbox_claim_batch("relay-a", 3, hour).await.unwrap();
    assert_eq!(first.len(), 3);
    assert!(
        first
            .iter()
            .all(|m| m.attempts == 1 && m.lease_owner.as_deref() == Some("relay-a"))
    );
    let second = store.outbox_claim_batch("relay-b", 10, hour).await.unwrap();
    assert_eq!(second.len(), 1, "leased rows are not claimed again");
    assert!(
        store
            .outbox_claim_batch("relay-b", 10, hour)
            .await
            .unwrap()
            .is_empty()
    );

    let ours: Vec<_> = first
        .iter()
        .chain(&second)
        .filter(|m| m.participant == "orders")
        .collect();
    let (delivered, retried, dead) = (&ours[0].id, &ours[1].id, &ours[2].id);
    store.outbox_mark_delivered(delivered).await.unwrap();
    store
        .outbox_mark_retry(retried, now_ms() + 60_000, "503 from basket")
        .await
        .unwrap();
    store
        .outbox_mark_dead(dead, "410 from basket")
        .await
        .unwrap();
    assert!(
        store
            .outbox_claim_batch("relay-a", 10, hour)
            .await
            .unwrap()
            .is_empty()
    );
    let counts = store.outbox_counts("orders").await.unwrap();
    assert_eq!(
        counts,
        OutboxCounts {
            pending: 1,
            retrying: 1,
            delivered: 1,
            dead: 1
        }
    );

    let letters = store.outbox_dead_letters("orders", 10).await.unwrap();
    assert_eq!(letters.len(), 1);
    let letter = &letters[0];
    assert_eq!(
        (&letter.id, letter.status, letter.last_error.as_deref()),
        (dead, OutboxStatus::Dead, Some("410 from basket"))
    );
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&letter.body).unwrap(),
        json!({ "title": "order rejected" })
    );

    assert!(matches!(
        store.outbox_redeliver(delivered).await,
        Err(StoreError::NotFound)
    ));
    store.outbox_redeliver(dead).await.unwrap();
    let again = store.outbox_claim_batch("relay-a", 10, hour).await.unwrap();
    assert_eq!(
        again
            .iter()
            .map(|m| (&m.id, m.attempts))
            .collect::<Vec<_>>(),
        [(dead, 1)]
    );
    assert!(matches!(
        store.outbox_mark_delivered("nope").await,
        Err(StoreError::NotFound)
    ));
}

async fn outbox_concurrent_claimers_never_share_a_row(store: Store) {
    const MESSAGES: usize = 120;
    for _ in 0..MESSAGES {
        store.outbox_enqueue(&outbound("orders")).await.unwrap();
    }
    let start = Arc::new(Barrier::new(4));
    let relays: Vec<_> = (0..4)
        .map(|n| {
            let (store, start) = (store.clone(), start.clone());
            tokio::spawn(async move {
                start.wait().await;
                let mut ids = Vec::new();
                loop {
                    let batch = store
                        .outbox_claim_batch(&format!("relay-{n}"), 7, Duration::from_secs(600))
                        .await
                        .unwrap();
                    if batch.is_empty() {
                        return ids;
                    }
                    ids.extend(batch.into_iter().map(|m| m.id));
                }
            })
        })
        .collect();
    let mut seen = HashSet::new();
    for relay in relays {
        for id in relay.await.unwrap() {
            assert!(seen.insert(id), "a row was claimed twice");
        }
    }
    assert_eq!(seen.len(), MESSAGES);
}

/// A publish to many subscribers: every message is written, as it was
/// given, across statements of at most 32 rows; and none if the
/// transaction rolls back.
async fn outbox_enqueues_a_publish_in_one_transaction(store: Store) {
    let rolled_back: Vec<_> = (0..3).map(|_| outbound("orders")).collect();
    let mut tx = store.begin().await.unwrap();
    tx.outbox_enqueue_all(&rolled_back).await.unwrap();
    tx.rollback().await.unwrap();
    let messages: Vec<_> = (0..70)
        .map(|n| NewOutboxMessage {
            destination: format!("http://127.0.0.1:9/hooks/{n}"),
            headers: json!({ "subscription": format!("sub_{n}") }),
            body: json!({ "n": n }),
            ..outbound("orders")
        })
        .collect();
    let mut tx = store.begin().await.unwrap();
    tx.outbox_enqueue_all(&messages).await.unwrap();
    tx.outbox_enqueue_all(&[]).await.unwrap();
    tx.commit().await.unwrap();
    let claimed = store
        .outbox_claim_batch("relay", 200, Duration::from_secs(600))
        .await
        .unwrap();
    assert_eq!(claimed.len(), messages.len());
    for m in &messages {
        let row = claimed.iter().find(|c| c.id == m.id).expect("written");
        assert_eq!(
            (&row.destination, &row.kind, row.headers.get("subscription")),
            (&m.destination, &m.kind, m.headers["subscription"].as_str())
        );
        assert_eq!(row.body, m.body.to_string());
        assert_eq!(row.status, OutboxStatus::Pending);
    }
}

async fn outbox_enqueued_dead_is_listed_never_claimed(store: Store) {
    let dead = outbound("orders");
    store
        .outbox_enqueue_dead(&dead, "store-closed: no such store")
        .await
        .unwrap();
    assert!(
        store
            .outbox_claim_batch("relay-a", 10, Duration::from_secs(60))
            .await
            .unwrap()
            .is_empty(),
        "a dead letter is not due"
    );
    let letters = store.outbox_dead_letters("orders", 10).await.unwrap();
    assert_eq!(letters.len(), 1);
    assert_eq!(letters[0].id, dead.id);
    assert_eq!(letters[0].attempts, 0, "never attempted");
    assert_eq!(
        letters[0].last_error.as_deref(),
        Some("store-closed: no such store")
    );
    store.outbox_redeliver(&dead.id).await.unwrap();
    let claimed = store
        .outbox_claim_batch("relay-a", 10, Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1, "redelivered, it is sent");
}

async fn outbox_expired_lease_is_claimed_again(store: Store) {
    let m = outbound("orders");
    store.outbox_enqueue(&m).await.unwrap();
    let crashed = store
        .outbox_claim_batch("relay-a", 1, Duration::ZERO)
        .await
        .unwrap();
    assert_eq!(crashed.len(), 1);
    tokio::time::sleep(Duration::from_millis(5)).await;
    let taken_over = store
        .outbox_claim_batch("relay-b", 1, Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(
        taken_over
            .iter()
            .map(|m| (&m.id, m.attempts))
            .collect::<Vec<_>>(),
        [(&m.id, 2)]
    );
    assert_eq!(taken_over[0].lease_owner.as_deref(), Some("relay-b"));
}

async fn outbox_records_many_outcomes_in_one_write(store: Store) {
    let messages: Vec<_> = (0..5).map(|_| outbound("orders")).collect();
    for m in &messages {
        store.outbox_enqueue(m).await.unwrap();
    }
    let claimed = store
        .outbox_claim_batch("relay-a", 10, Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(claimed.len(), 5);
    let later = now_ms() + 60_000;
    store
        .outbox_record(&[
            OutboxOutcome::Delivered {
                id: messages[0].id.clone(),
            },
            OutboxOutcome::Delivered {
                id: messages[1].id.clone(),
            },
            OutboxOutcome::Delivered {
                id: messages[2].id.clone(),
            },
            OutboxOutcome::Retry {
                id: messages[3].id.clone(),
                next_attempt_at: later,
                error: "503".into(),
            },
            OutboxOutcome::Dead {
                id: messages[4].id.clone(),
                error: "410 Gone".into(),
            },
            OutboxOutcome::Dead {
                id: "not-in-the-outbox".into(),
                error: "skipped".into(),
            },
        ])
        .await
        .unwrap();
    store.outbox_record(&[]).await.unwrap();
    assert_eq!(
        store.outbox_counts("orders").await.unwrap(),
        OutboxCounts {
            pending: 1,
            retrying: 1,
            delivered: 3,
            dead: 1
        }
    );
    let letters = store.outbox_dead_letters("orders", 10).await.unwrap();
    assert_eq!(
        letters
            .iter()
            .map(|m| (&m.id, m.lease_owner.as_deref(), m.last_error.as_deref()))
            .collect::<Vec<_>>(),
        [(&messages[4].id, None, Some("410 Gone"))]
    );
    assert!(
        store
            .outbox_claim_batch("relay-b", 10, Duration::from_secs(60))
            .await
            .unwrap()
            .is_empty(),
        "the retried one waits for its time, the others are done"
    );
}

/// A lease released at shutdown: due again at once, its attempt uncounted;
/// a message delivered meanwhile (by another relay) is left alone.
async fn outbox_released_lease_is_due_at_once_uncounted(store: Store) {
    let (kept, delivered) = (outbound("orders"), outbound("orders"));
    store.outbox_enqueue(&kept).await.unwrap();
    store.outbox_enqueue(&delivered).await.unwrap();
    let hour = Duration::from_secs(3600);
    let claimed = store.outbox_claim_batch("relay-a", 10, hour).await.unwrap();
    assert_eq!(claimed.len(), 2);
    store
        .outbox_record(&[OutboxOutcome::Delivered {
            id: delivered.id.clone(),
        }])
        .await
        .unwrap();
    store
        .outbox_record(&[
            OutboxOutcome::Released {
                id: kept.id.clone(),
            },
            OutboxOutcome::Released {
                id: delivered.id.clone(),
            },
        ])
        .await
        .unwrap();
    let again = store.outbox_claim_batch("relay-b", 10, hour).await.unwrap();
    assert_eq!(
        again
            .iter()
            .map(|m| (&m.id, m.attempts, m.lease_owner.as_deref()))
            .collect::<Vec<_>>(),
        [(&kept.id, 1, Some("relay-b"))]
    );
    let counts = store.outbox_counts("orders").await.unwrap();
    assert_eq!((counts.pending, counts.delivered), (1, 1));
    // The relay's vacuum (PostgreSQL; nothing on SQLite) runs outside any
    // transaction and leaves every live row as it was.
    store.outbox_vacuum().await.unwrap();
    assert_eq!(store.outbox_counts("orders").await.unwrap(), counts);
}

async fn outbox_prunes_only_old_delivered_messages(store: Store) {
    let (old, recent, pending, dead) = (
        outbound("orders"),
        outbound("orders"),
        outbound("orders"),
        outbound("orders"),
    );
    for m in [&old, &recent, &dead] {
        store.outbox_enqueue(m).await.unwrap();
    }
    store.outbox_mark_delivered(&old.id).await.unwrap();
    store.outbox_mark_dead(&dead.id, "410 Gone").await.unwrap();
    tokio::time::sleep(Duration::from_millis(5)).await;
    let cutoff = now_ms();
    tokio::time::sleep(Duration::from_millis(5)).await;
    store.outbox_mark_delivered(&recent.id).await.unwrap();
    store.outbox_enqueue(&pending).await.unwrap();

    assert_eq!(store.outbox_prune_delivered(cutoff, 100).await.unwrap(), 1);
    assert_eq!(store.outbox_prune_delivered(cutoff, 100).await.unwrap(), 0);
    assert_eq!(
        store.outbox_counts("orders").await.unwrap(),
        OutboxCounts {
            pending: 1,
            retrying: 0,
            delivered: 1,
            dead: 1
        }
    );
    // In chunks: at most `limit` rows per call.
    for _ in 0..3 {
        let m = outbound("payments");
        store.outbox_enqueue(&m).await.unwrap();
        store.outbox_mark_delivered(&m.id).await.unwrap();
    }
    let now = now_ms() + 1;
    assert_eq!(store.outbox_prune_delivered(now, 2).await.unwrap(), 2);
    assert_eq!(store.outbox_prune_delivered(now, 2).await.unwrap(), 2);
    assert_eq!(store.outbox_prune_delivered(now, 2).await.unwrap(), 0);
    assert_eq!(store.outbox_counts("orders").await.unwrap().dead, 1);
}

/// Many transactions at once, each claiming, writing and reading back: on
/// SQLite they queue for the one writer connection (none fails with "database
/// is locked"), and reads outside them go on meanwhile.
async fn concurrent_transactions_queue_for_the_writer(store: Store) {
    const WRITERS: usize = 48;
    let start = Arc::new(Barrier::new(WRITERS));
    let tasks: Vec<_> = (0..WRITERS)
        .map(|_| {
            let (store, start) = (store.clone(), start.clone());
            tokio::spawn(async move {
                start.wait().await;
                let cid = id();
                let o = order(&cid);
                let mut tx = store.begin().await.unwrap();
                tx.inbox_claim("orders", &id(), &format!("{cid}:place"))
                    .await
                    .unwrap();
                tx.insert_order(&o).await.unwrap();
                tx.outbox_enqueue(&outbound("orders")).await.unwrap();
                tokio::task::yield_now().await;
                tx.commit().await.unwrap();
                store.outbox_enqueue(&outbound("orders")).await.unwrap();
                assert_eq!(store.get_order(&o.id).await.unwrap(), o);
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    assert_eq!(
        store.outbox_counts("orders").await.unwrap().pending,
        2 * WRITERS as i64
    );
}

async fn correlations_put_get_take_expire(store: Store) {
    let live = Correlation {
        id: id(),
        participant: "pricing".into(),
        conversation_id: id(),
        state: json!({ "basket": [1, 2] }),
        expires_at: now_ms() + 60_000,
    };
    let expired = Correlation {
        id: id(),
        expires_at: now_ms() - 1,
        ..live.clone()
    };
    store.correlation_put(&live).await.unwrap();
    store.correlation_put(&expired).await.unwrap();
    assert!(matches!(
        store.correlation_put(&live).await,
        Err(StoreError::Conflict)
    ));
    assert_eq!(store.correlation_get(&live.id).await.unwrap(), live);
    assert!(matches!(
        store.correlation_get(&expired.id).await,
        Err(StoreError::NotFound)
    ));

    let mut tx = store.begin().await.unwrap();
    assert_eq!(tx.correlation_take(&live.id).await.unwrap(), live);
    tx.rollback().await.unwrap();
    assert_eq!(store.correlation_take(&live.id).await.unwrap(), live);
    assert!(matches!(
        store.correlation_take(&live.id).await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        store.correlation_take(&expired.id).await,
        Err(StoreError::NotFound)
    ));
    assert_eq!(store.correlations_purge_expired().await.unwrap(), 1);
}

async fn baskets_replace_only_the_version_they_read(store: Store) {
    let cid = id();
    let later = now_ms() + 60_000;
    store
        .basket_create(&cid, &json!({ "items": [] }), later)
        .await
        .unwrap();
    assert!(matches!(
        store
            .basket_create(&cid, &json!({ "items": [] }), later)
            .await,
        Err(StoreError::Conflict)
    ));
    let one = json!({ "items": [{ "sku": "tiramisu", "qty": 1 }] });
    assert_eq!(store.basket_replace(&cid, 0, &one, later).await.unwrap(), 1);
    let stale = store
        .basket_replace(&cid, 0, &json!({ "items": [] }), later)
        .await;
    assert!(matches!(stale, Err(StoreError::Conflict)), "{stale:?}");
    let kept = store.basket_get(&cid).await.unwrap();
    assert_eq!((kept.version, kept.state), (1, one));
    assert!(matches!(
        store.basket_replace(&id(), 0, &json!({}), later).await,
        Err(StoreError::NotFound)
    ));
}

async fn baskets_expire_and_are_purged(store: Store) {
    let (live, expired) = (id(), id());
    let state = json!({ "items": [] });
    store
        .basket_create(&live, &state, now_ms() + 60_000)
        .await
        .unwrap();
    store
        .basket_create(&expired, &state, now_ms() - 1)
        .await
        .unwrap();
    assert!(matches!(
        store.basket_get(&expired).await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        store
            .basket_replace(&expired, 0, &state, now_ms() + 60_000)
            .await,
        Err(StoreError::NotFound)
    ));
    assert_eq!(store.baskets_purge_expired().await.unwrap(), 1);
    assert_eq!(store.basket_get(&live).await.unwrap().version, 0);
}

async fn baskets_racing_from_one_version_have_one_winner(store: Store) {
    let cid = id();
    let later = now_ms() + 60_000;
    store
        .basket_create(&cid, &json!({ "items": [] }), later)
        .await
        .unwrap();
    let racers = (0..8).map(|n| {
        let (store, cid) = (store.clone(), cid.clone());
        tokio::spawn(async move {
            let state = json!({ "items": [{ "sku": "margherita", "qty": n + 1 }] });
            store.basket_replace(&cid, 0, &state, later).await
        })
    });
    let results = futures::future::join_all(racers).await;
    let won = results.iter().filter(|r| matches!(r, Ok(Ok(1)))).count();
    let lost = results
        .iter()
        .filter(|r| matches!(r, Ok(Err(StoreError::Conflict))))
        .count();
    assert_eq!((won, lost), (1, 7), "{results:?}");
    assert_eq!(store.basket_get(&cid).await.unwrap().version, 1);
}

async fn couriers_upsert_keeps_created_at(store: Store) {
    let mut speedy = Courier {
        id: id(),
        name: "Speedy".into(),
        lat: 52.37,
        lon: 4.89,
        busyness: 0.25,
        reply_url: None,
        created_at: 1,
    };
    let slow = Courier {
        id: id(),
        name: "Slow".into(),
        busyness: 1.0,
        created_at: 2,
        ..speedy.clone()
    };
    store.courier_upsert(&speedy).await.unwrap();
    store.courier_upsert(&slow).await.unwrap();
    speedy.busyness = 0.75;
    speedy.reply_url = Some("http://127.0.0.1:9/couriers/speedy".into());
    store
        .courier_upsert(&Courier {
            created_at: 99,
            ..speedy.clone()
        })
        .await
        .unwrap();
    assert_eq!(store.couriers_list().await.unwrap(), [speedy, slow.clone()]);
    let overloaded = store
        .courier_upsert(&Courier {
            busyness: 1.5,
            ..slow
        })
        .await;
    assert!(matches!(overloaded, Err(StoreError::Database(_))));
}

/// A lease longer than any of these tests.
const LEASE: Duration = Duration::from_secs(3600);

/// The claim of a [`IdempotencyBegin::New`], or a panic naming what it was.
fn claimed(begun: IdempotencyBegin) -> IdempotencyClaim {
    match begun {
        IdempotencyBegin::New(claim) => claim,
        other => panic!("expected New, got {other:?}"),
    }
}

async fn idempotency_new_in_flight_done_mismatch(store: Store) {
    let ttl = Duration::from_secs(3600);
    let key = id();
    let begin = |hash: &'static str| {
        let (store, key) = (store.clone(), key.clone());
        async move {
            store
                .idempotency_begin("payments", &key, hash, ttl, LEASE)
                .await
                .unwrap()
        }
    };
    let claim = claimed(begin("h1").await);
    assert_eq!(begin("h1").await, IdempotencyBegin::InFlight);
    assert_eq!(begin("h2").await, IdempotencyBegin::Mismatch);
    let response = StoredResponse {
        status: 201,
        headers: json!({ "location": "/payments/1" }),
        body: br#"{"paid":true}"#.to_vec(),
    };
    store
        .idempotency_complete("payments", &key, claim, &response)
        .await
        .unwrap();
    assert_eq!(begin("h1").await, IdempotencyBegin::Done(response));
    assert_eq!(begin("h2").await, IdempotencyBegin::Mismatch);
    let other = store
        .idempotency_begin("orders", &key, "h2", ttl, LEASE)
        .await
        .unwrap();
    assert!(
        matches!(other, IdempotencyBegin::New(_)),
        "keys are per participant: {other:?}"
    );
    assert!(matches!(
        store.idempotency_release("payments", &key, claim).await,
        Err(StoreError::NotFound)
    ));
}

async fn idempotency_expired_or_released_key_is_new(store: Store) {
    let key = id();
    let begin = |hash: &'static str, ttl: Duration| {
        let (store, key) = (store.clone(), key.clone());
        async move {
            store
                .idempotency_begin("payments", &key, hash, ttl, LEASE)
                .await
                .unwrap()
        }
    };
    claimed(begin("h1", Duration::ZERO).await);
    tokio::time::sleep(Duration::from_millis(5)).await;
    let claim = claimed(begin("h2", Duration::from_secs(60)).await);
    assert_eq!(
        begin("h2", Duration::from_secs(60)).await,
        IdempotencyBegin::InFlight
    );
    store
        .idempotency_release("payments", &key, claim)
        .await
        .unwrap();
    claimed(begin("h3", Duration::ZERO).await);
    tokio::time::sleep(Duration::from_millis(5)).await;
    assert_eq!(store.idempotency_purge_expired().await.unwrap(), 1);
}

/// A request that died holding its key (killed, so nothing released it)
/// holds it only for its lease; then the next request takes it over, and
/// the dead request's claim can no longer complete or release the record.
/// (A zero lease has ended the moment it is taken: no waiting.)
async fn idempotency_in_flight_key_whose_lease_ended_is_taken_over(store: Store) {
    let (key, ttl) = (id(), Duration::from_secs(3600));
    let begin = |hash: &'static str, lease: Duration| {
        let (store, key) = (store.clone(), key.clone());
        async move {
            store
                .idempotency_begin("orders", &key, hash, ttl, lease)
                .await
                .unwrap()
        }
    };
    let dead = claimed(begin("h1", Duration::ZERO).await);
    let retry = claimed(begin("h1", LEASE).await);
    assert_ne!(dead, retry, "the takeover is a claim of its own");
    assert_eq!(begin("h1", LEASE).await, IdempotencyBegin::InFlight);
    let late = StoredResponse {
        status: 200,
        headers: json!({}),
        body: b"late".to_vec(),
    };
    assert!(matches!(
        store
            .idempotency_complete("orders", &key, dead, &late)
            .await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        store.idempotency_release("orders", &key, dead).await,
        Err(StoreError::NotFound)
    ));
    assert_eq!(
        begin("h1", LEASE).await,
        IdempotencyBegin::InFlight,
        "the dead claim released nothing"
    );
    let answer = StoredResponse {
        status: 201,
        headers: json!({}),
        body: b"retried".to_vec(),
    };
    store
        .idempotency_complete("orders", &key, retry, &answer)
        .await
        .unwrap();
    assert_eq!(begin("h1", LEASE).await, IdempotencyBegin::Done(answer));

    // A dead request's key is taken over whatever the retry's body: like an
    // expired or released key, it was never answered.
    let other = id();
    store
        .idempotency_begin("orders", &other, "h1", ttl, Duration::ZERO)
        .await
        .unwrap();
    claimed(
        store
            .idempotency_begin("orders", &other, "h2", ttl, LEASE)
            .await
            .unwrap(),
    );
}

/// Within its lease an in-flight key is in flight, whatever lease the
/// asking request would take: the holder's lease counts.
async fn idempotency_in_flight_key_within_its_lease_is_in_flight(store: Store) {
    let (key, ttl) = (id(), Duration::from_secs(3600));
    let begin = |hash: &'static str, lease: Duration| {
        let (store, key) = (store.clone(), key.clone());
        async move {
            store
                .idempotency_begin("orders", &key, hash, ttl, lease)
                .await
                .unwrap()
        }
    };
    let running = claimed(begin("h1", LEASE).await);
    assert_eq!(begin("h1", LEASE).await, IdempotencyBegin::InFlight);
    assert_eq!(
        begin("h1", Duration::ZERO).await,
        IdempotencyBegin::InFlight
    );
    assert_eq!(
        begin("h2", Duration::ZERO).await,
        IdempotencyBegin::Mismatch
    );
    store
        .idempotency_release("orders", &key, running)
        .await
        .unwrap();
    claimed(begin("h2", LEASE).await);
}

/// A done record has no lease: it is replayed until it expires.
async fn idempotency_done_key_is_replayed_whatever_its_lease(store: Store) {
    let (key, ttl) = (id(), Duration::from_secs(3600));
    let begin = |hash: &'static str| {
        let (store, key) = (store.clone(), key.clone());
        async move {
            store
                .idempotency_begin("orders", &key, hash, ttl, Duration::ZERO)
                .await
                .unwrap()
        }
    };
    let claim = claimed(begin("h1").await);
    let answer = StoredResponse {
        status: 200,
        headers: json!({ "content-type": "application/json" }),
        body: b"{}".to_vec(),
    };
    store
        .idempotency_complete("orders", &key, claim, &answer)
        .await
        .unwrap();
    assert_eq!(begin("h1").await, IdempotencyBegin::Done(answer.clone()));
    assert_eq!(begin("h1").await, IdempotencyBegin::Done(answer));
    assert_eq!(begin("h2").await, IdempotencyBegin::Mismatch);
}

/// A record written without a lease (before migration 0012, or by an
/// instance that predates it) is leased from its creation, for the lease
/// the asking request would take.
async fn idempotency_record_without_a_lease_is_leased_from_its_creation(store: Store) {
    const LEGACY: &str = "INSERT INTO idempotency (participant, key, request_hash, state, \
         created_at, expires_at) VALUES ('orders', $1, 'h1', 'in_flight', $2, $3)";
    let lease = Duration::from_secs(60);
    let now = now_ms();
    let (old, young) = (id(), id());
    for (key, created_at) in [(&old, now - 61_000), (&young, now)] {
        let mut conn = store.writer().await.unwrap();
        on_conn!(conn.as_conn(), c => {
            sqlx::query(LEGACY)
                .bind(key)
                .bind(created_at)
                .bind(now + 3_600_000)
                .execute(&mut *c)
                .await
                .unwrap();
        });
    }
    let ttl = Duration::from_secs(3600);
    claimed(
        store
            .idempotency_begin("orders", &old, "h1", ttl, lease)
            .await
            .unwrap(),
    );
    assert_eq!(
        store
            .idempotency_begin("orders", &young, "h1", ttl, lease)
            .await
            .unwrap(),
        IdempotencyBegin::InFlight
    );
}

#[tokio::test]
async fn connect_rejects_unknown_schemes_without_leaking_details() {
    let error = Store::connect("mysql://localhost/db").await.unwrap_err();
    assert!(matches!(error, StoreError::Database(_)));
    assert_eq!(error.to_string(), "database error");
}

/// A write routed to SQLite's reader pool by mistake fails instead of
/// taking the write lock behind the writer's back.
#[tokio::test]
async fn sqlite_readers_are_read_only() {
    let db = sqlite().await;
    let mut reader = db.store.reader().await.unwrap();
    let Conn::Sqlite(c) = reader.as_conn() else {
        unreachable!("an SQLite store")
    };
    let refused = sqlx::query("DELETE FROM outbox").execute(&mut *c).await;
    assert!(refused.is_err(), "{refused:?}");
}

#[tokio::test]
async fn connect_accepts_sqlite_urls_and_reopens_migrated_files() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("url.db").display());
    Store::connect(&url).await.unwrap().close().await;
    let store = Store::connect(&url).await.unwrap();
    assert_eq!(store.engine(), Engine::Sqlite);
    assert!(store.couriers_list().await.unwrap().is_empty());
}
