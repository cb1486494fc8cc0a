//! The fault-to continuation: a subscriber's fault arriving at store information.
//!
//! The link carries store information's own token (`?state=`), minted for
//! one update: which store, which version. The fault carries the
//! subscriber's token (`Conversation-State`). Both must verify: ours says
//! which update the fault is about and that we still wait for faults on it
//! (401 when unknown or expired); the subscriber's says who faults (403 when
//! it is not search). Nothing is stored while waiting — the stateless
//! requestor of the talk, on the publisher's side.
//!
//! A fault about a version the listing has moved past is acknowledged and
//! changes nothing: the update that fixed it already cleared the mark.

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use http::{HeaderMap, StatusCode};
use serde::Deserialize;
use serde_json::Value;

use super::STORE_FAULT;
use crate::app::{AppState, Note};
use crate::conversation::continuation::HEADER;
use crate::conversation::{Expect, StateToken};
use crate::fault::{Problem, types};
use crate::participant::Participant::{Search, Stores};
use crate::store::MessageKind;

/// The longest reason kept on a listing.
const MAX_REASON: usize = 500;

/// The query of the fault-to link: store information's own continuation.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct FaultTo {
    /// Store information's continuation token, from the event's `fault_to` link.
    state: Option<String>,
}

/// What store information's continuation remembers about an update.
#[derive(Deserialize)]
struct Update {
    store: String,
    version: i64,
}

#[utoipa::path(
    post, path = "/stores/{id}/faults", tag = "stores", operation_id = "store_fault",
    summary = "A subscriber's fault about a store update, at the event's fault-to continuation (Robust Out-Only)",
    params(
        ("id" = String, Path, description = "The store id"),
        FaultTo,
        ("Conversation-State" = String, Header, description = "The faulting subscriber's signed token"),
    ),
    request_body(content = crate::openapi::ProblemDocument, description = "The fault: a problem document", content_type = "application/problem+json"),
    responses(
        (status = 204, description = "The fault was taken: the listing needs attention (or had moved on already)"),
        (status = 401, description = "The continuation or the fault's token is missing, invalid or expired", body = crate::openapi::ProblemDocument, content_type = "application/problem+json"),
        (status = 403, description = "The fault was not signed by search, or belongs to another update", body = crate::openapi::ProblemDocument, content_type = "application/problem+json"),
    )
)]
/// `POST /stores/stores/{id}/faults?state=`: marks the listing `needs-attention`.
pub async fn store_fault(
    State(app): State<AppState>,
    Path(id): Path<String>,
    Query(target): Query<FaultTo>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<StatusCode, Problem> {
    let own = app
        .verify(
            &StateToken(target.state.unwrap_or_default()),
            Expect::step(Stores, STORE_FAULT).from(&[Stores]),
        )
        .await?;
    let update: Update = serde_json::from_value(own.st.clone()).map_err(Problem::internal)?;
    let subscriber = StateToken(
        headers
            .get(HEADER)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned(),
    );
    let fault = app
        .verify(
            &subscriber,
            Expect::step(Stores, STORE_FAULT).from(&[Search]),
        )
        .await?;
    if update.store != id || fault.cid != own.cid {
        return Err(Problem::new(
            types::STEP_NOT_ALLOWED,
            "The fault belongs to another store update.",
        )
        .in_conversation(own.cid));
    }
    let problem: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let slug = problem["type"]
        .as_str()
        .and_then(|t| t.strip_prefix("/problems/"))
        .unwrap_or("fault");
    let reason: String = problem["detail"]
        .as_str()
        .or(problem["title"].as_str())
        .unwrap_or("A subscriber could not take this update.")
        .chars()
        .take(MAX_REASON)
        .collect();
    let marked = app
        .store
        .listing_mark(&id, update.version, &reason)
        .await
        .map_err(Problem::internal)?;
    let status = if marked {
        slug.to_owned()
    } else {
        format!("{slug} (stale: the listing moved on)")
    };
    app.journal_note(
        Stores,
        MessageKind::Fault,
        Note {
            conversation: own.cid,
            causation: Some(fault.jti),
            from: Search.as_str(),
            to: Stores.as_str(),
            pattern: "robust-out-only",
            step: STORE_FAULT,
            status: &status,
        },
    );
    tracing::info!(store = %id, version = update.version, marked, "a subscriber faulted on a store update");
    Ok(StatusCode::NO_CONTENT)
}
