//! `conversant bench`: a load generator that holds real conversations with a
//! running service, over HTTP, following links as any client would.
//!
//! Why it exists: DESIGN §9 makes claims — a stateless turn costs one
//! verification, the step's work and one signature; memory does not grow with
//! open conversations; the token keeps its size however long the
//! conversation — and this is how they are checked, against the real server,
//! with the load generator's own cost included.
//!
//! | scenario | one iteration | rate counts |
//! |---|---|---|
//! | `baseline` | `GET /health` | requests |
//! | `turn` | a basket `add-item` or `remove-item` (verify, act, sign, render) | requests |
//! | `turn-stateful` | the same against a server with `--basket-state store`: the basket read from and written to the store | requests |
//! | `view` | `GET` a basket's `self` link: verify and render a turn's answer, no signature, no journal | requests |
//! | `pay-async` | a checkout whose `pay` is asynchronous; latency of `pay` only | conversations |
//! | `checkout` | start, add-item, checkout, pay | conversations |
//! | `relay` | checkouts whose `order.placed` webhooks reach a local subscriber | messages |
//! | `commit` | one outbox transaction into a database no relay reads (the raw commit rate) | messages |
//! | `relay-direct` | one outbox transaction into the server's database; its webhook's arrival at a local subscriber | messages |
//! | `open-conversations` | start baskets and hold their tokens; read the server's RSS | baskets |
//! | `token-growth` | 1 000 turns on one basket; the token's length | turns |
//!
//! Each scenario is a library function ([`baseline`], [`turn`]...) so the
//! integration tests run every one of them for a moment against a server on
//! port 0, and `bench/run` runs them all against release builds and writes
//! `bench/results.md`.

mod baseline;
mod checkout;
mod client;
mod direct;
mod driver;
mod open;
mod relay;
mod report;
mod turn;

use std::net::SocketAddr;
use std::time::Duration;

use clap::{Args, ValueEnum};

pub use baseline::baseline;
pub use checkout::{checkout, pay_async};
pub use direct::{Host, commit, relay_direct};
pub use driver::{Options, Stop};
pub use open::{Memory, memory, open_conversations};
pub use relay::relay;
pub use report::{Percentiles, Report};
pub use turn::{token_growth, turn, turn_stateful, view};

/// The scenarios of `conversant bench`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Scenario {
    /// `GET /health`: the floor of the HTTP stack.
    Baseline,
    /// One stateless basket turn per request (add-item / remove-item).
    Turn,
    /// The same turn with the basket in the store (the server runs with --basket-state store).
    TurnStateful,
    /// A basket's `self` link read over and over: a turn's answer, verified and rendered, neither signed nor journalled.
    View,
    /// The asynchronous `pay` turn, whose pending state the server keeps per --requestor-state.
    PayAsync,
    /// Whole checkout conversations.
    Checkout,
    /// Outbox delivery of order.placed webhooks to a local subscriber.
    Relay,
    /// The raw commit rate of outbox transactions (--database-url, no relay reading it).
    Commit,
    /// Outbox messages committed straight into the server's database
    /// (--database-url), from commit to a local subscriber's 2xx.
    RelayDirect,
    /// The server's resident memory with 0, 10 000, 100 000 open baskets.
    OpenConversations,
    /// The token's length after many turns on one basket.
    TokenGrowth,
}

