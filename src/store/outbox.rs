//! The Transactional Outbox: change and message, committed together.
//!
//! A participant that changes its state and must tell someone about it cannot
//! do both atomically over HTTP. So it writes the message here, in the same
//! transaction as the change ([`Tx::outbox_enqueue`]), and a relay delivers it
//! afterwards, retrying until it gets through or gives up (the message goes
//! `dead`: the No Fault pattern keeps the failure with the provider, where an
//! operator can list dead letters and redeliver them).
//!
//! Relays on several instances share the work by *leasing* rows:
//! [`Store::outbox_claim_batch`] marks due rows with the relay's name and a lease
//! deadline and returns them; a relay that dies simply lets its lease run out.
//! On PostgreSQL the claim locks candidate rows with `FOR UPDATE SKIP LOCKED`,
//! so concurrent relays never pick the same row; on SQLite the single
//! `UPDATE ... RETURNING` runs under the one write lock. Delivery is therefore
//! at least once, which is why receivers keep an inbox. Outcomes are
//! recorded many at a time ([`Store::outbox_record`]). A delivered message
//! leaves the outbox: its row is deleted and a slim line (id, participant,
//! kind, attempts, times) is written to `outbox_sent`, which is all the
//! delivered counts need, until the retention prunes it
//! ([`Store::outbox_prune_delivered`]). So the outbox holds only what is
//! pending or dead, and a delivery costs a delete and a small insert rather
//! than a new version of the whole row.

use std::time::Duration;

use serde_json::Value;

use super::{Conn, Engine, Store, StoreError, Tx, duration_ms, now_ms};

text_enum! {
    /// Where an outgoing message stands.
    pub enum OutboxStatus {
        /// Waiting for (another) delivery attempt.
        Pending = "pending",
        /// Given up on; kept for inspection and redelivery.
        Dead = "dead",
    }
}

/// A message to send once the current transaction commits.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct NewOutboxMessage {
    pub id: String,
    /// The sending participant.
    pub participant: String,
    /// The URL to POST to.
    pub destination: String,
    /// What is being sent, e.g. `reply`, `fault`, `webhook`, `in_only`.
    pub kind: String,
    /// HTTP headers to send, as a JSON object of strings.
    pub headers: Value,
    pub body: Value,
}

/// A message in the outbox (pending or dead) with its delivery bookkeeping.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct OutboxMessage {
    pub id: String,
    pub participant: String,
    pub destination: String,
    pub kind: String,
    /// HTTP headers to send, read from the JSON object they were written as.
    #[sqlx(try_from = "String")]
    pub headers: Headers,
    /// The body to send, exactly as it was written (JSON text).
    pub body: String,
    /// Delivery attempts started so far, counting the one a claim starts.
    pub attempts: i32,
    /// When the message is due (again); for a leased one, when its lease ends.
    pub next_attempt_at: i64,
    pub status: OutboxStatus,
    /// The relay holding the lease, if any.
    pub lease_owner: Option<String>,
    pub lease_until: Option<i64>,
    pub last_error: Option<String>,
    pub created_at: i64,
}

/// An outgoing message's headers: names and their (string) values.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Headers(serde_json::Map<String, Value>);

impl Headers {
    /// The value of header `name`, if it is there and a string.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).and_then(Value::as_str)
    }

    /// Every header whose value is a string.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0
            .iter()
            .filter_map(|(name, value)| Some((name.as_str(), value.as_str()?)))
    }
}

impl TryFrom<String> for Headers {
    type Error = serde_json::Error;

    fn try_from(text: String) -> Result<Self, Self::Error> {
        serde_json::from_str(&text).map(Headers)
    }
}

/// How many of a participant's messages are in each state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct OutboxCounts {
    /// Waiting for delivery, including those retrying.
    pub pending: i64,
    /// Pending after at least one failed attempt.
    pub retrying: i64,
    pub delivered: i64,
    pub dead: i64,
}

