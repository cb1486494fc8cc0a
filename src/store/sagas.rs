//! Delivery sagas: the state a Process Manager must keep, and its timers.
//!
//! Unlike the stateless conversations elsewhere, a process manager *is* the
//! central point that remembers: each delivery's state, attempts, courier and
//! history live here, and every change is a compare-and-set on `version`, so
//! two instances (or a timer and a courier's report) cannot both move a saga
//! from the same state. Timers are rows: [`Store::saga_timers_claim`] leases
//! due timers to one loop (`FOR UPDATE SKIP LOCKED` on PostgreSQL, the single
//! `UPDATE ... RETURNING` under SQLite's write lock), so a timer survives a
//! restart and a loop that dies mid-step lets its lease run out.

use std::time::Duration;

use serde_json::Value;

use super::{Conn, Engine, Store, StoreError, Tx, duration_ms, now_ms};

text_enum! {
    /// Where a delivery stands.
    pub enum DeliveryState {
        /// Asking the couriers (again, after a decline or a timeout).
        Soliciting = "soliciting",
        /// The best courier is being offered the job.
        Offered = "offered",
        /// A courier took the job; its pickup report is awaited.
        Assigned = "assigned",
        /// Picked up; the drop-off report is awaited.
        PickedUp = "picked-up",
        Delivered = "delivered",
        /// Undoing what was done: cancelling the order, refunding the payment.
        Compensating = "compensating",
        /// Given up on, compensated, with the reason in the history.
        Failed = "failed",
        /// Cancelled: by an administrator (compensated), or because its
        /// order was cancelled (whoever cancelled the order compensates).
        Cancelled = "cancelled",
    }
}

impl DeliveryState {
    pub const ALL: [DeliveryState; 8] = [
        Self::Soliciting,
        Self::Offered,
        Self::Assigned,
        Self::PickedUp,
        Self::Delivered,
        Self::Compensating,
        Self::Failed,
        Self::Cancelled,
    ];

    /// Whether the saga is over.
    pub fn is_final(self) -> bool {
        matches!(self, Self::Delivered | Self::Failed | Self::Cancelled)
    }
}

/// One delivery saga.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow, serde::Serialize, serde::Deserialize)]
pub struct Delivery {
    pub id: String,
    pub order_id: Option<String>,
    pub payment_id: Option<String>,
    pub conversation_id: String,
    pub pickup_lat: f64,
    pub pickup_lon: f64,
    pub dropoff_lat: f64,
    pub dropoff_lon: f64,
    pub size: String,
    pub weight_kg: f64,
    /// How long each solicitation gives the couriers, in ms.
    pub deadline_ms: i64,
    pub state: DeliveryState,
    pub courier_id: Option<String>,
    /// Solicitations made so far.
    pub attempts: i64,
    /// `[{state, at, note}]`, oldest first.
    pub history: Value,
    /// Bumped by every change (compare-and-set).
    pub version: i64,
    pub created_at: i64,
    pub updated_at: i64,
    /// The latest message of the delivery's conversation (`None` before the
    /// first), its turn and chain digest: what the saga's next message
    /// continues.
    pub head_message: Option<String>,
    pub head_seq: i64,
    pub head_chain: String,
}

/// A durable timer of a saga.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow, serde::Serialize, serde::Deserialize)]
pub struct SagaTimer {
    pub id: String,
    pub delivery_id: String,
    /// What firing does: `solicit`, `report` (a report is overdue), `compensate`.
    pub kind: String,
    pub due_at: i64,
    pub fired: bool,
}

macro_rules! select_deliveries {
    ($rest:literal) => {
        concat!(
            "SELECT id, order_id, payment_id, conversation_id, pickup_lat, pickup_lon, \
             dropoff_lat, dropoff_lon, size, weight_kg, deadline_ms, state, courier_id, \
             attempts, history, version, created_at, updated_at, head_message, head_seq, \
             head_chain FROM deliveries ",
            $rest
        )
    };
}

const CLAIM_SQLITE: &str = "UPDATE saga_timers SET due_at = $1 WHERE id IN \
     (SELECT id FROM saga_timers WHERE fired = FALSE AND due_at <= $2 ORDER BY due_at, id LIMIT $3) \
     RETURNING id, delivery_id, kind, due_at, fired";
const CLAIM_POSTGRES: &str = "UPDATE saga_timers SET due_at = $1 WHERE id IN \
     (SELECT id FROM saga_timers WHERE fired = FALSE AND due_at <= $2 ORDER BY due_at, id LIMIT $3 \
     FOR UPDATE SKIP LOCKED) RETURNING id, delivery_id, kind, due_at, fired";

