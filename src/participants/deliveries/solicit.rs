//! The step `solicit`, and the couriers' answers arriving at
//! `solicitation-reply`.
//!
//! One token carries the solicitation to every courier (one signature for
//! the fan-out); each courier gets a `Reply-To` continuation of its own,
//! whose signed state names the solicitation, that courier and the
//! deadline. So an answer can only be taken for the courier it was asked
//! of, a courier that was not asked has nowhere to answer, and the
//! continuation itself says when it is too late — nothing about a pending
//! solicitation is kept in memory. Answers meet the waiting request in the
//! store, which is polled until every courier asked has answered or the
//! deadline (plus a short settling time for answers taken just in time) has
//! passed.
//!
//! A solicitation starts a conversation of its own, or, given a token of
//! deliveries that allows `solicit` (the `solicit` link of an earlier
//! answer, or the delivery saga's request), continues that conversation:
//! the answer's links carry a new token of it (also in the
//! `Conversation-State` response header), so soliciting again or offering
//! the job goes on in the same chain.

use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, HeaderValue, StatusCode};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::OFFER_JOB;
use crate::app::{App, AppState, Note};
use crate::conversation::continuation::HEADER;
use crate::conversation::{Claims, Expect, Next, Pattern, StateToken, TokenError};
use crate::fault::{Problem, types};
use crate::hypermedia::{Deferred, Hal, Property, Resource};
use crate::participant::Participant::{Couriers, Deliveries};
use crate::participants::couriers::{
    Availability, JobOffer, Location, SOLICIT, SOLICITATION_REPLY, Solicitation,
};
use crate::store::solicitations::SolicitationReply;
use crate::store::{Courier, MessageKind, now_ms};

/// How long couriers have to answer when the client does not say.
pub const DEFAULT_DEADLINE_MS: u64 = 1500;
/// The longest a client may make a solicitation wait.
pub const MAX_DEADLINE_MS: u64 = 10_000;
const MIN_DEADLINE_MS: u64 = 100;
/// How often the waiting solicitation looks for new answers.
const POLL: Duration = Duration::from_millis(25);
/// The step that answers a solicitation, in the chain.
const SOLICITED: &str = "solicited";
/// After the deadline, the time an answer taken just in time has to commit.
const SETTLE: Duration = Duration::from_millis(100);
/// How long after the deadline a continuation still verifies, so that a late
/// answer is told `410 Gone` rather than that its token expired.
const LATE_WINDOW: Duration = Duration::from_secs(600);
/// The longest decline reason kept.
const MAX_REASON: usize = 200;

/// The input of `solicit`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct SolicitInput {
    /// Where the job is picked up.
    pub pickup: Location,
    /// Where it goes, when known: couriers decline rides that are too long.
    #[serde(default)]
    pub dropoff: Option<Location>,
    /// How long couriers have to answer, 100 to 10000 ms (default 1500).
    #[schema(minimum = 100, maximum = 10000)]
    pub deadline_ms: Option<u64>,
}

/// What one continuation awaits: one courier's answer to one solicitation.
#[derive(Debug, Serialize, Deserialize)]
struct Awaiting {
    solicitation: String,
    courier: String,
    /// The deadline, unix milliseconds.
    reply_by: i64,
}

/// A courier that confirmed, as the client sees it.
#[derive(Clone, Debug, Serialize)]
struct Confirmed {
    courier_id: String,
    name: String,
    eta_minutes: i64,
}

/// The template of `solicit`.
pub fn solicit_properties() -> Vec<Property> {
    let luigis = crate::participants::menu::STORES[0];
    vec![
        Property {
            name: "pickup".into(),
            prompt: Some("Where the job is picked up: {\"lat\": .., \"lon\": ..}".into()),
            required: true,
            kind: "text",
            value: Some(json!({ "lat": luigis.lat, "lon": luigis.lon })),
            ..Default::default()
        },
        Property::number(
            "deadline_ms",
            MIN_DEADLINE_MS as i64,
            MAX_DEADLINE_MS as i64,
        )
        .prompt("How long couriers have to answer, in ms")
        .value(DEFAULT_DEADLINE_MS),
    ]
}

