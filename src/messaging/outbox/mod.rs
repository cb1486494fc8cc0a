//! The outbox relay: sends what participants committed to send.
//!
//! Transactional Outbox: a participant writes its change and the message
//! announcing it in one transaction; this relay delivers the message
//! afterwards. It is woken in-process right after a commit (on PostgreSQL,
//! also by the notification any instance's [`Relay::wake`] sends after its
//! commits, see [`Notifier`]), and polls as a fallback (messages whose
//! earlier attempt failed, or left by a crashed instance whose lease
//! expired). Claims lease rows to this relay instance, so several instances
//! share the work without sending a row twice.
//!
//! # A pipeline, not a batch at a time
//!
//! The relay keeps up to `in_flight` messages (`--relay-in-flight`, 256 by
//! default) between claim and recorded outcome. A permit of that budget is taken per claimed row and given back
//! only once the row's outcome is written, so the relay never holds more
//! leases than it is working on. Three parts run at once:
//!
//! - the *claimer* claims as many due rows as there are free permits (one
//!   statement for up to `BATCH`), reads the subscriptions of the batch's
//!   webhooks once, and starts one delivery per row; it claims again as soon
//!   as permits come back, without waiting for the rest of the batch;
//! - each *delivery* POSTs its message over a pooled keep-alive connection
//!   (`attempt`) and hands its verdict to the recorder;
//! - the *recorder* writes every verdict that has arrived meanwhile in one
//!   transaction ([`Store::outbox_record`]: one statement for all the
//!   delivered ones), then frees their permits.
//!
//! A crash between a delivery and its recorded outcome leaves the row leased;
//! when the lease runs out another claim sends it again (at least once, which
//! is why receivers keep an inbox). Failures are retried on the
//! [`RetrySchedule`], with jitter; after the last attempt the message is a
//! dead letter, listed with a `redeliver` link. A delivered message leaves
//! the outbox at once; the slim record of it that the delivered counts read
//! is deleted after the retention (`--outbox-retention`) by a pruner beside
//! the relay.
//!
//! # Shutdown
//!
//! When the server begins to shut down, the claimer stops claiming, so a
//! backlog (even of messages to this very process) cannot keep it running.
//! Deliveries in flight get [`GRACE`] to finish and have their outcomes
//! recorded; one still running then is abandoned and its lease released:
//! the message is due again at once (for another instance, or this one once
//! restarted), and the interrupted attempt does not count against its retry
//! schedule. Its destination may have got it: at least once, as after a
//! crash, where the lease has to run out instead.

mod attempt;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, mpsc};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::background::Background;
use crate::store::{Engine, OutboxMessage, OutboxOutcome, Store, now_ms};
use attempt::{Subscriptions, Verdict, attempt, subscriptions_of};

/// The outbox kind of a webhook notification.
pub const KIND_WEBHOOK: &str = "webhook";

/// Delays between delivery attempts; its length is the number of retries.
#[derive(Clone, Debug)]
pub struct RetrySchedule(pub Vec<Duration>);

impl Default for RetrySchedule {
    fn default() -> Self {
        RetrySchedule(
            [1, 5, 30, 120, 600]
                .into_iter()
                .map(Duration::from_secs)
                .collect(),
        )
    }
}

impl RetrySchedule {
    /// Parses `1s,5s,500ms,2m`.
    pub fn parse(text: &str) -> Result<Self, String> {
        text.split(',')
            .map(|part| {
                let part = part.trim();
                let (number, unit) = part.split_at(
                    part.find(|c: char| !c.is_ascii_digit())
                        .unwrap_or(part.len()),
                );
                let n: u64 = number
                    .parse()
                    .map_err(|_| format!("`{part}` is not a delay like 5s"))?;
                Ok(match unit {
                    "ms" => Duration::from_millis(n),
                    "s" | "" => Duration::from_secs(n),
                    "m" => Duration::from_secs(n * 60),
                    "h" => Duration::from_secs(n * 3600),
                    _ => return Err(format!("`{part}`: the unit is ms, s, m or h")),
                })
            })
            .collect::<Result<Vec<_>, _>>()
            .map(RetrySchedule)
    }

    /// The delay before attempt `attempts + 1`, with ±20% jitter; `None` when
    /// the schedule is exhausted.
    pub fn next_delay(&self, attempts: usize) -> Option<Duration> {
        let base = self.0.get(attempts.checked_sub(1)?)?;
        let jitter = 0.8 + 0.4 * (uuid::Uuid::now_v7().as_u128() % 1000) as f64 / 1000.0;
        Some(base.mul_f64(jitter))
    }
}

