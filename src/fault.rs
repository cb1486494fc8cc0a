//! Faults: RFC 9457 problem details, with the links that repair the conversation.
//!
//! The error strategy, written down once (as crates.io does in
//! `src/util/errors.rs`):
//!
//! - Every error a client can see is a [`Problem`]: `application/problem+json`
//!   with a stable `type` (a [`ProblemType`] from the catalogue below, served at
//!   `/problems/{slug}`), a `title`, the `status`, a client-safe `detail`, the
//!   conversation id when known, and `_links` to the steps that make sense next
//!   (retry, another payment method, cancel, the menu...).
//! - Lower layers keep their own error types (`TokenError`, store errors,
//!   sender errors); each converts into a `Problem` exactly once, here.
//! - A 5xx never shows internals: [`Problem::internal`] logs the cause with the
//!   request id and tells the client only that something failed.
//! - Responses that do not come from our handlers (unknown routes, wrong
//!   methods, the body-size limit, timeouts, panics) are turned into problem
//!   documents by a layer in `server.rs`, so there is no plain-text error.

use axum::Json;
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode, header};
use serde::Serialize;
use serde_json::{Map, Value, json};

use crate::conversation::TokenError;
use crate::ids::ConversationId;

/// The media type of a problem document.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// A kind of problem: stable for clients to branch on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProblemType {
    pub slug: &'static str,
    pub title: &'static str,
    pub status: StatusCode,
}

macro_rules! problem_types {
    ($($name:ident = ($slug:literal, $status:ident, $title:literal);)*) => {
        $(pub const $name: ProblemType = ProblemType {
            slug: $slug,
            title: $title,
            status: StatusCode::$status,
        };)*
        /// Every problem type, for the `/problems` catalogue.
        pub const ALL: &[ProblemType] = &[$($name),*];
    };
}

/// The catalogue of problem types.
pub mod types {
    use super::*;