#[utoipa::path(
    post, path = "/solicitations", tag = "deliveries", operation_id = "solicit",
    summary = "Ask every registered courier whether it can take work (Out-In, solicit-response)",
    security((), ("state_query" = []), ("state_header" = [])),
    request_body(content((SolicitInput = "application/json"))),
    responses(
        (status = 200, description = "The answers that came before the deadline, and an `offer` link to the best courier; the conversation's new token in Conversation-State", body = crate::openapi::HalDocument, content_type = "application/hal+json"),
        (status = 401, description = "A token was given but is invalid or expired", body = crate::openapi::ProblemDocument, content_type = "application/problem+json"),
        (status = 403, description = "The token given does not allow soliciting", body = crate::openapi::ProblemDocument, content_type = "application/problem+json"),
        (status = 400, description = "Malformed body", body = crate::openapi::ProblemDocument, content_type = "application/problem+json"),
        (status = 422, description = "Bad coordinates or deadline", body = crate::openapi::ProblemDocument, content_type = "application/problem+json"),
    )
)]
/// `POST /deliveries/solicitations` (`solicit`), optionally with a token of
/// the conversation it continues.
pub async fn solicit(
    State(app): State<AppState>,
    token: StateToken,
    input: Deferred<SolicitInput>,
) -> Result<Response, Problem> {
    let continued = if token.0.is_empty() {
        None
    } else {
        Some(
            app.verify(
                &token,
                Expect::step(Deliveries, SOLICIT).from(&[Deliveries]),
            )
            .await?,
        )
    };
    let input = input.read()?;
    let pickup = input.pickup;
    if !pickup.is_valid() || input.dropoff.is_some_and(|d| !d.is_valid()) {
        return Err(Problem::new(
            types::INVALID_BODY,
            "The pickup and drop-off are a latitude from -90 to 90 and a longitude from -180 to 180.",
        ));
    }
    let deadline_ms = input.deadline_ms.unwrap_or(DEFAULT_DEADLINE_MS);
    if !(MIN_DEADLINE_MS..=MAX_DEADLINE_MS).contains(&deadline_ms) {
        return Err(Problem::new(
            types::INVALID_BODY,
            format!("The deadline is {MIN_DEADLINE_MS} to {MAX_DEADLINE_MS} ms."),
        ));
    }
    let couriers = app.store.couriers_list().await.map_err(Problem::internal)?;
    let deadline = Duration::from_millis(deadline_ms);
    let waited_until = tokio::time::Instant::now() + deadline + SETTLE;
    let message = Solicitation {
        solicitation: format!("sol_{}", uuid::Uuid::now_v7().simple()),
        pickup,
        dropoff: input.dropoff,
        reply_by: now_ms() + deadline_ms as i64,
    };
    let body = serde_json::to_value(&message).map_err(Problem::internal)?;
    let first = match &continued {
        Some(claims) => Next::after(claims, SOLICIT),
        None => Next::start(Pattern::Exchange, SOLICIT),
    };
    let sent = app.mint(
        Deliveries,
        first.to(&[Couriers]).allow(&[SOLICIT]).state(body.clone()),
    )?;
    let asked = futures::future::join_all(
        couriers
            .iter()
            .map(|courier| ask(&app, &sent.claims, &sent.token, &message, courier)),
    )
    .await;
    let expected = asked.iter().filter(|a| a.is_ok()).count();
    let replies = loop {
        let replies = app
            .store
            .solicitation_replies(&message.solicitation)
            .await
            .map_err(Problem::internal)?;
        if replies.len() >= expected || tokio::time::Instant::now() >= waited_until {
            break replies;
        }
        tokio::time::sleep(POLL).await;
    };
    let mut confirmed = Vec::new();
    let (mut declined, mut no_answer, mut unreachable) = (Vec::new(), Vec::new(), Vec::new());
    for (courier, asked) in couriers.iter().zip(asked) {
        let who = json!({ "courier_id": courier.id, "name": courier.name });
        match (asked, replies.iter().find(|r| r.courier_id == courier.id)) {
            (Err(reason), _) => unreachable.push(with(who, "reason", reason)),
            (Ok(()), None) => no_answer.push(who),
            (Ok(()), Some(r)) => match r.eta_minutes.filter(|_| r.available) {
                Some(eta_minutes) => confirmed.push(Confirmed {
                    courier_id: courier.id.clone(),
                    name: courier.name.clone(),
                    eta_minutes,
                }),
                None => declined.push(with(who, "reason", r.reason.clone())),
            },
        }
    }
    confirmed.sort_by(|a, b| (a.eta_minutes, &a.courier_id).cmp(&(b.eta_minutes, &b.courier_id)));
    let best = confirmed.first().cloned();
    let status = if best.is_some() {
        "confirmed"
    } else {
        "no-courier"
    };
    let mut resource = Resource::new()
        .field("status", status)
        .field("solicitation", &message.solicitation)
        .field("conversation", sent.claims.cid)
        .field("pickup", pickup)
        .field("dropoff", input.dropoff)
        .field("deadline_ms", deadline_ms)
        .field("asked", expected)
        .field("confirmed", &confirmed)
        .field("declined", declined)
        .field("no_answer", no_answer)
        .field("unreachable", unreachable)
        .field("best", &best);
    let (state, allow) = match &best {
        Some(best) => {
            let offer = JobOffer {
                solicitation: message.solicitation.clone(),
                courier_id: best.courier_id.clone(),
                pickup,
                eta_minutes: best.eta_minutes,
            };
            let state = serde_json::to_value(&offer).map_err(Problem::internal)?;
            (state, &[OFFER_JOB, SOLICIT][..])
        }
        None => (
            json!({ "solicitation": message.solicitation, "status": status }),
            &[SOLICIT][..],
        ),
    };
    let answer = app.mint(
        Deliveries,
        Next::after(&sent.claims, SOLICITED)
            .to(&[Deliveries])
            .allow(allow)
            .state(state.clone()),
    )?;
    if let Some(best) = &best {
        resource = resource.field("state", state).action(
            OFFER_JOB,
            app.step_href(
                Deliveries,
                &format!("/solicitations/{}/offer", message.solicitation),
                &answer.token,
            ),
            &format!("Offer the job to {}", best.name),
            vec![],
        );
    }
    let hal = Hal::ok(
        resource
            .action(
                "solicit",
                app.step_href(Deliveries, "/solicitations", &answer.token),
                "Solicit the couriers again (in the same conversation)",
                solicit_properties(),
            )
            .titled_link(
                "couriers",
                app.href(Deliveries, "/couriers"),
                "The couriers deliveries tracks",
            )
            .titled_link(
                "conversation",
                app.root_href(&format!("/conversations/{}", sent.claims.cid)),
                "The conversation, rebuilt from the journals",
            )
            .link("start", app.root_href("/")),
    );
    let mut response = hal.into_response();
    if let Ok(value) = HeaderValue::from_str(&answer.token) {
        response.headers_mut().insert(HEADER, value);
    }
    Ok(response)
}

