//! Couriers: the subscribers deliveries solicits (Out-In, solicit-response).
//!
//! A handful of simulated couriers, each with a place, a busyness and a
//! reply delay, live here. When the server starts they register with
//! deliveries over HTTP ([`register_on_start`]), as any courier elsewhere
//! would: deliveries then *tracks its subscribers* and can solicit them.
//!
//! A solicitation ("available to take work at this pickup?") is answered
//! `202 Accepted` at once; the courier thinks it over for its delay, then
//! POSTs its answer — confirm or decline, signed with couriers' own token —
//! to the `Reply-To` continuation deliveries gave, through the outbox. A
//! courier confirms when the pickup is within [`MAX_DISTANCE_KM`], its
//! busyness is below [`MAX_BUSYNESS`] and the ride from pickup to drop-off,
//! when the solicitation names one, is at most [`MAX_RIDE_KM`] (orders
//! delivers within 10 km of a store, so an address 8 to 10 km out is one
//! no courier takes: the delivery saga's failure path). One courier is deliberately slow
//! (its delay is [`SLOW_COURIER_ENV`], default [`SLOW_COURIER_DEFAULT`]), so
//! with the default deadline its answer comes late and is refused.
//!
//! The courier deliveries picks is then *offered* the job (In-Out,
//! command-acknowledgement) and accepts it with a signed acknowledgement.

mod jobs;
mod offers;
mod solicit;

pub use jobs::{DELIVER, DELIVERY_REPORT, Job, Report};
pub use offers::{Acceptance, JobOffer, OFFER, OFFER_REPLY};
pub use solicit::{Availability, SOLICIT, SOLICITATION_REPLY, Solicitation};

use std::sync::LazyLock;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::app::{App, AppState};
use crate::fault::{Problem, types};
use crate::participant::Participant::{Couriers, Deliveries};

/// A courier confirms only pickups at most this far away.
pub const MAX_DISTANCE_KM: f64 = 5.0;
/// A courier declines rides longer than this, from pickup to drop-off.
pub const MAX_RIDE_KM: f64 = 8.0;
/// A courier this busy, or busier, declines.
pub const MAX_BUSYNESS: f64 = 0.8;
/// How fast couriers ride through town, for their ETA.
const SPEED_KMH: f64 = 18.0;
/// The environment variable setting the slow courier's reply delay, in ms.
pub const SLOW_COURIER_ENV: &str = "CONVERSANT_SLOW_COURIER_MS";
/// The slow courier's reply delay when the variable is not set: longer
/// than the default deadline, so its answer arrives late.
pub const SLOW_COURIER_DEFAULT: Duration = Duration::from_millis(3000);

/// A place, as latitude and longitude in degrees.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Location {
    /// -90 to 90.
    #[schema(minimum = -90, maximum = 90)]
    pub lat: f64,
    /// -180 to 180.
    #[schema(minimum = -180, maximum = 180)]
    pub lon: f64,
}

impl Location {
    /// Whether the coordinates name a place on Earth.
    pub fn is_valid(self) -> bool {
        (-90.0..=90.0).contains(&self.lat) && (-180.0..=180.0).contains(&self.lon)
    }

    /// The great-circle distance, in kilometres (haversine).
    pub fn distance_km(self, other: Location) -> f64 {
        const EARTH_RADIUS_KM: f64 = 6371.0;
        let (lat1, lat2) = (self.lat.to_radians(), other.lat.to_radians());
        let dlat = lat2 - lat1;
        let dlon = (other.lon - self.lon).to_radians();
        let a = (dlat / 2.0).sin().powi(2) + lat1.cos() * lat2.cos() * (dlon / 2.0).sin().powi(2);
        2.0 * EARTH_RADIUS_KM * a.sqrt().asin()
    }
}

/// How long a simulated courier takes to answer a solicitation.
#[derive(Clone, Copy, Debug)]
pub enum ReplyDelay {
    Millis(u64),
    /// The slow courier: [`SLOW_COURIER_ENV`], read once at start.
    Slow,
}