    problem_types! {
        MALFORMED_BODY = ("malformed-body", BAD_REQUEST, "The request body is not well-formed");
        INVALID_BODY = ("invalid-body", UNPROCESSABLE_ENTITY, "The request body does not fit the step's template");
        UNSUPPORTED_MEDIA_TYPE = ("unsupported-media-type", UNSUPPORTED_MEDIA_TYPE, "The request body's media type is not accepted");
        BODY_TOO_LARGE = ("body-too-large", PAYLOAD_TOO_LARGE, "The request body is too large");
        NOT_FOUND = ("not-found", NOT_FOUND, "There is nothing at this address");
        METHOD_NOT_ALLOWED = ("method-not-allowed", METHOD_NOT_ALLOWED, "The method is not allowed here");
        NOT_ACCEPTABLE = ("not-acceptable", NOT_ACCEPTABLE, "No acceptable representation");
        MISSING_TOKEN = ("missing-token", UNAUTHORIZED, "No conversation-state token was given");
        INVALID_TOKEN = ("invalid-token", UNAUTHORIZED, "The conversation-state token is not valid");
        EXPIRED_TOKEN = ("expired-token", UNAUTHORIZED, "The conversation-state token is expired or not valid yet");
        WRONG_AUDIENCE = ("wrong-audience", FORBIDDEN, "The token is not addressed to this participant");
        WRONG_ISSUER = ("wrong-issuer", FORBIDDEN, "The token was signed by a participant not expected here");
        STEP_NOT_ALLOWED = ("step-not-allowed", FORBIDDEN, "The token does not allow this step");
        UNKNOWN_SKU = ("unknown-sku", UNPROCESSABLE_ENTITY, "No such item on the menu");
        INVALID_QUANTITY = ("invalid-quantity", UNPROCESSABLE_ENTITY, "The quantity is out of range");
        NOT_IN_BASKET = ("not-in-basket", UNPROCESSABLE_ENTITY, "The item is not in the basket");
        STALE_BASKET = ("stale-basket", CONFLICT, "The basket has changed since this link was issued");
        BASKET_EXPIRED = ("basket-expired", GONE, "The basket is no longer kept");
        NOT_IMPLEMENTED = ("not-implemented", NOT_IMPLEMENTED, "This step is not implemented yet");
        PEER_UNAVAILABLE = ("peer-unavailable", BAD_GATEWAY, "A participant this step needs did not answer");
        PEER_TIMEOUT = ("peer-timeout", GATEWAY_TIMEOUT, "A participant this step needs did not answer in time");
        TIMEOUT = ("timeout", SERVICE_UNAVAILABLE, "The request took too long");
        INTERNAL = ("internal-error", INTERNAL_SERVER_ERROR, "Something went wrong on our side");
        UNKNOWN_PATTERN = ("unknown-pattern", NOT_FOUND, "No such pattern in the catalog");
        INVALID_CARD = ("invalid-card", UNPROCESSABLE_ENTITY, "The card number is not valid");
        CARD_DECLINED = ("card-declined", PAYMENT_REQUIRED, "The card was declined");
        INSUFFICIENT_FUNDS = ("insufficient-funds", PAYMENT_REQUIRED, "The card has insufficient funds");
        PROCESSOR_UNAVAILABLE = ("processor-unavailable", SERVICE_UNAVAILABLE, "The card processor is unavailable");
        MISSING_REPLY_TO = ("missing-reply-to", BAD_REQUEST, "An asynchronous request needs a Reply-To continuation");
        CALLBACK_NOT_ALLOWED = ("callback-not-allowed", UNPROCESSABLE_ENTITY, "The callback URL is not allowed");
        UNKNOWN_EVENT_TYPE = ("unknown-event-type", UNPROCESSABLE_ENTITY, "No such event type");
        UNKNOWN_CONTINUATION = ("unknown-continuation", NOT_FOUND, "No conversation is waiting for this reply");
        LATE_REPLY = ("late-reply", GONE, "The reply came after the deadline");
        NOT_YET = ("not-yet", NOT_FOUND, "Not there yet");
        NOT_CAPTURED = ("not-captured", CONFLICT, "The payment was never captured");
        NOT_PLACED = ("not-placed", CONFLICT, "The order was never placed");
        ALREADY_PAID = ("already-paid", CONFLICT, "The conversation is paid already: no branch of it is paid again");
        STORE_CLOSED = ("store-closed", UNPROCESSABLE_ENTITY, "The store is closed");
        OUTSIDE_DELIVERY_AREA = ("outside-delivery-area", UNPROCESSABLE_ENTITY, "The address is outside the delivery area");
        CHAOS = ("chaos", SERVICE_UNAVAILABLE, "A failure injected by the chaos setting");
        INVALID_IDEMPOTENCY_KEY = ("invalid-idempotency-key", BAD_REQUEST, "The Idempotency-Key is not valid");
        IDEMPOTENCY_IN_FLIGHT = ("idempotency-in-flight", CONFLICT, "A request with this Idempotency-Key is still being processed");
        IDEMPOTENCY_KEY_REUSED = ("idempotency-key-reused", UNPROCESSABLE_ENTITY, "The Idempotency-Key was used with a different request");
        UNINDEXABLE_STORE = ("unindexable-store", UNPROCESSABLE_ENTITY, "The store update cannot be indexed");
        INVALID_QUERY = ("invalid-query", UNPROCESSABLE_ENTITY, "The query parameters are not valid");
        BAD_WEBHOOK_SIGNATURE = ("bad-webhook-signature", UNAUTHORIZED, "The webhook signature does not verify");
        UNKNOWN_STEP = ("unknown-step", UNPROCESSABLE_ENTITY, "No such routing-slip step");
        EMPTY_ITINERARY = ("empty-itinerary", UNPROCESSABLE_ENTITY, "The routing slip names no step");
        DUPLICATE_STEP = ("duplicate-step", UNPROCESSABLE_ENTITY, "The routing slip names a step twice");
        STEP_BEFORE_PREREQUISITE = ("step-before-prerequisite", UNPROCESSABLE_ENTITY, "A routing-slip step comes before a step it needs");
        TAMPERED_SLIP = ("tampered-slip", FORBIDDEN, "The routing slip is not what its requestor and its steps signed");
        DELIVERY_STATE_CONFLICT = ("delivery-state-conflict", CONFLICT, "The delivery is not in a state that allows this");
        DELIVERY_CANCELLED = ("delivery-cancelled", GONE, "The delivery was cancelled");
    }
}

