//! The `conversant` command: serve the participants, manage keys, print the
//! OpenAPI document.

use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use conversant::config::{Config, ServeArgs};
use conversant::conversation::KeyRing;
use conversant::participant::Participant;
use tracing_subscriber::EnvFilter;

/// jemalloc instead of glibc's malloc: a turn allocates and frees many
/// short-lived strings (hrefs, tokens, the HAL body), and glibc's malloc and
/// free were a fifth of a turn's server CPU in `perf`. Measured A/B, same
/// binary as server and load generator: the HS256 turn's server CPU went
/// from 44 to 34 µs and its throughput up 20%, `/health` unchanged.
/// The checkout's server CPU went from about 1,750 to 1,380 µs per
/// conversation. mimalloc was tried before and dropped because an idle
/// server kept the memory it had freed; jemalloc gives it back (20 s after a
/// checkout burst: 235 → 143 MiB, where glibc stayed at 214), and the
/// `open-conversations` RSS stays flat.
#[cfg(not(target_env = "msvc"))]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[derive(Parser)]
#[command(
    name = "conversant",
    version,
    about = "Asynchronous conversation patterns between stateless HTTP participants"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the participants (all of them on one port by default).
    Serve(Box<ServeArgs>),
    /// Print the OpenAPI document (what `openapi/openapi.json` holds).
    Openapi,
    /// Hold real conversations with a running service and report throughput and latency.
    Bench(Box<conversant::bench::BenchArgs>),
    /// Manage the participants' signing keys.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Add a new signing key; older keys keep verifying until retired.
    Rotate {
        #[arg(long)]
        participant: Participant,
        #[arg(long, env = "CONVERSANT_DATA_DIR", default_value = "./data")]
        data_dir: PathBuf,
    },
    /// Retire a key: it stops verifying and leaves the JWKS.
    Retire {
        #[arg(long)]
        participant: Participant,
        #[arg(long)]
        kid: String,
        #[arg(long, env = "CONVERSANT_DATA_DIR", default_value = "./data")]
        data_dir: PathBuf,
    },
    /// List a participant's keys (creates nothing: fails if there are none).
    List {
        #[arg(long)]
        participant: Participant,
        #[arg(long, env = "CONVERSANT_DATA_DIR", default_value = "./data")]
        data_dir: PathBuf,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // Purge freed pages in the background, so an idle server gives back what
    // a burst took (without it, only later allocations purge).
    #[cfg(not(target_env = "msvc"))]
    let _ = tikv_jemalloc_ctl::background_thread::write(true);
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    match Cli::parse().command {
        Command::Serve(args) => serve(*args).await,
        Command::Keys { command } => keys(command),
        Command::Bench(args) => conversant::bench::main(*args).await,
        Command::Openapi => {
            print!("{}", conversant::openapi::to_pretty_json());
            Ok(())
        }
    }
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let listen = args.listen.clone();
    let config = Config::from_args(args)?;
    let listener = tokio::net::TcpListener::bind(&listen)
        .await
        .with_context(|| format!("binding {listen}"))?;
    // Announced once the store is open: tests and `bench/run` read this
    // line to find the server, and wait for it before their first request.
    let server = conversant::server::Server::open(config, listener).await?;
    println!("conversant listening on http://{}", server.local_addr()?);
    server.serve(conversant::server::shutdown_signal()).await
}

fn keys(command: KeysCommand) -> anyhow::Result<()> {
    match command {
        KeysCommand::Rotate {
            participant,
            data_dir,
        } => {
            let mut ring = KeyRing::load_or_create(&data_dir, participant)?;
            let kid = ring.rotate()?.kid.clone();
            ring.save(&data_dir)?;
            println!("{kid} now signs for {participant}; restart the server to use it");
        }
        KeysCommand::Retire {
            participant,
            kid,
            data_dir,
        } => {
            let mut ring = KeyRing::load_or_create(&data_dir, participant)?;
            ring.retire(&kid)?;
            ring.save(&data_dir)?;
            println!("{kid} is retired; restart the server to stop accepting it");
        }
        KeysCommand::List {
            participant,
            data_dir,
        } => {
            // Listing only reads: a missing data directory or key file is
            // said, not made (the server makes them on its first start).
            let Some(ring) = KeyRing::load(&data_dir, participant)? else {
                if !data_dir.is_dir() {
                    bail!(
                        "the data directory {} does not exist: {participant} has no keys to list (the server creates its keys on its first start with this --data-dir)",
                        data_dir.display()
                    );
                }
                bail!(
                    "{participant} has no key file at {}: no keys to list (the server creates it on its first start hosting {participant}, or `keys rotate` does)",
                    KeyRing::path(&data_dir, participant).display()
                );
            };
            for key in &ring.keys {
                println!(
                    "{}\t{}\t{}",
                    key.kid,
                    key.created,
                    if key.retired { "retired" } else { "live" }
                );
            }
        }
    }
    Ok(())
}
