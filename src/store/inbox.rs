//! The Transactional Inbox: a de-duplicating consumer.
//!
//! Messages arrive at least once: a requestor retries after a timeout
//! (In-Out-Retry, same message id), a relay redelivers, a user replays a link or
//! takes a branch from an older token (new message id, same conversation step).
//! The receiver therefore records each message *in the same transaction as its
//! effect*: [`Tx::inbox_claim`] inserts the message id and a dedupe key (e.g.
//! conversation id + step), both unique per participant. The first claim wins;
//! any later one finds the row and gets back the response stored with it, so a
//! duplicate is answered the same way and does nothing twice.
//!
//! Concurrent duplicates are settled by the database: on PostgreSQL the second
//! insert waits on the first transaction's unique key and sees its row once it
//! commits (or claims the key if it rolls back); on SQLite transactions begin
//! `IMMEDIATE`, so the second does not even start until the first is done.

use serde_json::Value;

use super::{Conn, StoreError, Tx, now_ms};

/// The outcome of claiming a message in the inbox.
#[derive(Debug, Clone, PartialEq)]
pub enum InboxClaim {
    /// First time: perform the effect and store the response in this transaction.
    Claimed,
    /// Seen before: answer with what was stored, do nothing else.
    Duplicate(InboxRecord),
}

/// A message already taken in, with the response it was answered with.
#[derive(Debug, Clone, PartialEq)]
pub struct InboxRecord {
    pub message_id: String,
    pub dedupe_key: String,
    /// The HTTP status of the stored response; `None` if none was stored (In-Only).
    pub status: Option<u16>,
    pub response: Option<Value>,
    pub created_at: i64,
}

#[derive(sqlx::FromRow)]
struct Row {
    message_id: String,
    dedupe_key: String,
    status: Option<i32>,
    response: Option<Value>,
    created_at: i64,
}

impl Tx {
    /// Claims `message_id` and `dedupe_key` for `participant`, or reports the
    /// earlier message that holds either of them.
    pub async fn inbox_claim(
        &mut self,
        participant: &str,
        message_id: &str,
        dedupe_key: &str,
    ) -> Result<InboxClaim, StoreError> {
        claim(self.conn(), participant, message_id, dedupe_key).await
    }

    /// Stores the response to a claimed message, for duplicates to replay.
    pub async fn inbox_store_response(
        &mut self,
        participant: &str,
        message_id: &str,
        status: u16,
        response: &Value,
    ) -> Result<(), StoreError> {
        const SQL: &str = "UPDATE inbox SET status = $3, response = $4 WHERE participant = $1 AND message_id = $2";
        let done = on_conn!(self.conn(), c => {
            sqlx::query(SQL)
                .bind(participant)
                .bind(message_id)
                .bind(i32::from(status))
                .bind(response)
                .execute(&mut *c)
                .await?
                .rows_affected()
        });
        super::one_row(done)
    }
}

async fn claim(
    conn: Conn<'_>,
    participant: &str,
    message_id: &str,
    dedupe_key: &str,
) -> Result<InboxClaim, StoreError> {
    const INSERT: &str = "INSERT INTO inbox (participant, message_id, dedupe_key, created_at) \
         VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING";
    const EARLIER: &str = "SELECT message_id, dedupe_key, status, response, created_at FROM inbox \
         WHERE participant = $1 AND (message_id = $2 OR dedupe_key = $3) \
         ORDER BY CASE WHEN message_id = $2 THEN 0 ELSE 1 END LIMIT 1";
    let earlier: Option<Row> = on_conn!(conn, c => {
        let inserted = sqlx::query(INSERT)
            .bind(participant)
            .bind(message_id)
            .bind(dedupe_key)
            .bind(now_ms())
            .execute(&mut *c)
            .await?
            .rows_affected();
        if inserted == 1 {
            None
        } else {
            Some(
                sqlx::query_as(EARLIER)
                    .bind(participant)
                    .bind(message_id)
                    .bind(dedupe_key)
                    .fetch_one(&mut *c)
                    .await?,
            )
        }
    });
    let Some(row) = earlier else {
        return Ok(InboxClaim::Claimed);
    };
    Ok(InboxClaim::Duplicate(InboxRecord {
        message_id: row.message_id,
        dedupe_key: row.dedupe_key,
        status: row.status.and_then(|s| u16::try_from(s).ok()),
        response: row.response,
        created_at: row.created_at,
    }))
}
