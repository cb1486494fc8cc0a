//! Housekeeping: deleting records whose time is up.
//!
//! Idempotency records (kept `--idempotency-ttl`), the stateful requestor's
//! correlations and baskets kept in the store all carry an expiry. Reads
//! already ignore an expired row, so nothing depends on when it goes; only
//! the tables' size does. One background task deletes them all every
//! `housekeeping_every` (a minute by default), until the server shuts down.
//! Delivered outbox messages have their own pruner beside the relay.

use std::time::Duration;

use crate::background::Background;
use crate::store::{Store, StoreError};

/// How many expired records one [`sweep`] deleted, per kind.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Purged {
    pub idempotency: u64,
    pub correlations: u64,
    pub baskets: u64,
}

/// Sweeps `store` now and then every `every`, until shutdown begins (a
/// sweep cut short deletes the rest next time).
pub fn start(store: Store, every: Duration, background: &Background) {
    background.until_shutdown(async move {
        let mut ticks = tokio::time::interval(every);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            let purged = sweep(&store).await;
            if purged != Purged::default() {
                tracing::debug!(?purged, "expired records deleted");
            }
        }
    });
}

/// Deletes every expired record once. A purge that fails is logged and
/// counts nothing; the next sweep tries again.
pub async fn sweep(store: &Store) -> Purged {
    Purged {
        idempotency: counted(
            "idempotency records",
            store.idempotency_purge_expired().await,
        ),
        correlations: counted("correlations", store.correlations_purge_expired().await),
        baskets: counted("baskets", store.baskets_purge_expired().await),
    }
}

fn counted(what: &str, purged: Result<u64, StoreError>) -> u64 {
    purged.unwrap_or_else(|e| {
        tracing::warn!(error = %e, "expired {what} not deleted");
        0
    })
}