/// What became of one delivery attempt, recorded with others by
/// [`Store::outbox_record`].
#[derive(Debug, Clone, PartialEq)]
pub enum OutboxOutcome {
    /// Accepted by its destination.
    Delivered { id: String },
    /// Failed; try again at `next_attempt_at` (unix ms).
    Retry {
        id: String,
        next_attempt_at: i64,
        error: String,
    },
    /// Given up on: a dead letter.
    Dead { id: String, error: String },
    /// Abandoned at shutdown with its outcome unknown: due again at once
    /// (another instance, or this one once restarted, sends it again), and
    /// the interrupted attempt is not counted against the retry schedule.
    Released { id: String },
}

/// Leases due rows. A lease moves the row's `next_attempt_at` to the lease's
/// end: a leased row is simply not due, so the claim index (in due order)
/// reaches the due rows without walking past every row in flight, and a
/// relay that dies leaves its rows due again when their leases run out.
/// PostgreSQL skips rows another relay is claiming right now; SQLite needs
/// no locking clause, its writers are serialised.
const CLAIM_SQLITE: &str = "UPDATE outbox \
     SET lease_owner = $1, lease_until = $2, next_attempt_at = $2, attempts = attempts + 1 \
     WHERE id IN (SELECT id FROM outbox WHERE status = 'pending' AND next_attempt_at <= $3 \
     ORDER BY next_attempt_at, id LIMIT $4) \
     RETURNING id, participant, destination, kind, headers, body, attempts, next_attempt_at, \
     status, lease_owner, lease_until, last_error, created_at";
/// On PostgreSQL the rows are chosen and locked once, in a materialised CTE,
/// and the update joins them. Written as `WHERE id IN (SELECT ... FOR UPDATE
/// SKIP LOCKED)`, the subquery is part of the update's own plan, which
/// PostgreSQL may evaluate again when a row it meets was changed by another
/// relay; with two relays under load such a claim was seen still running
/// after two minutes, holding up the other relay's deletes.
const CLAIM_POSTGRES: &str = "WITH due AS MATERIALIZED (SELECT id FROM outbox \
     WHERE status = 'pending' AND next_attempt_at <= $3 \
     ORDER BY next_attempt_at, id LIMIT $4 FOR UPDATE SKIP LOCKED) \
     UPDATE outbox SET lease_owner = $1, lease_until = $2, next_attempt_at = $2, \
     attempts = attempts + 1 FROM due WHERE outbox.id = due.id \
     RETURNING outbox.id, participant, destination, kind, headers, body, attempts, next_attempt_at, \
     status, lease_owner, lease_until, last_error, created_at";

impl Store {
    /// [`Tx::outbox_enqueue`] on its own, for messages that follow no local change.
    pub async fn outbox_enqueue(&self, message: &NewOutboxMessage) -> Result<(), StoreError> {
        enqueue(self.writer().await?.as_conn(), message, None).await
    }

    /// Writes a message that is a dead letter from the start, with `error`
    /// as the reason: the No Fault rule keeping a failure with its provider.
    /// It is never attempted, only listed, until someone redelivers it.
    pub async fn outbox_enqueue_dead(
        &self,
        message: &NewOutboxMessage,
        error: &str,
    ) -> Result<(), StoreError> {
        enqueue(self.writer().await?.as_conn(), message, Some(error)).await
    }

    /// Leases up to `limit` due messages to the relay `owner` for `lease`, and
    /// counts the attempt. The oldest due are claimed first, and come back in
    /// the order they were written.
    pub async fn outbox_claim_batch(
        &self,
        owner: &str,
        limit: u32,
        lease: Duration,
    ) -> Result<Vec<OutboxMessage>, StoreError> {
        let now = now_ms();
        let mut pooled = self.writer().await?;
        let conn = pooled.as_conn();
        let sql = match conn.engine() {
            Engine::Sqlite => CLAIM_SQLITE,
            Engine::Postgres => CLAIM_POSTGRES,
        };
        let mut claimed: Vec<OutboxMessage> = on_conn!(conn, c => {
            sqlx::query_as(sql)
                .bind(owner)
                .bind(now.saturating_add(duration_ms(lease)))
                .bind(now)
                .bind(i64::from(limit))
                .fetch_all(&mut *c)
                .await?
        });
        // Every row of the batch now has the same lease: ids (UUIDv7) keep
        // the order they were written in.
        claimed.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(claimed)
    }