/// A courier simulated by this participant.
#[derive(Clone, Copy, Debug)]
pub struct SimulatedCourier {
    pub id: &'static str,
    pub name: &'static str,
    pub at: Location,
    /// From 0 (idle) to 1 (fully booked).
    pub busyness: f64,
    pub delay: ReplyDelay,
}

const fn courier(
    id: &'static str,
    name: &'static str,
    lat: f64,
    lon: f64,
    busyness: f64,
    delay: ReplyDelay,
) -> SimulatedCourier {
    SimulatedCourier {
        id,
        name,
        at: Location { lat, lon },
        busyness,
        delay,
    }
}

/// The simulated couriers, around the example stores (see `menu`): near
/// Luigi's and free, near Sakura but busy, far out of town, near Luigi's but
/// slow to answer, and by Green Bowl.
pub const FLEET: &[SimulatedCourier] = &[
    courier(
        "anna",
        "Anna (bike)",
        52.5215,
        13.4100,
        0.2,
        ReplyDelay::Millis(80),
    ),
    courier(
        "ben",
        "Ben (scooter)",
        52.5170,
        13.3890,
        0.9,
        ReplyDelay::Millis(120),
    ),
    courier(
        "chloe",
        "Chloé (cargo bike)",
        52.4500,
        13.5500,
        0.1,
        ReplyDelay::Millis(160),
    ),
    courier(
        "dario",
        "Dario (slow to answer)",
        52.5250,
        13.4000,
        0.3,
        ReplyDelay::Slow,
    ),
    courier(
        "emil",
        "Emil (e-bike)",
        52.5300,
        13.3850,
        0.5,
        ReplyDelay::Millis(200),
    ),
];

static SLOW_DELAY: LazyLock<Duration> = LazyLock::new(|| match std::env::var(SLOW_COURIER_ENV) {
    Ok(text) => match text.trim().parse::<u64>() {
        Ok(ms) => Duration::from_millis(ms),
        Err(_) => {
            tracing::warn!(value = %text, "{SLOW_COURIER_ENV} is not a number of milliseconds; using the default");
            SLOW_COURIER_DEFAULT
        }
    },
    Err(_) => SLOW_COURIER_DEFAULT,
});

impl SimulatedCourier {
    pub fn by_id(id: &str) -> Option<&'static SimulatedCourier> {
        FLEET.iter().find(|c| c.id == id)
    }

    pub fn reply_delay(&self) -> Duration {
        match self.delay {
            ReplyDelay::Millis(ms) => Duration::from_millis(ms),
            ReplyDelay::Slow => *SLOW_DELAY,
        }
    }

    /// Whether this courier takes work at `pickup` (going to `dropoff`, when
    /// known), and how soon it could be there.
    pub fn decide(&self, pickup: Location, dropoff: Option<Location>) -> Availability {
        let distance = self.at.distance_km(pickup);
        let ride = dropoff.map_or(0.0, |d| pickup.distance_km(d));
        let available =
            distance <= MAX_DISTANCE_KM && self.busyness < MAX_BUSYNESS && ride <= MAX_RIDE_KM;
        let eta = (distance / SPEED_KMH * 60.0).ceil() + (self.busyness * 10.0).round();
        Availability {
            courier_id: self.id.to_owned(),
            available,
            eta_minutes: available.then_some(eta.max(1.0) as i64),
            reason: if available {
                None
            } else if distance > MAX_DISTANCE_KM {
                Some(format!("{distance:.1} km from the pickup"))
            } else if ride > MAX_RIDE_KM {
                Some(format!(
                    "a ride of {ride:.1} km, longer than {MAX_RIDE_KM} km"
                ))
            } else {
                Some("too busy".to_owned())
            },
        }
    }
}

fn unknown_courier(app: &App, id: &str) -> Problem {
    Problem::new(
        types::NOT_FOUND,
        format!("There is no courier `{id}` among the simulated couriers."),
    )
    .link("couriers", app.href(Deliveries, "/couriers"))
}