/// An RFC 9457 problem document, with repair links (boxed: errors travel
/// through every `Result`, so they stay one pointer wide).
#[derive(Clone, Debug)]
pub struct Problem(Box<Inner>);

#[derive(Clone, Debug)]
struct Inner {
    kind: ProblemType,
    detail: String,
    conversation: Option<ConversationId>,
    links: Vec<(String, String)>,
    extensions: Map<String, Value>,
    retry_after: Option<u64>,
}

impl Problem {
    pub fn new(kind: ProblemType, detail: impl Into<String>) -> Self {
        Problem(Box::new(Inner {
            kind,
            detail: detail.into(),
            conversation: None,
            links: Vec::new(),
            extensions: Map::new(),
            retry_after: None,
        }))
    }

    /// A 5xx that logs `cause` and shows the client nothing of it.
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        tracing::error!(%cause, "internal error");
        Problem::new(
            types::INTERNAL,
            "An unexpected error occurred. It has been logged; the request id identifies it.",
        )
    }

    pub fn in_conversation(mut self, cid: ConversationId) -> Self {
        self.0.conversation = Some(cid);
        self
    }

    /// Adds a link to a step that makes sense after this fault.
    pub fn link(mut self, rel: &str, href: impl Into<String>) -> Self {
        self.0.links.push((rel.to_owned(), href.into()));
        self
    }

    /// Adds an extension member (RFC 9457 §3.2).
    pub fn with(mut self, name: &str, value: impl Serialize) -> Self {
        self.0.extensions.insert(
            name.to_owned(),
            serde_json::to_value(value).unwrap_or(Value::Null),
        );
        self
    }

    /// Sets `Retry-After`, mirrored as a `retry_after` member so it survives relaying.
    pub fn retry_after(mut self, seconds: u64) -> Self {
        self.0.retry_after = Some(seconds);
        self.0
            .extensions
            .insert("retry_after".into(), json!(seconds));
        self
    }

    pub fn kind(&self) -> ProblemType {
        self.0.kind
    }

    pub fn detail(&self) -> &str {
        &self.0.detail
    }

    pub fn conversation(&self) -> Option<ConversationId> {
        self.0.conversation
    }

    pub fn status(&self) -> StatusCode {
        self.0.kind.status
    }

    /// The `WWW-Authenticate` challenge a 401 must carry (RFC 9110 §15.5.2):
    /// which credential the step wants — a conversation-state token (`?state=`
    /// or the `Conversation-State` header), or a Standard Webhooks signature.
    fn challenge(&self) -> Option<&'static str> {
        match self.0.kind {
            kind if kind.status != StatusCode::UNAUTHORIZED => None,
            kind if kind == types::BAD_WEBHOOK_SIGNATURE => {
                Some(r#"Webhook-Signature realm="conversant""#)
            }
            _ => Some(r#"Conversation-State realm="conversant""#),
        }
    }

    /// The problem document itself.
    pub fn body(&self) -> Value {
        let mut body = Map::new();
        body.insert(
            "type".into(),
            json!(format!("/problems/{}", self.0.kind.slug)),
        );
        body.insert("title".into(), json!(self.0.kind.title));
        body.insert("status".into(), json!(self.0.kind.status.as_u16()));
        body.insert("detail".into(), json!(self.0.detail));
        if let Some(cid) = self.0.conversation {
            body.insert("conversation".into(), json!(cid));
        }
        body.extend(self.0.extensions.clone());
        if !self.0.links.is_empty() {
            let links: Map<String, Value> = self
                .0
                .links
                .iter()
                .map(|(rel, href)| (rel.clone(), json!({ "href": href })))
                .collect();
            body.insert("_links".into(), Value::Object(links));
        }
        Value::Object(body)
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let mut response = (self.0.kind.status, Json(self.body())).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
        if let Some(link) = crate::hypermedia::link_header(
            self.0.links.iter().map(|(r, h)| (r.as_str(), h.as_str())),
        ) {
            headers.insert(header::LINK, link);
        }
        if let Some(seconds) = self.0.retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        if let Some(challenge) = self.challenge() {
            headers.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(challenge),
            );
        }
        response
    }
}

