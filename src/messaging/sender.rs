//! The HTTP sender: how one participant sends a message to another.
//!
//! A message is a POST to a step of the receiving participant, its token in
//! the `Conversation-State` header (never in the URL, so it stays out of
//! access logs along the way). The sender knows where each participant is
//! (hosted here, or named in the peers file), applies the exchange timeout,
//! and turns transport failures into [`SendError`]s that become 502/504
//! problem documents for the client.

use std::collections::HashMap;
use std::time::Duration;

use http::StatusCode;
use serde_json::Value;

use super::outbox::RetrySchedule;
use crate::conversation::continuation::HEADER;
use crate::fault::{Problem, types};
use crate::participant::Participant;

/// The reply to a message: status, body, the `Link` header, and the
/// provider's token when it signed its reply (`Conversation-State`).
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: StatusCode,
    pub body: Value,
    pub link: Option<String>,
    pub state: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum SendError {
    #[error("{0} is neither hosted here nor named in the peers file")]
    Unknown(Participant),
    #[error("{0} did not answer within {1:?}")]
    Timeout(Participant, Duration),
    #[error("{0} could not be reached: {1}")]
    Unreachable(Participant, String),
}

impl From<SendError> for Problem {
    fn from(e: SendError) -> Self {
        tracing::warn!(error = %e, "send failed");
        match e {
            SendError::Timeout(p, _) => {
                Problem::new(types::PEER_TIMEOUT, format!("{p} did not answer in time."))
            }
            SendError::Unknown(p) | SendError::Unreachable(p, _) => Problem::new(
                types::PEER_UNAVAILABLE,
                format!("{p} could not be reached."),
            ),
        }
    }
}

/// Sends messages to participants.
#[derive(Clone)]
pub struct Sender {
    http: reqwest::Client,
    bases: HashMap<Participant, String>,
    timeout: Duration,
    retry: RetrySchedule,
}

impl Sender {
    /// `bases`: the base URL of every participant that can be reached.
    /// `retry`: the In-Out-Retry schedule of [`Sender::send_retrying`].
    pub fn new(
        http: reqwest::Client,
        bases: HashMap<Participant, String>,
        timeout: Duration,
        retry: RetrySchedule,
    ) -> Self {
        Sender {
            http,
            bases,
            timeout,
            retry,
        }
    }

    /// In-Out-Retry: sends the *same* message (same token, so the same
    /// message id, and an `Idempotency-Key` naming it) again after a timeout,
    /// a lost connection or a 502/504, on the retry schedule with jitter. The
    /// provider de-duplicates, so the effect happens once however many times
    /// the message arrives. Domain faults are answers, never retried.
    pub async fn send_retrying(
        &self,
        to: Participant,
        path: &str,
        token: &str,
        message_id: &str,
        body: Option<&Value>,
    ) -> Result<Reply, SendError> {
        let headers = [("idempotency-key", message_id)];
        let mut attempt = 0;
        loop {
            attempt += 1;
            let outcome = self.send_with(to, path, token, body, &headers).await;
            let transient = match &outcome {
                Err(SendError::Timeout(..) | SendError::Unreachable(..)) => true,
                Ok(reply) => matches!(reply.status.as_u16(), 502 | 504),
                Err(SendError::Unknown(_)) => false,
            };
            match self.retry.next_delay(attempt) {
                Some(delay) if transient => {
                    tracing::info!(%to, attempt, ?delay, "no answer: retrying the same message");
                    tokio::time::sleep(delay).await;
                }
                _ => return outcome,
            }
        }
    }

    /// The absolute URL of a step of `to`.
    pub fn url(&self, to: Participant, path: &str) -> Result<String, SendError> {
        let base = self.bases.get(&to).ok_or(SendError::Unknown(to))?;
        Ok(format!("{base}/{to}{path}"))
    }

    /// POSTs a message to `to`'s step at `path`, carrying `token`.
    pub async fn send(
        &self,
        to: Participant,
        path: &str,
        token: &str,
        body: Option<&Value>,
    ) -> Result<Reply, SendError> {
        self.send_with(to, path, token, body, &[]).await
    }

    /// [`Sender::send`] with extra headers (`Prefer`, `Reply-To`...).
    pub async fn send_with(
        &self,
        to: Participant,
        path: &str,
        token: &str,
        body: Option<&Value>,
        headers: &[(&str, &str)],
    ) -> Result<Reply, SendError> {
        let url = self.url(to, path)?;
        self.post(to, &url, Some(token), body, headers, self.timeout)
            .await
    }

