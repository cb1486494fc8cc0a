//! The saga's steps: what firing a timer does — solicit, offer, give the
//! job, solicit again or compensate ([`super::compensate`]).

use std::time::Duration;

use serde_json::json;

use super::{
    FIND_COURIER, REPORT_TIMEOUT_MS, RETRY_MS, TIMER_CANCEL, TIMER_COMPENSATE, TIMER_REPORT,
    TIMER_SOLICIT, advance, max_attempts, next_message, timer, transition,
};
use crate::app::{App, AppState};
use crate::conversation::continuation::HEADER;
use crate::conversation::token::Minted;
use crate::conversation::{Expect, StateToken};
use crate::fault::Problem;
use crate::participant::Participant::{Couriers, Deliveries, Orders};
use crate::participants::couriers::{DELIVER, DELIVERY_REPORT, Job, OFFER_REPLY, SOLICIT};
use crate::participants::orders::{ORDER_CANCELLED, ORDER_PLACED};
use crate::store::MessageKind;
use crate::store::sagas::{Delivery, DeliveryState, SagaTimer};

/// How long a solicitation may run before its timer fires again (a watchdog
/// for an instance that dies mid-step).
const WATCHDOG_MS: i64 = 30_000;
/// How long the courier's report continuation stays valid.
const REPORT_TTL: Duration = Duration::from_secs(24 * 3600);

/// What the courier's report continuation awaits.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct AwaitingReport {
    pub delivery: String,
    pub courier: String,
    pub attempt: i64,
}

/// Fires one due timer.
pub async fn fire(app: &AppState, timer: &SagaTimer) -> Result<(), Problem> {
    let mut delivery = app
        .store
        .delivery_get(&timer.delivery_id)
        .await
        .map_err(Problem::internal)?;
    match (timer.kind.as_str(), delivery.state) {
        (TIMER_SOLICIT, DeliveryState::Soliciting | DeliveryState::Offered) => {
            attempt(app, &mut delivery).await
        }
        (TIMER_REPORT, DeliveryState::Assigned | DeliveryState::PickedUp) => {
            let waited = if delivery.state == DeliveryState::Assigned {
                "pickup"
            } else {
                "drop-off"
            };
            let reason = format!("no {waited} report in time");
            retry_or_compensate(app, &mut delivery, &reason).await
        }
        (TIMER_COMPENSATE | TIMER_CANCEL, DeliveryState::Compensating) => {
            super::compensate::compensate(app, &mut delivery, timer.kind == TIMER_CANCEL).await
        }
        (kind, state) => {
            tracing::debug!(%kind, %state, "a stale saga timer: nothing to do");
            Ok(())
        }
    }
}