/// How the relay runs (from the server's configuration).
#[derive(Clone, Debug)]
pub struct RelaySettings {
    pub schedule: RetrySchedule,
    /// How often to look for due messages when nothing woke the relay.
    pub poll: Duration,
    /// How long one delivery may take.
    pub timeout: Duration,
    /// How long delivered messages are kept before they are deleted.
    pub retention: Duration,
    /// How many messages the relay works on at once (claimed, not yet recorded).
    pub in_flight: usize,
}

/// The handle to wake the relay after a commit, and to wait for it to stop.
#[derive(Clone)]
pub struct Relay {
    notify: Arc<Notify>,
    peers: Notifier,
    /// The claimer, the deliveries and the recorder.
    tasks: TaskTracker,
}

/// Tells the relays of every instance sharing the database (PostgreSQL) that
/// messages were committed; does nothing on SQLite. Wake-ups that come while
/// a notification is being sent are folded into the next one, so a busy
/// instance sends far fewer notifications than it commits messages.
#[derive(Clone)]
pub struct Notifier {
    pending: Option<Arc<Notify>>,
}

impl Notifier {
    /// Starts the sender (none on SQLite) as `background` work, until
    /// shutdown.
    pub fn start(store: Store, background: &Background) -> Notifier {
        if store.engine() == Engine::Sqlite {
            return Notifier { pending: None };
        }
        let pending = Arc::new(Notify::new());
        background.until_shutdown(broadcast(store, pending.clone()));
        Notifier {
            pending: Some(pending),
        }
    }

    /// Asks for a notification soon; never waits.
    pub fn notify(&self) {
        if let Some(pending) = &self.pending {
            pending.notify_one();
        }
    }
}

