//! One hop of the slip: what every step (and every compensation) does when
//! the slip reaches it, whoever the participant.
//!
//! 1. Verify the carrying token: addressed to this participant for this
//!    step, signed by the participant the slip says held it last.
//! 2. Verify the slip itself ([`slip::verify`]): the itinerary is what the
//!    requestor signed, and every receipt holds.
//! 3. In one transaction: claim the message in the inbox (a redelivered hop
//!    does nothing twice), do the work, mark the slip, and queue it to the
//!    next address in the itinerary through this participant's outbox — so a
//!    crash between steps loses nothing. Answer `202`.
//!
//! A step that fails records the fault on the slip and sends it back through
//! the compensations owed, last completed step first; the last hop (forward
//! or back) reports the outcome ([`outcome::report`]).

use axum::response::{IntoResponse, Response};
use http::StatusCode;
use serde_json::{Value, json};

use super::outcome;
use super::slip::{self, SLIP_TTL, Slip, Step};
use super::steps;
use crate::app::{App, Note};
use crate::conversation::{Claims, Expect, Next, StateToken};
use crate::fault::{Problem, types};
use crate::flows::routing_slip::handlers::SlipMessage;
use crate::hypermedia::Deferred;
use crate::messaging::exchange;
use crate::participant::Participant;
use crate::store::{InboxClaim, MessageKind, Tx};

/// Takes the forward step `step` at `at`.
pub async fn take(
    app: &App,
    at: Participant,
    step: Step,
    token: &StateToken,
    message: Deferred<SlipMessage>,
) -> Result<Response, Problem> {
    let claims = app.verify(token, Expect::step(at, step.name())).await?;
    let card = message.read()?.payment_method;
    let mut slip = Slip::of(&claims)?;
    let here = slip
        .terms
        .itinerary
        .get(slip.cur)
        .is_some_and(|stop| stop.step == step && stop.by == at);
    if !here || slip.fault.is_some() {
        return Err(not_here(&claims, step.name()));
    }
    held_by(&claims, slip.previous_holder())?;
    slip::verify(app, claims.cid, &slip).await?;
    let mut tx = app.store.begin().await.map_err(Problem::internal)?;
    if !claim(&mut tx, at, &claims, step.name()).await? {
        return Ok(accepted("duplicate"));
    }
    match steps::perform(app, &mut tx, step, &claims, &slip, card.as_deref()).await {
        Ok(result) => {
            slip.done
                .push(slip::receipt(app, at, &claims, step.name(), result)?);
            slip.cur += 1;
            match slip.terms.itinerary.get(slip.cur).cloned() {
                Some(next) => {
                    let body = match card.filter(|_| payment_ahead(&slip)) {
                        Some(card) => json!({ "payment_method": card }),
                        None => json!({}),
                    };
                    forward(
                        app,
                        &mut tx,
                        at,
                        &claims,
                        &slip,
                        step.name(),
                        next.step.name(),
                        next.by,
                        &next.url,
                        &body,
                    )
                    .await?;
                }
                None => outcome::report(app, &mut tx, at, &claims, &slip, step.name()).await?,
            }
        }
        // Our own failure, not the step's: nothing is committed, and the
        // previous holder's relay delivers the hop again.
        Err(problem) if problem.kind() == types::INTERNAL => return Err(problem),
        Err(problem) => {
            let problem = problem.in_conversation(claims.cid);
            app.journal_note(
                at,
                MessageKind::Fault,
                Note {
                    conversation: claims.cid,
                    causation: Some(claims.jti),
                    from: at.as_str(),
                    to: at.as_str(),
                    pattern: "routing-slip",
                    step: step.name(),
                    status: problem.kind().slug,
                },
            );
            slip.fault = Some(slip::receipt(
                app,
                at,
                &claims,
                step.name(),
                problem.body(),
            )?);
            back(app, &mut tx, at, &claims, &slip, step.name()).await?;
        }
    }
    commit(app, tx).await
}

