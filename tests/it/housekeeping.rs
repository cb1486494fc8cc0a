//! Housekeeping: expired idempotency records, correlations and kept baskets
//! are deleted, by one sweep and by the server while it runs.

use std::time::Duration;

use conversant::housekeeping::{self, Purged};
use conversant::store::{Correlation, IdempotencyBegin, Store, StoreError, now_ms};
use serde_json::json;

use crate::support::{scratch_database, spawn_with};

fn correlation(expires_at: i64) -> Correlation {
    Correlation {
        id: uuid::Uuid::now_v7().to_string(),
        participant: "pricing".to_owned(),
        conversation_id: uuid::Uuid::now_v7().to_string(),
        state: json!({ "step": "pay" }),
        expires_at,
    }
}

#[tokio::test]
async fn a_sweep_deletes_what_expired_and_keeps_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::connect(&scratch_database(dir.path()).await)
        .await
        .unwrap();
    let (past, future) = (now_ms() - 1, now_ms() + 60_000);
    let (expired, live) = (correlation(past), correlation(future));
    store.correlation_put(&expired).await.unwrap();
    store.correlation_put(&live).await.unwrap();
    let begin = |key: &'static str, ttl: Duration| {
        let store = store.clone();
        async move {
            store
                .idempotency_begin("payments", key, "hash", ttl, Duration::from_secs(60))
                .await
                .unwrap()
        }
    };
    assert!(matches!(
        begin("expired", Duration::ZERO).await,
        IdempotencyBegin::New(_)
    ));
    assert!(matches!(
        begin("live", Duration::from_secs(60)).await,
        IdempotencyBegin::New(_)
    ));
    store
        .basket_create("expired", &json!({}), past)
        .await
        .unwrap();
    store
        .basket_create("live", &json!({}), future)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(5)).await;

    assert_eq!(
        housekeeping::sweep(&store).await,
        Purged {
            idempotency: 1,
            correlations: 1,
            baskets: 1
        }
    );
    assert_eq!(housekeeping::sweep(&store).await, Purged::default());
    assert_eq!(store.correlation_get(&live.id).await.unwrap(), live);
    assert_eq!(
        begin("live", Duration::from_secs(60)).await,
        IdempotencyBegin::InFlight
    );
    assert!(store.basket_get("live").await.is_ok());
}

#[tokio::test]
async fn the_server_deletes_expired_records_while_it_runs() {
    let app = spawn_with(|c| c.housekeeping_every = Duration::from_millis(50)).await;
    assert_eq!(app.get("/health").await.status, 200);
    let store = Store::connect(&app.database()).await.unwrap();
    let expired = correlation(now_ms() - 1);
    store.correlation_put(&expired).await.unwrap();
    // An expired correlation is invisible, but its id stays taken until the
    // row is deleted: putting it again succeeds only then.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        match store.correlation_put(&expired).await {
            Ok(()) => break,
            Err(StoreError::Conflict) => {}
            Err(e) => panic!("{e}"),
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the expired correlation was never deleted"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}