/// `conversant bench`.
#[derive(Args, Clone, Debug)]
pub struct BenchArgs {
    /// The running service, as http://host:port (plain HTTP: run the bench next to it).
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub target: String,
    #[arg(long, value_enum)]
    pub scenario: Scenario,
    /// Workers, each holding one conversation at a time.
    #[arg(long, default_value_t = 32)]
    pub concurrency: usize,
    /// How long to measure (after the warm-up), e.g. 5s, 500ms.
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    pub duration: Duration,
    /// Stop after this many iterations instead (no warm-up).
    #[arg(long)]
    pub conversations: Option<u64>,
    /// Run but do not count for this long first.
    #[arg(long, default_value = "500ms", value_parser = humantime::parse_duration)]
    pub warmup: Duration,
    /// Print the report as JSON (for scripts).
    #[arg(long)]
    pub json: bool,
    /// The server's process id (on this machine): open-conversations reads its
    /// VmRSS; every scenario then also reports CPU time per iteration.
    #[arg(long)]
    pub server_pid: Option<u32>,
    /// open-conversations: the numbers of open baskets to read the RSS at.
    #[arg(long, value_delimiter = ',', default_value = "0,10000,100000")]
    pub open: Vec<u64>,
    /// open-conversations: baskets started and discarded first (default: the largest level).
    #[arg(long)]
    pub open_warmup: Option<u64>,
    /// relay: where the bench's subscriber listens (the server must allow it
    /// with --callback-allow).
    #[arg(long, default_value = "127.0.0.1:0")]
    pub receiver: SocketAddr,
    /// relay: how many subscriptions the subscriber takes (deliveries per
    /// order); commit, relay-direct: messages per transaction (a publish to
    /// this many subscribers).
    #[arg(long, default_value_t = 1)]
    pub subscribers: usize,
    /// commit, relay-direct: the database the messages are committed to.
    #[arg(long)]
    pub database_url: Option<String>,
    /// relay-direct: host the server in the bench, on --database-url (SQLite:
    /// one process per file); without it, servers elsewhere share the database.
    #[arg(long)]
    pub in_process: bool,
    /// commit, relay-direct: commit this many messages per second in all
    /// (default: as fast as the committers can). Every other scenario but
    /// open-conversations and token-growth: offer this many iterations per
    /// second in all, open loop, with --concurrency the most in flight at once
    /// (default: closed loop, each worker as fast as it is answered).
    #[arg(long, value_parser = per_second)]
    pub rate: Option<f64>,
    /// token-growth: how many turns.
    #[arg(long, default_value_t = 1000)]
    pub turns: usize,
}

/// A rate: a finite number above zero, per second.
fn per_second(value: &str) -> Result<f64, String> {
    match value.trim().parse::<f64>() {
        Ok(rate) if rate.is_finite() && rate > 0.0 => Ok(rate),
        _ => Err(format!(
            "`{value}` is not a rate: give a number above 0, per second"
        )),
    }
}

impl BenchArgs {
    fn database(&self) -> anyhow::Result<&str> {
        self.database_url.as_deref().ok_or_else(|| {
            anyhow::anyhow!(
                "{:?} commits to a database: give --database-url",
                self.scenario
            )
        })
    }

    fn options(&self) -> Options {
        Options {
            target: self.target.clone(),
            concurrency: self.concurrency,
            stop: match self.conversations {
                Some(n) => Stop::Iterations(n),
                None => Stop::After(self.duration),
            },
            warmup: self.warmup,
            server_pid: self.server_pid,
            rate: self.rate,
        }
    }
}

/// Runs one scenario.
pub async fn run(args: &BenchArgs) -> anyhow::Result<Report> {
    let options = args.options();
    match args.scenario {
        Scenario::Baseline => baseline(&options).await,
        Scenario::Turn => turn(&options).await,
        Scenario::TurnStateful => turn_stateful(&options).await,
        Scenario::View => view(&options).await,
        Scenario::PayAsync => pay_async(&options).await,
        Scenario::Checkout => checkout(&options).await,
        Scenario::Relay => {
            let listener = tokio::net::TcpListener::bind(args.receiver).await?;
            relay(&options, listener, args.subscribers).await
        }
        Scenario::Commit => commit(&options, args.database()?, args.rate, args.subscribers).await,
        Scenario::RelayDirect => {
            let listener = tokio::net::TcpListener::bind(args.receiver).await?;
            let host = if args.in_process {
                Host::InProcess
            } else {
                Host::External
            };
            relay_direct(
                &options,
                args.database()?,
                host,
                listener,
                args.rate,
                args.subscribers,
            )
            .await
        }
        Scenario::OpenConversations => {
            let pid = args.server_pid.ok_or_else(|| {
                anyhow::anyhow!("open-conversations reads the server's memory: give --server-pid")
            })?;
            let warmup = args
                .open_warmup
                .unwrap_or_else(|| args.open.iter().copied().max().unwrap_or(0));
            open_conversations(&options, pid, &args.open, warmup).await
        }
        Scenario::TokenGrowth => token_growth(&args.target, args.turns).await,
    }
}

/// `conversant bench`: runs the scenario and prints its report.
pub async fn main(args: BenchArgs) -> anyhow::Result<()> {
    let report = run(&args).await?;
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        print!("{report}");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::per_second;

    #[test]
    fn a_rate_is_a_finite_number_above_zero() {
        assert_eq!(per_second("525"), Ok(525.0));
        assert_eq!(per_second(" 0.5 "), Ok(0.5));
        for bad in ["0", "-1", "NaN", "inf", "fast", ""] {
            assert!(per_second(bad).is_err(), "{bad:?} was taken");
        }
    }
}