/// One solicitation, and the offer to the best courier.
///
/// The saga asks deliveries' own `solicit` step over HTTP, as any client
/// would, with a token of the delivery's conversation, so the solicitation
/// continues it; the answer's token, then the courier's acknowledgement of
/// the offer, move the head on.
async fn attempt(app: &App, delivery: &mut Delivery) -> Result<(), Problem> {
    delivery.attempts += 1;
    delivery.courier_id = None;
    let note = format!("solicitation {} of {}", delivery.attempts, max_attempts());
    let watchdog = timer(
        &delivery.id,
        TIMER_SOLICIT,
        delivery.deadline_ms + WATCHDOG_MS,
    );
    if !transition(
        app,
        delivery,
        DeliveryState::Soliciting,
        &note,
        Some(watchdog),
    )
    .await?
    {
        return Ok(());
    }
    let request = app.mint(
        Deliveries,
        next_message(delivery, FIND_COURIER)?
            .to(&[Deliveries])
            .allow(&[SOLICIT])
            .kind(MessageKind::Request)
            .state(json!({ "delivery_id": delivery.id, "attempt": delivery.attempts })),
    )?;
    advance(delivery, &request.claims);
    let body = json!({
        "pickup": { "lat": delivery.pickup_lat, "lon": delivery.pickup_lon },
        "dropoff": { "lat": delivery.dropoff_lat, "lon": delivery.dropoff_lon },
        "deadline_ms": delivery.deadline_ms,
    });
    let solicited = app
        .sender
        .follow(
            Deliveries,
            &app.href(Deliveries, "/solicitations"),
            Some(&body),
            &[(HEADER, request.token.as_str())],
        )
        .await;
    let solicited = match solicited {
        Ok(reply) if reply.status.is_success() => reply,
        Ok(reply) => {
            let reason = format!("the solicitation failed ({})", reply.status.as_u16());
            return retry_or_compensate(app, delivery, &reason).await;
        }
        Err(e) => return retry_or_compensate(app, delivery, &e.to_string()).await,
    };
    if let Some(token) = &solicited.state {
        let answer = app
            .verify(
                &StateToken(token.clone()),
                Expect::step(Deliveries, SOLICIT).from(&[Deliveries]),
            )
            .await?;
        advance(delivery, &answer);
    }
    let solicited = solicited.body;
    let (Some(offer), Some(courier)) = (
        solicited["_links"]["offer"]["href"].as_str(),
        solicited["best"]["courier_id"].as_str(),
    ) else {
        let reason = format!("no courier confirmed ({})", why_nobody(&solicited));
        return retry_or_compensate(app, delivery, &reason).await;
    };
    delivery.courier_id = Some(courier.to_owned());
    let note = format!("offering the job to {courier}");
    if !transition(app, delivery, DeliveryState::Offered, &note, None).await? {
        return Ok(());
    }
    let acknowledged = app.sender.follow(Deliveries, offer, None, &[]).await;
    match acknowledged {
        Ok(reply) if reply.status.is_success() => {
            // The offer step took (and journaled) the courier's
            // acknowledgement; here it only moves the head on.
            if let Some(token) = &reply.state {
                let ack = app
                    .trust
                    .verify(
                        token,
                        Expect::step(Deliveries, OFFER_REPLY).from(&[Couriers]),
                    )
                    .await
                    .map_err(Problem::from)?;
                advance(delivery, &ack);
            }
        }
        Ok(reply) => {
            let reason = format!("{courier} did not take the job ({})", reply.status.as_u16());
            return retry_or_compensate(app, delivery, &reason).await;
        }
        Err(e) => return retry_or_compensate(app, delivery, &e.to_string()).await,
    }
    let job = job_for(app, delivery, courier)?;
    advance(delivery, &job.request.claims);
    let report_timer = timer(&delivery.id, TIMER_REPORT, *REPORT_TIMEOUT_MS);
    let note = format!("{courier} took the job");
    if !transition(
        app,
        delivery,
        DeliveryState::Assigned,
        &note,
        Some(report_timer),
    )
    .await?
    {
        return Ok(());
    }
    if let Err(reason) = send_job(app, &job, courier).await {
        return retry_or_compensate(app, delivery, &reason).await;
    }
    Ok(())
}

/// What each courier asked answered, for the history: who declined and
/// why, who did not answer in time, who could not be asked.
fn why_nobody(solicited: &serde_json::Value) -> String {
    let list = |name: &str| solicited[name].as_array().cloned().unwrap_or_default();
    let who = |c: &serde_json::Value| c["courier_id"].as_str().unwrap_or("?").to_owned();
    let mut said: Vec<String> = list("declined")
        .iter()
        .map(|c| match c["reason"].as_str() {
            Some(reason) => format!("{} declined: {reason}", who(c)),
            None => format!("{} declined", who(c)),
        })
        .collect();
    said.extend(
        list("no_answer")
            .iter()
            .map(|c| format!("{} did not answer in time", who(c))),
    );
    said.extend(
        list("unreachable")
            .iter()
            .map(|c| format!("{} could not be asked", who(c))),
    );
    if said.is_empty() {
        "no courier is registered".to_owned()
    } else {
        said.join("; ")
    }
}

/// The job for the assigned courier, and the `Reply-To` continuation for
/// its reports, both the turn after the head.
struct JobMessage {
    job: Job,
    request: Minted,
    reply_to: String,
}

fn job_for(app: &App, delivery: &Delivery, courier: &str) -> Result<JobMessage, Problem> {
    let job = Job {
        delivery_id: delivery.id.clone(),
        courier_id: courier.to_owned(),
    };
    let state = serde_json::to_value(&job).map_err(Problem::internal)?;
    let request = app.mint(
        Deliveries,
        next_message(delivery, DELIVER)?
            .to(&[Couriers])
            .allow(&[DELIVER])
            .state(state),
    )?;
    let awaiting = AwaitingReport {
        delivery: delivery.id.clone(),
        courier: courier.to_owned(),
        attempt: delivery.attempts,
    };
    let continuation = app.mint(
        Deliveries,
        next_message(delivery, DELIVER)?
            .to(&[Deliveries])
            .allow(&[DELIVERY_REPORT])
            .state(json!(awaiting))
            .ttl(REPORT_TTL),
    )?;
    let reply_to = app.step_href(
        Deliveries,
        &format!("/deliveries/{}/reports", delivery.id),
        &continuation.token,
    );
    Ok(JobMessage {
        job,
        request,
        reply_to,
    })
}

