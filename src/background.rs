//! The server's background work, and how it ends with the server.
//!
//! Beside the requests it answers, a server runs work of its own: loops
//! (the saga's timers, housekeeping), retries until a peer answers
//! (subscribing, registering couriers), simulated waits (a courier's ride,
//! a slow card processor) and turns that must finish although their client
//! hung up. [`server::run`](crate::server::run) must not return while any of
//! it can still send a request or write to the store, or a stopped server
//! would go on talking to its peers and racing the next one on the same
//! database. So every such task is spawned here, in one of two ways:
//!
//! - [`Background::until_shutdown`]: a loop or a long wait, dropped at its
//!   next `.await` once shutdown begins. Only for work that is durable
//!   before it (a timer row, an outbox message) or that a restart redoes
//!   (subscribing, registering): what is cut short is picked up again.
//! - [`Background::to_the_end`]: work a request started that must not stop
//!   halfway (once payments has charged, the order must be raised); never
//!   cut short, but waited for.
//!
//! [`Background::stopped`] waits for both. The relay has its own tracker
//! (its deliveries in flight get a grace) but stops on the same token.

use std::future::Future;
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// The shutdown token and the tasks `run` waits for; cheap to clone.
#[derive(Clone, Debug, Default)]
pub struct Background {
    shutdown: CancellationToken,
    tasks: TaskTracker,
}

impl Background {
    pub fn new() -> Background {
        Background::default()
    }

    /// The token cancelled when shutdown begins, for work that tracks its
    /// own tasks (the relay).
    pub fn token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// Begins the shutdown: every [`Background::until_shutdown`] task stops
    /// at its next `.await`.
    pub fn shut_down(&self) {
        self.shutdown.cancel();
    }

    /// Spawns `work`, which ends when it is done or when shutdown begins.
    pub fn until_shutdown<F>(&self, work: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        self.tasks
            .spawn(self.shutdown.clone().run_until_cancelled_owned(work));
    }

    /// Spawns `work`, which runs to its end even once shutdown has begun.
    pub fn to_the_end<F>(&self, work: F) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.tasks.spawn(work)
    }

    /// Sleeps for `duration`, or less if shutdown begins meanwhile: a
    /// simulated wait in [`Background::to_the_end`] work.
    pub async fn sleep(&self, duration: Duration) {
        self.shutdown
            .run_until_cancelled(tokio::time::sleep(duration))
            .await;
    }

    /// Waits, once shutdown has begun, until every task spawned here has
    /// ended. Tasks spawned meanwhile (by requests still being drained) are
    /// waited for too.
    pub async fn stopped(&self) {
        self.tasks.close();
        self.tasks.wait().await;
    }
}
