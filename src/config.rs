//! Settings, from flags and their environment equivalents.
//!
//! [`ServeArgs`] is what `conversant serve` accepts; [`Config`] is the
//! resolved form the server runs with (secrets read, peers parsed). Tests
//! build a [`Config`] directly with [`Config::new`].

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Args, ValueEnum};
use serde::Deserialize;

use crate::conversation::keys::MIN_HS256_SECRET;
use crate::conversation::{Signing, token};
use crate::messaging::chaos::ChaosConfig;
use crate::messaging::outbox::RetrySchedule;
use crate::participant::Participant;

/// What the default `--idempotency-lease` adds to the request timeout: time
/// for the release of an abandoned key to be written and for the clocks of
/// instances sharing a database to disagree, before a retry may take over a
/// key whose request might still be running.
pub const IDEMPOTENCY_LEASE_MARGIN: Duration = Duration::from_secs(30);

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum SigningArg {
    /// Ed25519, a key pair per participant (default).
    Eddsa,
    /// HMAC-SHA-256 with one shared secret: a single trust domain only.
    Hs256,
}

/// `conversant serve`.
#[derive(Args, Clone, Debug)]
pub struct ServeArgs {
    /// Address to listen on (port 0 picks a free port).
    #[arg(long, env = "CONVERSANT_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: String,
    /// Where keys and the embedded database live.
    #[arg(long, env = "CONVERSANT_DATA_DIR", default_value = "./data")]
    pub data_dir: PathBuf,
    /// How participants sign conversation-state tokens.
    #[arg(long, env = "CONVERSANT_SIGNING", value_enum, default_value = "eddsa")]
    pub signing: SigningArg,
    /// The HS256 secret (at least 32 bytes). Prefer the _FILE form.
    #[arg(long, env = "CONVERSANT_HS256_SECRET", hide_env_values = true)]
    pub hs256_secret: Option<String>,
    /// A file holding the HS256 secret.
    #[arg(long, env = "CONVERSANT_HS256_SECRET_FILE")]
    pub hs256_secret_file: Option<PathBuf>,
    /// The participants this process hosts (default: all).
    #[arg(long, env = "CONVERSANT_PARTICIPANTS", value_delimiter = ',')]
    pub participants: Vec<Participant>,
    /// A TOML file saying where the participants hosted elsewhere are.
    #[arg(long, env = "CONVERSANT_PEERS")]
    pub peers: Option<PathBuf>,
    /// The base URL clients reach this process at (default: http://{listen address}).
    #[arg(long, env = "CONVERSANT_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// Lifetime of a conversation-state token, in seconds.
    #[arg(long, env = "CONVERSANT_TOKEN_TTL", default_value_t = 900)]
    pub token_ttl: u64,
    /// Allowed clock skew between participants, in seconds: a token is
    /// accepted until its `exp` plus this, and from its `nbf` minus this
    /// (at most 300).
    #[arg(long, env = "CONVERSANT_TOKEN_LEEWAY", default_value_t = 5)]
    pub token_leeway: u64,
    /// How long a request may take before it is answered 503, in seconds.
    #[arg(long, env = "CONVERSANT_REQUEST_TIMEOUT", default_value_t = 30)]
    pub request_timeout: u64,
    /// How long a participant waits for another, in milliseconds.
    #[arg(long, env = "CONVERSANT_PEER_TIMEOUT_MS", default_value_t = 5000)]
    pub peer_timeout_ms: u64,
    /// The largest request body accepted, in bytes.
    #[arg(long, env = "CONVERSANT_BODY_LIMIT", default_value_t = 64 * 1024)]
    pub body_limit: usize,
    /// The database: `postgres://...`, or an SQLite file (default: {data-dir}/conversant.db).
    #[arg(long, env = "CONVERSANT_DATABASE_URL")]
    pub database_url: Option<String>,
    /// Where a requestor keeps the pending state of an asynchronous exchange:
    /// in its continuation token (stateless) or in its store (stateful).
    #[arg(
        long,
        env = "CONVERSANT_REQUESTOR_STATE",
        value_enum,
        default_value = "token"
    )]
    pub requestor_state: RequestorState,
    /// Where the basket keeps its lines between turns: in the token it signs
    /// (stateless) or in its store under the conversation id (stateful).
    #[arg(
        long,
        env = "CONVERSANT_BASKET_STATE",
        value_enum,
        default_value = "token"
    )]
    pub basket_state: BasketStorage,
    /// Hosts (host or host:port) callbacks may go to, beside the known participants.
    #[arg(long, env = "CONVERSANT_CALLBACK_ALLOW", value_delimiter = ',')]
    pub callback_allow: Vec<String>,
    /// Delays between outbox delivery attempts (e.g. 1s,5s,30s,2m,10m).
    #[arg(
        long,
        env = "CONVERSANT_RETRY_SCHEDULE",
        default_value = "1s,5s,30s,2m,10m"
    )]
    pub retry_schedule: String,
    /// How long delivered outbox messages are remembered (and counted as
    /// delivered) before they are forgotten (e.g. 24h, 90m); their bodies
    /// are dropped on delivery, dead letters are kept until redelivered.
    #[arg(
        long,
        env = "CONVERSANT_OUTBOX_RETENTION",
        default_value = "24h",
        value_parser = humantime::parse_duration
    )]
    pub outbox_retention: Duration,
    /// How many outbox messages the relay works on at once (claimed, not yet
    /// recorded): deliveries in flight, and connections kept per host.
    #[arg(long, env = "CONVERSANT_RELAY_IN_FLIGHT", default_value_t = 256)]
    pub relay_in_flight: usize,
    /// In-Out-Retry: delays before re-sending an unanswered request (same message id).
    #[arg(
        long,
        env = "CONVERSANT_EXCHANGE_RETRY",
        default_value = "200ms,500ms,1s"
    )]
    pub exchange_retry: String,
    /// Failures injected per participant, e.g. "payments:drop-first=1,delay=100ms;orders:fail=0.2".
    #[arg(long, env = "CONVERSANT_CHAOS", default_value = "")]
    pub chaos: String,
    /// How long an Idempotency-Key is remembered, in seconds.
    #[arg(long, env = "CONVERSANT_IDEMPOTENCY_TTL", default_value_t = 86_400)]
    pub idempotency_ttl: u64,
    /// How long an Idempotency-Key whose request has not answered yet stays
    /// held, in seconds (default: --request-timeout plus 30); then a retry
    /// may take the key over. Must be longer than --request-timeout.
    #[arg(long, env = "CONVERSANT_IDEMPOTENCY_LEASE")]
    pub idempotency_lease: Option<u64>,
    /// How long the slow test card keeps payments busy, in milliseconds.
    #[arg(long, env = "CONVERSANT_SLOW_CARD_MS", default_value_t = 7000)]
    pub slow_card_ms: u64,
}

