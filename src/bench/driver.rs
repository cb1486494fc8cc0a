//! The driver: `concurrency` workers, each running one iteration of a
//! scenario after the other, until the time is up or the number of
//! iterations is reached.
//!
//! Closed loop by default: a worker starts its next iteration only when the
//! previous one was answered, as a client following links must, so the
//! figures are the throughput the service sustains at that concurrency and
//! the latency it shows there. By Little's law that latency is the
//! concurrency over the throughput: it measures the queue the workers make,
//! whatever the service could do at a lower load.
//!
//! With a rate ([`Options::rate`]) the arrivals are open loop: iteration `i`
//! is due at `i / rate` seconds, taken by whichever worker is free, and its
//! latency runs from when it was due, so an iteration that waited for a free
//! worker counts its wait (no coordinated omission). The workers are then the
//! most iterations in flight at once. This is how a service is judged at a
//! given load: whether it keeps up with the rate, and with what latency.
//!
//! Each worker keeps its own histograms (no lock on the hot path); they are
//! merged at the end. The warm-up's iterations are run but not counted.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

use super::client::{Failure, Http};
use super::report::{self, Percentiles, Report};

/// When a run stops.
#[derive(Clone, Copy, Debug)]
pub enum Stop {
    /// After this long (plus the warm-up).
    After(Duration),
    /// After this many iterations in all (no warm-up).
    Iterations(u64),
}

/// How a scenario is driven.
#[derive(Clone, Debug)]
pub struct Options {
    /// The service's base URL, `http://host:port`.
    pub target: String,
    pub concurrency: usize,
    pub stop: Stop,
    /// Run, but do not count, for this long first (with [`Stop::After`]).
    pub warmup: Duration,
    /// The server's process, when it runs on this machine: the report then
    /// says how much CPU the server and the bench spent per iteration.
    pub server_pid: Option<u32>,
    /// Iterations offered per second in all (open loop); `None`: closed loop.
    pub rate: Option<f64>,
}

impl Options {
    pub fn new(target: impl Into<String>) -> Self {
        Options {
            target: target.into(),
            concurrency: 32,
            stop: Stop::After(Duration::from_secs(5)),
            warmup: Duration::from_millis(500),
            server_pid: None,
            rate: None,
        }
    }
}

/// A scenario, as the driver runs it.
pub(crate) trait Workload: Send + Sync + 'static {
    /// What a worker keeps between iterations (the links of its conversation).
    type Worker: Send + 'static;
    /// When set, the reported latency is this step's, not the whole iteration's.
    const MEASURED_STEP: Option<&'static str> = None;

    /// Sets a worker up (not measured); again after an iteration failed.
    fn begin(&self, http: &Http) -> impl Future<Output = Result<Self::Worker, Failure>> + Send;

    /// One iteration: a request, or a whole conversation.
    fn iterate(
        &self,
        http: &Http,
        worker: &mut Self::Worker,
        steps: &mut Steps,
    ) -> impl Future<Output = Result<(), Failure>> + Send;
}