async fn broadcast(store: Store, pending: Arc<Notify>) {
    loop {
        pending.notified().await;
        if let Err(e) = store.outbox_notify().await {
            tracing::warn!(error = %e, "could not notify the other relays");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// The most rows one claim leases.
const BATCH: usize = 128;
/// How long a claimed row stays leased to this relay: far longer than a
/// delivery may take, so only a dead relay's leases run out.
const LEASE: Duration = Duration::from_secs(30);
/// The most outcomes written in one transaction.
const RECORD_BATCH: usize = 1024;
/// Outcomes written (each a dead row version) after which a PostgreSQL relay
/// vacuums the outbox; see [`vacuum`].
const VACUUM_AFTER: u64 = 5_000;
/// Rows one prune statement deletes: short write transactions on SQLite.
const PRUNE_CHUNK: u32 = 1000;
/// How long deliveries in flight may go on once shutdown begins.
pub const GRACE: Duration = Duration::from_secs(2);

impl Relay {
    /// Starts the relay on the current runtime, until shutdown: the claimer
    /// and the recorder on its own tracker (see [`Relay::stopped`]); the
    /// pruner, the vacuum and on PostgreSQL the listener and the wake-up
    /// sender as `background` work. `http` should keep `in_flight` idle
    /// connections per host, so deliveries reuse them.
    pub fn start(
        store: Store,
        http: reqwest::Client,
        settings: RelaySettings,
        background: &Background,
    ) -> Relay {
        let notify = Arc::new(Notify::new());
        let peers = Notifier::start(store.clone(), background);
        let owner = format!("relay-{}", uuid::Uuid::now_v7());
        let (outcomes, recorded) = mpsc::unbounded_channel();
        let written = Arc::new(AtomicU64::new(0));
        background.until_shutdown(listen(store.clone(), notify.clone()));
        background.until_shutdown(prune(store.clone(), settings.retention));
        background.until_shutdown(vacuum(store.clone(), written.clone()));
        let tasks = TaskTracker::new();
        tasks.spawn(record(store.clone(), recorded, written));
        tasks.spawn(claim(
            Claimer {
                store,
                http,
                settings,
                owner,
                outcomes,
                shutdown: background.token(),
                tasks: tasks.clone(),
            },
            notify.clone(),
        ));
        Relay {
            notify,
            peers,
            tasks,
        }
    }

    /// Waits until the relay has stopped, once its `shutdown` is cancelled:
    /// no more claims, and the deliveries in flight finished (or abandoned
    /// after [`GRACE`]) with their outcomes recorded.
    pub async fn stopped(&self) {
        self.tasks.close();
        self.tasks.wait().await;
    }

    /// Tells the relay there is something to send now, and the relays of
    /// the other instances (PostgreSQL) soon after.
    pub fn wake(&self) {
        self.notify.notify_one();
        self.peers.notify();
    }
}

/// On PostgreSQL, wakes the relay whenever any instance commits an outbox
/// message; reconnects after a lost connection (polling covers the gap).
async fn listen(store: Store, notify: Arc<Notify>) {
    loop {
        match store.outbox_listener().await {
            Ok(None) => return,
            Ok(Some(mut listener)) => loop {
                match listener.recv().await {
                    Ok(_) => notify.notify_one(),
                    Err(e) => {
                        tracing::warn!(error = %e, "outbox listener lost its connection");
                        break;
                    }
                }
            },
            Err(e) => tracing::warn!(error = %e, "outbox listener could not connect"),
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// A delivery's outcome on its way to the recorder, with the permit it frees.
struct Recorded {
    outcome: OutboxOutcome,
    permit: OwnedSemaphorePermit,
}

struct Claimer {
    store: Store,
    http: reqwest::Client,
    settings: RelaySettings,
    owner: String,
    outcomes: mpsc::UnboundedSender<Recorded>,
    shutdown: CancellationToken,
    /// Where deliveries are spawned, for [`Relay::stopped`] to wait on.
    tasks: TaskTracker,
}

/// Claims and starts deliveries until shutdown begins.
async fn claim(claimer: Claimer, notify: Arc<Notify>) {
    let claimer = Arc::new(claimer);
    let budget = Arc::new(Semaphore::new(claimer.settings.in_flight.max(1)));
    loop {
        // At least one free permit, then every other one free right now.
        let first = tokio::select! {
            biased;
            () = claimer.shutdown.cancelled() => return,
            permit = budget.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => return,
            },
        };
        let mut permits = vec![first];
        while permits.len() < BATCH {
            match budget.clone().try_acquire_owned() {
                Ok(permit) => permits.push(permit),
                Err(_) => break,
            }
        }
        let wanted = permits.len();
        let batch = match claimer
            .store
            .outbox_claim_batch(&claimer.owner, wanted as u32, LEASE)
            .await
        {
            Ok(batch) => batch,
            Err(e) => {
                tracing::warn!(error = %e, "outbox claim failed");
                Vec::new()
            }
        };
        let drained = batch.len() < wanted;
        if !batch.is_empty() {
            let subscriptions = Arc::new(subscriptions_of(&claimer.store, &batch).await);
            for (message, permit) in batch.into_iter().zip(permits.drain(..)) {
                let (relay, subscriptions) = (claimer.clone(), subscriptions.clone());
                claimer.tasks.spawn(async move {
                    relay.deliver(message, &subscriptions, permit).await;
                });
            }
        }
        drop(permits);
        if drained {
            // Nothing more is due: wait for a commit (a wake-up sent while
            // we claimed is kept by `Notify`, so none is lost) or the poll.
            tokio::select! {
                biased;
                () = claimer.shutdown.cancelled() => return,
                () = notify.notified() => {},
                () = tokio::time::sleep(claimer.settings.poll) => {},
            }
        }
    }
}

impl Claimer {
    async fn deliver(
        &self,
        message: OutboxMessage,
        subscriptions: &Subscriptions,
        permit: OwnedSemaphorePermit,
    ) {
        crate::crash::point("relay-mid-batch");
        // Boxed: an HTTP request's future is kilobytes, and inline it would
        // make every spawned delivery that big, copied as it is spawned.
        let attempt = Box::pin(attempt(
            &self.store,
            &self.http,
            self.settings.timeout,
            subscriptions,
            &message,
        ));
        let verdict = tokio::select! {
            verdict = attempt => verdict,
            () = self.out_of_grace() => {
                tracing::debug!(id = %message.id, "delivery abandoned at shutdown: due again now");
                let outcome = OutboxOutcome::Released { id: message.id };
                let _ = self.outcomes.send(Recorded { outcome, permit });
                return;
            }
        };
        let id = message.id;
        let outcome = match verdict {
            Verdict::Delivered => {
                crate::crash::point("relay-after-send");
                OutboxOutcome::Delivered { id }
            }
            Verdict::Dead(error) => {
                tracing::warn!(%id, kind = %message.kind, %error, "outbox message is a dead letter");
                OutboxOutcome::Dead { id, error }
            }
            Verdict::Retry(error) => {
                match self
                    .settings
                    .schedule
                    .next_delay(message.attempts.max(0) as usize)
                {
                    Some(delay) => OutboxOutcome::Retry {
                        id,
                        next_attempt_at: now_ms().saturating_add(delay.as_millis() as i64),
                        error,
                    },
                    None => {
                        tracing::warn!(%id, kind = %message.kind, %error, "retries exhausted: dead letter");
                        OutboxOutcome::Dead { id, error }
                    }
                }
            }
        };
        // The recorder only stops when every sender is gone.
        let _ = self.outcomes.send(Recorded { outcome, permit });
    }

    /// Completes [`GRACE`] after shutdown began.
    async fn out_of_grace(&self) {
        self.shutdown.cancelled().await;
        tokio::time::sleep(GRACE).await;
    }
}

/// Writes outcomes as they come, each write taking all that arrived while
/// the previous one ran, until the claimer and every delivery are gone. A
/// write that keeps failing is given up: its rows stay leased, and are sent
/// again once the lease runs out.
async fn record(
    store: Store,
    mut recorded: mpsc::UnboundedReceiver<Recorded>,
    written: Arc<AtomicU64>,
) {
    let mut batch: Vec<Recorded> = Vec::new();
    while recorded.recv_many(&mut batch, RECORD_BATCH).await > 0 {
        // The permits go back once the outcomes are written (or given up).
        let (outcomes, _permits): (Vec<_>, Vec<_>) =
            batch.drain(..).map(|r| (r.outcome, r.permit)).unzip();
        let mut delay = Duration::from_millis(50);
        for attempt in 1.. {
            match store.outbox_record(&outcomes).await {
                Ok(()) => {
                    written.fetch_add(outcomes.len() as u64, Ordering::Relaxed);
                    break;
                }
                Err(e) if attempt < 5 => {
                    tracing::warn!(error = %e, "could not record delivery outcomes; trying again");
                    tokio::time::sleep(delay).await;
                    delay *= 2;
                }
                Err(e) => {
                    tracing::error!(error = %e, count = outcomes.len(), "delivery outcomes not recorded: the messages will be sent again");
                    break;
                }
            }
        }
    }
}

/// On PostgreSQL, vacuums the outbox once at least [`VACUUM_AFTER`] outcomes
/// were written since the last time, checking every second; on SQLite,
/// nothing (a deleted row's space is reused at once).
///
/// Each outcome leaves a dead row version behind (a delivered row deleted, a
/// retried one updated), and its entry in the claim index stays until a
/// vacuum removes it: every claim walks them, from the start of the index.
/// Autovacuum looks at a table at most once a minute, by which time a busy
/// relay has left hundreds of thousands: after a 10 s burst a claim on the
/// then empty outbox read 1,646 buffers. Vacuumed every second, a claim
/// read about half as many, and cost half the time per row.
async fn vacuum(store: Store, written: Arc<AtomicU64>) {
    if store.engine() == Engine::Sqlite {
        return;
    }
    let mut vacuumed_at = 0;
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let now = written.load(Ordering::Relaxed);
        if now - vacuumed_at < VACUUM_AFTER {
            continue;
        }
        vacuumed_at = now;
        if let Err(e) = store.outbox_vacuum().await {
            tracing::warn!(error = %e, "could not vacuum the outbox");
        }
    }
}

/// Deletes delivered messages older than `retention`, checking a few times
/// per retention period (at most every 5 minutes, at least every 100 ms).
async fn prune(store: Store, retention: Duration) {
    let every = (retention / 4).clamp(Duration::from_millis(100), Duration::from_secs(300));
    loop {
        tokio::time::sleep(every).await;
        let before = now_ms().saturating_sub(retention.as_millis() as i64);
        loop {
            match store.outbox_prune_delivered(before, PRUNE_CHUNK).await {
                Ok(n) if n == u64::from(PRUNE_CHUNK) => tokio::task::yield_now().await,
                Ok(_) => break,
                Err(e) => {
                    tracing::warn!(error = %e, "could not prune delivered outbox messages");
                    break;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedules_parse_and_run_out() {
        let s = RetrySchedule::parse("100ms, 2s,1m").unwrap();
        assert_eq!(
            s.0,
            vec![
                Duration::from_millis(100),
                Duration::from_secs(2),
                Duration::from_secs(60)
            ]
        );
        let first = s.next_delay(1).unwrap();
        assert!(first >= Duration::from_millis(80) && first <= Duration::from_millis(120));
        assert!(s.next_delay(4).is_none());
        assert!(RetrySchedule::parse("5 parsecs").is_err());
    }
}