    /// Records the outcomes of many deliveries in one write: one statement
    /// for all the delivered ones, and in the same transaction one per
    /// failure (rarer). This is how the relay records, so that a busy relay
    /// costs the store one write per batch rather than one per message. Ids
    /// that are not in the outbox are skipped.
    pub async fn outbox_record(&self, outcomes: &[OutboxOutcome]) -> Result<(), StoreError> {
        if outcomes.is_empty() {
            return Ok(());
        }
        let delivered: Vec<&str> = outcomes
            .iter()
            .filter_map(|o| match o {
                OutboxOutcome::Delivered { id } => Some(id.as_str()),
                _ => None,
            })
            .collect();
        let now = now_ms();
        if delivered.len() == outcomes.len() && self.engine() == Engine::Postgres {
            // The common case, one statement on PostgreSQL: no transaction around it.
            return mark_delivered(self.writer().await?.as_conn(), now, &delivered)
                .await
                .map(drop);
        }
        let mut tx = self.begin().await?;
        if !delivered.is_empty() {
            mark_delivered(tx.conn(), now, &delivered).await?;
        }
        for outcome in outcomes {
            match outcome {
                OutboxOutcome::Delivered { .. } => {}
                OutboxOutcome::Retry {
                    id,
                    next_attempt_at,
                    error,
                } => skip_missing(mark_retry(tx.conn(), id, *next_attempt_at, error).await)?,
                OutboxOutcome::Dead { id, error } => {
                    skip_missing(mark_dead(tx.conn(), id, error).await)?;
                }
                OutboxOutcome::Released { id } => release(tx.conn(), id, now).await?,
            }
        }
        tx.commit().await
    }

    /// Forgets messages delivered before `before` (unix ms), at most `limit`
    /// of them; returns how many. Pending and dead messages stay.
    pub async fn outbox_prune_delivered(&self, before: i64, limit: u32) -> Result<u64, StoreError> {
        // `outbox_sent` has no key of its own: each engine's row address
        // bounds the delete.
        const PRUNE_SQLITE: &str = "DELETE FROM outbox_sent WHERE rowid IN \
             (SELECT rowid FROM outbox_sent WHERE delivered_at < $1 LIMIT $2)";
        const PRUNE_POSTGRES: &str = "DELETE FROM outbox_sent WHERE ctid IN \
             (SELECT ctid FROM outbox_sent WHERE delivered_at < $1 LIMIT $2)";
        let mut pooled = self.writer().await?;
        let conn = pooled.as_conn();
        let sql = match conn.engine() {
            Engine::Sqlite => PRUNE_SQLITE,
            Engine::Postgres => PRUNE_POSTGRES,
        };
        Ok(on_conn!(conn, c => {
            sqlx::query(sql)
                .bind(before)
                .bind(i64::from(limit))
                .execute(&mut *c)
                .await?
                .rows_affected()
        }))
    }

    /// Records a successful delivery; `NotFound` unless the message is in
    /// the outbox (pending or dead).
    pub async fn outbox_mark_delivered(&self, id: &str) -> Result<(), StoreError> {
        let mut tx = self.begin().await?;
        let moved = mark_delivered(tx.conn(), now_ms(), &[id]).await?;
        super::one_row(moved)?;
        tx.commit().await
    }

    /// Records a failed attempt and when to try again (`next_attempt_at`, unix ms).
    pub async fn outbox_mark_retry(
        &self,
        id: &str,
        next_attempt_at: i64,
        error: &str,
    ) -> Result<(), StoreError> {
        mark_retry(self.writer().await?.as_conn(), id, next_attempt_at, error).await
    }

