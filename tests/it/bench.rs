//! `conversant bench`, for a moment: every scenario against a server on port
//! 0, called as library functions so the load generator cannot rot.

use std::time::Duration;

use conversant::bench::{self, Host, Options, Stop};
use conversant::config::{BasketStorage, RequestorState};

use crate::support::{Engine, scratch_database, spawn_app, spawn_with};

fn briefly(target: &str) -> Options {
    Options {
        concurrency: 4,
        stop: Stop::After(Duration::from_millis(700)),
        warmup: Duration::from_millis(100),
        ..Options::new(target)
    }
}

#[tokio::test]
async fn baseline_and_turn_run_without_errors() {
    let app = spawn_app().await;
    let options = Options {
        // The server runs in this process: CPU per request is measured too.
        server_pid: Some(std::process::id()),
        ..briefly(&app.base)
    };
    for report in [
        bench::baseline(&options).await.unwrap(),
        bench::turn(&options).await.unwrap(),
        bench::view(&options).await.unwrap(),
    ] {
        assert_eq!(report.errors, 0, "{report}");
        assert!(report.count > 0 && report.rate > 0.0, "{report}");
        assert!(report.latency.p50_ms <= report.latency.max_ms, "{report}");
        assert!(
            report.extra.contains_key("server_cpu_us_per_op"),
            "{report}"
        );
    }
}

#[tokio::test]
async fn checkout_completes_whole_conversations() {
    let app = spawn_app().await;
    let report = bench::checkout(&briefly(&app.base)).await.unwrap();
    assert_eq!(report.errors, 0, "{report}");
    assert!(report.count > 0, "{report}");
    for step in ["start", "add-item", "checkout", "pay"] {
        assert!(report.steps[step].count > 0, "{step}: {report}");
    }
}

#[tokio::test]
async fn a_paced_checkout_offers_its_rate_and_counts_the_wait_for_a_worker() {
    let app = spawn_app().await;
    // 20/s, and the run ends 0.8 s after it starts (0.1 s of warm-up and
    // 0.7 s measured): 16 conversations are due before the end (at 0, 50,
    // ... 750 ms), however fast or slow the server is, and the ones taken up
    // during the warm-up are not counted.
    let paced = Options {
        rate: Some(20.0),
        ..briefly(&app.base)
    };
    let report = bench::checkout(&paced).await.unwrap();
    assert_eq!(report.errors, 0, "{report}");
    assert!((1..=16).contains(&report.count), "{report}");
    assert_eq!(report.extra["offered_per_s"], 20.0, "{report}");
    // Far more offered than one worker can take: one is due every 0.1 ms,
    // and a whole checkout takes well over 0.5 ms, so by the end of the
    // 300 ms warm-up the worker has reached conversations due at 60 ms at
    // the latest. Every conversation counted after it started at least
    // 240 ms after it was due, and its latency says so; timed from when the
    // worker took it up, it would be a checkout's own few milliseconds.
    let swamped = Options {
        rate: Some(10_000.0),
        concurrency: 1,
        warmup: Duration::from_millis(300),
        ..briefly(&app.base)
    };
    let report = bench::checkout(&swamped).await.unwrap();
    assert_eq!(report.errors, 0, "{report}");
    assert!(report.count > 0, "{report}");
    assert!(report.latency.p50_ms >= 200.0, "{report}");
}

#[tokio::test]
async fn the_asynchronous_payment_turn_runs_in_both_requestor_modes() {
    for mode in [RequestorState::Store, RequestorState::Token] {
        let app = spawn_with(|c| c.requestor_state = mode).await;
        let report = bench::pay_async(&briefly(&app.base)).await.unwrap();
        assert_eq!(report.errors, 0, "{mode:?}: {report}");
        assert_eq!(report.latency, report.steps["pay"], "latency is pay's");
    }
}

