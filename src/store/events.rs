//! Events: the pull feed beside the webhooks (Out-Only).
//!
//! Not every subscriber can receive a webhook, so every event a participant
//! publishes is also appended here, and clients page through it with a cursor:
//! `seq`, which only grows. A reader that remembers the last `seq` it saw asks
//! for the events `after` it and never misses one.
//!
//! That promise needs care on PostgreSQL, where sequence numbers are handed out
//! at insert time but become visible at commit time: two concurrent appends may
//! commit out of order, and a reader could move its cursor past an event that
//! appears a moment later. An append therefore takes a transaction-scoped
//! advisory lock first, so appends commit in `seq` order. Appends are short, and
//! an append made inside a [`Tx`] (an event published with the change that
//! caused it) holds the lock until that transaction ends. SQLite has a single
//! writer and needs nothing.

use serde_json::Value;

use super::{Conn, Store, StoreError, Tx};

/// An event as appended by its publisher; the store assigns the cursor.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct NewEvent {
    /// The CloudEvents `id`.
    pub id: String,
    /// The publishing participant (the CloudEvents `source`).
    pub participant: String,
    /// The CloudEvents `type`, e.g. `order.placed`.
    pub event_type: String,
    pub conversation_id: Option<String>,
    pub data: Value,
    /// The CloudEvents `time`, unix milliseconds.
    pub time: i64,
}

/// An event of the feed, with its cursor.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow, serde::Serialize, serde::Deserialize)]
pub struct Event {
    /// The feed cursor: strictly increasing in commit order.
    pub seq: i64,
    pub id: String,
    pub participant: String,
    #[sqlx(rename = "type")]
    pub event_type: String,
    pub conversation_id: Option<String>,
    pub data: Value,
    pub time: i64,
}

/// Key of the advisory lock that orders appends on PostgreSQL ("conv-evt").
const APPEND_LOCK: i64 = 0x636f_6e76_2d65_7674;

impl Store {
    /// Appends an event to its publisher's feed and returns its cursor.
    pub async fn event_append(&self, event: &NewEvent) -> Result<i64, StoreError> {
        let mut tx = self.begin().await?;
        let seq = append(tx.conn(), event).await?;
        tx.commit().await?;
        Ok(seq)
    }

    /// Up to `limit` events of `participant`'s feed after the cursor `after`
    /// (from the start when `None`), oldest first.
    pub async fn events_page(
        &self,
        participant: &str,
        after: Option<i64>,
        limit: u32,
    ) -> Result<Vec<Event>, StoreError> {
        const SQL: &str = "SELECT seq, id, participant, type, conversation_id, data, time \
             FROM events WHERE participant = $1 AND seq > $2 ORDER BY seq LIMIT $3";
        let after = after.unwrap_or(0);
        Ok(on_conn!(self.reader().await?.as_conn(), c => {
            sqlx::query_as(SQL)
                .bind(participant)
                .bind(after)
                .bind(i64::from(limit))
                .fetch_all(&mut *c)
                .await?
        }))
    }
}

impl Tx {
    /// [`Store::event_append`] inside this transaction; the event becomes
    /// visible, with its cursor, when the transaction commits.
    pub async fn event_append(&mut self, event: &NewEvent) -> Result<i64, StoreError> {
        append(self.conn(), event).await
    }
}

async fn append(mut conn: Conn<'_>, e: &NewEvent) -> Result<i64, StoreError> {
    const SQL: &str = "INSERT INTO events (id, participant, type, conversation_id, data, time) \
         VALUES ($1, $2, $3, $4, $5, $6) RETURNING seq";
    if let Conn::Postgres(c) = &mut conn {
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(APPEND_LOCK)
            .execute(&mut **c)
            .await?;
    }
    Ok(on_conn!(conn, c => {
        sqlx::query_scalar(SQL)
            .bind(&e.id)
            .bind(&e.participant)
            .bind(&e.event_type)
            .bind(&e.conversation_id)
            .bind(&e.data)
            .bind(e.time)
            .fetch_one(&mut *c)
            .await?
    }))
}
