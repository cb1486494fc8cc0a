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

use crate::conversation::Signing;
use crate::conversation::keys::MIN_HS256_SECRET;
use crate::participant::Participant;

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
    /// How long a request may take before it is answered 503, in seconds.
    #[arg(long, env = "CONVERSANT_REQUEST_TIMEOUT", default_value_t = 30)]
    pub request_timeout: u64,
    /// How long a participant waits for another, in milliseconds.
    #[arg(long, env = "CONVERSANT_PEER_TIMEOUT_MS", default_value_t = 5000)]
    pub peer_timeout_ms: u64,
    /// The largest request body accepted, in bytes.
    #[arg(long, env = "CONVERSANT_BODY_LIMIT", default_value_t = 64 * 1024)]
    pub body_limit: usize,
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
    pub request_timeout: Duration,
    pub peer_timeout: Duration,
    pub body_limit: usize,
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
            request_timeout: Duration::from_secs(30),
            peer_timeout: Duration::from_secs(5),
            body_limit: 64 * 1024,
        }
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
            request_timeout: Duration::from_secs(args.request_timeout),
            peer_timeout: Duration::from_millis(args.peer_timeout_ms),
            body_limit: args.body_limit,
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
