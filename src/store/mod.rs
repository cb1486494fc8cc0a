//! The store: what participants must remember although conversations are stateless.
//!
//! Conversation state rides in signed tokens (DESIGN §3), so nothing here is read
//! on an ordinary turn. What lives here is what the *repair* and *activity*
//! patterns need to survive a crash or to be shared between instances: the
//! transactional [`inbox`] and [`outbox`], the [`journal`] every participant
//! keeps, Out-Only [`subscriptions`] and the pull feed of [`events`],
//! the stateful requestor's [`correlations`] and the stateful basket's
//! [`baskets`] (both off by default), the courier registry of
//! solicit-response ([`couriers`]), [`idempotency`] records, and the two business
//! tables whose changes are the "effect" of a durable step ([`orders`],
//! [`payments`]). No SQL exists outside this module (STYLE habit 4).
//!
//! # Two engines, one handle
//!
//! [`Store`] wraps either SQLite pools (the embedded quick start) or a `PgPool`
//! (split and scaled-out deployments). We chose a two-armed enum over `sqlx::Any`:
//! `Any` narrows values to a handful of scalar types (no JSON, no JSONB, booleans
//! as integers), which would push casts into every JSON query, and it hides
//! exactly the places where the engines must differ (`FOR UPDATE SKIP LOCKED`,
//! `json_each` against `jsonb` operators, advisory locks). With the enum each
//! domain function writes its SQL once — SQLite accepts PostgreSQL's `$1`
//! placeholders — and the private `on_conn!` macro runs that one text through
//! whichever concrete driver is behind the handle, each with its own type
//! checks. Where the engines really differ, the function matches on the engine
//! and says why.
//!
//! # Conventions
//!
//! - Ids are strings: UUIDv7 minted by the caller, which owns the typed ids.
//! - Times are unix milliseconds (`i64`), see [`now_ms`]. One representation on
//!   both engines keeps ordering and arithmetic (leases, expiry) in plain SQL.
//! - JSON columns are `TEXT` on SQLite and `JSONB` on PostgreSQL, surfaced as
//!   [`serde_json::Value`]. Closed sets of states are Rust enums stored as text.
//! - Queries are checked at run time (`sqlx::query`), never by compile-time
//!   macros, so building never needs a database. Both engines are exercised by
//!   the tests in `tests.rs` instead.
//! - Migrations are per engine (`migrations/sqlite`, `migrations/postgres`),
//!   embedded in the binary and run by [`Store::connect`].
//!
//! # Transactions
//!
//! A durable step is one transaction: claim the message in the inbox, make the
//! effect, enqueue what must be sent (DESIGN §9). [`Store::begin`] returns a
//! [`Tx`] that carries the same write functions as [`Store`]; nothing is written
//! until [`Tx::commit`], and dropping a `Tx` rolls it back. Relay and
//! maintenance operations (outbox claims, purges, the journal batcher) run on
//! [`Store`] only.
//!
//! # SQLite: writes queue, they do not sleep
//!
//! SQLite has one write lock per file. With every connection of one pool free
//! to write, writers that found the lock taken slept in SQLite's busy handler
//! (1, 2, 5, 10, 25 ms..., then try again): thousands of sleeps a second
//! under a checkout load, and a long tail of checkout latency. So on SQLite a
//! [`Store`] holds two pools: a *writer* pool of exactly one connection,
//! which every write and every transaction goes through (`BEGIN IMMEDIATE`),
//! and a pool of read-only *reader* connections for everything else (WAL
//! mode: readers never wait for the writer). Writers now wait in the pool's
//! fair queue and start the moment the connection is free. The readers are
//! opened read-only, so a write routed to them by mistake fails loudly
//! instead of taking the lock behind the writer's back. The busy timeout
//! stays, for other processes on the same file (tools, or tests that open a
//! second store). On PostgreSQL, which has row locks, both are the same pool.
//!
//! Because the writer is one connection, code holding a [`Tx`] must not call a
//! write function of [`Store`]: it would wait for its own connection (and
//! give up after the acquire timeout). Reads on [`Store`] are fine.

use std::str::FromStr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sqlx::pool::PoolConnection;
use sqlx::postgres::PgPoolOptions;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{PgConnection, PgPool, Postgres, Sqlite, SqliteConnection, SqlitePool};

#[macro_use]
mod macros;

