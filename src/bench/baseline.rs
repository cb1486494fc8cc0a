//! `baseline`: `GET /health`, the floor of the HTTP stack.
//!
//! The same server, the same layers (request id, tracing, timeout, body
//! limit, content negotiation) and the same load generator as every other
//! scenario, but no token, no signature and no store: what is left is the
//! cost of HTTP itself, which every other figure is divided by.

use std::sync::Arc;

use super::client::{Failure, Http};
use super::driver::{self, Options, Steps, Workload};
use super::report::Report;

struct Health;

impl Workload for Health {
    type Worker = ();

    async fn begin(&self, _: &Http) -> Result<(), Failure> {
        Ok(())
    }

    async fn iterate(&self, http: &Http, _: &mut (), _: &mut Steps) -> Result<(), Failure> {
        http.get("/health", 200).await.map(drop)
    }
}

/// Runs the baseline.
pub async fn baseline(options: &Options) -> anyhow::Result<Report> {
    let http = Http::new(&options.target, options.concurrency)?;
    Ok(
        driver::drive("baseline", "requests", options, &http, Arc::new(Health))
            .await
            .note("GET /health: the HTTP stack and its layers, no token, no store"),
    )
}
