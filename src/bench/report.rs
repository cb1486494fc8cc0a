//! What a bench run reports: throughput, latency percentiles from an HDR
//! histogram, errors, and whatever the scenario measured besides (a token's
//! length, the server's resident memory), as text or JSON.

use std::collections::BTreeMap;
use std::fmt;

use hdrhistogram::Histogram;
use serde::Serialize;
use serde_json::Value;

/// Latencies are recorded in microseconds, 3 significant figures, up to a minute.
pub fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid histogram bounds")
}

/// Percentiles of a histogram of microseconds, in milliseconds.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Percentiles {
    pub count: u64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

impl Percentiles {
    pub fn of(h: &Histogram<u64>) -> Self {
        let ms = |us: u64| us as f64 / 1000.0;
        Percentiles {
            count: h.len(),
            p50_ms: ms(h.value_at_quantile(0.50)),
            p90_ms: ms(h.value_at_quantile(0.90)),
            p99_ms: ms(h.value_at_quantile(0.99)),
            max_ms: ms(h.max()),
        }
    }
}

impl fmt::Display for Percentiles {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "p50 {:.2} ms  p90 {:.2} ms  p99 {:.2} ms  max {:.2} ms  (n={})",
            self.p50_ms, self.p90_ms, self.p99_ms, self.max_ms, self.count
        )
    }
}

/// The result of one scenario.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    pub scenario: String,
    /// What `count` and `rate` count: requests, conversations, messages...
    pub unit: &'static str,
    pub concurrency: usize,
    /// The measured window (after the warm-up), in seconds.
    pub seconds: f64,
    /// Completed iterations in the window.
    pub count: u64,
    /// `count` per second.
    pub rate: f64,
    pub errors: u64,
    /// The first error seen, for a clue (no token in it).
    pub first_error: Option<String>,
    /// Latency of the scenario's measured operation.
    pub latency: Percentiles,
    /// Latency of each step of an iteration, when it has several.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub steps: BTreeMap<String, Percentiles>,
    /// Other figures of the scenario (token length, resident memory...).
    #[serde(skip_serializing_if = "serde_json::Map::is_empty")]
    pub extra: serde_json::Map<String, Value>,
    /// What the figures mean, where it is not obvious.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

impl Report {
    pub fn with(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.extra.insert(key.to_owned(), value.into());
        self
    }

    pub fn note(mut self, note: impl Into<String>) -> Self {
        self.notes.push(note.into());
        self
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{}: {:.1} {}/s ({} in {:.2} s, concurrency {}), {} errors",
            self.scenario,
            self.rate,
            self.unit,
            self.count,
            self.seconds,
            self.concurrency,
            self.errors
        )?;
        writeln!(f, "  latency  {}", self.latency)?;
        for (step, p) in &self.steps {
            writeln!(f, "  {step:<14} {p}")?;
        }
        for (key, value) in &self.extra {
            writeln!(f, "  {key}: {value}")?;
        }
        if let Some(error) = &self.first_error {
            writeln!(f, "  first error: {error}")?;
        }
        for note in &self.notes {
            writeln!(f, "  note: {note}")?;
        }
        Ok(())
    }
}
