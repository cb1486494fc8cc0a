//! `commit` and `relay-direct`: the outbox relay alone, from commit to the
//! subscriber's 2xx, beside the raw commit rate of the same engine.
//!
//! The checkout-driven `relay` scenario measures the relay behind whole
//! conversations, whose own cost (four participants, a signature per turn)
//! caps the message rate long before the relay does. These two keep only the
//! durable step: each iteration is one transaction that enqueues one webhook
//! (a CloudEvent like `order.placed`, signed at delivery with the
//! subscription's secret) through the crate's own [`Store`], and after the
//! commit a wake-up for the relay, as a participant's durable step does.
//!
//! - `commit` runs those transactions against a database no relay reads: the
//!   engine's raw commit rate and commit latency.
//!
//! With `--subscribers N` each transaction is a publish to N subscribers: it
//! enqueues one message per subscription, as a participant's notification
//! does when N parties subscribe to its event. The rate still counts
//! messages; `transactions_per_s` says how many commits carried them.
//! - `relay-direct` runs them against the server's database, addressed to a
//!   subscriber inside the bench (it answers 204 at once), and measures each
//!   message from the end of its commit to its arrival. The throughput counts
//!   the messages committed after the warm-up, from the first of those
//!   commits to the last of their arrivals, and the bench waits for them all:
//!   a relay that falls behind shows in the rate and in the latency.
//!
//! On SQLite the server runs inside the bench ([`Host::InProcess`], with the
//! settings `conversant serve` would take from the `CONVERSANT_*`
//! environment): one process per SQLite file (DESIGN §7), so the
//! transactions go through the server's own store, queueing for its one
//! writer like its participants', and wake its relay in-process. On PostgreSQL the servers run as processes
//! of their own, as many as share the database ([`Host::External`]); the bench
//! commits through a store of its own and wakes their relays with a
//! notification, as another instance would.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use hdrhistogram::Histogram;
use serde::Deserialize;
use serde_json::json;
use tokio::net::TcpListener;

use super::driver::{Options, Stop};
use super::report::{self, Percentiles, Report};
use crate::background::Background;
use crate::config::{Config, ServeArgs};
use crate::messaging::outbox::{KIND_WEBHOOK, Notifier, Relay};
use crate::messaging::webhooks;
use crate::store::{Engine, NewOutboxMessage, Store, Subscription, now_ms};

/// The outbox `participant` of the bench's messages, apart from the real ones.
const PARTICIPANT: &str = "bench";
/// How long the drain waits without any new arrival before giving up.
const DRAIN_PATIENCE: Duration = Duration::from_secs(30);

/// Where `relay-direct` finds the relay that delivers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Host {
    /// A server started inside the bench, on the database (SQLite).
    InProcess,
    /// Servers running as processes of their own on the database (PostgreSQL).
    External,
}

/// `commit`: the raw commit rate of the outbox transactions on `database_url`
/// (a database no relay reads), `rate` messages/s if given, else at full speed.
pub async fn commit(
    options: &Options,
    database_url: &str,
    rate: Option<f64>,
    subscribers: usize,
) -> anyhow::Result<Report> {
    let store = Store::connect(database_url).await?;
    let committer = Arc::new(Committer {
        engine: store.engine(),
        store,
        wake: Wake::Nobody,
        subscriptions: (0..subscribers.max(1))
            .map(|k| format!("sub_none_{k}"))
            .collect(),
        destination: "http://127.0.0.1:9/nobody".to_owned(),
    });
    let run = committer.clone().run(options, rate).await;
    let window = run.window();
    let count = run.measured.len() as u64;
    committer.store.close().await;
    Ok(Report {
        scenario: "commit".to_owned(),
        unit: "messages",
        concurrency: options.concurrency.max(1),
        seconds: window,
        count,
        rate: count as f64 / window.max(1e-9),
        errors: run.errors,
        first_error: run.first_error.clone(),
        latency: Percentiles::of(&run.commit_latency),
        steps: Default::default(),
        extra: Default::default(),
        notes: Vec::new(),
    }
    .with("engine", engine_name(committer.engine))
    .with("messages_per_transaction", committer.fan_out())
    .with("transactions_per_s", round(run.transactions as f64 / window.max(1e-9)))
    .note("one transaction per publish (begin, insert one outbox row per subscriber, commit); latency: the transaction, begin to commit"))
}