/// Gives the assigned courier the job, with a `Reply-To` for its reports.
async fn send_job(app: &App, message: &JobMessage, courier: &str) -> Result<(), String> {
    let headers = [
        ("prefer", "respond-async"),
        ("reply-to", message.reply_to.as_str()),
    ];
    match app
        .sender
        .send_with(
            Couriers,
            &format!("/{courier}/jobs"),
            &message.request.token,
            Some(&json!(message.job)),
            &headers,
        )
        .await
    {
        Ok(reply) if reply.status.is_success() => Ok(()),
        Ok(reply) => Err(format!(
            "{courier} refused the job ({})",
            reply.status.as_u16()
        )),
        Err(e) => Err(e.to_string()),
    }
}

/// Solicits again after a pause, or compensates once the attempts are spent.
pub async fn retry_or_compensate(
    app: &App,
    delivery: &mut Delivery,
    reason: &str,
) -> Result<(), Problem> {
    if delivery.attempts < max_attempts() {
        let next = timer(&delivery.id, TIMER_SOLICIT, *RETRY_MS);
        let note = format!("{reason}; soliciting again");
        transition(app, delivery, DeliveryState::Soliciting, &note, Some(next)).await?;
    } else {
        let next = timer(&delivery.id, TIMER_COMPENSATE, 0);
        let note = format!("{reason}; no courier after {} attempts", delivery.attempts);
        transition(
            app,
            delivery,
            DeliveryState::Compensating,
            &note,
            Some(next),
        )
        .await?;
    }
    Ok(())
}

/// The order events the saga acts on.
const ORDER_EVENTS: &[&str] = &[ORDER_PLACED, ORDER_CANCELLED];

/// Subscribes deliveries to orders' `order.placed` and `order.cancelled`,
/// over HTTP, once the server is up, retrying until orders answers (it may
/// start later, or elsewhere). A subscription kept from before is checked
/// with orders: still there with every event wanted, nothing to do; gone,
/// or without `order.cancelled` (made before deliveries listened to it),
/// it is replaced by a new one and the old one deleted. Ends, if orders has
/// not answered, when shutdown begins: the next start tries again.
pub fn subscribe_on_start(app: AppState) {
    if !app.hosts(Deliveries) {
        return;
    }
    let background = app.background.clone();
    background.until_shutdown(async move {
        let kept = match app.store.saga_subscription(Orders.as_str()).await {
            Ok(kept) => kept.map(|(id, _)| id),
            Err(e) => {
                tracing::warn!(error = %e, "cannot read deliveries' subscription");
                return;
            }
        };
        let Ok(url) = app.sender.url(Orders, "/subscriptions") else {
            tracing::info!("orders is not reachable from here: no deliveries from order.placed");
            return;
        };
        let mut wait = Duration::from_millis(50);
        if let Some(id) = &kept {
            loop {
                match current(&app, id).await {
                    Some(true) => return,
                    Some(false) => break,
                    None => tracing::debug!("orders not reachable yet"),
                }
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(Duration::from_secs(10));
            }
        }
        let body = json!({
            "callback_url": app.href(Deliveries, "/notifications"),
            "event_types": ORDER_EVENTS,
        });
        loop {
            match app.sender.follow(Orders, &url, Some(&body), &[]).await {
                Ok(reply) if reply.status.is_success() => {
                    let (Some(id), Some(secret)) =
                        (reply.body["id"].as_str(), reply.body["secret"].as_str())
                    else {
                        tracing::warn!("orders answered the subscription without id or secret");
                        return;
                    };
                    if let Err(e) = app
                        .store
                        .saga_subscription_save(Orders.as_str(), id, secret)
                        .await
                    {
                        tracing::warn!(error = %e, "cannot keep deliveries' subscription");
                        return;
                    }
                    if let Some(old) = kept {
                        let gone = app
                            .sender
                            .delete(Orders, &format!("/subscriptions/{old}"))
                            .await;
                        tracing::info!(%old, new = %id, ?gone, "deliveries' subscription replaced");
                    }
                    return;
                }
                Ok(reply) if reply.status.is_client_error() => {
                    tracing::warn!(status = %reply.status, problem = %reply.body, "orders refused deliveries' subscription");
                    return;
                }
                Ok(_) | Err(_) => tracing::debug!("orders not reachable yet"),
            }
            tokio::time::sleep(wait).await;
            wait = (wait * 2).min(Duration::from_secs(10));
        }
    });
}

/// Whether orders still has the subscription `id` with every event the saga
/// acts on (`None`: orders did not answer).
async fn current(app: &App, id: &str) -> Option<bool> {
    let reply = app
        .sender
        .get(Orders, &format!("/subscriptions/{id}"))
        .await
        .ok()?;
    if reply.status == http::StatusCode::NOT_FOUND {
        return Some(false);
    }
    if !reply.status.is_success() {
        return None;
    }
    let types = reply.body["event_types"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    Some(
        ORDER_EVENTS
            .iter()
            .all(|t| types.iter().any(|have| have == t)),
    )
}