pub mod baskets;
pub mod correlations;
pub mod couriers;
mod error;
pub mod events;
pub mod idempotency;
pub mod inbox;
pub mod journal;
pub mod listings;
pub mod orders;
pub mod outbox;
pub mod payments;
pub mod sagas;
pub mod search_index;
pub mod solicitations;
pub mod subscriptions;
pub mod testing;
#[cfg(test)]
mod tests;

pub use baskets::StoredBasket;
pub use correlations::Correlation;
pub use couriers::Courier;
pub use error::{StoreError, UnknownVariant};
pub use events::{Event, NewEvent};
pub use idempotency::{IdempotencyBegin, IdempotencyClaim, StoredResponse};
pub use inbox::{InboxClaim, InboxRecord};
pub use journal::{JournalEntry, MessageKind};
pub use orders::{Order, OrderStatus};
pub use outbox::{NewOutboxMessage, OutboxCounts, OutboxMessage, OutboxOutcome, OutboxStatus};
pub use payments::{Payment, PaymentStatus};
pub use subscriptions::Subscription;

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("migrations/sqlite");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("migrations/postgres");

/// How long an SQLite writer waits for the write lock (held by another
/// process) or for the writer connection (held in this one) before giving up.
const SQLITE_WRITE_TIMEOUT: Duration = Duration::from_secs(5);
/// Read-only connections on SQLite; reads run in parallel under WAL.
const SQLITE_READERS: u32 = 8;

/// Which database engine a [`Store`] talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    /// An embedded SQLite file (WAL mode): the one-process quick start.
    Sqlite,
    /// A PostgreSQL server: split deployments and several instances per participant.
    Postgres,
}

/// The handle to durable storage; cheap to clone (the pools are reference-counted).
#[derive(Debug, Clone)]
pub struct Store {
    pool: Pool,
}

#[derive(Debug, Clone)]
enum Pool {
    /// `write` has exactly one connection; `read`'s connections are read-only.
    Sqlite {
        write: SqlitePool,
        read: SqlitePool,
    },
    Postgres(PgPool),
}

/// An open transaction; the write functions of [`Store`] are also methods here.
/// Dropping it without [`Tx::commit`] rolls it back.
#[derive(Debug)]
pub struct Tx {
    inner: TxInner,
}

#[derive(Debug)]
enum TxInner {
    Sqlite(sqlx::Transaction<'static, Sqlite>),
    Postgres(sqlx::Transaction<'static, Postgres>),
}

/// A borrowed connection of either engine: what every domain function runs on.
enum Conn<'c> {
    Sqlite(&'c mut SqliteConnection),
    Postgres(&'c mut PgConnection),
}

impl Conn<'_> {
    fn engine(&self) -> Engine {
        match self {
            Conn::Sqlite(_) => Engine::Sqlite,
            Conn::Postgres(_) => Engine::Postgres,
        }
    }
}

/// A connection checked out of the pool for one call on [`Store`].
enum PoolConn {
    Sqlite(PoolConnection<Sqlite>),
    Postgres(PoolConnection<Postgres>),
}

impl PoolConn {
    fn as_conn(&mut self) -> Conn<'_> {
        match self {
            PoolConn::Sqlite(c) => Conn::Sqlite(c),
            PoolConn::Postgres(c) => Conn::Postgres(c),
        }
    }
}

impl Store {
    /// Opens the database named by `url` and brings its schema up to date.
    ///
    /// `postgres://` or `postgresql://` URLs select PostgreSQL; `sqlite:` URLs
    /// (e.g. `sqlite://data/conversant.db?mode=rwc`) and plain file paths select
    /// SQLite, which runs in WAL mode with foreign keys on and a busy timeout.
    /// A plain path is created if missing.
    pub async fn connect(url: &str) -> Result<Store, StoreError> {
        let pool = if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let pool = PgPoolOptions::new()
                .max_connections(16)
                .connect(url)
                .await?;
            POSTGRES_MIGRATIONS
                .run(&pool)
                .await
                .map_err(sqlx::Error::from)?;
            Pool::Postgres(pool)
        } else {
            let options = if url.starts_with("sqlite:") {
                SqliteConnectOptions::from_str(url)?
            } else if url.contains("://") {
                let message = "database URL must start with postgres://, postgresql:// or sqlite:";
                return Err(sqlx::Error::Configuration(message.into()).into());
            } else {
                SqliteConnectOptions::new()
                    .filename(url)
                    .create_if_missing(true)
            };
            let options = options
                .foreign_keys(true)
                .busy_timeout(SQLITE_WRITE_TIMEOUT);
            // Idle SQLite connections cannot go stale: no ping before each use.
            let write = SqlitePoolOptions::new()
                .max_connections(1)
                .acquire_timeout(SQLITE_WRITE_TIMEOUT)
                .test_before_acquire(false)
                .connect_with(
                    options
                        .clone()
                        .journal_mode(SqliteJournalMode::Wal)
                        .synchronous(SqliteSynchronous::Normal),
                )
                .await?;
            SQLITE_MIGRATIONS
                .run(&write)
                .await
                .map_err(sqlx::Error::from)?;
            // The file exists and is in WAL mode by now.
            let read = SqlitePoolOptions::new()
                .max_connections(SQLITE_READERS)
                .test_before_acquire(false)
                .connect_with(options.read_only(true).create_if_missing(false))
                .await?;
            Pool::Sqlite { write, read }
        };
        Ok(Store { pool })
    }

