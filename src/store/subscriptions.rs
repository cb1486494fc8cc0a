//! Subscriptions: who wants to hear about what (Out-Only, publish-subscribe).
//!
//! A publisher such as orders sends `order.placed` to every active subscriber's
//! callback URL, as a CloudEvent signed with the subscription's secret
//! (Standard Webhooks). The publisher keeps the list, not the subscribers: this
//! is the notification side of the talk, where the sender never waits for a
//! reply. A subscription whose endpoint keeps failing is disabled rather than
//! deleted, so its owner can see why deliveries stopped.

use serde_json::Value;

use super::{Conn, Engine, Store, StoreError, Tx};

/// A webhook subscription held by a publishing participant.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow, serde::Serialize, serde::Deserialize)]
pub struct Subscription {
    pub id: String,
    /// The publishing participant that owns the subscription.
    pub owner: String,
    pub callback_url: String,
    /// The CloudEvents `type`s wanted, as a JSON array of strings.
    pub event_types: Value,
    /// The Standard Webhooks signing secret.
    pub secret: String,
    pub active: bool,
    pub created_at: i64,
}

impl Store {
    /// Records a new subscription; `Conflict` if its id exists.
    pub async fn subscription_create(&self, subscription: &Subscription) -> Result<(), StoreError> {
        create(self.writer().await?.as_conn(), subscription).await
    }

    /// One subscription by id.
    pub async fn subscription_get(&self, id: &str) -> Result<Subscription, StoreError> {
        const SQL: &str = "SELECT id, owner, callback_url, event_types, secret, active, created_at \
             FROM subscriptions WHERE id = $1";
        Ok(on_conn!(self.reader().await?.as_conn(), c => {
            sqlx::query_as(SQL).bind(id).fetch_one(&mut *c).await?
        }))
    }

    /// The subscriptions among `ids` that exist, in no particular order: a
    /// relay reads those of a whole batch of webhooks with one query.
    pub async fn subscriptions_get(&self, ids: &[&str]) -> Result<Vec<Subscription>, StoreError> {
        const SQLITE: &str = "SELECT id, owner, callback_url, event_types, secret, active, created_at \
             FROM subscriptions WHERE id IN (SELECT value FROM json_each($1))";
        const POSTGRES: &str = "SELECT id, owner, callback_url, event_types, secret, active, created_at \
             FROM subscriptions WHERE id = ANY($1)";
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        Ok(match self.reader().await?.as_conn() {
            Conn::Sqlite(c) => {
                // A JSON array of the ids, which `json_each` unpacks.
                let ids = Value::from(ids.to_vec()).to_string();
                sqlx::query_as(SQLITE).bind(ids).fetch_all(&mut *c).await?
            }
            Conn::Postgres(c) => {
                sqlx::query_as(POSTGRES)
                    .bind(ids)
                    .fetch_all(&mut *c)
                    .await?
            }
        })
    }

    /// Removes a subscription; `NotFound` if there was none.
    pub async fn subscription_delete(&self, id: &str) -> Result<(), StoreError> {
        delete(self.writer().await?.as_conn(), id).await
    }

    /// Stops deliveries to a subscription, keeping the record; `NotFound` if absent.
    pub async fn subscription_disable(&self, id: &str) -> Result<(), StoreError> {
        disable(self.writer().await?.as_conn(), id).await
    }

    /// The active subscriptions of `owner` that want events of `event_type`, oldest first.
    pub async fn subscriptions_active_for(
        &self,
        owner: &str,
        event_type: &str,
    ) -> Result<Vec<Subscription>, StoreError> {
        // Both engines keep the array as JSON; each has its own membership test.
        const SQLITE: &str = "SELECT id, owner, callback_url, event_types, secret, active, \
             created_at FROM subscriptions WHERE owner = $1 AND active AND EXISTS \
             (SELECT 1 FROM json_each(subscriptions.event_types) WHERE value = $2) \
             ORDER BY created_at, id";
        const POSTGRES: &str = "SELECT id, owner, callback_url, event_types, secret, active, \
             created_at FROM subscriptions WHERE owner = $1 AND active AND event_types ? $2 \
             ORDER BY created_at, id";
        let mut pooled = self.reader().await?;
        let conn = pooled.as_conn();
        let sql = match conn.engine() {
            Engine::Sqlite => SQLITE,
            Engine::Postgres => POSTGRES,
        };
        Ok(on_conn!(conn, c => {
            sqlx::query_as(sql).bind(owner).bind(event_type).fetch_all(&mut *c).await?
        }))
    }
}

impl Tx {
    /// [`Store::subscription_create`] inside this transaction.
    pub async fn subscription_create(
        &mut self,
        subscription: &Subscription,
    ) -> Result<(), StoreError> {
        create(self.conn(), subscription).await
    }

    /// [`Store::subscription_delete`] inside this transaction.
    pub async fn subscription_delete(&mut self, id: &str) -> Result<(), StoreError> {
        delete(self.conn(), id).await
    }

    /// [`Store::subscription_disable`] inside this transaction.
    pub async fn subscription_disable(&mut self, id: &str) -> Result<(), StoreError> {
        disable(self.conn(), id).await
    }
}

async fn create(conn: Conn<'_>, s: &Subscription) -> Result<(), StoreError> {
    const SQL: &str = "INSERT INTO subscriptions \
         (id, owner, callback_url, event_types, secret, active, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)";
    on_conn!(conn, c => {
        sqlx::query(SQL)
            .bind(&s.id)
            .bind(&s.owner)
            .bind(&s.callback_url)
            .bind(&s.event_types)
            .bind(&s.secret)
            .bind(s.active)
            .bind(s.created_at)
            .execute(&mut *c)
            .await?;
    });
    Ok(())
}

async fn delete(conn: Conn<'_>, id: &str) -> Result<(), StoreError> {
    const SQL: &str = "DELETE FROM subscriptions WHERE id = $1";
    let done =
        on_conn!(conn, c => sqlx::query(SQL).bind(id).execute(&mut *c).await?.rows_affected());
    super::one_row(done)
}

async fn disable(conn: Conn<'_>, id: &str) -> Result<(), StoreError> {
    const SQL: &str = "UPDATE subscriptions SET active = FALSE WHERE id = $1";
    let done =
        on_conn!(conn, c => sqlx::query(SQL).bind(id).execute(&mut *c).await?.rows_affected());
    super::one_row(done)
}