/// Where a requestor keeps the pending state of an asynchronous exchange.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum RequestorState {
    /// In the signed continuation it sends as Reply-To (stateless requestor).
    Token,
    /// In its store, keyed by a correlation id the Reply-To carries (stateful requestor).
    Store,
}

/// Where the basket keeps its lines between turns.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum BasketStorage {
    /// In the signed token of every answer: nothing is stored (stateless).
    Token,
    /// In the store, keyed by conversation id, the token carrying only the
    /// version it was minted at (stateful, with optimistic concurrency).
    Store,
}

/// The resolved configuration.
#[derive(Clone, Debug)]
pub struct Config {
    pub data_dir: PathBuf,
    pub signing: Signing,
    pub participants: Vec<Participant>,
    /// Where participants hosted elsewhere are: participant → base URL.
    pub peers: HashMap<Participant, String>,
    pub public_url: Option<String>,
    pub token_ttl: Duration,
    /// Allowed clock skew when a token's `exp` and `nbf` are checked.
    pub token_leeway: Duration,
    pub request_timeout: Duration,
    pub peer_timeout: Duration,
    pub body_limit: usize,
    /// `None`: the SQLite file in the data directory.
    pub database_url: Option<String>,
    pub requestor_state: RequestorState,
    /// Where new baskets keep their lines.
    pub basket_state: BasketStorage,
    pub callback_allow: Vec<String>,
    pub retry_schedule: RetrySchedule,
    /// In-Out-Retry: delays before a requestor re-sends an unanswered request.
    pub exchange_retry: RetrySchedule,
    /// How often the relay looks for due messages when nothing woke it.
    pub relay_poll: Duration,
    /// How long delivered outbox messages are remembered before they are forgotten.
    pub outbox_retention: Duration,
    /// How many outbox messages the relay works on at once.
    pub relay_in_flight: usize,
    /// How often expired idempotency records, correlations and kept
    /// baskets are deleted.
    pub housekeeping_every: Duration,
    pub slow_card_delay: Duration,
    /// How long an Idempotency-Key is remembered.
    pub idempotency_ttl: Duration,
    /// How long an Idempotency-Key stays held by a request that has not
    /// answered; longer than `request_timeout`, so only a request that died
    /// loses its key.
    pub idempotency_lease: Duration,
    /// Failures injected on purpose, per participant.
    pub chaos: ChaosConfig,
    /// What payments tells clients to wait when the processor is unavailable.
    pub processor_retry_after: Duration,
}

