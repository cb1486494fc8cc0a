//! Search's index of the stores, and its own subscriptions (Robust Out-Only).
//!
//! Search learns about stores only from store information's `store.updated`
//! events, so the index is a projection of those events. Events may arrive
//! late, twice or out of order (the publisher's relay retries), so an entry is
//! replaced only by a newer `version` of the store: the upsert is idempotent
//! and order-insensitive. An update search cannot index leaves the last good
//! entry in place — the store stays findable where it was — and search faults
//! back to the publisher instead.
//!
//! [`SearchSubscription`]s are the subscriber's side of a subscription: the id
//! the publisher gave and the secret its deliveries are signed with. Verifying
//! that signature is what makes an event trustworthy, so the secret is kept
//! here, durably, rather than in memory.

use super::{Conn, Store, StoreError, Tx};

/// A store as search indexed it.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow, serde::Serialize, serde::Deserialize)]
pub struct IndexedStore {
    pub store_id: String,
    pub name: String,
    pub lat: f64,
    pub lon: f64,
    pub open: bool,
    /// The listing's version this entry reflects.
    pub version: i64,
    pub indexed_at: i64,
}

/// Search's subscription to a publisher's events.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow, serde::Serialize, serde::Deserialize)]
pub struct SearchSubscription {
    /// The id the publisher gave the subscription.
    pub id: String,
    pub publisher: String,
    /// The Standard Webhooks secret deliveries are signed with.
    pub secret: String,
    pub created_at: i64,
}

impl Store {
    /// Every indexed store (the index is one city's stores; a larger one
    /// would filter by a bounding box or use a spatial index first).
    pub async fn search_index_all(&self) -> Result<Vec<IndexedStore>, StoreError> {
        const SQL: &str = "SELECT store_id, name, lat, lon, open, version, indexed_at \
             FROM search_index ORDER BY store_id";
        Ok(on_conn!(self.reader().await?.as_conn(), c => {
            sqlx::query_as(SQL).fetch_all(&mut *c).await?
        }))
    }

    /// [`Tx::search_index_upsert`] on its own.
    pub async fn search_index_upsert(&self, entry: &IndexedStore) -> Result<bool, StoreError> {
        upsert(self.writer().await?.as_conn(), entry).await
    }

    /// The subscriptions search holds with `publisher`, oldest first.
    pub async fn search_subscriptions_of(
        &self,
        publisher: &str,
    ) -> Result<Vec<SearchSubscription>, StoreError> {
        const SQL: &str = "SELECT id, publisher, secret, created_at FROM search_subscriptions \
             WHERE publisher = $1 ORDER BY created_at, id";
        Ok(on_conn!(self.reader().await?.as_conn(), c => {
            sqlx::query_as(SQL).bind(publisher).fetch_all(&mut *c).await?
        }))
    }

    /// Keeps a new subscription; `Conflict` if its id is known.
    pub async fn search_subscription_save(
        &self,
        subscription: &SearchSubscription,
    ) -> Result<(), StoreError> {
        const SQL: &str = "INSERT INTO search_subscriptions (id, publisher, secret, created_at) \
             VALUES ($1, $2, $3, $4)";
        on_conn!(self.writer().await?.as_conn(), c => {
            sqlx::query(SQL)
                .bind(&subscription.id)
                .bind(&subscription.publisher)
                .bind(&subscription.secret)
                .bind(subscription.created_at)
                .execute(&mut *c)
                .await?;
        });
        Ok(())
    }

    /// Forgets a subscription the publisher no longer has; `NotFound` if absent.
    pub async fn search_subscription_delete(&self, id: &str) -> Result<(), StoreError> {
        const SQL: &str = "DELETE FROM search_subscriptions WHERE id = $1";
        let done = on_conn!(self.writer().await?.as_conn(), c => {
            sqlx::query(SQL).bind(id).execute(&mut *c).await?.rows_affected()
        });
        super::one_row(done)
    }
}

impl Tx {
    /// Indexes a store unless the index already holds this or a newer
    /// version of it; returns whether the entry changed.
    pub async fn search_index_upsert(&mut self, entry: &IndexedStore) -> Result<bool, StoreError> {
        upsert(self.conn(), entry).await
    }
}

async fn upsert(conn: Conn<'_>, e: &IndexedStore) -> Result<bool, StoreError> {
    const SQL: &str = "INSERT INTO search_index \
         (store_id, name, lat, lon, open, version, indexed_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7) \
         ON CONFLICT (store_id) DO UPDATE SET name = excluded.name, lat = excluded.lat, \
         lon = excluded.lon, open = excluded.open, version = excluded.version, \
         indexed_at = excluded.indexed_at WHERE search_index.version < excluded.version";
    let done = on_conn!(conn, c => {
        sqlx::query(SQL)
            .bind(&e.store_id)
            .bind(&e.name)
            .bind(e.lat)
            .bind(e.lon)
            .bind(e.open)
            .bind(e.version)
            .bind(e.indexed_at)
            .execute(&mut *c)
            .await?
            .rows_affected()
    });
    Ok(done > 0)
}
