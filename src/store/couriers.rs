//! Couriers: the provider tracks its subscribers (Out-In, solicit-response).
//!
//! To find a courier for a delivery, deliveries *solicits* every courier it
//! knows — "are you available for this pickup?" — and correlates the answers
//! that come back before a deadline. It can only do that because it keeps a
//! registry of the couriers that subscribed, with where they are, how busy they
//! are and where to send the solicitation. Couriers re-register to refresh
//! their position and busyness, hence upsert.

use super::{Conn, Store, StoreError, Tx};

/// A courier registered with deliveries.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow, serde::Serialize, serde::Deserialize)]
pub struct Courier {
    pub id: String,
    pub name: String,
    pub lat: f64,
    pub lon: f64,
    /// How busy the courier is, from 0 (idle) to 1 (fully booked).
    pub busyness: f64,
    /// Where solicitations go; `None` for couriers simulated in-process.
    pub reply_url: Option<String>,
    /// When the courier first registered (kept across upserts).
    pub created_at: i64,
}

impl Store {
    /// Registers a courier, or refreshes everything but `created_at` of a known one.
    pub async fn courier_upsert(&self, courier: &Courier) -> Result<(), StoreError> {
        upsert(self.writer().await?.as_conn(), courier).await
    }

    /// Every registered courier, in registration order.
    pub async fn couriers_list(&self) -> Result<Vec<Courier>, StoreError> {
        const SQL: &str = "SELECT id, name, lat, lon, busyness, reply_url, created_at \
             FROM couriers ORDER BY created_at, id";
        Ok(on_conn!(self.reader().await?.as_conn(), c => {
            sqlx::query_as(SQL).fetch_all(&mut *c).await?
        }))
    }
}

impl Tx {
    /// [`Store::courier_upsert`] inside this transaction.
    pub async fn courier_upsert(&mut self, courier: &Courier) -> Result<(), StoreError> {
        upsert(self.conn(), courier).await
    }
}

async fn upsert(conn: Conn<'_>, courier: &Courier) -> Result<(), StoreError> {
    const SQL: &str = "INSERT INTO couriers (id, name, lat, lon, busyness, reply_url, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7) \
         ON CONFLICT (id) DO UPDATE SET name = excluded.name, lat = excluded.lat, \
         lon = excluded.lon, busyness = excluded.busyness, reply_url = excluded.reply_url";
    on_conn!(conn, c => {
        sqlx::query(SQL)
            .bind(&courier.id)
            .bind(&courier.name)
            .bind(courier.lat)
            .bind(courier.lon)
            .bind(courier.busyness)
            .bind(&courier.reply_url)
            .bind(courier.created_at)
            .execute(&mut *c)
            .await?;
    });
    Ok(())
}