fn with(mut value: Value, name: &str, member: impl Serialize) -> Value {
    value[name] = serde_json::to_value(member).unwrap_or(Value::Null);
    value
}

/// Sends the solicitation to one courier with its own `Reply-To`
/// continuation; `Err` says, safely for the client, why it did not take it.
async fn ask(
    app: &App,
    claims: &Claims,
    token: &str,
    message: &Solicitation,
    courier: &Courier,
) -> Result<(), String> {
    let Some(url) = courier.reply_url.as_deref() else {
        return Err("registered without a solicit URL".into());
    };
    if let Err(e) = app.callbacks.check(url) {
        tracing::warn!(courier = %courier.id, error = %e, "solicit URL no longer allowed");
        return Err("its solicit URL is not allowed".into());
    }
    let awaiting = Awaiting {
        solicitation: message.solicitation.clone(),
        courier: courier.id.clone(),
        reply_by: message.reply_by,
    };
    let lifetime = Duration::from_millis((message.reply_by - now_ms()).max(0) as u64);
    let continuation = app
        .mint(
            Deliveries,
            Next::after(claims, SOLICIT)
                .to(&[Deliveries])
                .allow(&[SOLICITATION_REPLY])
                .state(json!(awaiting))
                .ttl(lifetime + LATE_WINDOW),
        )
        .map_err(|_| "could not be asked".to_owned())?;
    let reply_to = app.step_href(
        Deliveries,
        &format!("/solicitations/{}/replies", message.solicitation),
        &continuation.token,
    );
    let body = serde_json::to_value(message).map_err(|_| "could not be asked".to_owned())?;
    let headers = [
        (HEADER, token),
        ("prefer", "respond-async"),
        ("reply-to", reply_to.as_str()),
    ];
    match app
        .sender
        .follow(Couriers, url, Some(&body), &headers)
        .await
    {
        Ok(reply) if reply.status.is_success() => Ok(()),
        Ok(reply) => {
            tracing::warn!(courier = %courier.id, status = %reply.status, problem = %reply.body, "a courier refused the solicitation");
            Err(format!(
                "refused the solicitation ({})",
                reply.status.as_u16()
            ))
        }
        Err(e) => {
            tracing::warn!(courier = %courier.id, error = %e, "a courier could not be solicited");
            Err("could not be reached".into())
        }
    }
}

/// The query of an answer: the continuation it was sent to.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ReplyTarget {
    /// Deliveries' own continuation token, naming the solicitation, the courier and the deadline.
    state: Option<String>,
}

