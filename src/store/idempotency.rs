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
//!
//! # Leases
//!
//! A request that dies while it holds its key (its process is killed, or
//! nothing was left to release the key) must not keep the key for the whole
//! time-to-live. So an in-flight record holds its key for a *lease*
//! (`lease_until`, unix ms): once the lease has ended, the next request with
//! the key takes the record over as if it were absent, in the same one
//! statement that claims a free key. The lease must outlast the longest a
//! request may run (the server's request timeout, plus a margin), or a
//! request still running could see its key taken over. A `done` record has
//! no lease: it is replayed until it expires. A record without a lease
//! (written before leases existed, or by an older instance) is leased from
//! its creation for the lease the claiming request passes.
//!
//! The claim a request gets ([`IdempotencyClaim`]) fences its writes:
//! [`Store::idempotency_complete`] and [`Store::idempotency_release`] act only
//! on the record while that claim still holds it, so a request that outlived
//! its lease can neither overwrite nor delete the record of the request that
//! took its key over. (A taken-over record's new lease ends later than the
//! old one, by at least the lease, so a positive lease tells claims apart.)

use std::time::Duration;

use serde_json::Value;

use super::{Store, StoreError, duration_ms, now_ms};

/// What to do with a request that carries an idempotency key.
#[derive(Debug, Clone, PartialEq)]
pub enum IdempotencyBegin {
    /// First time (or the key was free again: expired, released, or its
    /// lease ended): process it, then [`Store::idempotency_complete`] or
    /// [`Store::idempotency_release`] with this claim.
    New(IdempotencyClaim),
    /// The first request with this key is still being processed (409).
    InFlight,
    /// Already answered: replay this response.
    Done(StoredResponse),
    /// The key was used with a different request (422).
    Mismatch,
}

/// A request's hold on its key, from [`Store::idempotency_begin`]: the end of
/// its lease, which names the claim (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdempotencyClaim {
    lease_until: i64,
}

impl IdempotencyClaim {
    /// When the lease ends, in unix milliseconds: from then on another
    /// request may take the key over.
    pub fn lease_until(&self) -> i64 {
        self.lease_until
    }
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
    /// unless the key is already in use; a new record lives for `ttl` and
    /// holds the key for `lease`, after which another request may take it over.
    pub async fn idempotency_begin(
        &self,
        participant: &str,
        key: &str,
        request_hash: &str,
        ttl: Duration,
        lease: Duration,
    ) -> Result<IdempotencyBegin, StoreError> {
        // Insert, or take over an expired record or an in-flight one whose
        // lease has ended (a record without one is leased from its creation);
        // otherwise someone holds the key. One statement: of two racing
        // requests, one inserts or updates, the other finds the row it wrote.
        const CLAIM: &str = "INSERT INTO idempotency (participant, key, request_hash, state, \
             created_at, expires_at, lease_until) VALUES ($1, $2, $3, 'in_flight', $4, $5, $6) \
             ON CONFLICT (participant, key) DO UPDATE SET request_hash = excluded.request_hash, \
             state = 'in_flight', status = NULL, headers = NULL, body = NULL, \
             created_at = excluded.created_at, expires_at = excluded.expires_at, \
             lease_until = excluded.lease_until \
             WHERE idempotency.expires_at <= excluded.created_at \
             OR (idempotency.state = 'in_flight' AND COALESCE(idempotency.lease_until, \
             idempotency.created_at + $7) <= excluded.created_at)";
        const HOLDER: &str = "SELECT request_hash, state, status, headers, body FROM idempotency \
             WHERE participant = $1 AND key = $2";
        let now = now_ms();
        let expires_at = now.saturating_add(duration_ms(ttl));
        let lease = duration_ms(lease);
        let lease_until = now.saturating_add(lease);
        // The holder can be purged between the two statements; then claim again.
        loop {
            let holder: Option<Row> = on_conn!(self.writer().await?.as_conn(), c => {
                let claimed = sqlx::query(CLAIM)
                    .bind(participant)
                    .bind(key)
                    .bind(request_hash)
                    .bind(now)
                    .bind(expires_at)
                    .bind(lease_until)
                    .bind(lease)
                    .execute(&mut *c)
                    .await?
                    .rows_affected();
                if claimed == 1 {
                    return Ok(IdempotencyBegin::New(IdempotencyClaim { lease_until }));
                }
                sqlx::query_as(HOLDER).bind(participant).bind(key).fetch_optional(&mut *c).await?
            });
            if let Some(row) = holder {
                return Ok(verdict(row, request_hash));
            }
        }
    }

    /// Stores the response to the request that holds `key` with `claim`, for
    /// replay; the record keeps no lease. [`StoreError::NotFound`] if the
    /// claim no longer holds the key (it was taken over, or released).
    pub async fn idempotency_complete(
        &self,
        participant: &str,
        key: &str,
        claim: IdempotencyClaim,
        response: &StoredResponse,
    ) -> Result<(), StoreError> {
        const SQL: &str = "UPDATE idempotency SET state = 'done', status = $3, headers = $4, \
             body = $5, lease_until = NULL WHERE participant = $1 AND key = $2 \
             AND state = 'in_flight' AND lease_until = $6";
        let done = on_conn!(self.writer().await?.as_conn(), c => {
            sqlx::query(SQL)
                .bind(participant)
                .bind(key)
                .bind(i32::from(response.status))
                .bind(&response.headers)
                .bind(&response.body)
                .bind(claim.lease_until)
                .execute(&mut *c)
                .await?
                .rows_affected()
        });
        super::one_row(done)
    }

    /// Forgets an in-flight key whose request (holding it with `claim`)
    /// failed or was abandoned, so it may be retried at once.
    /// [`StoreError::NotFound`] if the claim no longer holds the key.
    pub async fn idempotency_release(
        &self,
        participant: &str,
        key: &str,
        claim: IdempotencyClaim,
    ) -> Result<(), StoreError> {
        const SQL: &str = "DELETE FROM idempotency WHERE participant = $1 AND key = $2 \
             AND state = 'in_flight' AND lease_until = $3";
        let done = on_conn!(self.writer().await?.as_conn(), c => {
            sqlx::query(SQL)
                .bind(participant)
                .bind(key)
                .bind(claim.lease_until)
                .execute(&mut *c)
                .await?
                .rows_affected()
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