/// Makes the compensation `name` at `at`. A compensation that cannot be
/// made now fails the hop, which the previous holder's relay delivers again
/// (and, in the end, leaves as a dead letter for an operator).
pub async fn undo(
    app: &App,
    at: Participant,
    name: &'static str,
    token: &StateToken,
) -> Result<Response, Problem> {
    let claims = app.verify(token, Expect::step(at, name)).await?;
    let mut slip = Slip::of(&claims)?;
    let Some(index) = slip
        .next_compensation()
        .filter(|&(owed, i)| owed == name && slip.terms.itinerary[i].by == at)
        .map(|(_, i)| i)
    else {
        return Err(not_here(&claims, name));
    };
    held_by(&claims, slip.previous_holder())?;
    slip::verify(app, claims.cid, &slip).await?;
    let mut tx = app.store.begin().await.map_err(Problem::internal)?;
    if !claim(&mut tx, at, &claims, name).await? {
        return Ok(accepted("duplicate"));
    }
    let undone = steps::compensate(app, &mut tx, &claims, name, &slip)
        .await
        .map_err(|p| p.in_conversation(claims.cid))?;
    let mut result = slip.done[index].result.clone();
    result["undone"] = json!({ "step": name, "result": undone });
    let step = slip.done[index].step.clone();
    slip.done[index] = slip::receipt(app, at, &claims, &step, result)?;
    slip.undone.push(name.to_owned());
    back(app, &mut tx, at, &claims, &slip, name).await?;
    commit(app, tx).await
}

/// After a fault: on to the next compensation owed, or report the outcome.
async fn back(
    app: &App,
    tx: &mut Tx,
    at: Participant,
    claims: &Claims,
    slip: &Slip,
    produced: &str,
) -> Result<(), Problem> {
    match slip.next_compensation() {
        Some((name, i)) => {
            let stop = &slip.terms.itinerary[i];
            let url = stop
                .undo
                .as_deref()
                .ok_or_else(|| Problem::internal(format!("{name} has no address")))?;
            forward(
                app,
                tx,
                at,
                claims,
                slip,
                produced,
                name,
                stop.by,
                url,
                &json!({}),
            )
            .await
        }
        None => outcome::report(app, tx, at, claims, slip, produced).await,
    }
}

/// Queues the slip to `url`, where `to` takes the step `step`, signed by
/// `from`: a one-way message through `from`'s outbox, in `tx`.
#[allow(clippy::too_many_arguments)]
pub(super) async fn forward(
    app: &App,
    tx: &mut Tx,
    from: Participant,
    after: &Claims,
    slip: &Slip,
    produced: &str,
    step: &str,
    to: Participant,
    url: &str,
    body: &Value,
) -> Result<(), Problem> {
    let mut next = Next::after(after, produced)
        .to(&[to])
        .allow(&[step])
        .state(Value::Null)
        .ttl(SLIP_TTL);
    next.slip = Some(slip.to_value()?);
    let minted = app.mint(from, next)?;
    exchange::enqueue_in_only(tx, from, url.to_owned(), &minted.token, None, body).await
}

/// Whether `take-payment` is still ahead: only then does the card travel on.
fn payment_ahead(slip: &Slip) -> bool {
    slip.terms.itinerary[slip.cur.min(slip.terms.itinerary.len())..]
        .iter()
        .any(|stop| stop.step == Step::TakePayment)
}

/// The slip's next stop is not this step here.
fn not_here(claims: &Claims, step: &str) -> Problem {
    Problem::new(
        types::STEP_NOT_ALLOWED,
        format!("The slip's next stop is not `{step}` here."),
    )
    .in_conversation(claims.cid)
}

/// The token must come from whoever held the slip last.
fn held_by(claims: &Claims, holder: Participant) -> Result<(), Problem> {
    if claims.iss == holder.as_str() {
        Ok(())
    } else {
        Err(Problem::new(
            types::WRONG_ISSUER,
            format!(
                "The slip was brought by {}, but {holder} held it last.",
                claims.iss
            ),
        )
        .in_conversation(claims.cid))
    }
}

/// Claims the hop in `at`'s inbox, keyed by the conversation and the step:
/// `false` when it was taken before.
async fn claim(tx: &mut Tx, at: Participant, claims: &Claims, step: &str) -> Result<bool, Problem> {
    let key = format!("{}:routing-slip:{step}", claims.cid);
    let claim = tx
        .inbox_claim(at.as_str(), &claims.jti.to_string(), &key)
        .await
        .map_err(Problem::internal)?;
    if let InboxClaim::Duplicate(_) = claim {
        tracing::info!(conversation = %claims.cid, step, "duplicate routing-slip hop: nothing to do twice");
        return Ok(false);
    }
    Ok(true)
}

async fn commit(app: &App, tx: Tx) -> Result<Response, Problem> {
    tx.commit().await.map_err(Problem::internal)?;
    crate::crash::point("after-commit");
    app.relay.wake();
    Ok(accepted("accepted"))
}

fn accepted(status: &str) -> Response {
    (
        StatusCode::ACCEPTED,
        [(http::header::CONTENT_TYPE, "application/json")],
        json!({ "status": status }).to_string(),
    )
        .into_response()
}