/// Latencies per step of an iteration.
#[derive(Default)]
pub(crate) struct Steps(BTreeMap<&'static str, Histogram<u64>>);

impl Steps {
    /// Runs and times one step; only successful steps are recorded.
    pub async fn time<T>(
        &mut self,
        step: &'static str,
        request: impl Future<Output = Result<T, Failure>>,
    ) -> Result<T, Failure> {
        let started = Instant::now();
        let result = request.await;
        if result.is_ok() {
            record(
                self.0.entry(step).or_insert_with(report::histogram),
                started.elapsed(),
            );
        }
        result
    }
}

impl Steps {
    /// The percentiles of one step (empty if it never succeeded).
    pub fn percentiles(&self, step: &str) -> Percentiles {
        self.0.get(step).map(Percentiles::of).unwrap_or_default()
    }
}

fn record(h: &mut Histogram<u64>, elapsed: Duration) {
    h.saturating_record((elapsed.as_micros() as u64).max(1));
}

/// One worker's counts, merged into the run's at the end.
struct Tally {
    count: u64,
    errors: u64,
    first_error: Option<String>,
    latency: Histogram<u64>,
    steps: Steps,
}

impl Tally {
    fn new() -> Self {
        Tally {
            count: 0,
            errors: 0,
            first_error: None,
            latency: report::histogram(),
            steps: Steps::default(),
        }
    }

    fn error(&mut self, failure: Failure) {
        self.errors += 1;
        self.first_error.get_or_insert(failure.0);
    }

    fn merge(&mut self, other: Tally) {
        self.count += other.count;
        self.errors += other.errors;
        if self.first_error.is_none() {
            self.first_error = other.first_error;
        }
        self.latency.add(&other.latency).expect("same bounds");
        for (step, h) in other.steps.0 {
            self.steps
                .0
                .entry(step)
                .or_insert_with(report::histogram)
                .add(&h)
                .expect("same bounds");
        }
    }
}

/// Runs `workload` as `options` say and reports it under `scenario`.
pub(crate) async fn drive<W: Workload>(
    scenario: &str,
    unit: &'static str,
    options: &Options,
    http: &Http,
    workload: Arc<W>,
) -> Report {
    let started = Instant::now();
    let (record_from, deadline) = match options.stop {
        Stop::After(d) => (started + options.warmup, Some(started + options.warmup + d)),
        Stop::Iterations(_) => (started, None),
    };
    let limit = match options.stop {
        Stop::Iterations(n) => Some(n),
        Stop::After(_) => None,
    };
    let tickets = Arc::new(AtomicU64::new(0));
    let offered = options.rate.filter(|rate| *rate > 0.0);
    let interval = offered.map(|rate| Duration::from_secs_f64(1.0 / rate));
    let arrivals = Arc::new(AtomicU64::new(0));
    let cpu_at_start = options.server_pid.map(|pid| {
        tokio::spawn(async move {
            tokio::time::sleep_until(record_from.into()).await;
            (cpu_seconds("self"), cpu_seconds(&pid.to_string()))
        })
    });
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..options.concurrency.max(1) {
        let (http, workload, tickets) = (http.clone(), workload.clone(), tickets.clone());
        let arrivals = arrivals.clone();
        workers.spawn(async move {
            let mut tally = Tally::new();
            let mut worker: Option<W::Worker> = None;
            let mut counting = Instant::now() >= record_from;
            loop {
                // Open loop: wait for the next iteration's due time, which
                // may already have passed (then it waited for this worker).
                let due = interval.map(|interval| {
                    let i = arrivals.fetch_add(1, Ordering::Relaxed);
                    started + interval.mul_f64(i as f64)
                });
                if let Some(due) = due {
                    tokio::time::sleep_until(due.into()).await;
                }
                let now = Instant::now();
                if deadline.is_some_and(|d| now >= d || due.is_some_and(|due| due >= d))
                    || limit.is_some_and(|n| tickets.fetch_add(1, Ordering::Relaxed) >= n)
                {
                    break;
                }
                if !counting && now >= record_from {
                    tally = Tally::new();
                    counting = true;
                }
                let current = match worker.as_mut() {
                    Some(current) => current,
                    None => match workload.begin(&http).await {
                        Ok(fresh) => worker.insert(fresh),
                        Err(failure) => {
                            tally.error(failure);
                            tokio::time::sleep(Duration::from_millis(10)).await;
                            continue;
                        }
                    },
                };
                let began = due.unwrap_or_else(Instant::now);
                match workload.iterate(&http, current, &mut tally.steps).await {
                    Ok(()) => {
                        tally.count += 1;
                        record(&mut tally.latency, began.elapsed());
                    }
                    Err(failure) => {
                        tally.error(failure);
                        worker = None;
                    }
                }
            }
            tally
        });
    }
    let mut total = Tally::new();
    while let Some(done) = workers.join_next().await {
        total.merge(done.expect("a bench worker panicked"));
    }
    let seconds = record_from.elapsed().as_secs_f64();
    let mut extra = serde_json::Map::new();
    if let (Some(pid), Some(start)) = (options.server_pid, cpu_at_start)
        && let Ok((Some(bench0), Some(server0))) = start.await
        && let (Some(bench1), Some(server1)) = (cpu_seconds("self"), cpu_seconds(&pid.to_string()))
        && total.count > 0
    {
        let per_op = |cpu: f64| (cpu * 1e6 / total.count as f64).round();
        extra.insert(
            "server_cpu_us_per_op".into(),
            per_op(server1 - server0).into(),
        );
        extra.insert("bench_cpu_us_per_op".into(), per_op(bench1 - bench0).into());
        extra.insert(
            "cpu_cores_busy".into(),
            (((server1 - server0 + bench1 - bench0) / seconds * 100.0).round() / 100.0).into(),
        );
    }
    if let Some(rate) = offered {
        extra.insert("offered_per_s".into(), rate.into());
    }
    let latency = match W::MEASURED_STEP.and_then(|step| total.steps.0.get(step)) {
        Some(step) => Percentiles::of(step),
        None => Percentiles::of(&total.latency),
    };
    let steps = if total.steps.0.len() > 1 || W::MEASURED_STEP.is_some() {
        total
            .steps
            .0
            .iter()
            .map(|(step, h)| ((*step).to_owned(), Percentiles::of(h)))
            .collect()
    } else {
        BTreeMap::new()
    };
    Report {
        scenario: scenario.to_owned(),
        unit,
        concurrency: options.concurrency.max(1),
        seconds,
        count: total.count,
        rate: total.count as f64 / seconds.max(1e-9),
        errors: total.errors,
        first_error: total.first_error,
        latency,
        steps,
        extra,
        notes: offered
            .map(|_| {
                "open loop: iterations offered at a fixed rate; latency from when each was due, \
                 its wait for a free worker included"
                    .to_owned()
            })
            .into_iter()
            .collect(),
    }
}

/// User and system CPU time of a process so far (`/proc/{pid}/stat`), in seconds.
fn cpu_seconds(pid: &str) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The fields after the command name (which may hold spaces), from field 3 on.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    // USER_HZ, the unit of /proc times, is 100 on Linux.
    Some(ticks as f64 / 100.0)
}