impl From<TokenError> for Problem {
    fn from(e: TokenError) -> Self {
        let kind = match &e {
            TokenError::Missing => types::MISSING_TOKEN,
            TokenError::Expired | TokenError::NotYetValid => types::EXPIRED_TOKEN,
            TokenError::WrongAudience(_) => types::WRONG_AUDIENCE,
            TokenError::WrongIssuer(_) => types::WRONG_ISSUER,
            TokenError::StepNotAllowed(_) => types::STEP_NOT_ALLOWED,
            _ => types::INVALID_TOKEN,
        };
        debug_assert_eq!(kind.status == StatusCode::FORBIDDEN, e.is_forbidden());
        Problem::new(kind, e.to_string())
    }
}

/// A store error as a problem: `NotFound` is a 404 naming `what`; anything
/// else is internal (logged, never shown).
pub fn from_store(e: crate::store::StoreError, what: &str) -> Problem {
    match e {
        crate::store::StoreError::NotFound => {
            Problem::new(types::NOT_FOUND, format!("There is no such {what}."))
        }
        other => Problem::internal(other),
    }
}

/// A provider's problem document, taken over by its requestor: the same
/// type when it is one of ours (fault replaces message), otherwise a 502.
pub fn from_peer(body: &Value, from: crate::participant::Participant) -> Problem {
    let slug = body["type"]
        .as_str()
        .and_then(|t| t.strip_prefix("/problems/"));
    match slug.and_then(|slug| types::ALL.iter().find(|t| t.slug == slug)) {
        Some(kind) if !kind.status.is_server_error() || *kind == types::PROCESSOR_UNAVAILABLE => {
            let detail = body["detail"].as_str().unwrap_or(kind.title);
            let mut problem = Problem::new(*kind, detail);
            if let Some(seconds) = body["retry_after"].as_u64() {
                problem = problem.retry_after(seconds);
            }
            // What the provider links to (the payment a conversation was
            // paid with, its order) stays true for the requestor's client.
            for name in ["payment_id", "order_id"] {
                if let Some(value) = body.get(name) {
                    problem = problem.with(name, value);
                }
            }
            let links = body["_links"].as_object().into_iter().flatten();
            for (rel, link) in links {
                if let Some(href) = link["href"].as_str() {
                    problem = problem.link(rel, href);
                }
            }
            problem
        }
        _ => Problem::new(
            types::PEER_UNAVAILABLE,
            format!("{from} could not complete the step."),
        ),
    }
}

/// The problem document for a status that no handler produced (a 404 from
/// the router, a 413 from the body limit, a 408 from the timeout layer...).
pub fn for_status(status: StatusCode) -> Problem {
    let kind = types::ALL
        .iter()
        .copied()
        .find(|t| t.status == status)
        .unwrap_or(if status.is_server_error() {
            types::INTERNAL
        } else {
            types::MALFORMED_BODY
        });
    let detail = match kind.slug {
        "not-found" => "No resource here. Start at / to find the conversations on offer.",
        "method-not-allowed" => {
            "This address does not accept that method; see the links of the resource that led here."
        }
        "body-too-large" => "The request body exceeds the size limit.",
        "timeout" => "The request was not answered in time.",
        _ => kind.title,
    };
    Problem::new(kind, detail).link("start", "/")
}