impl Store {
    /// Starts a saga with its first timer (none for a saga recorded already
    /// over); `false` (nothing written) when a delivery for the same order
    /// exists already.
    pub async fn delivery_create(
        &self,
        delivery: &Delivery,
        timer: Option<&SagaTimer>,
    ) -> Result<bool, StoreError> {
        let mut tx = self.begin().await?;
        const SQL: &str = "INSERT INTO deliveries (id, order_id, payment_id, conversation_id, \
             pickup_lat, pickup_lon, dropoff_lat, dropoff_lon, size, weight_kg, deadline_ms, state, \
             courier_id, attempts, history, version, created_at, updated_at, head_message, head_seq, \
             head_chain) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, \
             $16, $17, $18, $19, $20, $21) ON CONFLICT DO NOTHING";
        let d = delivery;
        let rows = on_conn!(tx.conn(), c => {
            sqlx::query(SQL)
                .bind(&d.id).bind(&d.order_id).bind(&d.payment_id).bind(&d.conversation_id)
                .bind(d.pickup_lat).bind(d.pickup_lon).bind(d.dropoff_lat).bind(d.dropoff_lon)
                .bind(&d.size).bind(d.weight_kg).bind(d.deadline_ms).bind(d.state)
                .bind(&d.courier_id).bind(d.attempts).bind(&d.history).bind(d.version)
                .bind(d.created_at).bind(d.updated_at)
                .bind(&d.head_message).bind(d.head_seq).bind(&d.head_chain)
                .execute(&mut *c).await?.rows_affected()
        });
        if rows == 0 {
            return Ok(false);
        }
        if let Some(timer) = timer {
            tx.saga_timer_add(timer).await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    pub async fn delivery_get(&self, id: &str) -> Result<Delivery, StoreError> {
        const SQL: &str = select_deliveries!("WHERE id = $1");
        let found: Option<Delivery> = on_conn!(self.reader().await?.as_conn(), c => {
            sqlx::query_as(SQL).bind(id).fetch_optional(&mut *c).await?
        });
        found.ok_or(StoreError::NotFound)
    }

    pub async fn delivery_by_order(&self, order_id: &str) -> Result<Delivery, StoreError> {
        const SQL: &str = select_deliveries!("WHERE order_id = $1");
        let found: Option<Delivery> = on_conn!(self.reader().await?.as_conn(), c => {
            sqlx::query_as(SQL).bind(order_id).fetch_optional(&mut *c).await?
        });
        found.ok_or(StoreError::NotFound)
    }

    /// A page of deliveries, newest first, optionally in one state.
    pub async fn delivery_list(
        &self,
        state: Option<DeliveryState>,
        limit: u32,
        offset: u64,
    ) -> Result<Vec<Delivery>, StoreError> {
        const SQL: &str = select_deliveries!(
            "WHERE ($1 IS NULL OR state = $1) ORDER BY created_at DESC, id DESC LIMIT $2 OFFSET $3"
        );
        let state = state.map(DeliveryState::as_str);
        Ok(on_conn!(self.reader().await?.as_conn(), c => {
            sqlx::query_as(SQL)
                .bind(state)
                .bind(i64::from(limit))
                .bind(offset as i64)
                .fetch_all(&mut *c)
                .await?
        }))
    }

    /// Every delivery's state, history and times, for the summary.
    pub async fn delivery_histories(
        &self,
        limit: u32,
    ) -> Result<Vec<(DeliveryState, Value)>, StoreError> {
        const SQL: &str = "SELECT state, history FROM deliveries ORDER BY created_at DESC LIMIT $1";
        Ok(on_conn!(self.reader().await?.as_conn(), c => {
            sqlx::query_as(SQL).bind(i64::from(limit)).fetch_all(&mut *c).await?
        }))
    }

    /// Leases up to `limit` due timers for `lease`; fire them, then
    /// [`Store::saga_timer_fired`].
    pub async fn saga_timers_claim(
        &self,
        limit: u32,
        lease: Duration,
    ) -> Result<Vec<SagaTimer>, StoreError> {
        let now = now_ms();
        let mut pooled = self.writer().await?;
        let conn = pooled.as_conn();
        let sql = match conn.engine() {
            Engine::Sqlite => CLAIM_SQLITE,
            Engine::Postgres => CLAIM_POSTGRES,
        };
        Ok(on_conn!(conn, c => {
            sqlx::query_as(sql)
                .bind(now.saturating_add(duration_ms(lease)))
                .bind(now)
                .bind(i64::from(limit))
                .fetch_all(&mut *c)
                .await?
        }))
    }

    pub async fn saga_timer_fired(&self, id: &str) -> Result<(), StoreError> {
        const SQL: &str = "UPDATE saga_timers SET fired = TRUE WHERE id = $1";
        on_conn!(self.writer().await?.as_conn(), c => {
            sqlx::query(SQL).bind(id).execute(&mut *c).await?.rows_affected()
        });
        Ok(())
    }

    /// The earliest due time of a pending timer, if any.
    pub async fn saga_timer_next_due(&self) -> Result<Option<i64>, StoreError> {
        const SQL: &str = "SELECT MIN(due_at) FROM saga_timers WHERE fired = FALSE";
        let (due,): (Option<i64>,) = on_conn!(self.reader().await?.as_conn(), c => {
            sqlx::query_as(SQL).fetch_one(&mut *c).await?
        });
        Ok(due)
    }

    /// The pending timers of a delivery.
    pub async fn saga_timers_of(&self, delivery_id: &str) -> Result<Vec<SagaTimer>, StoreError> {
        const SQL: &str = "SELECT id, delivery_id, kind, due_at, fired FROM saga_timers \
             WHERE delivery_id = $1 AND fired = FALSE ORDER BY due_at";
        Ok(on_conn!(self.reader().await?.as_conn(), c => {
            sqlx::query_as(SQL).bind(delivery_id).fetch_all(&mut *c).await?
        }))
    }

    /// Deliveries' subscription secret with `publisher`, if it subscribed.
    pub async fn saga_subscription(
        &self,
        publisher: &str,
    ) -> Result<Option<(String, String)>, StoreError> {
        const SQL: &str =
            "SELECT subscription_id, secret FROM saga_subscriptions WHERE publisher = $1";
        Ok(on_conn!(self.reader().await?.as_conn(), c => {
            sqlx::query_as(SQL).bind(publisher).fetch_optional(&mut *c).await?
        }))
    }

    pub async fn saga_subscription_save(
        &self,
        publisher: &str,
        subscription_id: &str,
        secret: &str,
    ) -> Result<(), StoreError> {
        const SQL: &str = "INSERT INTO saga_subscriptions (publisher, subscription_id, secret) \
             VALUES ($1, $2, $3) ON CONFLICT (publisher) DO UPDATE SET \
             subscription_id = excluded.subscription_id, secret = excluded.secret";
        on_conn!(self.writer().await?.as_conn(), c => {
            sqlx::query(SQL).bind(publisher).bind(subscription_id).bind(secret)
                .execute(&mut *c).await?.rows_affected()
        });
        Ok(())
    }
}

impl Tx {
    /// Saves a delivery if nobody changed it since `expected_version` was
    /// read; `false` (nothing written) otherwise. The saved row has
    /// `delivery.version`, which the caller bumps.
    pub async fn delivery_update(
        &mut self,
        delivery: &Delivery,
        expected_version: i64,
    ) -> Result<bool, StoreError> {
        const SQL: &str = "UPDATE deliveries SET state = $1, courier_id = $2, attempts = $3, \
             history = $4, version = $5, updated_at = $6, head_message = $7, head_seq = $8, \
             head_chain = $9 WHERE id = $10 AND version = $11";
        let d = delivery;
        let rows = on_conn!(self.conn(), c => {
            sqlx::query(SQL)
                .bind(d.state).bind(&d.courier_id).bind(d.attempts).bind(&d.history)
                .bind(d.version).bind(d.updated_at).bind(&d.head_message).bind(d.head_seq)
                .bind(&d.head_chain).bind(&d.id).bind(expected_version)
                .execute(&mut *c).await?.rows_affected()
        });
        Ok(rows == 1)
    }

    /// Cancels every pending timer of a delivery.
    pub async fn saga_timers_clear(&mut self, delivery_id: &str) -> Result<(), StoreError> {
        const SQL: &str =
            "UPDATE saga_timers SET fired = TRUE WHERE delivery_id = $1 AND fired = FALSE";
        on_conn!(self.conn(), c => {
            sqlx::query(SQL).bind(delivery_id).execute(&mut *c).await?.rows_affected()
        });
        Ok(())
    }

    pub async fn saga_timer_add(&mut self, timer: &SagaTimer) -> Result<(), StoreError> {
        add_timer(self.conn(), timer).await
    }
}

async fn add_timer(conn: Conn<'_>, t: &SagaTimer) -> Result<(), StoreError> {
    const SQL: &str = "INSERT INTO saga_timers (id, delivery_id, kind, due_at, fired) \
         VALUES ($1, $2, $3, $4, $5)";
    on_conn!(conn, c => {
        sqlx::query(SQL).bind(&t.id).bind(&t.delivery_id).bind(&t.kind).bind(t.due_at)
            .bind(t.fired).execute(&mut *c).await?.rows_affected()
    });
    Ok(())
}
