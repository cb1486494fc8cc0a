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
//! event (deliveries subscribes itself to `order.placed` and
//! `order.cancelled` at start, [`subscribe_on_start`]).
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
//! (compensate) or `reassign` (re-solicit) a running delivery. When the
//! order is cancelled elsewhere (orders' `order.cancelled`), the delivery
//! stops, `cancelled`, and compensates nothing: whoever cancelled the order
//! owns the refund ([`order_cancelled`]).
//!
//! **One conversation.** A delivery continues the conversation that led to
//! it: orders signs `order.placed` as the turn after "raise order", and the
//! saga keeps that token's place in the chain (its *head*: message id, turn,
//! digest) in the delivery's row. Every message the saga sends — its request
//! to solicit, the job, the compensations, and the outcome that ends it — is
//! signed as the turn after the head, and every acknowledgement and report it
//! takes moves the head on ([`advance`]). So `GET /conversations/{cid}` shows
//! the checkout and its delivery as one transcript whose chain verifies. A
//! delivery a client starts (`POST /deliveries`) opens a conversation of its
//! own with a `create-delivery` message. The delivery of an order has an id
//! derived from the order's ([`delivery_id_for_order`]), so the order can
//! link to it before it exists.
//!
//! Every wait is a durable timer row ([`crate::store::sagas`]); one loop per
//! process ([`start`]) claims due timers and advances their sagas, so a saga
//! pending at a restart moves on after it. The loop and the steps it fires
//! stop when shutdown begins: a step cut short leaves its timer leased, and
//! the timer fires again once the lease runs out (after a restart, too).
//! The loop holds the application weakly, so a server built but never
//! served does not keep it alive.
//!
//! Tuning, read once from the environment: `CONVERSANT_SAGA_MAX_ATTEMPTS`
//! (3), `CONVERSANT_SAGA_RETRY_MS` (500), `CONVERSANT_SAGA_REPORT_TIMEOUT_MS`
//! (60000); the simulated couriers' rides are `CONVERSANT_COURIER_PICKUP_MS`
//! and `CONVERSANT_COURIER_DROPOFF_MS` (1000 each).

pub mod api;
mod compensate;
pub mod create;
pub mod incoming;
mod order_cancelled;
mod steps;

pub use create::CreateDelivery;

use std::sync::{Arc, LazyLock, Weak};
use std::time::Duration;

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::app::{App, AppState};
use crate::conversation::{Claims, Head, Next, Pattern};
use crate::fault::Problem;
use crate::participant::Participant::Deliveries;
use crate::store::now_ms;
use crate::store::sagas::{Delivery, DeliveryState, SagaTimer};

/// Timer kinds.
pub const TIMER_SOLICIT: &str = "solicit";
pub const TIMER_REPORT: &str = "report";
pub const TIMER_COMPENSATE: &str = "compensate";
pub const TIMER_CANCEL: &str = "cancel";

/// The saga's request to deliveries' own `solicit` step.
pub const FIND_COURIER: &str = "find-courier";
/// The first message of a delivery no conversation led to.
pub const CREATE_DELIVERY: &str = "create-delivery";

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

/// The id of the delivery of an order: derived from the order id, so the
/// order links to its delivery before deliveries has heard of it, and a
/// repeated `order.placed` finds the delivery it started.
pub fn delivery_id_for_order(order_id: &str) -> String {
    let digest = Sha256::new()
        .chain_update(b"the delivery of order ")
        .chain_update(order_id.as_bytes())
        .finalize();
    format!("dlv_{}", hex::encode(&digest[..16]))
}

/// Where the delivery's conversation stands.
pub fn head(delivery: &Delivery) -> Result<Head, Problem> {
    let cid = delivery
        .conversation_id
        .parse()
        .map_err(|_| Problem::internal("a delivery's conversation id is not a UUID"))?;
    Ok(match delivery.head_message.as_deref() {
        None => Head::empty(cid),
        Some(message) => Head {
            cid,
            jti: Some(
                message
                    .parse()
                    .map_err(|_| Problem::internal("a delivery's head is not a message id"))?,
            ),
            seq: u32::try_from(delivery.head_seq).unwrap_or(u32::MAX),
            chn: delivery.head_chain.clone(),
        },
    })
}

/// Moves the head to a message the saga sent or took (saved with the next
/// [`transition`]).
pub fn advance(delivery: &mut Delivery, claims: &Claims) {
    delivery.head_message = Some(claims.jti.to_string());
    delivery.head_seq = i64::from(claims.seq);
    delivery.head_chain = claims.chn.clone();
}

/// The saga's next message: the turn after the head.
pub fn next_message(delivery: &Delivery, step: &str) -> Result<Next, Problem> {
    Ok(Next::resume(
        &head(delivery)?,
        Pattern::ProcessManager,
        step,
    ))
}

/// Ends the saga in a final state, with a last message that says so (to
/// whoever watches: the client), so the transcript ends with the outcome.
pub async fn conclude(
    app: &App,
    delivery: &mut Delivery,
    state: DeliveryState,
    note: &str,
) -> Result<bool, Problem> {
    outcome(app, delivery, state, note)?;
    transition(app, delivery, state, note, None).await
}

/// The saga's last message, saying how it ended; moves the head to it.
fn outcome(
    app: &App,
    delivery: &mut Delivery,
    state: DeliveryState,
    note: &str,
) -> Result<(), Problem> {
    let outcome = app.mint(
        Deliveries,
        next_message(delivery, state.as_str())?
            .to(&[Deliveries])
            .state(json!({
                "delivery_id": delivery.id,
                "order_id": delivery.order_id,
                "state": state,
                "note": note,
            })),
    )?;
    advance(delivery, &outcome.claims);
    Ok(())
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
    app.background.until_shutdown(run(weak));
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
            app.background
                .until_shutdown(fire(AppState(app.clone()), timer));
        }
        drop(app);
        if idle {
            tokio::time::sleep(IDLE_POLL).await;
        }
    }
}

/// Fires a claimed timer, then marks it fired.
async fn fire(app: AppState, timer: SagaTimer) {
    if let Err(problem) = steps::fire(&app, &timer).await {
        tracing::warn!(detail = problem.detail(), delivery = %timer.delivery_id, "a saga step failed; its timer fires again after the lease");
        return;
    }
    if let Err(e) = app.store.saga_timer_fired(&timer.id).await {
        tracing::warn!(error = %e, "could not mark a saga timer fired");
    }
}

pub use steps::subscribe_on_start;
