//! Composing the participants into one server, and running it.
//!
//! `run(config, listener, shutdown)` takes its listener, so tests bind port 0
//! and start as many servers as they like in one process (mini-redis does the
//! same); it is [`Server::open`], which opens the store, then
//! [`Server::serve`]. [`build`] composes: every hosted participant's router
//! under its own prefix, the entry point and catalog, the JWKS, and the
//! layers every request goes through — request id, tracing with tokens
//! redacted, catch-panic, the timeout and the body-size limit — each failing
//! with a problem document.

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, Request};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use http::{HeaderName, StatusCode, header};
use tokio::net::TcpListener;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::sensitive_headers::SetSensitiveRequestHeadersLayer;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::{DefaultOnResponse, TraceLayer};
use tracing::Level;

use crate::app::{App, AppState};
use crate::background::Background;
use crate::config::Config;
use crate::conversation::continuation::{self, Redacted};
use crate::conversation::token;
use crate::fault::{self, PROBLEM_JSON};
use crate::housekeeping;
use crate::hypermedia;
use crate::messaging::callbacks::CallbackPolicy;
use crate::messaging::journal::Journal;
use crate::messaging::outbox::{Relay, RelaySettings};
use crate::messaging::sender::Sender;
use crate::participants;
use crate::store::Store;

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Builds the application for `config`, reachable at `public_url`.
pub async fn build(config: Config, public_url: String) -> anyhow::Result<Router> {
    Ok(build_with_state(config, public_url).await?.0)
}

/// [`build`], and the state its handlers share: for a process that hosts
/// the server and works beside it (the bench commits outbox messages
/// through its store and wakes its relay, as a participant does).
pub async fn build_with_state(
    config: Config,
    public_url: String,
) -> anyhow::Result<(Router, AppState)> {
    let http = reqwest::Client::builder()
        .no_proxy()
        .pool_max_idle_per_host(64)
        .build()?;
    let mut bases: HashMap<_, _> = config.peers.clone();
    for &p in &config.participants {
        bases.insert(p, public_url.clone());
    }
    let remote_jwks = config
        .peers
        .iter()
        .filter(|(p, _)| !config.participants.contains(p))
        .map(|(p, url)| (*p, format!("{url}/.well-known/jwks.json")))
        .collect();
    let (minter, trust, jwks) = token::load(
        &config.data_dir,
        &config.signing,
        &config.participants,
        remote_jwks,
        config.token_ttl,
        config.token_leeway,
        http.clone(),
    )?;
    // The embedded database lives in the data directory, which EdDSA keys
    // would create, but HS256 (no key files) would not.
    std::fs::create_dir_all(&config.data_dir).map_err(|e| {
        anyhow::anyhow!(
            "creating the data directory {}: {e}",
            config.data_dir.display()
        )
    })?;
    let store = Store::connect(&config.database())
        .await
        .map_err(|e| anyhow::Error::new(e).context("opening the database"))?;
    let background = Background::new();
    let journal = Journal::start(store.clone());
    housekeeping::start(store.clone(), config.housekeeping_every, &background);
    // The relay's own client: a keep-alive connection per delivery in flight.
    let relay_http = reqwest::Client::builder()
        .no_proxy()
        .pool_max_idle_per_host(config.relay_in_flight)
        .build()?;
    let relay = Relay::start(
        store.clone(),
        relay_http,
        RelaySettings {
            schedule: config.retry_schedule.clone(),
            poll: config.relay_poll,
            timeout: config.peer_timeout,
            retention: config.outbox_retention,
            in_flight: config.relay_in_flight,
        },
        &background,
    );
    let known: Vec<&str> = std::iter::once(public_url.as_str())
        .chain(config.peers.values().map(String::as_str))
        .collect();
    let callbacks = CallbackPolicy::new(config.callback_allow.iter().map(String::as_str), known);
    let sender = Sender::new(
        http,
        bases,
        config.peer_timeout,
        config.exchange_retry.clone(),
    );
    let (request_timeout, body_limit) = (config.request_timeout, config.body_limit);
    let state = AppState(Arc::new(App {
        config,
        public_url,
        minter,
        trust,
        jwks,
        sender,
        store,
        journal,
        relay,
        callbacks,
        background,
    }));
    participants::start(&state).await?;
    participants::deliveries::saga::start(&state);
    participants::deliveries::saga::subscribe_on_start(state.clone());
    let router = participants::router(state.clone())
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(RequestBodyLimitLayer::new(body_limit))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::SERVICE_UNAVAILABLE,
            request_timeout,
        ))
        .layer(middleware::from_fn(problem_for_bare_errors))
        .layer(middleware::from_fn(hypermedia::negotiate))
        .layer(CatchPanicLayer::custom(panic_problem))
        .layer(SetSensitiveRequestHeadersLayer::new([
            HeaderName::from_static(continuation::HEADER),
            header::AUTHORIZATION,
        ]))
        .layer(PropagateRequestIdLayer::new(REQUEST_ID))
        .layer(
            TraceLayer::new_for_http()
                .on_response(DefaultOnResponse::new().level(Level::INFO))
                .make_span_with(|req: &Request<Body>| {
                    let request_id = req
                        .headers()
                        .get(REQUEST_ID)
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or_default();
                    tracing::info_span!(
                        "request",
                        method = %req.method(),
                        path = %req.uri().path(),
                        query = %Redacted(req.uri().query()),
                        request_id = %request_id,
                    )
                }),
        )
        .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid));
    Ok((router, state))
}

