//! The body of an action step: JSON or an HTML form, as one extractor.
//!
//! Wrapping the extractor (rather than using `axum::Json`) makes malformed
//! input our own fault document: 400 when the body cannot be parsed at all,
//! 422 when it parses but does not fit the step's template, 415 for another
//! media type, 413 when it is too large. An empty body is read as `{}`, so a
//! step whose properties all have defaults can be taken with a bare POST.
//!
//! A step that a token authorises takes [`Deferred`] instead: the body is
//! read as the request arrives, but its fault is raised only when the
//! handler asks for the input, after it has verified the token. A request
//! with a bad token and a bad body then gets the token's 401 or 403, not the
//! body's 400: the body's rules are told only to a caller who may take the
//! step, and its fault can carry the step's repair links.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use http::{StatusCode, header};
use serde::de::DeserializeOwned;

use crate::fault::{Problem, types};

/// A step's input, from `application/json` or `application/x-www-form-urlencoded`.
#[derive(Debug, Clone)]
pub struct Input<T>(pub T);

impl<S, T> FromRequest<S> for Input<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = Problem;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        read(req, state).await.map(Input)
    }
}

/// A step's input whose fault waits until [`Deferred::read`]: call it once
/// the step's token is verified (see the module docs).
#[derive(Debug)]
pub struct Deferred<T>(Result<T, Problem>);

impl<T> Deferred<T> {
    /// The input, or the fault of its body.
    pub fn read(self) -> Result<T, Problem> {
        self.0
    }
}

impl<S, T> FromRequest<S> for Deferred<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = std::convert::Infallible;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        Ok(Deferred(read(req, state).await))
    }
}

/// Reads and parses the body as its `Content-Type` says.
async fn read<S, T>(req: Request, state: &S) -> Result<T, Problem>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or_default()
                .trim()
                .to_ascii_lowercase()
        });
    let bytes = Bytes::from_request(req, state).await.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            Problem::new(
                types::BODY_TOO_LARGE,
                "The request body exceeds the size limit.",
            )
        } else {
            Problem::new(types::MALFORMED_BODY, "The request body could not be read.")
        }
    })?;
    let blank = bytes.iter().all(u8::is_ascii_whitespace);
    let value = match content_type.as_deref() {
        _ if blank => serde_json::from_str::<T>("{}").map_err(json_fault)?,
        Some("application/json") => serde_json::from_slice::<T>(&bytes).map_err(json_fault)?,
        Some(ct) if ct.ends_with("+json") => {
            serde_json::from_slice::<T>(&bytes).map_err(json_fault)?
        }
        Some("application/x-www-form-urlencoded") => serde_urlencoded::from_bytes::<T>(&bytes)
            .map_err(|e| {
                Problem::new(
                    types::INVALID_BODY,
                    format!("The form does not fit this step: {e}."),
                )
            })?,
        Some(other) => {
            return Err(Problem::new(
                types::UNSUPPORTED_MEDIA_TYPE,
                format!(
                    "`{other}` is not accepted; send application/json or application/x-www-form-urlencoded."
                ),
            ));
        }
        None => {
            return Err(Problem::new(
                types::UNSUPPORTED_MEDIA_TYPE,
                "The body has no Content-Type; send application/json or application/x-www-form-urlencoded.",
            ));
        }
    };
    Ok(value)
}

fn json_fault(e: serde_json::Error) -> Problem {
    use serde_json::error::Category;
    match e.classify() {
        Category::Data => Problem::new(
            types::INVALID_BODY,
            format!("The body does not fit this step: {e}."),
        ),
        Category::Syntax | Category::Eof | Category::Io => Problem::new(
            types::MALFORMED_BODY,
            format!(
                "The body is not valid JSON (line {}, column {}).",
                e.line(),
                e.column()
            ),
        ),
    }
}

/// The most items one page of a feed or a listing holds.
pub const MAX_PAGE: u32 = 100;

/// A page's `limit` query parameter: `default` when absent, else 1 to
/// [`MAX_PAGE`]; anything else is refused (422 invalid-query), as the
/// OpenAPI document says, rather than quietly changed.
pub fn page_limit(limit: Option<u32>, default: u32) -> Result<u32, Problem> {
    match limit {
        None => Ok(default),
        Some(n) if (1..=MAX_PAGE).contains(&n) => Ok(n),
        Some(n) => Err(Problem::new(
            types::INVALID_QUERY,
            format!("`limit` is 1 to {MAX_PAGE}, not {n}."),
        )),
    }
}