#[tokio::test]
async fn turn_stateful_runs_against_a_basket_kept_in_the_store_only() {
    let app = spawn_with(|c| c.basket_state = BasketStorage::Store).await;
    let report = bench::turn_stateful(&briefly(&app.base)).await.unwrap();
    assert_eq!(report.errors, 0, "{report}");
    assert!(report.count > 0, "{report}");

    let stateless = spawn_app().await;
    let report = bench::turn_stateful(&briefly(&stateless.base))
        .await
        .unwrap();
    assert_eq!(report.count, 0, "{report}");
    let error = report.first_error.unwrap_or_default();
    assert!(error.contains("--basket-state store"), "{error}");
}

#[tokio::test]
async fn relay_delivers_every_webhook_to_the_bench_subscriber() {
    let receiver = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let allow = receiver.local_addr().unwrap().to_string();
    let app = spawn_with(|c| c.callback_allow = vec![allow]).await;
    let report = bench::relay(&briefly(&app.base), receiver, 2)
        .await
        .unwrap();
    assert_eq!(report.errors, 0, "{report}");
    assert!(report.count > 0, "{report}");
    assert_eq!(
        report.extra["messages_delivered"], report.extra["messages_expected"],
        "{report}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commit_measures_the_raw_commit_rate_at_full_speed_and_paced() {
    let dir = tempfile::tempdir().unwrap();
    let url = scratch_database(dir.path()).await;
    for (rate, fan_out) in [(None, 1), (Some(200.0), 1), (None, 3)] {
        let report = bench::commit(&briefly(""), &url, rate, fan_out)
            .await
            .unwrap();
        assert_eq!(report.errors, 0, "{report}");
        assert!(report.count > 0 && report.rate > 0.0, "{report}");
        assert_eq!(
            report.extra["messages_per_transaction"], fan_out,
            "{report}"
        );
        assert_eq!(
            report.count % fan_out as u64,
            0,
            "whole publishes: {report}"
        );
        if rate.is_some() {
            assert!(report.rate < 300.0, "paced at 200/s: {report}");
        }
    }
}

/// On SQLite the bench hosts the server (one process per file); on
/// PostgreSQL it commits into a running server's database from outside.
/// Each transaction publishes to two subscribers: two messages per commit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relay_direct_delivers_every_committed_message_once() {
    let receiver = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let report = match crate::ENGINE {
        Engine::Sqlite => {
            let url = scratch_database(dir.path()).await;
            bench::relay_direct(&briefly(""), &url, Host::InProcess, receiver, None, 2).await
        }
        Engine::Postgres => {
            let app = spawn_app().await;
            let url = app.database();
            bench::relay_direct(&briefly(&app.base), &url, Host::External, receiver, None, 2).await
        }
    }
    .unwrap();
    assert_eq!(report.errors, 0, "{report}");
    assert!(report.count > 0, "{report}");
    assert_eq!(report.extra["messages_per_transaction"], 2, "{report}");
    assert_eq!(
        report.extra["messages_delivered"], report.extra["messages_committed"],
        "{report}"
    );
    assert_eq!(report.extra["duplicates"], 0, "{report}");
    assert!(report.latency.p50_ms > 0.0, "{report}");
}

#[tokio::test]
async fn open_conversations_reads_the_servers_memory() {
    let app = spawn_app().await;
    let options = Options {
        concurrency: 4,
        ..Options::new(&app.base)
    };
    let report = bench::open_conversations(&options, std::process::id(), &[0, 50], 50)
        .await
        .unwrap();
    assert_eq!(report.errors, 0, "{report}");
    let levels = &report.extra["rss_by_open"];
    assert_eq!(levels["50"]["open"], 50, "{report}");
    assert!(levels["0"]["rss_kib"].as_u64().unwrap() > 0, "{report}");
    assert_eq!(report.extra["oldest_token_still_works"], true, "{report}");
}

#[tokio::test]
async fn the_token_keeps_its_size_over_many_turns() {
    let app = spawn_app().await;
    let report = bench::token_growth(&app.base, 40).await.unwrap();
    let at_start = report.extra["token_bytes_at_start"].as_u64().unwrap();
    let after = report.extra["token_bytes_after"].as_u64().unwrap();
    assert!(after < 1024, "{report}");
    assert!(after <= at_start + 4, "only `seq` may grow: {report}");
}