#[utoipa::path(
    post, path = "/solicitations/{id}/replies", tag = "deliveries", operation_id = "solicitation_reply",
    summary = "A courier's answer arriving at the Reply-To continuation deliveries gave it",
    params(
        ("id" = String, Path, description = "The solicitation"),
        ReplyTarget,
        ("Conversation-State" = String, Header, description = "Couriers' signed answer token"),
    ),
    request_body(content = Availability, description = "Mirrors the courier's token, which is what deliveries reads", content_type = "application/json"),
    responses(
        (status = 204, description = "The answer was taken (a repeated answer changes nothing)"),
        (status = 401, description = "A token is missing, invalid or expired", body = crate::openapi::ProblemDocument, content_type = "application/problem+json"),
        (status = 403, description = "The answer was not signed by couriers, or is not the answer this continuation awaits", body = crate::openapi::ProblemDocument, content_type = "application/problem+json"),
        (status = 410, description = "The answer came after the deadline; nothing changed", body = crate::openapi::ProblemDocument, content_type = "application/problem+json"),
        (status = 422, description = "The answer cannot be read", body = crate::openapi::ProblemDocument, content_type = "application/problem+json"),
    )
)]
/// `POST /deliveries/solicitations/{id}/replies` (`solicitation-reply`).
pub async fn solicitation_reply(
    State(app): State<AppState>,
    Path(id): Path<String>,
    Query(target): Query<ReplyTarget>,
    headers: HeaderMap,
) -> Result<StatusCode, Problem> {
    let state = target.state.ok_or(TokenError::Missing)?;
    let own = app
        .verify(
            &StateToken(state),
            Expect::step(Deliveries, SOLICITATION_REPLY).from(&[Deliveries]),
        )
        .await?;
    let awaiting: Awaiting = serde_json::from_value(own.st.clone()).map_err(Problem::internal)?;
    if awaiting.solicitation != id {
        return Err(Problem::new(
            types::STEP_NOT_ALLOWED,
            "This continuation belongs to another solicitation.",
        )
        .in_conversation(own.cid));
    }
    let courier_token = headers
        .get(HEADER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .trim()
        .to_owned();
    let reply = app
        .verify(
            &StateToken(courier_token),
            Expect::step(Deliveries, SOLICITATION_REPLY).from(&[Couriers]),
        )
        .await?;
    let mismatch =
        |detail: String| Err(Problem::new(types::WRONG_ISSUER, detail).in_conversation(own.cid));
    if reply.cid != own.cid {
        return mismatch("The answer belongs to another conversation.".into());
    }
    let answer: Availability = serde_json::from_value(reply.st.clone()).map_err(|e| {
        Problem::new(
            types::INVALID_BODY,
            format!("The answer cannot be read: {e}."),
        )
        .in_conversation(own.cid)
    })?;
    if answer.courier_id != awaiting.courier {
        return mismatch(format!(
            "This continuation awaits courier `{}`'s answer, not `{}`'s.",
            awaiting.courier, answer.courier_id
        ));
    }
    let received_at = now_ms();
    if received_at > awaiting.reply_by {
        let pattern = crate::app::pattern_name(&own);
        app.journal_note(
            Deliveries,
            MessageKind::Reply,
            Note {
                conversation: own.cid,
                causation: Some(reply.jti),
                from: Couriers.as_str(),
                to: Deliveries.as_str(),
                pattern: &pattern,
                step: SOLICITATION_REPLY,
                status: types::LATE_REPLY.slug,
            },
        );
        return Err(Problem::new(
            types::LATE_REPLY,
            format!(
                "Courier `{}` answered {} ms after the deadline; the solicitation was answered without it, and nothing changed.",
                answer.courier_id,
                received_at - awaiting.reply_by
            ),
        )
        .in_conversation(own.cid)
        .with("solicitation", &awaiting.solicitation)
        .with("courier_id", &answer.courier_id));
    }
    let eta = answer.eta_minutes.filter(|m| (0..=24 * 60).contains(m));
    if answer.available && eta.is_none() {
        return Err(Problem::new(
            types::INVALID_BODY,
            "A confirmation needs an ETA of 0 to 1440 minutes.",
        )
        .in_conversation(own.cid));
    }
    let recorded = app
        .store
        .solicitation_reply_record(&SolicitationReply {
            solicitation_id: awaiting.solicitation,
            courier_id: answer.courier_id,
            available: answer.available,
            eta_minutes: eta.filter(|_| answer.available),
            reason: answer.reason.map(|r| r.chars().take(MAX_REASON).collect()),
            received_at,
        })
        .await
        .map_err(Problem::internal)?;
    if !recorded {
        tracing::info!(conversation = %own.cid, "a repeated answer: the first one stands");
    }
    Ok(StatusCode::NO_CONTENT)
}
