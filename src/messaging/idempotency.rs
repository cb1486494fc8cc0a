//! `Idempotency-Key` on public actions, as one layer (IETF httpapi draft
//! semantics, and svix's `core/idempotency.rs` in spirit).
//!
//! A POST that carries `Idempotency-Key` is processed once per key: its
//! response is stored and replayed for the same key (with
//! `Idempotent-Replayed: true`); the same key while the first request is
//! still running is answered 409; the same key with a different request
//! (method, path, query, media type or body) is answered 422. A 5xx is not
//! stored, so the client may retry it at once. Keys live for
//! `--idempotency-ttl` (24 hours by default), scoped per participant.
//!
//! A request that holds a key runs to its end in a task of its own, even if
//! its client hangs up: its effect may be committed by then, so its answer
//! is kept, and the client's retry gets it (409 while it still runs). It is
//! cut off at the request timeout, as the timeout layer would cut it, and
//! its key released. A handler that panics releases its key as it unwinds
//! (a guard, in a task of its own). If the process dies with the key held,
//! nothing runs to release it: then the record's lease
//! (`--idempotency-lease`, the request timeout plus 30 seconds by default)
//! ends, and the next request with the key takes it over (see
//! [`crate::store::idempotency`]). Until then the key answers 409. The
//! lease is longer than the request timeout, so a request still running
//! never loses its key.
//!
//! Messages between participants that de-duplicate through their inbox by
//! message id (take-payment, refund) are left to the inbox: a requestor's
//! retry of a slow request must be answered from the inbox as soon as the
//! first attempt committed, not refused as "in flight".

use std::time::Duration;

use axum::body::{Body, to_bytes};
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::app::AppState;
use crate::background::Background;
use crate::fault::{Problem, types};
use crate::store::{IdempotencyBegin, IdempotencyClaim, Store, StoredResponse};

pub const HEADER: &str = "idempotency-key";
/// Steps whose inbox de-duplicates by message id instead.
const INBOX_DEDUPLICATED: &[&str] = &["/payments/payments", "/payments/refunds"];
/// Response headers kept for a replay.
const REPLAYED_HEADERS: &[&str] = &[
    "content-type",
    "location",
    "link",
    "retry-after",
    "preference-applied",
    "conversation-state",
];
const MAX_KEY_LEN: usize = 255;

/// The layer: `axum::middleware::from_fn_with_state(state, idempotency::layer)`.
pub async fn layer(State(app): State<AppState>, req: Request, next: Next) -> Response {
    let Some(key) = req
        .headers()
        .get(HEADER)
        .map(|v| v.to_str().map(str::to_owned))
    else {
        return next.run(req).await;
    };
    if req.method() != Method::POST || INBOX_DEDUPLICATED.contains(&req.uri().path()) {
        return next.run(req).await;
    }
    let key = match key {
        Ok(key) if !key.is_empty() && key.len() <= MAX_KEY_LEN => key,
        _ => {
            return Problem::new(
                types::INVALID_IDEMPOTENCY_KEY,
                "An Idempotency-Key is 1 to 255 visible ASCII characters.",
            )
            .into_response();
        }
    };
    let scope = req
        .uri()
        .path()
        .trim_start_matches('/')
        .split('/')
        .next()
        .unwrap_or_default()
        .to_owned();
    let (parts, body) = req.into_parts();
    let Ok(bytes) = to_bytes(body, app.config.body_limit).await else {
        return Problem::new(
            types::BODY_TOO_LARGE,
            "The request body exceeds the size limit.",
        )
        .into_response();
    };
    let hash = request_hash(&parts.method, &parts.uri, &parts.headers, &bytes);
    let begun = app
        .store
        .idempotency_begin(
            &scope,
            &key,
            &hash,
            app.config.idempotency_ttl,
            app.config.idempotency_lease,
        )
        .await;
    match begun {
        Err(e) => Problem::internal(e).into_response(),
        Ok(IdempotencyBegin::InFlight) => Problem::new(
            types::IDEMPOTENCY_IN_FLIGHT,
            "A request with this Idempotency-Key is still being processed; retry shortly.",
        )
        .retry_after(1)
        .into_response(),
        Ok(IdempotencyBegin::Mismatch) => Problem::new(
            types::IDEMPOTENCY_KEY_REUSED,
            "This Idempotency-Key was used with a different request.",
        )
        .into_response(),
        Ok(IdempotencyBegin::Done(stored)) => replay(stored),
        Ok(IdempotencyBegin::New(claim)) => {
            let held = Held {
                store: app.store.clone(),
                background: app.background.clone(),
                scope,
                key,
                claim: Some(claim),
            };
            let request = Request::from_parts(parts, Body::from(bytes));
            // The request runs to its end in a task of its own, even if the
            // client hangs up meanwhile: its effect may be committed by
            // then, so its answer is kept for the retry the key exists for.
            let answered = app
                .background
                .to_the_end(answer_once(held, next, request, app.config.request_timeout))
                .await;
            answered.unwrap_or_else(|e| {
                // A handler panicked: its key was released as it unwound.
                Problem::internal(format!("a request holding an Idempotency-Key failed: {e}"))
                    .into_response()
            })
        }
    }
}