/// Registers every simulated courier with deliveries, over HTTP, once the
/// server is up: deliveries may be hosted here or elsewhere, and may start
/// later, so each registration is retried until deliveries answers (or
/// shutdown begins: the next start registers again).
pub fn register_on_start(app: AppState) {
    if !app.hosts(Couriers) {
        return;
    }
    LazyLock::force(&SLOW_DELAY);
    let background = app.background.clone();
    background.until_shutdown(async move {
        futures::future::join_all(FLEET.iter().map(|c| register(&app, c))).await;
    });
}

async fn register(app: &App, courier: &SimulatedCourier) {
    let url = match app.sender.url(Deliveries, "/couriers") {
        Ok(url) => url,
        Err(e) => {
            tracing::warn!(error = %e, courier = courier.id, "cannot register with deliveries");
            return;
        }
    };
    let body = json!({
        "id": courier.id,
        "name": courier.name,
        "lat": courier.at.lat,
        "lon": courier.at.lon,
        "busyness": courier.busyness,
        "solicit_url": app.href(Couriers, &format!("/{}/solicitations", courier.id)),
    });
    let mut wait = Duration::from_millis(50);
    loop {
        match app.sender.follow(Deliveries, &url, Some(&body), &[]).await {
            Ok(reply) if reply.status.is_success() => {
                tracing::debug!(courier = courier.id, "registered with deliveries");
                return;
            }
            Ok(reply) => {
                tracing::warn!(courier = courier.id, status = %reply.status, problem = %reply.body, "deliveries refused the registration");
                if reply.status.is_client_error() {
                    return;
                }
            }
            Err(e) => {
                tracing::debug!(courier = courier.id, error = %e, "deliveries not reachable yet")
            }
        }
        tokio::time::sleep(wait).await;
        wait = (wait * 2).min(Duration::from_secs(10));
    }
}

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(solicit::solicit))
        .routes(routes!(offers::offer))
        .routes(routes!(jobs::deliver))
}

#[cfg(test)]
mod tests {
    use super::*;

    const LUIGIS: Location = Location {
        lat: 52.5200,
        lon: 13.4050,
    };

    #[test]
    fn close_and_free_couriers_confirm_far_or_busy_ones_decline() {
        let by = |id| SimulatedCourier::by_id(id).unwrap().decide(LUIGIS, None);
        let anna = by("anna");
        assert!(anna.available);
        assert_eq!(anna.eta_minutes, Some(4));
        assert!(by("emil").available);
        assert!(by("emil").eta_minutes > anna.eta_minutes);
        assert!(
            by("dario").available,
            "dario would confirm, were he on time"
        );
        assert_eq!(by("ben").reason.as_deref(), Some("too busy"));
        assert!(!by("chloe").available);
        assert!(by("chloe").reason.unwrap().contains("km"));
    }

    #[test]
    fn a_ride_too_long_is_declined_by_everyone() {
        let near = Location {
            lat: LUIGIS.lat + 0.02,
            lon: LUIGIS.lon,
        };
        let far = Location {
            lat: LUIGIS.lat + 0.081,
            lon: LUIGIS.lon,
        };
        let anna = SimulatedCourier::by_id("anna").unwrap();
        assert!(anna.decide(LUIGIS, Some(near)).available);
        let declined = anna.decide(LUIGIS, Some(far));
        assert!(!declined.available);
        assert!(declined.reason.unwrap().starts_with("a ride of 9."));
        assert!(FLEET.iter().all(|c| !c.decide(LUIGIS, Some(far)).available));
    }

    #[test]
    fn distances_are_great_circle_kilometres() {
        let sakura = Location {
            lat: 52.5163,
            lon: 13.3777,
        };
        let d = LUIGIS.distance_km(sakura);
        assert!((1.8..1.95).contains(&d), "{d}");
        assert!(
            !Location {
                lat: 91.0,
                lon: 0.0
            }
            .is_valid()
        );
        assert!(
            !Location {
                lat: 0.0,
                lon: -180.5
            }
            .is_valid()
        );
    }
}
