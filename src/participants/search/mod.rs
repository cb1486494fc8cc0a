//! Search: indexes the stores, and is the subscriber of Robust Out-Only.
//!
//! Search knows stores only through store information's `store.updated`
//! events. At start it subscribes over HTTP, with a callback on itself, and
//! indexes the listings as they are ([`subscription`]); from then on each
//! delivery arrives at [`notifications::store_updated`], whose Standard
//! Webhooks signature — checked with the secret search got when it
//! subscribed — is what makes the event trustworthy.
//!
//! The subscriber's rule of Robust Out-Only: a delivery is always
//! acknowledged (`2xx`: the event was received), but an update search cannot
//! index — an impossible location, a store without a name — triggers a
//! fault, a problem document signed by search and sent through its outbox to
//! the fault-to continuation the event carries. Store information then marks
//! the listing. The index keeps the last good version of that store.
//!
//! [`query::near`] answers `GET /search/stores?near=lat,lon` from the index
//! alone, nearest first.

pub mod notifications;
pub mod query;
pub mod subscription;

use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::app::AppState;
use crate::store::search_index::IndexedStore;

pub use subscription::start;

/// Why a store cannot be indexed, if it cannot: the index answers "near"
/// queries, so it needs a name and a real place on Earth.
pub fn unindexable(entry: &IndexedStore) -> Option<String> {
    if entry.name.trim().is_empty() {
        return Some(format!("Store {} has no name to index.", entry.store_id));
    }
    if !(entry.lat.is_finite() && (-90.0..=90.0).contains(&entry.lat)) {
        return Some(format!(
            "Store {} has an impossible latitude ({}): it must be between -90 and 90.",
            entry.store_id, entry.lat
        ));
    }
    if !(entry.lon.is_finite() && (-180.0..=180.0).contains(&entry.lon)) {
        return Some(format!(
            "Store {} has an impossible longitude ({}): it must be between -180 and 180.",
            entry.store_id, entry.lon
        ));
    }
    None
}

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(notifications::store_updated))
        .routes(routes!(query::near))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(name: &str, lat: f64, lon: f64) -> IndexedStore {
        IndexedStore {
            store_id: "s".into(),
            name: name.into(),
            lat,
            lon,
            open: true,
            version: 1,
            indexed_at: 0,
        }
    }

    #[test]
    fn only_named_stores_on_earth_are_indexable() {
        assert_eq!(unindexable(&entry("Luigi's", 52.52, 13.405)), None);
        assert_eq!(unindexable(&entry("Pole", 90.0, -180.0)), None);
        assert!(unindexable(&entry(" ", 52.52, 13.405)).is_some());
        assert!(unindexable(&entry("x", 90.5, 0.0)).is_some());
        assert!(unindexable(&entry("x", 0.0, 180.1)).is_some());
        assert!(unindexable(&entry("x", f64::NAN, 0.0)).is_some());
        assert!(unindexable(&entry("x", 0.0, f64::INFINITY)).is_some());
    }
}