    /// Follows a link as a client would: POSTs `url` (its token, if any, is
    /// in the URL). `to` names the participant for errors. A client's step
    /// may itself wait for further exchanges (and their retries), so it is
    /// given four times the exchange timeout.
    pub async fn follow(
        &self,
        to: Participant,
        url: &str,
        body: Option<&Value>,
        headers: &[(&str, &str)],
    ) -> Result<Reply, SendError> {
        self.post(to, url, None, body, headers, self.timeout * 4)
            .await
    }

    /// GETs a resource of `to` (a query: no token, safe to repeat).
    pub async fn get(&self, to: Participant, path: &str) -> Result<Reply, SendError> {
        let url = self.url(to, path)?;
        let response = self
            .http
            .get(&url)
            .header(
                http::header::ACCEPT,
                "application/hal+json, application/problem+json",
            )
            .timeout(self.timeout)
            .send()
            .await;
        self.read(to, response).await
    }

    /// DELETEs a resource of `to` (safe to repeat); the status tells how it went.
    pub async fn delete(&self, to: Participant, path: &str) -> Result<StatusCode, SendError> {
        let url = self.url(to, path)?;
        let response = self
            .http
            .delete(&url)
            .timeout(self.timeout)
            .send()
            .await
            .map_err(|e| self.classify(to, e))?;
        Ok(response.status())
    }

    async fn post(
        &self,
        to: Participant,
        url: &str,
        token: Option<&str>,
        body: Option<&Value>,
        headers: &[(&str, &str)],
        timeout: Duration,
    ) -> Result<Reply, SendError> {
        let mut request = self
            .http
            .post(url)
            .header(
                http::header::ACCEPT,
                "application/hal+json, application/problem+json",
            )
            .timeout(timeout);
        if let Some(token) = token {
            request = request.header(HEADER, token);
        }
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        self.read(to, request.send().await).await
    }

    /// Reads the reply to a request sent to `to`, whole: a body that is not
    /// JSON reads as `null`; a transport failure becomes a [`SendError`].
    async fn read(
        &self,
        to: Participant,
        sent: Result<reqwest::Response, reqwest::Error>,
    ) -> Result<Reply, SendError> {
        let response = sent.map_err(|e| self.classify(to, e))?;
        let status = response.status();
        let header = |name| {
            response
                .headers()
                .get(name)
                .and_then(|v: &http::HeaderValue| v.to_str().ok())
                .map(str::to_owned)
        };
        let (link, state) = (header(http::header::LINK.as_str()), header(HEADER));
        let bytes = response.bytes().await.map_err(|e| self.classify(to, e))?;
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Ok(Reply {
            status,
            body,
            link,
            state,
        })
    }

    fn classify(&self, to: Participant, e: reqwest::Error) -> SendError {
        if e.is_timeout() {
            SendError::Timeout(to, self.timeout)
        } else {
            SendError::Unreachable(to, e.to_string())
        }
    }
}

impl Reply {
    /// Passes a provider's successful HAL reply on to our client unchanged
    /// (its links, and so its token, pass control to the provider); a fault
    /// from the provider becomes a 502 naming it, since the client's own
    /// request was fine.
    pub fn relay(self, from: Participant) -> Result<axum::response::Response, Problem> {
        use axum::response::IntoResponse;
        if self.status.is_success() {
            let mut response = (self.status, self.body.to_string()).into_response();
            let headers = response.headers_mut();
            headers.insert(
                http::header::CONTENT_TYPE,
                http::HeaderValue::from_static(crate::hypermedia::HAL_JSON),
            );
            if let Some(link) = self.link.and_then(|l| http::HeaderValue::from_str(&l).ok()) {
                headers.insert(http::header::LINK, link);
            }
            return Ok(response);
        }
        // A paid conversation is a fact about the whole conversation, not a
        // failure of the provider: the client hears it as it is.
        if self.body["type"] == "/problems/already-paid" {
            return Err(crate::fault::from_peer(&self.body, from));
        }
        let title = self.body["title"].as_str().unwrap_or("no problem document");
        tracing::warn!(%from, status = %self.status, problem = %self.body, "provider refused");
        Err(Problem::new(
            types::PEER_UNAVAILABLE,
            format!(
                "{from} could not complete the step ({}: {title}).",
                self.status.as_u16()
            ),
        )
        .with("peer_status", self.status.as_u16())
        .with("peer_type", self.body["type"].clone()))
    }
}
