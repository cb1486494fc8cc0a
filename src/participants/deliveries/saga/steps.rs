//! The saga's steps: what firing a timer does, and the compensations.

use std::time::Duration;

use serde_json::{Value, json};

use super::{
    REPORT_TIMEOUT_MS, RETRY_MS, TIMER_CANCEL, TIMER_COMPENSATE, TIMER_REPORT, TIMER_SOLICIT,
    max_attempts, timer, transition,
};
use crate::app::{App, AppState};
use crate::conversation::{Expect, Next, Pattern, StateToken};
use crate::fault::Problem;
use crate::ids::ConversationId;
use crate::participant::Participant::{Couriers, Deliveries, Orders, Payments};
use crate::participants::couriers::{DELIVER, DELIVERY_REPORT, Job};
use crate::participants::orders::{CANCEL_ORDER, CANCEL_REPLY, ORDER_PLACED};
use crate::participants::payments::{REFUND, REFUND_REPLY, RefundRequest};
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

/// A token of the delivery's conversation, signed by deliveries.
pub fn mint_for(
    app: &App,
    delivery: &Delivery,
    step: &str,
    to: &[crate::participant::Participant],
    allow: &[&str],
    state: Value,
    ttl: Option<Duration>,
) -> Result<crate::conversation::token::Minted, Problem> {
    let mut next = Next::start(Pattern::ProcessManager, step)
        .to(to)
        .allow(allow)
        .state(state);
    if let Ok(cid) = delivery.conversation_id.parse::<ConversationId>() {
        next.cid = cid;
    }
    next.seq = (delivery.version.max(0) as u32) + 1;
    if let Some(ttl) = ttl {
        next = next.ttl(ttl);
    }
    app.mint(Deliveries, next)
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
            compensate(app, &mut delivery, timer.kind == TIMER_CANCEL).await
        }
        (kind, state) => {
            tracing::debug!(%kind, %state, "a stale saga timer: nothing to do");
            Ok(())
        }
    }
}

/// One solicitation, and the offer to the best courier.
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
    let body = json!({
        "pickup": { "lat": delivery.pickup_lat, "lon": delivery.pickup_lon },
        "deadline_ms": delivery.deadline_ms,
    });
    let solicited = app
        .sender
        .follow(
            Deliveries,
            &app.href(Deliveries, "/solicitations"),
            Some(&body),
            &[],
        )
        .await;
    let solicited = match solicited {
        Ok(reply) if reply.status.is_success() => reply.body,
        Ok(reply) => {
            let reason = format!("the solicitation failed ({})", reply.status.as_u16());
            return retry_or_compensate(app, delivery, &reason).await;
        }
        Err(e) => return retry_or_compensate(app, delivery, &e.to_string()).await,
    };
    let (Some(offer), Some(courier)) = (
        solicited["_links"]["offer"]["href"].as_str(),
        solicited["best"]["courier_id"].as_str(),
    ) else {
        let reason = format!(
            "no courier confirmed ({} declined, {} did not answer)",
            solicited["declined"].as_array().map_or(0, Vec::len),
            solicited["no_answer"].as_array().map_or(0, Vec::len),
        );
        return retry_or_compensate(app, delivery, &reason).await;
    };
    delivery.courier_id = Some(courier.to_owned());
    let note = format!("offering the job to {courier}");
    if !transition(app, delivery, DeliveryState::Offered, &note, None).await? {
        return Ok(());
    }
    let acknowledged = app.sender.follow(Deliveries, offer, None, &[]).await;
    match acknowledged {
        Ok(reply) if reply.status.is_success() => {}
        Ok(reply) => {
            let reason = format!("{courier} did not take the job ({})", reply.status.as_u16());
            return retry_or_compensate(app, delivery, &reason).await;
        }
        Err(e) => return retry_or_compensate(app, delivery, &e.to_string()).await,
    }
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
    if let Err(reason) = send_job(app, delivery, courier).await {
        return retry_or_compensate(app, delivery, &reason).await;
    }
    Ok(())
}

