//! `relay`: the durable path, commit to delivery of outbox messages.
//!
//! The load generator runs a tiny subscriber on `127.0.0.1` (the server must
//! allow it: `--callback-allow 127.0.0.1:PORT`), subscribes it to
//! `order.placed` (once per `subscribers`, each at its own path), then drives
//! whole checkouts: every paid checkout raises an order through pricing's
//! outbox, orders places it and commits the event with one outbox message
//! per subscriber, and the relay delivers them. The figure is the delivery
//! rate and the commit-to-delivery latency: arrival time minus the
//! CloudEvent `time`, which orders stamps in the transaction that commits
//! the event (millisecond precision, one clock: the same machine).
//!
//! Only the events of the orders this run raised count (a server that served
//! earlier scenarios may still be placing their orders). After the drive the
//! bench waits for the outbox to drain, so the rate covers every message the
//! run produced: from the start of the drive to the last arrival.

use std::collections::HashSet;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use serde_json::{Value, json};
use tokio::net::TcpListener;

use super::checkout::Checkout;
use super::client::Http;
use super::driver::{self, Options};
use super::report::{self, Percentiles, Report};

/// How long the drain waits without any new delivery before giving up (the
/// relay may first have to work through what was queued before these events).
const DRAIN_PATIENCE: Duration = Duration::from_secs(30);

/// One delivery, as the subscriber saw it arrive.
struct Delivery {
    order_id: String,
    /// Arrival minus the event's `time`, in microseconds.
    latency_us: Option<u64>,
    arrived: Instant,
}

#[derive(Default)]
struct Deliveries {
    /// (subscriber path, webhook-id): each delivery once.
    seen: HashSet<(String, String)>,
    duplicates: u64,
    all: Vec<Delivery>,
}

type Shared = Arc<Mutex<Deliveries>>;

async fn receive(
    State(shared): State<Shared>,
    Path(path): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let arrived = Instant::now();
    let now_us = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or_default();
    let event: Value = serde_json::from_slice(&body).unwrap_or_default();
    let committed_us = event["time"]
        .as_str()
        .and_then(|t| humantime::parse_rfc3339(t).ok())
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map(|d| d.as_micros() as i64);
    let id = headers
        .get("webhook-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let mut d = shared.lock().expect("deliveries lock");
    if !d.seen.insert((path, id)) {
        d.duplicates += 1;
        return StatusCode::NO_CONTENT;
    }
    d.all.push(Delivery {
        order_id: event["data"]["order_id"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
        latency_us: committed_us.map(|c| (now_us - c).max(1) as u64),
        arrived,
    });
    StatusCode::NO_CONTENT
}

/// Runs `relay`, its subscriber listening on `receiver`.
pub async fn relay(
    options: &Options,
    receiver: TcpListener,
    subscribers: usize,
) -> anyhow::Result<Report> {
    let address = receiver.local_addr()?;
    let shared = Shared::default();
    let app = Router::new()
        .route("/hooks/{path}", post(receive))
        .with_state(shared.clone());
    let server = tokio::spawn(async move { axum::serve(receiver, app).await });
    let http = Http::new(&options.target, options.concurrency)?;
    let mut subscriptions = Vec::new();
    for i in 0..subscribers.max(1) {
        let body = json!({
            "callback_url": format!("http://{address}/hooks/{i}"),
            "event_types": ["order.placed"],
        });
        let created = http
            .post("/orders/subscriptions", Some(&body), &[], 201)
            .await
            .map_err(|e| anyhow::anyhow!("subscribing the bench's receiver: {e} (is the server started with --callback-allow {address}?)"))?;
        subscriptions.push(created.link("self").map_err(anyhow::Error::msg)?.to_owned());
    }
    let workload = Arc::new(Checkout::remembering_orders());
    let began = Instant::now();
    let drive = driver::drive("relay", "messages", options, &http, workload.clone()).await;
    let drive_ended = Instant::now();
    let orders = workload
        .orders
        .as_ref()
        .map(|o| o.lock().expect("orders lock").clone())
        .unwrap_or_default();
    let expected = orders.len() * subscriptions.len();
    let ours = |d: &Deliveries| {
        d.all
            .iter()
            .filter(|x| orders.contains(&x.order_id))
            .count()
    };
    let mut delivered = 0;
    let mut progress = Instant::now();
    while progress.elapsed() < DRAIN_PATIENCE {
        let now = ours(&shared.lock().expect("deliveries lock"));
        if now >= expected {
            break;
        }
        if now > delivered {
            delivered = now;
            progress = Instant::now();
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for subscription in &subscriptions {
        let _ = http.delete(subscription).await;
    }
    server.abort();
    let d = shared.lock().expect("deliveries lock");
    let mut latency = report::histogram();
    let mut last = None;
    let mut delivered = 0u64;
    for x in d.all.iter().filter(|x| orders.contains(&x.order_id)) {
        delivered += 1;
        if let Some(us) = x.latency_us {
            latency.saturating_record(us);
        }
        last = last.max(Some(x.arrived));
    }
    let drained_after = last
        .map(|last| last.saturating_duration_since(drive_ended).as_secs_f64())
        .unwrap_or_default();
    let window = last
        .map(|last| last.duration_since(began).as_secs_f64())
        .unwrap_or(drive.seconds);
    Ok(Report {
        scenario: "relay".to_owned(),
        unit: "messages",
        concurrency: options.concurrency,
        seconds: window,
        count: delivered,
        rate: delivered as f64 / window.max(1e-9),
        errors: drive.errors + (expected as u64).saturating_sub(delivered),
        first_error: drive.first_error.clone(),
        latency: Percentiles::of(&latency),
        steps: Default::default(),
        extra: Default::default(),
        notes: Vec::new(),
    }
    .with("subscribers", subscriptions.len())
    .with("orders_paid", workload.paid.load(Ordering::Relaxed))
    .with("messages_expected", expected)
    .with("messages_delivered", delivered)
    .with("duplicates", d.duplicates)
    .with("other_deliveries", d.all.len() as u64 - delivered)
    .with("checkout_conversations_per_s", drive.rate)
    .with("last_delivery_after_drive_s", (drained_after * 100.0).round() / 100.0)
    .note("latency: arrival at the subscriber minus the CloudEvent `time` orders stamps in the committing transaction (ms precision); rate: this run's deliveries, from the start of the drive (warm-up included) to the last arrival; each order.placed goes once to each subscriber"))
}