    /// The engine behind this handle.
    pub fn engine(&self) -> Engine {
        match self.pool {
            Pool::Sqlite { .. } => Engine::Sqlite,
            Pool::Postgres(_) => Engine::Postgres,
        }
    }

    /// Starts a transaction (on SQLite, on the writer connection with `BEGIN
    /// IMMEDIATE`: it takes the write lock up front).
    pub async fn begin(&self) -> Result<Tx, StoreError> {
        let inner = match &self.pool {
            Pool::Sqlite { write, .. } => {
                TxInner::Sqlite(write.begin_with("BEGIN IMMEDIATE").await?)
            }
            Pool::Postgres(pool) => TxInner::Postgres(pool.begin().await?),
        };
        Ok(Tx { inner })
    }

    /// Closes every pooled connection; pending calls finish first.
    pub async fn close(&self) {
        match &self.pool {
            Pool::Sqlite { write, read } => {
                read.close().await;
                write.close().await;
            }
            Pool::Postgres(pool) => pool.close().await,
        }
    }

    /// A connection for statements that only read.
    async fn reader(&self) -> Result<PoolConn, StoreError> {
        Ok(match &self.pool {
            Pool::Sqlite { read, .. } => PoolConn::Sqlite(read.acquire().await?),
            Pool::Postgres(pool) => PoolConn::Postgres(pool.acquire().await?),
        })
    }

    /// A connection for a statement that writes (on SQLite, the one writer:
    /// waits in line for it).
    async fn writer(&self) -> Result<PoolConn, StoreError> {
        Ok(match &self.pool {
            Pool::Sqlite { write, .. } => PoolConn::Sqlite(write.acquire().await?),
            Pool::Postgres(pool) => PoolConn::Postgres(pool.acquire().await?),
        })
    }
}

impl Tx {
    /// Makes every write of this transaction durable, all at once.
    pub async fn commit(self) -> Result<(), StoreError> {
        match self.inner {
            TxInner::Sqlite(tx) => tx.commit().await?,
            TxInner::Postgres(tx) => tx.commit().await?,
        }
        Ok(())
    }

    /// Discards every write of this transaction (dropping the `Tx` does the same).
    pub async fn rollback(self) -> Result<(), StoreError> {
        match self.inner {
            TxInner::Sqlite(tx) => tx.rollback().await?,
            TxInner::Postgres(tx) => tx.rollback().await?,
        }
        Ok(())
    }

    /// The engine this transaction runs on.
    pub fn engine(&self) -> Engine {
        match self.inner {
            TxInner::Sqlite(_) => Engine::Sqlite,
            TxInner::Postgres(_) => Engine::Postgres,
        }
    }

    fn conn(&mut self) -> Conn<'_> {
        match &mut self.inner {
            TxInner::Sqlite(tx) => Conn::Sqlite(tx),
            TxInner::Postgres(tx) => Conn::Postgres(tx),
        }
    }
}

/// Now, as unix milliseconds: the one time representation of the store.
pub fn now_ms() -> i64 {
    let since_epoch = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    i64::try_from(since_epoch.as_millis()).unwrap_or(i64::MAX)
}

/// Turns the row count of an UPDATE or DELETE by key into `NotFound` when it is zero.
fn one_row(rows_affected: u64) -> Result<(), StoreError> {
    if rows_affected == 0 {
        Err(StoreError::NotFound)
    } else {
        Ok(())
    }
}

/// A duration as milliseconds, saturating (for leases and time-to-live values).
fn duration_ms(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}