/// `relay-direct`: commits outbox messages into the server's database on
/// `database_url` and measures their delivery to a subscriber listening on
/// `receiver`.
pub async fn relay_direct(
    options: &Options,
    database_url: &str,
    host: Host,
    receiver: TcpListener,
    rate: Option<f64>,
    subscribers: usize,
) -> anyhow::Result<Report> {
    let address = receiver.local_addr()?;
    let arrivals = Arc::new(Mutex::new(Arrivals::default()));
    let app = Router::new()
        .route("/hooks/bench", post(receive))
        .with_state(arrivals.clone());
    let subscriber = tokio::spawn(async move { axum::serve(receiver, app).await });

    let hosted = match host {
        Host::InProcess => Some(Hosted::start(database_url).await?),
        Host::External => None,
    };
    let (store, wake) = match &hosted {
        Some(hosted) => (
            hosted.store.clone(),
            Wake::Relay(hosted.state.relay.clone()),
        ),
        None => {
            let store = Store::connect(database_url).await?;
            // The bench's own wake-ups last as long as the bench.
            let notifier = Notifier::start(store.clone(), &Background::new());
            (store, Wake::Peers(notifier))
        }
    };
    let callback_url = format!("http://{address}/hooks/bench");
    let mut subscriptions = Vec::new();
    for _ in 0..subscribers.max(1) {
        let subscription = Subscription {
            id: format!("sub_{}", uuid::Uuid::now_v7().simple()),
            owner: PARTICIPANT.to_owned(),
            callback_url: callback_url.clone(),
            event_types: json!(["bench.message"]),
            secret: webhooks::new_secret(),
            active: true,
            created_at: now_ms(),
        };
        store.subscription_create(&subscription).await?;
        subscriptions.push(subscription.id);
    }
    let committer = Arc::new(Committer {
        engine: store.engine(),
        store: store.clone(),
        wake,
        subscriptions,
        destination: callback_url,
    });

    let run = committer.clone().run(options, rate).await;
    let stopped = Instant::now();
    let backlog_at_stop = run
        .committed_total
        .saturating_sub(arrivals.lock().expect("arrivals lock").at.len() as u64);
    let mut progress = (Instant::now(), 0);
    loop {
        let arrived = arrivals.lock().expect("arrivals lock").at.len();
        if arrived as u64 >= run.committed_total || progress.0.elapsed() > DRAIN_PATIENCE {
            break;
        }
        if arrived > progress.1 {
            progress = (Instant::now(), arrived);
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    for id in &committer.subscriptions {
        let _ = store.subscription_delete(id).await;
    }
    subscriber.abort();
    if let Some(hosted) = hosted {
        hosted.stop();
    }

    let arrivals = arrivals.lock().expect("arrivals lock");
    let mut latency = report::histogram();
    let mut last = None;
    let mut delivered = 0u64;
    for (seq, committed) in &run.measured {
        if let Some(&arrived) = arrivals.at.get(seq) {
            delivered += 1;
            let us = arrived.saturating_duration_since(*committed).as_micros() as u64;
            latency.saturating_record(us.max(1));
            last = last.max(Some(arrived));
        }
    }
    let window = last
        .map(|last| {
            last.saturating_duration_since(run.record_from)
                .as_secs_f64()
        })
        .unwrap_or_else(|| run.window());
    let drained_after = last
        .map(|last| last.saturating_duration_since(stopped).as_secs_f64())
        .unwrap_or_default();
    let measured = run.measured.len() as u64;
    Ok(Report {
        scenario: "relay-direct".to_owned(),
        unit: "messages",
        concurrency: options.concurrency.max(1),
        seconds: window,
        count: delivered,
        rate: delivered as f64 / window.max(1e-9),
        errors: run.errors + measured.saturating_sub(delivered),
        first_error: run.first_error.clone(),
        latency: Percentiles::of(&latency),
        steps: Default::default(),
        extra: Default::default(),
        notes: Vec::new(),
    }
    .with("engine", engine_name(committer.engine))
    .with("host", match host {
        Host::InProcess => "in-process",
        Host::External => "external",
    })
    .with("messages_per_transaction", committer.fan_out())
    .with("transactions_per_s", round(run.transactions as f64 / run.window().max(1e-9)))
    .with("offered_rate", rate)
    .with("messages_committed", measured)
    .with("messages_delivered", delivered)
    .with("duplicates", arrivals.duplicates)
    .with("commit_rate", round(measured as f64 / run.window().max(1e-9)))
    .with("commit_p50_ms", Percentiles::of(&run.commit_latency).p50_ms)
    .with("commit_p99_ms", Percentiles::of(&run.commit_latency).p99_ms)
    .with("backlog_at_stop", backlog_at_stop)
    .with("last_delivery_after_commits_stopped_s", round(drained_after))
    .note("latency: arrival at the subscriber minus the end of the message's commit (one clock, this process); rate: the messages committed after the warm-up, from the first of those commits to the last of their arrivals; commit_rate: the same commits per second while the relay ran"))
}

/// The server `relay-direct` hosts on SQLite, and its data directory (keys).
struct Hosted {
    store: Store,
    state: crate::app::AppState,
    server: tokio::task::JoinHandle<std::io::Result<()>>,
    data_dir: std::path::PathBuf,
}

impl Hosted {
    /// Settings as `conversant serve` takes them from the `CONVERSANT_*`
    /// environment (`CONVERSANT_RELAY_IN_FLIGHT`...), on `database_url` with
    /// a fresh data directory.
    async fn start(database_url: &str) -> anyhow::Result<Hosted> {
        #[derive(clap::Parser)]
        struct Serve {
            #[command(flatten)]
            args: ServeArgs,
        }
        let data_dir =
            std::env::temp_dir().join(format!("conversant-bench-{}", uuid::Uuid::now_v7()));
        let mut args = <Serve as clap::Parser>::try_parse_from(["conversant-bench"])?.args;
        args.data_dir = data_dir.clone();
        args.database_url = Some(database_url.to_owned());
        let config = Config::from_args(args)?;
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let public_url = format!("http://{}", listener.local_addr()?);
        let (router, state) = crate::server::build_with_state(config, public_url).await?;
        let server = tokio::spawn(async move { axum::serve(listener, router).await });
        Ok(Hosted {
            store: state.store.clone(),
            state,
            server,
            data_dir,
        })
    }

    fn stop(self) {
        self.server.abort();
        let _ = std::fs::remove_dir_all(&self.data_dir);
    }
}

/// How a committer wakes the relay after each commit.
enum Wake {
    /// The relay of this process (and, on PostgreSQL, the others).
    Relay(Relay),
    /// The relays of other processes, by notification (PostgreSQL).
    Peers(Notifier),
    /// No relay reads this database.
    Nobody,
}

struct Committer {
    store: Store,
    engine: Engine,
    wake: Wake,
    /// One message per subscription in each transaction.
    subscriptions: Vec<String>,
    destination: String,
}

/// What the committers did.
struct Run {
    /// (sequence number, end of its commit) of the messages committed after the warm-up.
    measured: Vec<(u64, Instant)>,
    committed_total: u64,
    /// The transactions after the warm-up (each carries `fan_out` messages).
    transactions: u64,
    commit_latency: Histogram<u64>,
    errors: u64,
    first_error: Option<String>,
    record_from: Instant,
    /// The end of the last measured commit.
    last_commit: Option<Instant>,
}

impl Run {
    /// The measured commits' window, in seconds.
    fn window(&self) -> f64 {
        self.last_commit
            .map(|last| {
                last.saturating_duration_since(self.record_from)
                    .as_secs_f64()
            })
            .unwrap_or_default()
    }
}

impl Committer {
    /// Messages per transaction: one per subscription.
    fn fan_out(&self) -> u64 {
        self.subscriptions.len() as u64
    }

    /// `concurrency` committers, as `options` say; `rate` counts messages.
    async fn run(self: Arc<Self>, options: &Options, rate: Option<f64>) -> Run {
        let started = Instant::now();
        let (record_from, deadline, limit) = match options.stop {
            Stop::After(d) => (
                started + options.warmup,
                Some(started + options.warmup + d),
                None,
            ),
            Stop::Iterations(n) => (started, None, Some(n)),
        };
        let workers = options.concurrency.max(1);
        // Paced: each committer takes every `workers`-th slot of the rate.
        let fan_out = self.fan_out();
        let interval = rate
            .filter(|r| *r > 0.0)
            .map(|r| Duration::from_secs_f64(workers as f64 * fan_out as f64 / r));
        let tickets = Arc::new(AtomicU64::new(0));
        let mut tasks = tokio::task::JoinSet::new();
        for worker in 0..workers {
            let (committer, tickets) = (self.clone(), tickets.clone());
            tasks.spawn(async move {
                let mut tally = Tally::new();
                let mut next = started
                    + interval.map_or(Duration::ZERO, |i| {
                        i.mul_f64(worker as f64 / workers as f64)
                    });
                loop {
                    if let Some(interval) = interval {
                        tokio::time::sleep_until(next.into()).await;
                        next = (next + interval).max(Instant::now());
                    }
                    let now = Instant::now();
                    if deadline.is_some_and(|d| now >= d) {
                        break;
                    }
                    let seq = tickets.fetch_add(1, Ordering::Relaxed);
                    if limit.is_some_and(|n| seq >= n) {
                        break;
                    }
                    match committer.commit_one(seq).await {
                        Ok(()) => {
                            let done = Instant::now();
                            tally.committed += fan_out;
                            if now >= record_from {
                                tally
                                    .latency
                                    .saturating_record((done - now).as_micros().max(1) as u64);
                                tally.transactions += 1;
                                tally
                                    .measured
                                    .extend((0..fan_out).map(|k| (seq * fan_out + k, done)));
                            }
                        }
                        Err(e) => {
                            tally.errors += 1;
                            tally.first_error.get_or_insert(e.to_string());
                            tokio::time::sleep(Duration::from_millis(10)).await;
                        }
                    }
                }
                tally
            });
        }
        let mut run = Run {
            measured: Vec::new(),
            committed_total: 0,
            transactions: 0,
            commit_latency: report::histogram(),
            errors: 0,
            first_error: None,
            record_from,
            last_commit: None,
        };
        while let Some(done) = tasks.join_next().await {
            let tally = done.expect("a bench committer panicked");
            run.committed_total += tally.committed;
            run.transactions += tally.transactions;
            run.errors += tally.errors;
            if run.first_error.is_none() {
                run.first_error = tally.first_error;
            }
            run.commit_latency.add(&tally.latency).expect("same bounds");
            run.last_commit = run
                .last_commit
                .max(tally.measured.iter().map(|(_, at)| *at).max());
            run.measured.extend(tally.measured);
        }
        run
    }

    /// Commits publish `seq` (one transaction, a message per subscription:
    /// numbers `seq * fan_out` onwards), then wakes the relay.
    async fn commit_one(&self, seq: u64) -> anyhow::Result<()> {
        let fan_out = self.fan_out();
        let messages: Vec<_> = self
            .subscriptions
            .iter()
            .enumerate()
            .map(|(k, subscription)| self.message(seq * fan_out + k as u64, subscription))
            .collect();
        // As a participant's publish does (`Topic::publish`).
        let mut tx = self.store.begin().await?;
        tx.outbox_enqueue_all(&messages).await?;
        tx.commit().await?;
        match &self.wake {
            Wake::Relay(relay) => relay.wake(),
            Wake::Peers(notifier) => notifier.notify(),
            Wake::Nobody => {}
        }
        Ok(())
    }

    /// Message `seq`: a CloudEvent to one of the bench's subscriptions.
    fn message(&self, seq: u64, subscription: &str) -> NewOutboxMessage {
        let id = uuid::Uuid::now_v7();
        let event_id = format!("evt_{}", id.simple());
        let time = std::time::SystemTime::now();
        NewOutboxMessage {
            id: id.to_string(),
            participant: PARTICIPANT.to_owned(),
            destination: self.destination.clone(),
            kind: KIND_WEBHOOK.to_owned(),
            headers: json!({
                "subscription": subscription,
                "webhook-id": event_id,
                "content-type": "application/cloudevents+json",
            }),
            body: webhooks::cloud_event(
                &event_id,
                "urn:conversant:bench",
                "bench.message",
                &humantime::format_rfc3339_millis(time).to_string(),
                &seq.to_string(),
                &json!({ "seq": seq }),
            ),
        }
    }
}

/// One committer's counts, merged at the end.
struct Tally {
    committed: u64,
    transactions: u64,
    measured: Vec<(u64, Instant)>,
    latency: Histogram<u64>,
    errors: u64,
    first_error: Option<String>,
}

impl Tally {
    fn new() -> Self {
        Tally {
            committed: 0,
            transactions: 0,
            measured: Vec::new(),
            latency: report::histogram(),
            errors: 0,
            first_error: None,
        }
    }
}

/// What the subscriber saw: each message's first arrival.
#[derive(Default)]
struct Arrivals {
    at: HashMap<u64, Instant>,
    duplicates: u64,
}

#[derive(Deserialize)]
struct Event {
    data: EventData,
}

#[derive(Deserialize)]
struct EventData {
    seq: u64,
}

async fn receive(State(arrivals): State<Arc<Mutex<Arrivals>>>, body: Bytes) -> StatusCode {
    let arrived = Instant::now();
    let Ok(event) = serde_json::from_slice::<Event>(&body) else {
        return StatusCode::UNPROCESSABLE_ENTITY;
    };
    let mut arrivals = arrivals.lock().expect("arrivals lock");
    match arrivals.at.entry(event.data.seq) {
        std::collections::hash_map::Entry::Occupied(_) => arrivals.duplicates += 1,
        std::collections::hash_map::Entry::Vacant(first) => {
            first.insert(arrived);
        }
    }
    StatusCode::NO_CONTENT
}

fn engine_name(engine: Engine) -> &'static str {
    match engine {
        Engine::Sqlite => "sqlite",
        Engine::Postgres => "postgres",
    }
}

fn round(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}