/// Opens the server on `listener`, then serves until `shutdown` completes
/// ([`Server::open`], then [`Server::serve`]).
pub async fn run(
    config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    Server::open(config, listener).await?.serve(shutdown).await
}

/// A server ready to serve: its store is open and migrated and its
/// participants have started. Opening and serving are apart so that
/// `conversant serve` announces its address only once it can answer, and
/// a start that fails never announces it.
pub struct Server {
    listener: TcpListener,
    router: Router,
    state: AppState,
}

impl Server {
    /// Builds the application for `config` behind `listener`.
    pub async fn open(config: Config, listener: TcpListener) -> anyhow::Result<Server> {
        let address = listener.local_addr()?;
        let public_url = config
            .public_url
            .clone()
            .unwrap_or_else(|| format!("http://{address}"));
        let (router, state) = build_with_state(config, public_url).await?;
        Ok(Server {
            listener,
            router,
            state,
        })
    }

    /// The address the server listens on.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves until `shutdown` completes, then drains in-flight requests.
    /// Background work stops as soon as `shutdown` completes: the relay
    /// claims no more (deliveries in flight get a short grace), loops and
    /// waits end and work that must finish does ([`Background`]); once
    /// both have, the journal is flushed, so a clean exit loses no record.
    pub async fn serve(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let background = self.state.background.clone();
        let served = axum::serve(self.listener, self.router)
            .with_graceful_shutdown(async move {
                shutdown.await;
                background.shut_down();
            })
            .await;
        self.state.background.shut_down();
        tokio::join!(self.state.background.stopped(), self.state.relay.stopped());
        served?;
        // Last: what the drained requests journaled is written before we return.
        self.state.journal.flush().await;
        Ok(())
    }
}

/// Turns any error response that is not already a problem document (the
/// router's 404 and 405, the body limit's 413, the timeout's 503) into one.
async fn problem_for_bare_errors(req: Request, next: Next) -> Response {
    let response = next.run(req).await;
    let status = response.status();
    let is_problem = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|ct| ct.as_bytes().starts_with(PROBLEM_JSON.as_bytes()));
    if !(status.is_client_error() || status.is_server_error()) || is_problem {
        return response;
    }
    let mut problem = fault::for_status(status).into_response();
    if let Some(allow) = response.headers().get(header::ALLOW) {
        problem.headers_mut().insert(header::ALLOW, allow.clone());
    }
    problem
}

fn panic_problem(_: Box<dyn std::any::Any + Send + 'static>) -> Response {
    tracing::error!("a handler panicked");
    fault::Problem::new(
        fault::types::INTERNAL,
        "An unexpected error occurred. It has been logged; the request id identifies it.",
    )
    .into_response()
}

/// Completes on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        {
            s.recv().await;
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    tracing::info!("shutting down");
}
