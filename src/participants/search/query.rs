//! `GET /search/stores?near=lat,lon`: the stores nearest a point, from the
//! index alone (search never asks store information at query time).

use axum::extract::{Query, State};
use serde::Deserialize;

use crate::app::AppState;
use crate::fault::{Problem, types};
use crate::hypermedia::{Hal, Resource};
use crate::participant::Participant::{Search, Stores};

/// The mean Earth radius, in kilometres.
const EARTH_RADIUS_KM: f64 = 6371.0088;
const DEFAULT_LIMIT: usize = 10;
const MAX_LIMIT: usize = 50;

/// The query of `near`.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct NearQuery {
    /// `lat,lon` in degrees, e.g. `52.52,13.405`.
    near: Option<String>,
    /// At most this many stores (1 to 50, default 10).
    limit: Option<String>,
}

#[utoipa::path(
    get, path = "/stores", tag = "search", operation_id = "search_stores",
    summary = "Stores nearest a point, from search's index, with the distance in km",
    params(NearQuery),
    responses(
        (status = 200, description = "The nearest stores, nearest first", body = crate::openapi::HalDocument, content_type = "application/hal+json"),
        (status = 422, description = "`near` is missing or not `lat,lon` on Earth, or `limit` is not 1 to 50", body = crate::openapi::ProblemDocument, content_type = "application/problem+json"),
    )
)]
/// `GET /search/stores?near=lat,lon&limit=`.
pub async fn near(
    State(app): State<AppState>,
    Query(query): Query<NearQuery>,
) -> Result<Hal, Problem> {
    let (lat, lon) = parse_near(query.near.as_deref())?;
    let limit = match query.limit.as_deref() {
        None => DEFAULT_LIMIT,
        Some(text) => text
            .trim()
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=MAX_LIMIT).contains(n))
            .ok_or_else(|| {
                Problem::new(
                    types::INVALID_QUERY,
                    format!("`limit` must be a whole number from 1 to {MAX_LIMIT}."),
                )
            })?,
    };
    let mut found: Vec<_> = app
        .store
        .search_index_all()
        .await
        .map_err(Problem::internal)?
        .into_iter()
        .map(|entry| (distance_km((lat, lon), (entry.lat, entry.lon)), entry))
        .collect();
    found.sort_by(|a, b| a.0.total_cmp(&b.0));
    found.truncate(limit);
    let items = found
        .into_iter()
        .map(|(km, entry)| {
            Resource::new()
                .field("id", &entry.store_id)
                .field("name", &entry.name)
                .field("lat", entry.lat)
                .field("lon", entry.lon)
                .field("open", entry.open)
                .field("distance_km", (km * 1000.0).round() / 1000.0)
                .field("version", entry.version)
                .link(
                    "listing",
                    app.href(Stores, &format!("/stores/{}", entry.store_id)),
                )
        })
        .collect::<Vec<_>>();
    Ok(Hal::ok(
        Resource::new()
            .field("near", serde_json::json!({ "lat": lat, "lon": lon }))
            .field("count", items.len())
            .link(
                "self",
                app.href(Search, &format!("/stores?near={lat},{lon}&limit={limit}")),
            )
            .link("stores", app.href(Stores, "/stores"))
            .embed("stores", items),
    ))
}

/// `lat,lon` in degrees, on Earth.
fn parse_near(near: Option<&str>) -> Result<(f64, f64), Problem> {
    let invalid = || {
        Problem::new(
            types::INVALID_QUERY,
            "`near` must be `lat,lon` in degrees, latitude from -90 to 90 and longitude from -180 to 180 (e.g. near=52.52,13.405).",
        )
    };
    let (lat, lon) = near.and_then(|n| n.split_once(',')).ok_or_else(invalid)?;
    let lat: f64 = lat.trim().parse().map_err(|_| invalid())?;
    let lon: f64 = lon.trim().parse().map_err(|_| invalid())?;
    if (-90.0..=90.0).contains(&lat) && (-180.0..=180.0).contains(&lon) {
        Ok((lat, lon))
    } else {
        Err(invalid())
    }
}

/// The great-circle distance (haversine) between two points in degrees.
fn distance_km((lat1, lon1): (f64, f64), (lat2, lon2): (f64, f64)) -> f64 {
    let (phi1, phi2) = (lat1.to_radians(), lat2.to_radians());
    let d_phi = (lat2 - lat1).to_radians();
    let d_lambda = (lon2 - lon1).to_radians();
    let a = (d_phi / 2.0).sin().powi(2) + phi1.cos() * phi2.cos() * (d_lambda / 2.0).sin().powi(2);
    2.0 * EARTH_RADIUS_KM * a.sqrt().asin()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distances_are_great_circle_kilometres() {
        assert_eq!(distance_km((52.52, 13.405), (52.52, 13.405)), 0.0);
        // Berlin to Paris is about 878 km.
        let km = distance_km((52.52, 13.405), (48.8566, 2.3522));
        assert!((870.0..890.0).contains(&km), "{km}");
    }

    #[test]
    fn near_must_be_a_point_on_earth() {
        assert_eq!(parse_near(Some("52.52, 13.405")).unwrap(), (52.52, 13.405));
        for bad in [
            None,
            Some(""),
            Some("52.52"),
            Some("a,b"),
            Some("91,0"),
            Some("0,181"),
            Some("NaN,0"),
        ] {
            assert!(parse_near(bad).is_err(), "{bad:?}");
        }
    }
}
