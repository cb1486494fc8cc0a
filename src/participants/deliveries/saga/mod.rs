//! The delivery saga: deliveries as a Process Manager.
//!
//! Turn taking passes control from participant to participant and a routing
//! slip carries its itinerary along; a process manager instead keeps each
//! conversation's state centrally and decides every next step. That costs a
//! central point (the `deliveries` table) but buys what the others lack:
//! timeouts, retries, compensation, and administration and reporting in one
//! place.
//!
//! A delivery starts from `POST /deliveries` or from orders' `order.placed`
//! event (deliveries subscribes itself at start, [`subscribe_on_start`]).
//! Then, state by state:
//!
//! - `soliciting`: the couriers are asked (Out-In), through deliveries' own
//!   `solicit` step, followed over HTTP like any client would;
//! - `offered`: the best confirmed courier is offered the job (the `offer`
//!   link of the solicitation: command-acknowledgement);
//! - `assigned` → `picked-up` → `delivered`: the courier gets the job with a
//!   `Reply-To` continuation and reports pickup and drop-off to it.
//!
//! A decline, no confirmation, or an overdue report (the `report` timer)
//! re-solicits, up to [`max_attempts`]; then the saga *compensates*: cancels
//! the order and refunds the payment (each a command-acknowledgement, sent
//! with In-Out-Retry) and ends `failed`. An administrator may `cancel`
//! (compensate) or `reassign` (re-solicit) a running delivery.
//!
//! Every wait is a durable timer row ([`crate::store::sagas`]); one loop per
//! process ([`start`]) claims due timers and advances their sagas, so a saga
//! pending at a restart moves on after it. The loop holds the application
//! weakly and ends with the server.
//!
//! Tuning, read once from the environment: `CONVERSANT_SAGA_MAX_ATTEMPTS`
//! (3), `CONVERSANT_SAGA_RETRY_MS` (500), `CONVERSANT_SAGA_REPORT_TIMEOUT_MS`
//! (60000); the simulated couriers' rides are `CONVERSANT_COURIER_PICKUP_MS`
//! and `CONVERSANT_COURIER_DROPOFF_MS` (1000 each).

pub mod api;
mod steps;

pub use api::CreateDelivery;

use std::sync::{Arc, LazyLock, Weak};
use std::time::Duration;

use serde_json::{Value, json};

use crate::app::{App, AppState};
use crate::fault::Problem;
use crate::store::now_ms;
use crate::store::sagas::{Delivery, DeliveryState, SagaTimer};

/// Timer kinds.
pub const TIMER_SOLICIT: &str = "solicit";
pub const TIMER_REPORT: &str = "report";
pub const TIMER_COMPENSATE: &str = "compensate";
pub const TIMER_CANCEL: &str = "cancel";

const LEASE: Duration = Duration::from_secs(60);
const IDLE_POLL: Duration = Duration::from_millis(250);

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(default)
}

static MAX_ATTEMPTS: LazyLock<i64> =
    LazyLock::new(|| env_u64("CONVERSANT_SAGA_MAX_ATTEMPTS", 3).max(1) as i64);
static RETRY_MS: LazyLock<i64> = LazyLock::new(|| env_u64("CONVERSANT_SAGA_RETRY_MS", 500) as i64);
static REPORT_TIMEOUT_MS: LazyLock<i64> =
    LazyLock::new(|| env_u64("CONVERSANT_SAGA_REPORT_TIMEOUT_MS", 60_000) as i64);

/// How many solicitations a delivery gets before it compensates.
pub fn max_attempts() -> i64 {
    *MAX_ATTEMPTS
}

/// A timer for `delivery`, due `in_ms` from now.
pub fn timer(delivery: &str, kind: &str, in_ms: i64) -> SagaTimer {
    SagaTimer {
        id: uuid::Uuid::now_v7().to_string(),
        delivery_id: delivery.to_owned(),
        kind: kind.to_owned(),
        due_at: now_ms() + in_ms.max(0),
        fired: false,
    }
}

/// Moves `delivery` to `state` with a history note, replacing its pending
/// timers with `next` — if nobody moved it meanwhile (`Ok(false)` then).
pub async fn transition(
    app: &App,
    delivery: &mut Delivery,
    state: DeliveryState,
    note: &str,
    next: Option<SagaTimer>,
) -> Result<bool, Problem> {
    let expected = delivery.version;
    let at = now_ms();
    delivery.state = state;
    delivery.version += 1;
    delivery.updated_at = at;
    if let Value::Array(history) = &mut delivery.history {
        history.push(json!({ "state": state, "at": at, "note": note }));
    }
    let mut tx = app.store.begin().await.map_err(Problem::internal)?;
    if !tx
        .delivery_update(delivery, expected)
        .await
        .map_err(Problem::internal)?
    {
        return Ok(false);
    }
    tx.saga_timers_clear(&delivery.id)
        .await
        .map_err(Problem::internal)?;
    if let Some(timer) = &next {
        tx.saga_timer_add(timer).await.map_err(Problem::internal)?;
    }
    tx.commit().await.map_err(Problem::internal)?;
    tracing::info!(delivery = %delivery.id, %state, note, "saga moved");
    Ok(true)
}

/// Starts the timer loop of this process (once, when the server is built).
pub fn start(app: &AppState) {
    if !app.hosts(crate::participant::Participant::Deliveries) {
        return;
    }
    LazyLock::force(&MAX_ATTEMPTS);
    LazyLock::force(&RETRY_MS);
    LazyLock::force(&REPORT_TIMEOUT_MS);
    let weak = Arc::downgrade(&app.0);
    tokio::spawn(run(weak));
}

async fn run(weak: Weak<App>) {
    loop {
        let Some(app) = weak.upgrade() else {
            tracing::debug!("the saga timer loop ends with its server");
            return;
        };
        let timers = match app.store.saga_timers_claim(16, LEASE).await {
            Ok(timers) => timers,
            Err(e) => {
                tracing::warn!(error = %e, "saga timer claim failed");
                Vec::new()
            }
        };
        let idle = timers.is_empty();
        for timer in timers {
            let app = AppState(app.clone());
            tokio::spawn(async move {
                if let Err(problem) = steps::fire(&app, &timer).await {
                    tracing::warn!(detail = problem.detail(), delivery = %timer.delivery_id, "a saga step failed; its timer fires again after the lease");
                    return;
                }
                if let Err(e) = app.store.saga_timer_fired(&timer.id).await {
                    tracing::warn!(error = %e, "could not mark a saga timer fired");
                }
            });
        }
        drop(app);
        if idle {
            tokio::time::sleep(IDLE_POLL).await;
        }
    }
}

pub use steps::subscribe_on_start;