    /// Gives up on a message: it becomes a dead letter.
    pub async fn outbox_mark_dead(&self, id: &str, error: &str) -> Result<(), StoreError> {
        mark_dead(self.writer().await?.as_conn(), id, error).await
    }

    /// Sends a dead letter again on a fresh retry schedule; `NotFound` unless it is dead.
    pub async fn outbox_redeliver(&self, id: &str) -> Result<(), StoreError> {
        const SQL: &str = "UPDATE outbox SET status = 'pending', attempts = 0, \
             next_attempt_at = $2 WHERE id = $1 AND status = 'dead'";
        let done = on_conn!(self.writer().await?.as_conn(), c => {
            sqlx::query(SQL).bind(id).bind(now_ms()).execute(&mut *c).await?.rows_affected()
        });
        super::one_row(done)
    }

    /// How many of `participant`'s messages are pending, delivered (within
    /// the retention) and dead.
    pub async fn outbox_counts(&self, participant: &str) -> Result<OutboxCounts, StoreError> {
        const WAITING: &str = "SELECT status, last_error IS NOT NULL AS failed, COUNT(*) \
             FROM outbox WHERE participant = $1 GROUP BY status, last_error IS NOT NULL";
        const SENT: &str = "SELECT COUNT(*) FROM outbox_sent WHERE participant = $1";
        let (rows, delivered): (Vec<(OutboxStatus, bool, i64)>, i64) = on_conn!(self.reader().await?.as_conn(), c => {
            let rows = sqlx::query_as(WAITING).bind(participant).fetch_all(&mut *c).await?;
            let sent = sqlx::query_scalar(SENT).bind(participant).fetch_one(&mut *c).await?;
            (rows, sent)
        });
        let mut counts = OutboxCounts {
            delivered,
            ..OutboxCounts::default()
        };
        for (status, failed, n) in rows {
            match status {
                OutboxStatus::Pending => {
                    counts.pending += n;
                    if failed {
                        counts.retrying += n;
                    }
                }
                OutboxStatus::Dead => counts.dead += n,
            }
        }
        Ok(counts)
    }

    /// `participant`'s dead letters, oldest first, at most `limit`.
    pub async fn outbox_dead_letters(
        &self,
        participant: &str,
        limit: u32,
    ) -> Result<Vec<OutboxMessage>, StoreError> {
        const SQL: &str = "SELECT id, participant, destination, kind, headers, body, attempts, \
             next_attempt_at, status, lease_owner, lease_until, last_error, created_at \
             FROM outbox WHERE participant = $1 AND status = 'dead' ORDER BY created_at, id LIMIT $2";
        Ok(on_conn!(self.reader().await?.as_conn(), c => {
            sqlx::query_as(SQL).bind(participant).bind(i64::from(limit)).fetch_all(&mut *c).await?
        }))
    }
}

impl Tx {
    /// Writes a message to be sent once this transaction commits; `Conflict` if its id exists.
    pub async fn outbox_enqueue(&mut self, message: &NewOutboxMessage) -> Result<(), StoreError> {
        enqueue(self.conn(), message, None).await
    }

    /// Writes many messages (a publish: one per subscriber) with one
    /// statement per [`ENQUEUE_CHUNK`] of them rather than one each; on
    /// PostgreSQL a statement's round trip and executor start cost more than
    /// its row.
    pub async fn outbox_enqueue_all(
        &mut self,
        messages: &[NewOutboxMessage],
    ) -> Result<(), StoreError> {
        for chunk in messages.chunks(ENQUEUE_CHUNK) {
            if let [message] = chunk {
                enqueue(self.conn(), message, None).await?;
                continue;
            }
            // `$1` is the time; each row then binds its six columns.
            let rows: Vec<String> = (0..chunk.len())
                .map(|row| {
                    let columns: Vec<String> =
                        (2..8).map(|c| format!("${}", row * 6 + c)).collect();
                    format!("({}, $1, $1, 'pending')", columns.join(", "))
                })
                .collect();
            let sql = format!(
                "INSERT INTO outbox (id, participant, destination, kind, headers, body, \
                 next_attempt_at, created_at, status) VALUES {}",
                rows.join(", ")
            );
            on_conn!(self.conn(), c => {
                // Audited: the statement is placeholders only; every value is bound.
                let mut query = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(now_ms());
                for m in chunk {
                    query = query
                        .bind(&m.id)
                        .bind(&m.participant)
                        .bind(&m.destination)
                        .bind(&m.kind)
                        .bind(m.headers.to_string())
                        .bind(m.body.to_string());
                }
                query.execute(&mut *c).await?;
            });
        }
        Ok(())
    }
}

