//! Message exchange patterns over HTTP: the pieces both sides of an
//! asynchronous In-Out share.
//!
//! RFC 7240: a requestor that can take its reply later sends
//! `Prefer: respond-async` and a `Reply-To` header holding one of its own
//! continuation links (a stateless requestor: the link's token *is* its
//! pending state; a stateful one sends only a correlation id). The provider
//! answers `202 Accepted` with `Preference-Applied: respond-async`, and later
//! POSTs its reply — acknowledgement or fault, signed with its own token in
//! the `Conversation-State` header — to that link, through its outbox so the
//! reply survives a crash. The reply-to link is checked against the callback
//! policy like any callback: it must point at a known participant.

use axum::response::{IntoResponse, Response};
use http::{HeaderMap, HeaderValue, StatusCode};
use serde_json::{Value, json};

use super::callbacks::CallbackPolicy;
use crate::conversation::continuation::HEADER;
use crate::fault::{PROBLEM_JSON, Problem, types};
use crate::participant::Participant;
use crate::store::{NewOutboxMessage, Tx};

/// The outbox kind of a reply sent to a continuation.
pub const KIND_REPLY: &str = "reply";
/// The outbox kind of a one-way message (In-Only).
pub const KIND_IN_ONLY: &str = "in_only";

/// A validated `Reply-To` continuation.
#[derive(Clone, Debug)]
pub struct AsyncReply(pub String);

/// Whether the requestor asked for an asynchronous reply, and where to.
pub fn async_reply(
    headers: &HeaderMap,
    policy: &CallbackPolicy,
) -> Result<Option<AsyncReply>, Problem> {
    let prefers_async = headers
        .get_all(http::header::HeaderName::from_static("prefer"))
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|p| p.trim().eq_ignore_ascii_case("respond-async"));
    if !prefers_async {
        return Ok(None);
    }
    let reply_to = headers
        .get("reply-to")
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.trim()
                .trim_start_matches('<')
                .trim_end_matches('>')
                .to_owned()
        })
        .ok_or_else(|| {
            Problem::new(
                types::MISSING_REPLY_TO,
                "`Prefer: respond-async` needs a `Reply-To` header naming where the reply goes.",
            )
        })?;
    policy.check(&reply_to).map_err(|e| {
        Problem::new(
            types::CALLBACK_NOT_ALLOWED,
            format!("Reply-To refused: {e}."),
        )
    })?;
    Ok(Some(AsyncReply(reply_to)))
}

/// `202 Accepted`, `Preference-Applied: respond-async`.
pub fn accepted_async() -> Response {
    let mut response = (
        StatusCode::ACCEPTED,
        [(http::header::CONTENT_TYPE, "application/json")],
        json!({ "status": "accepted", "detail": "The reply will be sent to the Reply-To continuation." }).to_string(),
    )
        .into_response();
    response.headers_mut().insert(
        "preference-applied",
        HeaderValue::from_static("respond-async"),
    );
    response
}

/// Queues a reply to `reply_to` in the transaction of the effect it reports.
pub async fn enqueue_reply(
    tx: &mut Tx,
    from: Participant,
    reply_to: &AsyncReply,
    token: &str,
    status: u16,
    body: &Value,
) -> Result<(), Problem> {
    let content_type = if (200..300).contains(&status) {
        "application/json"
    } else {
        PROBLEM_JSON
    };
    tx.outbox_enqueue(&NewOutboxMessage {
        id: uuid::Uuid::now_v7().to_string(),
        participant: from.as_str().to_owned(),
        destination: reply_to.0.clone(),
        kind: KIND_REPLY.to_owned(),
        headers: json!({ HEADER: token, "content-type": content_type }),
        body: body.clone(),
    })
    .await
    .map_err(Problem::internal)
}

/// Queues a one-way message to a participant's step, carrying `token`, and
/// a `Fault-To` continuation when the requestor wants to hear of failures
/// (Robust In-Only).
pub async fn enqueue_in_only(
    tx: &mut Tx,
    from: Participant,
    destination: String,
    token: &str,
    fault_to: Option<&str>,
    body: &Value,
) -> Result<(), Problem> {
    tx.outbox_enqueue(&in_only(from, destination, token, fault_to, body))
        .await
        .map_err(Problem::internal)
}

/// The outbox message of a one-way message (see [`enqueue_in_only`]), for a
/// caller whose transaction is that one message: it writes it with
/// [`crate::store::Store::outbox_enqueue`], one statement committed on its own.
pub fn in_only(
    from: Participant,
    destination: String,
    token: &str,
    fault_to: Option<&str>,
    body: &Value,
) -> NewOutboxMessage {
    let mut headers = json!({ HEADER: token, "content-type": "application/json" });
    if let Some(fault_to) = fault_to {
        headers["fault-to"] = json!(fault_to);
    }
    NewOutboxMessage {
        id: uuid::Uuid::now_v7().to_string(),
        participant: from.as_str().to_owned(),
        destination,
        kind: KIND_IN_ONLY.to_owned(),
        headers,
        body: body.clone(),
    }
}