/// Runs the request that holds the key, then keeps its answer for replay,
/// or releases the key on a 5xx. A request still running at the request
/// timeout is dropped (its key released) as the timeout layer would, so the
/// lease, longer than the timeout, never ends under a running request.
async fn answer_once(held: Held, next: Next, request: Request, timeout: Duration) -> Response {
    let Ok(response) = tokio::time::timeout(timeout, next.run(request)).await else {
        held.release().await;
        return Problem::new(types::TIMEOUT, "The request took too long.").into_response();
    };
    let (parts, body) = response.into_parts();
    let Ok(bytes) = to_bytes(body, 16 * 1024 * 1024).await else {
        held.release().await;
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    if parts.status.is_server_error() {
        held.release().await;
    } else {
        let stored = StoredResponse {
            status: parts.status.as_u16(),
            headers: kept_headers(&parts.headers),
            body: bytes.to_vec(),
        };
        held.complete(&stored).await;
    }
    Response::from_parts(parts, Body::from(bytes))
}

/// A key this request holds. Completed or released, it is done with;
/// dropped while still held (a handler panicked, or the server's tasks were
/// cancelled), it releases the key in a task of its own, since a drop
/// cannot wait.
struct Held {
    store: Store,
    background: Background,
    scope: String,
    key: String,
    claim: Option<IdempotencyClaim>,
}

impl Held {
    /// Stores the response for replay.
    async fn complete(mut self, stored: &StoredResponse) {
        let Some(claim) = self.claim else { return };
        let outcome = self
            .store
            .idempotency_complete(&self.scope, &self.key, claim, stored)
            .await;
        // Only now: dropped while writing, the key is still released.
        self.claim = None;
        if let Err(e) = outcome {
            tracing::warn!(error = %e, "could not record an idempotent response");
        }
    }

    /// Forgets the key, so the client may retry at once.
    async fn release(mut self) {
        let Some(claim) = self.claim else { return };
        release(&self.store, &self.scope, &self.key, claim).await;
        self.claim = None;
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        let Some(claim) = self.claim.take() else {
            return;
        };
        // Dropped outside a runtime (after its runtime ended), no task can
        // be spawned: the lease frees the key instead.
        if tokio::runtime::Handle::try_current().is_err() {
            return;
        }
        let (store, scope, key) = (
            self.store.clone(),
            std::mem::take(&mut self.scope),
            std::mem::take(&mut self.key),
        );
        // Waited for at shutdown, so the store is not closed under it.
        self.background.to_the_end(async move {
            tracing::info!("request abandoned: releasing its Idempotency-Key");
            release(&store, &scope, &key, claim).await;
        });
    }
}

async fn release(store: &Store, scope: &str, key: &str, claim: IdempotencyClaim) {
    if let Err(e) = store.idempotency_release(scope, key, claim).await {
        tracing::warn!(error = %e, "could not release an Idempotency-Key");
    }
}

/// The hash a request's record is kept under: method, URI (path and
/// query, as the server receives it), media type and body. Public for the
/// tests, which leave records behind as a request that died would.
pub fn request_hash(method: &Method, uri: &http::Uri, headers: &HeaderMap, body: &[u8]) -> String {
    let content_type = headers
        .get(http::header::CONTENT_TYPE)
        .map(HeaderValue::as_bytes)
        .unwrap_or_default();
    let digest = Sha256::new()
        .chain_update(method.as_str())
        .chain_update([0])
        .chain_update(uri.to_string())
        .chain_update([0])
        .chain_update(content_type)
        .chain_update([0])
        .chain_update(body)
        .finalize();
    hex::encode(digest)
}

fn kept_headers(headers: &HeaderMap) -> Value {
    let kept: Map<String, Value> = REPLAYED_HEADERS
        .iter()
        .filter_map(|name| {
            let value = headers.get(*name)?.to_str().ok()?;
            Some(((*name).to_owned(), Value::String(value.to_owned())))
        })
        .collect();
    Value::Object(kept)
}

fn replay(stored: StoredResponse) -> Response {
    let status = StatusCode::from_u16(stored.status).unwrap_or(StatusCode::OK);
    let mut response = (status, stored.body).into_response();
    let headers = response.headers_mut();
    for (name, value) in stored.headers.as_object().into_iter().flatten() {
        if let (Ok(name), Some(Ok(value))) = (
            HeaderName::from_bytes(name.as_bytes()),
            value.as_str().map(HeaderValue::from_str),
        ) {
            headers.insert(name, value);
        }
    }
    headers.insert("idempotent-replayed", HeaderValue::from_static("true"));
    response
}