/// The most messages one `INSERT` of [`Tx::outbox_enqueue_all`] writes: each
/// row count is a prepared statement of its own on every connection, so
/// their number stays small.
const ENQUEUE_CHUNK: usize = 32;

/// Moves the delivered messages `ids` out of the outbox into `outbox_sent`;
/// returns how many were there. On SQLite it is two statements, so the
/// caller runs it in a transaction; PostgreSQL does it in one.
async fn mark_delivered(conn: Conn<'_>, now: i64, ids: &[&str]) -> Result<u64, StoreError> {
    const SENT_SQLITE: &str = "INSERT INTO outbox_sent \
         (id, participant, kind, attempts, created_at, delivered_at) \
         SELECT id, participant, kind, attempts, created_at, $1 FROM outbox \
         WHERE id IN (SELECT value FROM json_each($2))";
    const GONE_SQLITE: &str = "DELETE FROM outbox WHERE id IN (SELECT value FROM json_each($1))";
    const MOVE_POSTGRES: &str = "WITH gone AS (DELETE FROM outbox WHERE id = ANY($2) \
         RETURNING id, participant, kind, attempts, created_at) \
         INSERT INTO outbox_sent (id, participant, kind, attempts, created_at, delivered_at) \
         SELECT id, participant, kind, attempts, created_at, $1 FROM gone";
    Ok(match conn {
        Conn::Sqlite(c) => {
            // A JSON array of the ids, which `json_each` unpacks.
            let ids = serde_json::Value::from(ids.to_vec()).to_string();
            sqlx::query(SENT_SQLITE)
                .bind(now)
                .bind(&ids)
                .execute(&mut *c)
                .await?;
            sqlx::query(GONE_SQLITE)
                .bind(&ids)
                .execute(&mut *c)
                .await?
                .rows_affected()
        }
        Conn::Postgres(c) => sqlx::query(MOVE_POSTGRES)
            .bind(now)
            .bind(ids)
            .execute(&mut *c)
            .await?
            .rows_affected(),
    })
}

fn skip_missing(result: Result<(), StoreError>) -> Result<(), StoreError> {
    match result {
        Err(StoreError::NotFound) => Ok(()),
        other => other,
    }
}

async fn mark_retry(
    conn: Conn<'_>,
    id: &str,
    next_attempt_at: i64,
    error: &str,
) -> Result<(), StoreError> {
    const SQL: &str = "UPDATE outbox SET next_attempt_at = $2, last_error = $3, \
         lease_owner = NULL, lease_until = NULL WHERE id = $1";
    let done = on_conn!(conn, c => {
        sqlx::query(SQL)
            .bind(id)
            .bind(next_attempt_at)
            .bind(error)
            .execute(&mut *c)
            .await?
            .rows_affected()
    });
    super::one_row(done)
}

/// Ends a lease early, uncounting its attempt (see [`OutboxOutcome::Released`]).
/// A message no longer pending (say, delivered by another relay meanwhile) is left alone.
async fn release(conn: Conn<'_>, id: &str, now: i64) -> Result<(), StoreError> {
    const SQL: &str = "UPDATE outbox SET next_attempt_at = $2, attempts = attempts - 1, \
         lease_owner = NULL, lease_until = NULL WHERE id = $1 AND status = 'pending'";
    on_conn!(conn, c => {
        sqlx::query(SQL).bind(id).bind(now).execute(&mut *c).await?;
    });
    Ok(())
}