impl Config {
    /// Every participant in one process, EdDSA, default limits.
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        Config {
            data_dir: data_dir.into(),
            signing: Signing::EdDsa,
            participants: Participant::ALL.to_vec(),
            peers: HashMap::new(),
            public_url: None,
            token_ttl: Duration::from_secs(900),
            token_leeway: token::DEFAULT_LEEWAY,
            request_timeout: Duration::from_secs(30),
            peer_timeout: Duration::from_secs(5),
            body_limit: 64 * 1024,
            database_url: None,
            requestor_state: RequestorState::Token,
            basket_state: BasketStorage::Token,
            callback_allow: Vec::new(),
            retry_schedule: RetrySchedule::default(),
            exchange_retry: RetrySchedule::parse("200ms,500ms,1s").expect("a valid schedule"),
            relay_poll: Duration::from_millis(500),
            outbox_retention: Duration::from_secs(24 * 3600),
            relay_in_flight: 256,
            housekeeping_every: Duration::from_secs(60),
            slow_card_delay: Duration::from_secs(7),
            idempotency_ttl: Duration::from_secs(86_400),
            idempotency_lease: Duration::from_secs(30) + IDEMPOTENCY_LEASE_MARGIN,
            chaos: ChaosConfig::default(),
            processor_retry_after: Duration::from_secs(2),
        }
    }

    /// The database URL: the configured one, or the SQLite file in the data directory.
    pub fn database(&self) -> String {
        self.database_url.clone().unwrap_or_else(|| {
            format!(
                "sqlite://{}?mode=rwc",
                self.data_dir.join("conversant.db").display()
            )
        })
    }

    pub fn from_args(args: ServeArgs) -> anyhow::Result<Self> {
        let signing = match args.signing {
            SigningArg::Eddsa => Signing::EdDsa,
            SigningArg::Hs256 => {
                let secret = match (args.hs256_secret, args.hs256_secret_file) {
                    (Some(s), _) => s.into_bytes(),
                    (None, Some(path)) => std::fs::read(&path)
                        .with_context(|| {
                            format!("reading the HS256 secret from {}", path.display())
                        })?
                        .trim_ascii()
                        .to_vec(),
                    (None, None) => bail!(
                        "--signing hs256 needs a secret: set CONVERSANT_HS256_SECRET or CONVERSANT_HS256_SECRET_FILE"
                    ),
                };
                if secret.len() < MIN_HS256_SECRET {
                    bail!(
                        "the HS256 secret has {} bytes; at least {MIN_HS256_SECRET} are required",
                        secret.len()
                    );
                }
                Signing::Hs256 { secret }
            }
        };
        let token_leeway = Duration::from_secs(args.token_leeway);
        if token_leeway > token::MAX_LEEWAY {
            bail!(
                "--token-leeway {} is too large: at most {} seconds are allowed, since a token is accepted until its expiry plus the leeway (the leeway allows for clock skew between participants; 5 seconds is the default)",
                args.token_leeway,
                token::MAX_LEEWAY.as_secs()
            );
        }
        let request_timeout = Duration::from_secs(args.request_timeout);
        let idempotency_lease = match args.idempotency_lease {
            None => request_timeout + IDEMPOTENCY_LEASE_MARGIN,
            Some(lease) if Duration::from_secs(lease) > request_timeout => {
                Duration::from_secs(lease)
            }
            Some(lease) => bail!(
                "--idempotency-lease ({lease}s) must be longer than --request-timeout \
                 ({}s), or a key could be taken over while its request still runs",
                args.request_timeout
            ),
        };
        let peers = match &args.peers {
            Some(path) => read_peers(path)?,
            None => HashMap::new(),
        };
        Ok(Config {
            data_dir: args.data_dir,
            signing,
            participants: if args.participants.is_empty() {
                Participant::ALL.to_vec()
            } else {
                args.participants
            },
            peers,
            public_url: args.public_url.map(|u| u.trim_end_matches('/').to_owned()),
            token_ttl: Duration::from_secs(args.token_ttl),
            token_leeway,
            request_timeout,
            peer_timeout: Duration::from_millis(args.peer_timeout_ms),
            body_limit: args.body_limit,
            database_url: args.database_url,
            requestor_state: args.requestor_state,
            basket_state: args.basket_state,
            callback_allow: args.callback_allow,
            retry_schedule: RetrySchedule::parse(&args.retry_schedule)
                .map_err(|e| anyhow::anyhow!("--retry-schedule: {e}"))?,
            exchange_retry: RetrySchedule::parse(&args.exchange_retry)
                .map_err(|e| anyhow::anyhow!("--exchange-retry: {e}"))?,
            relay_poll: Duration::from_millis(500),
            outbox_retention: args.outbox_retention,
            relay_in_flight: args.relay_in_flight.max(1),
            housekeeping_every: Duration::from_secs(60),
            slow_card_delay: Duration::from_millis(args.slow_card_ms),
            idempotency_ttl: Duration::from_secs(args.idempotency_ttl),
            idempotency_lease,
            chaos: ChaosConfig::parse(&args.chaos).map_err(|e| anyhow::anyhow!("--chaos: {e}"))?,
            processor_retry_after: Duration::from_secs(2),
        })
    }
}