/// Gives the assigned courier the job, with a `Reply-To` for its reports.
async fn send_job(app: &App, delivery: &Delivery, courier: &str) -> Result<(), String> {
    let job = Job {
        delivery_id: delivery.id.clone(),
        courier_id: courier.to_owned(),
    };
    let state = serde_json::to_value(&job).map_err(|e| e.to_string())?;
    let request = mint_for(app, delivery, DELIVER, &[Couriers], &[DELIVER], state, None)
        .map_err(|p| p.detail().to_owned())?;
    let awaiting = AwaitingReport {
        delivery: delivery.id.clone(),
        courier: courier.to_owned(),
        attempt: delivery.attempts,
    };
    let continuation = mint_for(
        app,
        delivery,
        DELIVER,
        &[Deliveries],
        &[DELIVERY_REPORT],
        json!(awaiting),
        Some(REPORT_TTL),
    )
    .map_err(|p| p.detail().to_owned())?;
    let reply_to = app.step_href(
        Deliveries,
        &format!("/deliveries/{}/reports", delivery.id),
        &continuation.token,
    );
    let headers = [("prefer", "respond-async"), ("reply-to", reply_to.as_str())];
    match app
        .sender
        .send_with(
            Couriers,
            &format!("/{courier}/jobs"),
            &request.token,
            Some(&json!(job)),
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

/// Cancels the order and refunds the payment, then ends the saga.
async fn compensate(app: &App, delivery: &mut Delivery, by_admin: bool) -> Result<(), Problem> {
    let reason = if by_admin {
        "delivery-cancelled"
    } else {
        "no-courier"
    };
    let mut done = Vec::new();
    if let Some(order) = delivery.order_id.clone() {
        let request = mint_for(
            app,
            delivery,
            CANCEL_ORDER,
            &[Orders],
            &[CANCEL_ORDER],
            json!({ "reason": reason }),
            None,
        )?;
        let reply = app
            .sender
            .send_retrying(
                Orders,
                &format!("/orders/{order}/cancel"),
                &request.token,
                &request.claims.jti.to_string(),
                None,
            )
            .await?;
        acknowledged(app, &reply, Orders, CANCEL_REPLY, "cancel-order").await?;
        done.push(format!("order {order} cancelled"));
    }
    if let Some(payment) = delivery.payment_id.clone() {
        let state = serde_json::to_value(RefundRequest {
            payment_id: payment.clone(),
            reason: reason.to_owned(),
        })
        .map_err(Problem::internal)?;
        let request = mint_for(app, delivery, REFUND, &[Payments], &[REFUND], state, None)?;
        let reply = app
            .sender
            .send_retrying(
                Payments,
                "/refunds",
                &request.token,
                &request.claims.jti.to_string(),
                None,
            )
            .await?;
        acknowledged(app, &reply, Payments, REFUND_REPLY, "refund").await?;
        done.push(format!("payment {payment} refunded"));
    }
    let (state, what) = if by_admin {
        (DeliveryState::Cancelled, "cancelled by an administrator")
    } else {
        (
            DeliveryState::Failed,
            "failed: no courier took the delivery",
        )
    };
    let note = if done.is_empty() {
        format!("{what}; nothing to compensate")
    } else {
        format!("{what}; {}", done.join(", "))
    };
    transition(app, delivery, state, &note, None).await?;
    Ok(())
}

/// Checks a compensation's acknowledgement: a success carrying the
/// provider's signed token for `step` (which journals it as received).
async fn acknowledged(
    app: &App,
    reply: &crate::messaging::sender::Reply,
    from: crate::participant::Participant,
    step: &str,
    what: &str,
) -> Result<(), Problem> {
    match reply.state.as_deref().filter(|_| reply.status.is_success()) {
        Some(token) => {
            app.verify(
                &StateToken(token.to_owned()),
                Expect::step(Deliveries, step).from(&[from]),
            )
            .await?;
            Ok(())
        }
        None => Err(Problem::internal(format!(
            "{from} refused {what} ({}): {}",
            reply.status.as_u16(),
            reply.body
        ))),
    }
}

/// Subscribes deliveries to orders' `order.placed`, over HTTP, once the
/// server is up, retrying until orders answers (it may start later, or
/// elsewhere). Known already: nothing to do.
pub fn subscribe_on_start(app: AppState) {
    if !app.hosts(Deliveries) {
        return;
    }
    tokio::spawn(async move {
        match app.store.saga_subscription(Orders.as_str()).await {
            Ok(Some(_)) => return,
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(error = %e, "cannot read deliveries' subscription");
                return;
            }
        }
        let Ok(url) = app.sender.url(Orders, "/subscriptions") else {
            tracing::info!("orders is not reachable from here: no deliveries from order.placed");
            return;
        };
        let body = json!({
            "callback_url": app.href(Deliveries, "/notifications"),
            "event_types": [ORDER_PLACED],
        });
        let mut wait = Duration::from_millis(50);
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
