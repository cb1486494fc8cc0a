//! Chaos: failures injected on purpose, per participant, for tests and demos
//! of the repair patterns.
//!
//! `--chaos "payments:delay=300ms,drop-first=1,duplicate=0.5,fail=0.1;orders:fail=0.2"`
//! - `delay`: every request waits this long before it is handled;
//! - `fail`: this share of requests is answered 503 without being handled;
//! - `drop`: this share of replies to POSTs is lost — the request is
//!   handled, but the reply is held back until the requestor has given up
//!   waiting (GETs, queries, keep their replies);
//! - `drop-first`: the first N replies to POSTs are lost (deterministic, for tests);
//! - `duplicate`: this share of requests is delivered twice (a copy is sent
//!   to the same step over HTTP at the same time).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::LazyLock;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use axum::body::{Body, to_bytes};
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::app::AppState;
use crate::fault::{Problem, types};
use crate::participant::Participant;

/// The client duplicates are sent with: to this very server, so never
/// through a proxy the environment may name (as every client here).
/// `None` if no client could be built: then no duplicates are sent.
static DUPLICATES: LazyLock<Option<reqwest::Client>> =
    LazyLock::new(|| reqwest::Client::builder().no_proxy().build().ok());

/// Marks the copy of a duplicated request, so it is not duplicated again.
const DUPLICATE_MARK: &str = "x-chaos-duplicate";

/// The chaos of one participant.
#[derive(Debug, Default)]
pub struct Chaos {
    pub delay: Duration,
    pub fail: f64,
    pub drop: f64,
    pub drop_first: u32,
    pub duplicate: f64,
    dropped: AtomicU32,
}

/// Chaos per participant, parsed from `--chaos`.
#[derive(Clone, Debug, Default)]
pub struct ChaosConfig(pub HashMap<Participant, Arc<Chaos>>);

impl ChaosConfig {
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut map = HashMap::new();
        for part in text.split(';').map(str::trim).filter(|p| !p.is_empty()) {
            let (name, settings) = part
                .split_once(':')
                .ok_or_else(|| format!("`{part}`: expected participant:setting=value,..."))?;
            let participant: Participant = name.trim().parse().map_err(|e| format!("{e}"))?;
            let mut chaos = Chaos::default();
            for setting in settings.split(',').map(str::trim).filter(|s| !s.is_empty()) {
                let (key, value) = setting
                    .split_once('=')
                    .ok_or_else(|| format!("`{setting}`: expected setting=value"))?;
                let share = || -> Result<f64, String> {
                    value
                        .parse::<f64>()
                        .ok()
                        .filter(|v| (0.0..=1.0).contains(v))
                        .ok_or_else(|| format!("`{setting}`: a share between 0 and 1"))
                };
                match key {
                    "delay" => {
                        chaos.delay = super::outbox::RetrySchedule::parse(value)?
                            .0
                            .first()
                            .copied()
                            .unwrap_or_default()
                    }
                    "fail" => chaos.fail = share()?,
                    "drop" => chaos.drop = share()?,
                    "duplicate" => chaos.duplicate = share()?,
                    "drop-first" => {
                        chaos.drop_first =
                            value.parse().map_err(|_| format!("`{setting}`: a count"))?
                    }
                    other => {
                        return Err(format!(
                            "`{other}`: not a chaos setting (delay, fail, drop, drop-first, duplicate)"
                        ));
                    }
                }
            }
            map.insert(participant, Arc::new(chaos));
        }
        Ok(ChaosConfig(map))
    }
}

/// A number in [0, 1).
fn random_unit() -> f64 {
    f64::from(uuid::Uuid::new_v4().as_u128() as u32) / (f64::from(u32::MAX) + 1.0)
}

/// The layer: applies the chaos configured for the participant a request is addressed to.
pub async fn layer(State(app): State<AppState>, req: Request, next: Next) -> Response {
    let participant = req
        .uri()
        .path()
        .trim_start_matches('/')
        .split('/')
        .next()
        .and_then(|p| p.parse::<Participant>().ok());
    let Some(chaos) = participant.and_then(|p| app.config.chaos.0.get(&p).cloned()) else {
        return next.run(req).await;
    };
    let req = if chaos.duplicate > 0.0
        && !req.headers().contains_key(DUPLICATE_MARK)
        && random_unit() < chaos.duplicate
    {
        duplicate(&app, req).await
    } else {
        req
    };
    if !chaos.delay.is_zero() {
        tokio::time::sleep(chaos.delay).await;
    }
    if chaos.fail > 0.0 && random_unit() < chaos.fail {
        return Problem::new(
            types::CHAOS,
            "The chaos setting failed this request on purpose.",
        )
        .into_response();
    }
    // Lost replies are the commands' (a requestor's In-Out-Retry of a step);
    // a query a step makes on the way (pricing asking payments whether the
    // conversation was paid) keeps its answer and its place in `drop-first`.
    if req.method() == http::Method::GET {
        return next.run(req).await;
    }
    let response = next.run(req).await;
    let drop_first = chaos.dropped.fetch_add(1, Ordering::SeqCst) < chaos.drop_first;
    if drop_first || (chaos.drop > 0.0 && random_unit() < chaos.drop) {
        tracing::info!("chaos: holding a reply back until the requestor gave up");
        tokio::time::sleep(app.config.peer_timeout * 2).await;
    }
    response
}

/// Sends a copy of the request to the same step, and returns the original.
async fn duplicate(app: &AppState, req: Request) -> Request {
    let (parts, body) = req.into_parts();
    let Ok(bytes) = to_bytes(body, app.config.body_limit).await else {
        return Request::from_parts(parts, Body::empty());
    };
    let url = format!(
        "{}{}",
        app.public_url,
        parts
            .uri
            .path_and_query()
            .map(|p| p.as_str())
            .unwrap_or("/")
    );
    let Some(client) = DUPLICATES.as_ref() else {
        tracing::warn!("chaos: no HTTP client for duplicates; none is sent");
        return Request::from_parts(parts, Body::from(bytes));
    };
    let mut copy = client
        .request(parts.method.clone(), url)
        .body(bytes.clone());
    for (name, value) in &parts.headers {
        if name != http::header::HOST && name != http::header::CONTENT_LENGTH {
            copy = copy.header(name, value);
        }
    }
    copy = copy.header(DUPLICATE_MARK, "1");
    // A copy not sent yet when shutdown begins is not sent: it is chaos.
    app.background.until_shutdown(async move {
        if let Err(e) = copy.send().await {
            tracing::warn!(error = %e, "chaos: the duplicate could not be sent");
        }
    });
    Request::from_parts(parts, Body::from(bytes))
}