async fn mark_dead(conn: Conn<'_>, id: &str, error: &str) -> Result<(), StoreError> {
    const SQL: &str = "UPDATE outbox SET status = 'dead', last_error = $2, \
         lease_owner = NULL, lease_until = NULL WHERE id = $1";
    let done = on_conn!(conn, c => {
        sqlx::query(SQL).bind(id).bind(error).execute(&mut *c).await?.rows_affected()
    });
    super::one_row(done)
}

/// The PostgreSQL channel relays listen on: [`Store::outbox_notify`] sends on
/// it after commits, so relays on every instance wake at once instead of
/// waiting for their next poll.
pub const NOTIFY_CHANNEL: &str = "conversant_outbox";

/// Inserts a pending message, or with `dead` a dead letter for that reason.
async fn enqueue(
    conn: Conn<'_>,
    m: &NewOutboxMessage,
    dead: Option<&str>,
) -> Result<(), StoreError> {
    const SQL: &str = "INSERT INTO outbox (id, participant, destination, kind, headers, body, \
         next_attempt_at, created_at, status, last_error) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $7, $8, $9)";
    let status = match dead {
        Some(_) => OutboxStatus::Dead,
        None => OutboxStatus::Pending,
    };
    on_conn!(conn, c => {
        sqlx::query(SQL)
            .bind(&m.id)
            .bind(&m.participant)
            .bind(&m.destination)
            .bind(&m.kind)
            .bind(m.headers.to_string())
            .bind(m.body.to_string())
            .bind(now_ms())
            .bind(status.as_str())
            .bind(dead)
            .execute(&mut *c)
            .await?;
    });
    Ok(())
}

impl Store {
    /// A listener for outbox notifications, on PostgreSQL; `None` on SQLite,
    /// where the in-process wake-up is all there is (one process per file).
    pub async fn outbox_listener(&self) -> Result<Option<sqlx::postgres::PgListener>, StoreError> {
        match &self.pool {
            super::Pool::Postgres(pool) => {
                let mut listener = sqlx::postgres::PgListener::connect_with(pool).await?;
                listener.listen(NOTIFY_CHANNEL).await?;
                Ok(Some(listener))
            }
            super::Pool::Sqlite { .. } => Ok(None),
        }
    }

    /// On PostgreSQL, vacuums the outbox table, unless a vacuum of it is
    /// already running (another instance's); nothing on SQLite. The relay
    /// calls it when it has left many dead rows behind.
    pub async fn outbox_vacuum(&self) -> Result<(), StoreError> {
        if let super::Pool::Postgres(pool) = &self.pool {
            // A plain statement: VACUUM runs in no transaction block.
            sqlx::raw_sql("VACUUM (SKIP_LOCKED) outbox")
                .execute(pool)
                .await?;
        }
        Ok(())
    }

    /// On PostgreSQL, wakes the relays of every instance (their listeners);
    /// nothing on SQLite.
    ///
    /// Not part of the enqueuing transaction, on purpose: PostgreSQL
    /// serialises every transaction that notifies, from the notification to
    /// the end of its commit (the flush of the commit record included), so a
    /// notification in each durable step made every step of every instance
    /// wait in one line. Sent after the commit instead, in a transaction of
    /// its own that does not wait for the flush (a lost wake-up costs a poll,
    /// nothing else), by a sender that folds wake-ups together (see
    /// `messaging::outbox::Notifier`).
    pub async fn outbox_notify(&self) -> Result<(), StoreError> {
        if let super::Pool::Postgres(pool) = &self.pool {
            let mut tx = pool.begin().await?;
            sqlx::query("SET LOCAL synchronous_commit TO off")
                .execute(&mut *tx)
                .await?;
            sqlx::query("SELECT pg_notify($1, '')")
                .bind(NOTIFY_CHANNEL)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
        }
        Ok(())
    }
}
