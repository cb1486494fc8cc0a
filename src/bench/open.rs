//! `open-conversations`: does the server's memory grow with the number of
//! conversations in progress?
//!
//! The basket is stateless: an open basket is a token its client holds, and
//! nothing on the server. The bench starts baskets until `counts` are open
//! (0, 10 000, 100 000 by default), keeps every token (in its own memory,
//! not the server's), and after each level reads the server's resident
//! memory (`VmRSS` of `/proc/{pid}/status`).
//!
//! A warm-up of discarded baskets comes first (as many as the largest level,
//! by default), so the reference at 0 is a server whose bounded caches are
//! at their working size: every turn is journaled, the journal table grows,
//! and each pooled SQLite connection's page cache fills up to its limit. That
//! growth is bounded and has nothing to do with open conversations, but
//! it would otherwise be mistaken for them; the reading before the warm-up
//! is reported too, so it stays visible. At the end, the oldest token is
//! followed once, to show it still works.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::client::{Failure, Http};
use super::driver::{self, Options, Steps, Stop, Workload};
use super::report::Report;
use super::turn;

/// Time for background work (the journal batcher) to settle before a reading.
const SETTLE: Duration = Duration::from_secs(1);

/// Starts baskets, keeping their tokens (or not).
struct Open {
    keep: bool,
    held: Mutex<Vec<String>>,
}

impl Workload for Open {
    type Worker = ();

    async fn begin(&self, _: &Http) -> Result<(), Failure> {
        Ok(())
    }

    async fn iterate(&self, http: &Http, _: &mut (), _: &mut Steps) -> Result<(), Failure> {
        let doc = turn::start(http).await?;
        if self.keep {
            let token = doc.token("self")?.to_owned();
            self.held.lock().expect("held tokens").push(token);
        }
        Ok(())
    }
}

/// The resident memory of a process, in KiB, from `/proc/{pid}/status`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Memory {
    /// `VmRSS`: all resident pages.
    pub rss_kib: u64,
    /// `RssAnon`: the heap and stacks.
    pub anon_kib: u64,
    /// `RssFile`: mapped files (for SQLite, its WAL index and any memory-mapped database pages).
    pub file_kib: u64,
}

/// Reads the resident memory of process `pid`.
pub fn memory(pid: u32) -> anyhow::Result<Memory> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let field = |name: &str| {
        status
            .lines()
            .find_map(|line| line.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
    };
    Ok(Memory {
        rss_kib: field("VmRSS:")
            .ok_or_else(|| anyhow::anyhow!("no VmRSS in /proc/{pid}/status"))?,
        anon_kib: field("RssAnon:").unwrap_or_default(),
        file_kib: field("RssFile:").unwrap_or_default(),
    })
}

/// Runs `open-conversations` against the server whose process is `pid`,
/// after starting and discarding `warmup` baskets.
pub async fn open_conversations(
    options: &Options,
    pid: u32,
    counts: &[u64],
    warmup: u64,
) -> anyhow::Result<Report> {
    let http = Http::new(&options.target, options.concurrency)?;
    let batch = |n: u64| Options {
        stop: Stop::Iterations(n),
        rate: None,
        ..options.clone()
    };
    let cold = memory(pid)?;
    let discard = Arc::new(Open {
        keep: false,
        held: Mutex::default(),
    });
    if warmup > 0 {
        driver::drive("warm-up", "baskets", &batch(warmup), &http, discard).await;
    }
    let open = Arc::new(Open {
        keep: true,
        held: Mutex::default(),
    });
    let mut levels = serde_json::Map::new();
    let mut reference = None;
    let mut total = None::<Report>;
    let mut counts = counts.to_vec();
    counts.sort_unstable();
    for &target in &counts {
        let already = open.held.lock().expect("held tokens").len() as u64;
        if target > already {
            let report = driver::drive(
                "open-conversations",
                "baskets",
                &batch(target - already),
                &http,
                open.clone(),
            )
            .await;
            total = Some(match total {
                None => report,
                Some(mut t) => {
                    t.errors += report.errors;
                    t.count += report.count;
                    t.seconds += report.seconds;
                    t.rate = t.count as f64 / t.seconds.max(1e-9);
                    t.first_error = t.first_error.or(report.first_error);
                    t.latency = report.latency;
                    t
                }
            });
        }
        tokio::time::sleep(SETTLE).await;
        let now = memory(pid)?;
        let reference = *reference.get_or_insert(now);
        let held = open.held.lock().expect("held tokens").len();
        levels.insert(
            target.to_string(),
            serde_json::json!({
                "open": held,
                "rss_kib": now.rss_kib,
                "anon_kib": now.anon_kib,
                "file_kib": now.file_kib,
                "growth_percent": (now.rss_kib as f64 / reference.rss_kib as f64 - 1.0) * 100.0,
            }),
        );
    }
    let oldest = open.held.lock().expect("held tokens").first().cloned();
    let oldest_works = match &oldest {
        Some(token) => http
            .get(&format!("/basket/checkouts/view?state={token}"), 200)
            .await
            .is_ok(),
        None => true,
    };
    let mut report = total.unwrap_or_else(|| Report {
        scenario: "open-conversations".to_owned(),
        unit: "baskets",
        concurrency: options.concurrency,
        seconds: 0.0,
        count: 0,
        rate: 0.0,
        errors: 0,
        first_error: None,
        latency: Default::default(),
        steps: Default::default(),
        extra: Default::default(),
        notes: Vec::new(),
    });
    report.extra.insert("rss_by_open".to_owned(), levels.into());
    Ok(report
        .with("oldest_token_still_works", oldest_works)
        .with("warmup_baskets", warmup)
        .with("before_warmup", serde_json::to_value(cold)?)
        .note(format!("after a warm-up of {warmup} discarded baskets; each reading {}s after its level was reached; rate: every start-checkout request; latency: those of the last level", SETTLE.as_secs())))
}