/// The peers file: `[peers]` then `name = "http://host:port"` per participant.
#[derive(Deserialize)]
struct PeersFile {
    peers: HashMap<Participant, String>,
}

fn read_peers(path: &Path) -> anyhow::Result<HashMap<Participant, String>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading the peers file {}", path.display()))?;
    let file: PeersFile = toml::from_str(&text)
        .with_context(|| format!("parsing the peers file {}", path.display()))?;
    Ok(file
        .peers
        .into_iter()
        .map(|(p, url)| (p, url.trim_end_matches('/').to_owned()))
        .collect())
}

#[cfg(test)]
mod tests {
    use clap::{CommandFactory, Parser};

    use super::*;

    #[derive(Parser)]
    struct Serve {
        #[command(flatten)]
        args: ServeArgs,
    }

    fn config(flags: &[&str]) -> anyhow::Result<Config> {
        let argv = std::iter::once("serve").chain(flags.iter().copied());
        Config::from_args(Serve::try_parse_from(argv)?.args)
    }

    #[test]
    fn the_token_leeway_is_5_seconds_unless_set() {
        assert_eq!(config(&[]).unwrap().token_leeway, Duration::from_secs(5));
        assert_eq!(Config::new("data").token_leeway, Duration::from_secs(5));
        for (flag, secs) in [("0", 0), ("30", 30), ("300", 300)] {
            let config = config(&["--token-leeway", flag]).unwrap();
            assert_eq!(config.token_leeway, Duration::from_secs(secs));
        }
        let command = Serve::command();
        let arg = command
            .get_arguments()
            .find(|a| a.get_long() == Some("token-leeway"))
            .expect("--token-leeway");
        assert_eq!(
            arg.get_env().and_then(|e| e.to_str()),
            Some("CONVERSANT_TOKEN_LEEWAY")
        );
    }

    #[test]
    fn a_token_leeway_over_300_seconds_is_refused_with_a_clear_message() {
        let error = config(&["--token-leeway", "301"]).unwrap_err().to_string();
        assert!(
            error.contains("--token-leeway 301") && error.contains("at most 300 seconds"),
            "{error}"
        );
    }

    #[test]
    fn the_idempotency_lease_outlasts_the_request_timeout() {
        let lease = |flags: &[&str]| config(flags).unwrap().idempotency_lease;
        assert_eq!(lease(&[]), Duration::from_secs(60));
        assert_eq!(lease(&[]), Config::new(".").idempotency_lease);
        assert_eq!(
            lease(&["--request-timeout", "90"]),
            Duration::from_secs(120)
        );
        assert_eq!(
            lease(&["--idempotency-lease", "45"]),
            Duration::from_secs(45)
        );
        let refused = config(&["--idempotency-lease", "30"]).unwrap_err();
        assert!(
            refused
                .to_string()
                .contains("must be longer than --request-timeout"),
            "{refused}"
        );
    }
}
