//! Idempotency-Key records: a retried request gets the first answer again.
//!
//! In-Out-Retry needs the provider to recognise a retry. Clients that cannot
//! reuse a message id send an `Idempotency-Key` header (IETF httpapi draft):
//! the first request with a key is processed and its response stored; a retry
//! with the same key and the same body gets the stored response replayed; a
//! retry while the first is still running gets 409; the same key with a
//! different body gets 422. [`Store::idempotency_begin`] answers which of those
//! cases a request is, atomically, so two racing retries cannot both run.
//!
//! Records live for a time-to-live. An expired record counts as absent (its key
//! may be reused) and [`Store::idempotency_purge_expired`] deletes it. A request
//! that fails without a response worth replaying is forgotten with
//! [`Store::idempotency_release`], so the client may try again at once.

use std::time::Duration;

use serde_json::Value;

use super::{Store, StoreError, duration_ms, now_ms};

/// What to do with a request that carries an idempotency key.
#[derive(Debug, Clone, PartialEq)]
pub enum IdempotencyBegin {
    /// First time: process it, then [`Store::idempotency_complete`].
    New,
    /// The first request with this key is still being processed (409).
    InFlight,
    /// Already answered: replay this response.
    Done(StoredResponse),
    /// The key was used with a different request (422).
    Mismatch,
}

/// A response kept for replay.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredResponse {
    pub status: u16,
    /// Headers to replay, as a JSON object.
    pub headers: Value,
    pub body: Vec<u8>,
}

#[derive(sqlx::FromRow)]
struct Row {
    request_hash: String,
    state: String,
    status: Option<i32>,
    headers: Option<Value>,
    body: Option<Vec<u8>>,
}

impl Store {
    /// Starts processing `key` for a request whose body hashes to `request_hash`,
    /// unless the key is already in use; a new record lives for `ttl`.
    pub async fn idempotency_begin(
        &self,
        participant: &str,
        key: &str,
        request_hash: &str,
        ttl: Duration,
    ) -> Result<IdempotencyBegin, StoreError> {
        // Insert, or take over an expired record; otherwise someone holds the key.
        const CLAIM: &str = "INSERT INTO idempotency (participant, key, request_hash, state, \
             created_at, expires_at) VALUES ($1, $2, $3, 'in_flight', $4, $5) \
             ON CONFLICT (participant, key) DO UPDATE SET request_hash = excluded.request_hash, \
             state = 'in_flight', status = NULL, headers = NULL, body = NULL, \
             created_at = excluded.created_at, expires_at = excluded.expires_at \
             WHERE idempotency.expires_at <= excluded.created_at";
        const HOLDER: &str = "SELECT request_hash, state, status, headers, body FROM idempotency \
             WHERE participant = $1 AND key = $2";
        let now = now_ms();
        let expires_at = now.saturating_add(duration_ms(ttl));
        // The holder can be purged between the two statements; then claim again.
        loop {
            let holder: Option<Row> = on_conn!(self.writer().await?.as_conn(), c => {
                let claimed = sqlx::query(CLAIM)
                    .bind(participant)
                    .bind(key)
                    .bind(request_hash)
                    .bind(now)
                    .bind(expires_at)
                    .execute(&mut *c)
                    .await?
                    .rows_affected();
                if claimed == 1 {
                    return Ok(IdempotencyBegin::New);
                }
                sqlx::query_as(HOLDER).bind(participant).bind(key).fetch_optional(&mut *c).await?
            });
            if let Some(row) = holder {
                return Ok(verdict(row, request_hash));
            }
        }
    }

    /// Stores the response to the request that holds `key`, for replay.
    pub async fn idempotency_complete(
        &self,
        participant: &str,
        key: &str,
        response: &StoredResponse,
    ) -> Result<(), StoreError> {
        const SQL: &str = "UPDATE idempotency SET state = 'done', status = $3, headers = $4, \
             body = $5 WHERE participant = $1 AND key = $2";
        let done = on_conn!(self.writer().await?.as_conn(), c => {
            sqlx::query(SQL)
                .bind(participant)
                .bind(key)
                .bind(i32::from(response.status))
                .bind(&response.headers)
                .bind(&response.body)
                .execute(&mut *c)
                .await?
                .rows_affected()
        });
        super::one_row(done)
    }

    /// Forgets an in-flight key whose request failed, so it may be retried at once.
    pub async fn idempotency_release(
        &self,
        participant: &str,
        key: &str,
    ) -> Result<(), StoreError> {
        const SQL: &str = "DELETE FROM idempotency \
             WHERE participant = $1 AND key = $2 AND state = 'in_flight'";
        let done = on_conn!(self.writer().await?.as_conn(), c => {
            sqlx::query(SQL).bind(participant).bind(key).execute(&mut *c).await?.rows_affected()
        });
        super::one_row(done)
    }

    /// Deletes every expired record; returns how many.
    pub async fn idempotency_purge_expired(&self) -> Result<u64, StoreError> {
        const SQL: &str = "DELETE FROM idempotency WHERE expires_at <= $1";
        Ok(on_conn!(self.writer().await?.as_conn(), c => {
            sqlx::query(SQL).bind(now_ms()).execute(&mut *c).await?.rows_affected()
        }))
    }
}

/// Classifies a request against the record that holds its key.
fn verdict(row: Row, request_hash: &str) -> IdempotencyBegin {
    if row.request_hash != request_hash {
        return IdempotencyBegin::Mismatch;
    }
    match (
        row.state.as_str(),
        row.status.and_then(|s| u16::try_from(s).ok()),
    ) {
        ("done", Some(status)) => IdempotencyBegin::Done(StoredResponse {
            status,
            headers: row.headers.unwrap_or(Value::Null),
            body: row.body.unwrap_or_default(),
        }),
        _ => IdempotencyBegin::InFlight,
    }
}
