//! Listings: what store information knows about each store (Robust Out-Only).
//!
//! Store information is the system of record for its stores: it takes an
//! update as the owner typed it, bumps the listing's `version`, and publishes
//! `store.updated` in the same transaction (see `participants::stores`).
//! Subscribers may hold stricter rules than the publisher (search cannot
//! index an impossible location); when one of them faults back, the listing
//! is marked `needs-attention` — but only if the fault is about the current
//! version, so a fault that arrives after the listing was fixed changes
//! nothing. An update always clears the mark: in Out-Only no news is good
//! news, and a fault, if any, follows.

use super::{Conn, Store, StoreError, Tx};

text_enum! {
    /// Whether a listing is fine as far as store information knows.
    pub enum ListingStatus {
        /// No subscriber has faulted on the current version.
        Ok = "ok",
        /// A subscriber could not take the current version; see `reason`.
        NeedsAttention = "needs-attention",
    }
}

/// A store as store information lists it.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow, serde::Serialize, serde::Deserialize)]
pub struct Listing {
    pub id: String,
    pub name: String,
    pub lat: f64,
    pub lon: f64,
    pub open: bool,
    /// Grows by one with every update.
    pub version: i64,
    pub status: ListingStatus,
    /// Why the listing needs attention (the subscriber's fault detail).
    pub reason: Option<String>,
    pub updated_at: i64,
}

/// An update: the members to change; `None` keeps the current value.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ListingChange {
    pub name: Option<String>,
    pub lat: Option<f64>,
    pub lon: Option<f64>,
    pub open: Option<bool>,
}

/// The columns of a [`Listing`], for `concat!` (sqlx takes only `'static` SQL).
macro_rules! columns {
    () => {
        "id, name, lat, lon, open, version, status, reason, updated_at"
    };
}

impl Store {
    /// Inserts the listings that do not exist yet; existing ones are left as
    /// they are. Returns how many were inserted.
    pub async fn listings_seed(&self, listings: &[Listing]) -> Result<u64, StoreError> {
        const SQL: &str = "INSERT INTO listings \
             (id, name, lat, lon, open, version, status, reason, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (id) DO NOTHING";
        let mut tx = self.begin().await?;
        let mut inserted = 0;
        for l in listings {
            inserted += on_conn!(tx.conn(), c => {
                sqlx::query(SQL)
                    .bind(&l.id)
                    .bind(&l.name)
                    .bind(l.lat)
                    .bind(l.lon)
                    .bind(l.open)
                    .bind(l.version)
                    .bind(l.status)
                    .bind(&l.reason)
                    .bind(l.updated_at)
                    .execute(&mut *c)
                    .await?
                    .rows_affected()
            });
        }
        tx.commit().await?;
        Ok(inserted)
    }

    /// Every listing, by id.
    pub async fn listings_list(&self) -> Result<Vec<Listing>, StoreError> {
        const SQL: &str = concat!("SELECT ", columns!(), " FROM listings ORDER BY id");
        Ok(on_conn!(self.reader().await?.as_conn(), c => {
            sqlx::query_as(SQL).fetch_all(&mut *c).await?
        }))
    }

    /// One listing; `NotFound` if there is none.
    pub async fn listing_get(&self, id: &str) -> Result<Listing, StoreError> {
        const SQL: &str = concat!("SELECT ", columns!(), " FROM listings WHERE id = $1");
        Ok(on_conn!(self.reader().await?.as_conn(), c => {
            sqlx::query_as(SQL).bind(id).fetch_one(&mut *c).await?
        }))
    }

    /// Marks `version` of a listing as needing attention for `reason`.
    /// Returns `false` when the listing has moved past that version (the
    /// fault is stale) or does not exist.
    pub async fn listing_mark(
        &self,
        id: &str,
        version: i64,
        reason: &str,
    ) -> Result<bool, StoreError> {
        const SQL: &str = "UPDATE listings SET status = $3, reason = $4 \
             WHERE id = $1 AND version = $2";
        let done = on_conn!(self.writer().await?.as_conn(), c => {
            sqlx::query(SQL)
                .bind(id)
                .bind(version)
                .bind(ListingStatus::NeedsAttention)
                .bind(reason)
                .execute(&mut *c)
                .await?
                .rows_affected()
        });
        Ok(done > 0)
    }
}

impl Tx {
    /// Applies `change` to a listing, bumps its version and clears any mark;
    /// returns the listing as it now is. `NotFound` if there is none.
    pub async fn listing_update(
        &mut self,
        id: &str,
        change: &ListingChange,
        now: i64,
    ) -> Result<Listing, StoreError> {
        update(self.conn(), id, change, now).await
    }
}

async fn update(
    conn: Conn<'_>,
    id: &str,
    change: &ListingChange,
    now: i64,
) -> Result<Listing, StoreError> {
    const SQL: &str = concat!(
        "UPDATE listings SET name = COALESCE($2, name), lat = COALESCE($3, lat), \
         lon = COALESCE($4, lon), open = COALESCE($5, open), version = version + 1, \
         status = $6, reason = NULL, updated_at = $7 WHERE id = $1 RETURNING ",
        columns!()
    );
    Ok(on_conn!(conn, c => {
        sqlx::query_as(SQL)
            .bind(id)
            .bind(&change.name)
            .bind(change.lat)
            .bind(change.lon)
            .bind(change.open)
            .bind(ListingStatus::Ok)
            .bind(now)
            .fetch_one(&mut *c)
            .await?
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::search_index::IndexedStore;
    use crate::store::testing::TempPostgres;

    fn listing(id: &str) -> Listing {
        Listing {
            id: id.to_owned(),
            name: "Luigi's".to_owned(),
            lat: 52.52,
            lon: 13.405,
            open: true,
            version: 1,
            status: ListingStatus::Ok,
            reason: None,
            updated_at: 1,
        }
    }

    /// Listings and the search index, on one engine.
    async fn listings_and_index(store: Store) {
        assert_eq!(
            store
                .listings_seed(&[listing("a"), listing("b")])
                .await
                .unwrap(),
            2
        );
        assert_eq!(
            store.listings_seed(&[listing("a")]).await.unwrap(),
            0,
            "seeding twice adds nothing"
        );

        let mut tx = store.begin().await.unwrap();
        let change = ListingChange {
            lat: Some(123.4),
            ..Default::default()
        };
        let updated = tx.listing_update("a", &change, 2).await.unwrap();
        tx.commit().await.unwrap();
        assert_eq!(
            (updated.lat, updated.lon, updated.version),
            (123.4, 13.405, 2)
        );
        assert_eq!(updated.name, "Luigi's", "absent members are kept");

        assert!(
            !store.listing_mark("a", 1, "stale").await.unwrap(),
            "a stale fault marks nothing"
        );
        assert!(store.listing_mark("a", 2, "impossible").await.unwrap());
        let marked = store.listing_get("a").await.unwrap();
        assert_eq!(
            (marked.status, marked.reason.as_deref()),
            (ListingStatus::NeedsAttention, Some("impossible"))
        );

        let mut tx = store.begin().await.unwrap();
        let fixed = tx
            .listing_update("a", &ListingChange::default(), 3)
            .await
            .unwrap();
        tx.commit().await.unwrap();
        assert_eq!(
            (fixed.status, fixed.reason, fixed.version),
            (ListingStatus::Ok, None, 3)
        );
        let mut tx = store.begin().await.unwrap();
        assert!(matches!(
            tx.listing_update("nope", &change, 4).await,
            Err(StoreError::NotFound)
        ));
        tx.rollback().await.unwrap();
        assert_eq!(store.listings_list().await.unwrap().len(), 2);

        let entry = |version: i64, name: &str| IndexedStore {
            store_id: "a".to_owned(),
            name: name.to_owned(),
            lat: 1.0,
            lon: 2.0,
            open: true,
            version,
            indexed_at: 0,
        };
        assert!(store.search_index_upsert(&entry(2, "two")).await.unwrap());
        assert!(
            !store.search_index_upsert(&entry(1, "one")).await.unwrap(),
            "an older version changes nothing"
        );
        assert!(!store.search_index_upsert(&entry(2, "again")).await.unwrap());
        assert!(store.search_index_upsert(&entry(3, "three")).await.unwrap());
        assert_eq!(store.search_index_all().await.unwrap()[0].name, "three");
    }

    #[tokio::test]
    async fn on_sqlite() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("conversant.db");
        listings_and_index(Store::connect(path.to_str().unwrap()).await.unwrap()).await;
    }

    #[tokio::test]
    async fn on_postgres() {
        let Some(cluster) = TempPostgres::start() else {
            return;
        };
        let url = cluster.new_database().await;
        listings_and_index(Store::connect(&url).await.unwrap()).await;
    }
}
