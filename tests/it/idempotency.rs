//! Idempotency-Key records never stick: a key whose request is gone is free
//! again, at once when the request's future was dropped (the client hung up,
//! a handler panicked), after the record's lease when nothing was left to
//! release it (the process was killed). Before that it answers 409.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::routing::post;
use conversant::config::Config;
use conversant::messaging::chaos::ChaosConfig;
use conversant::messaging::idempotency::{self, request_hash};
use conversant::participant::Participant;
use conversant::store::{IdempotencyBegin, Store, now_ms};
use http::{HeaderMap, HeaderValue, Method, Request, StatusCode, Uri};
use tokio::time::Instant;
use tower::ServiceExt;
use tower_http::catch_panic::CatchPanicLayer;

use crate::support::{Response, TestApp, scratch_database, spawn_app, spawn_with};

const ITEM: &[u8] = br#"{"sku":"tiramisu"}"#;

/// Adds the item to the basket through `add`, with `key`.
async fn add(app: &TestApp, add: &str, key: &str) -> Response {
    let sent = app
        .client
        .post(add)
        .header("idempotency-key", key)
        .header("content-type", "application/json")
        .body(ITEM)
        .send()
        .await
        .expect("POST");
    Response::read(sent).await
}

/// What the server keeps a request of [`add`] under.
fn hash_of(add: &str) -> String {
    let url = reqwest::Url::parse(add).unwrap();
    let target: Uri = match url.query() {
        Some(query) => format!("{}?{query}", url.path()),
        None => url.path().to_owned(),
    }
    .parse()
    .unwrap();
    let mut headers = HeaderMap::new();
    headers.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    request_hash(&Method::POST, &target, &headers, ITEM)
}

/// Sends [`add`] until it is no longer refused as in flight (10 s at most).
async fn add_once_free(app: &TestApp, url: &str, key: &str) -> Response {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let response = add(app, url, key).await;
        if response.status != 409 {
            return response;
        }
        assert!(Instant::now() < deadline, "the key never came free");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

#[tokio::test]
async fn a_key_whose_request_died_is_free_again_once_its_lease_ends() {
    let app = spawn_app().await;
    let basket = app.post_empty("/basket/checkouts").await;
    let url = basket.link("add-item");
    let key = "died";
    // What a request killed while it held the key leaves behind: its
    // record, in flight, with a lease nothing will release it before.
    let store = Store::connect(&app.database()).await.unwrap();
    let begun = store
        .idempotency_begin(
            "basket",
            key,
            &hash_of(&url),
            Duration::from_secs(3600),
            Duration::from_secs(3),
        )
        .await
        .unwrap();
    let IdempotencyBegin::New(dead) = begun else {
        panic!("{begun:?}")
    };

    let deadline = Instant::now() + Duration::from_secs(15);
    let mut refused = 0;
    let answer = loop {
        let sent_at = now_ms();
        let response = add(&app, &url, key).await;
        if response.status != 409 {
            assert!(
                now_ms() >= dead.lease_until(),
                "answered within the dead request's lease: {:#}",
                response.body
            );
            break response;
        }
        assert_eq!(response.problem_type(), "/problems/idempotency-in-flight");
        assert!(
            sent_at < dead.lease_until(),
            "refused after the lease ended"
        );
        refused += 1;
        assert!(Instant::now() < deadline, "the key never came free");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(refused > 0, "the key was free before its lease ended");
    assert_eq!(answer.status, 200, "{:#}", answer.body);
    assert!(answer.headers.get("idempotent-replayed").is_none());
    let again = add(&app, &url, key).await;
    assert_eq!(again.status, 200);
    assert!(again.headers.get("idempotent-replayed").is_some());
    assert_eq!(again.body, answer.body, "the retry's answer is kept");
}

#[tokio::test]
async fn a_key_whose_client_hung_up_gets_its_request_s_answer_when_it_ends() {
    // Every basket request takes a second, and the lease outlasts the test.
    // The client gives up first, but its request runs on: the retry is held
    // off while it runs, then gets its answer (the effect happened once).
    let app = spawn_with(|c| {
        c.chaos = ChaosConfig::parse("basket:delay=1s").unwrap();
        c.idempotency_lease = Duration::from_secs(3600);
    })
    .await;
    let basket = app.post_empty("/basket/checkouts").await;
    let url = basket.link("add-item");
    let key = "hung-up";
    let hung_up = app
        .client
        .post(&url)
        .header("idempotency-key", key)
        .header("content-type", "application/json")
        .body(ITEM)
        .timeout(Duration::from_millis(300))
        .send()
        .await;
    assert!(
        hung_up.as_ref().is_err_and(reqwest::Error::is_timeout),
        "{hung_up:?}"
    );
    let held_off = add(&app, &url, key).await;
    assert_eq!(held_off.status, 409, "{:#}", held_off.body);
    let answer = add_once_free(&app, &url, key).await;
    assert_eq!(answer.status, 200, "{:#}", answer.body);
    assert_eq!(
        answer
            .headers
            .get("idempotent-replayed")
            .map(|v| v.to_str().unwrap()),
        Some("true"),
        "the retry gets the first request's answer"
    );
}

#[tokio::test]
async fn a_key_whose_handler_panicked_is_free_again_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::new(dir.path());
    config.participants = vec![Participant::Basket];
    config.database_url = Some(scratch_database(dir.path()).await);
    config.idempotency_lease = Duration::from_secs(3600);
    let (_, state) = conversant::server::build_with_state(config, "http://127.0.0.1:9".into())
        .await
        .unwrap();
    // A handler that panics the first time, behind the layers in the
    // server's order: catch-panic outside, so the panic unwinds through
    // the idempotency layer, which never sees the 500.
    let panics = Arc::new(AtomicBool::new(true));
    let handler = move || {
        let panics = panics.clone();
        async move {
            assert!(!panics.swap(false, Ordering::SeqCst), "a handler bug");
            "done"
        }
    };
    let router = Router::new()
        .route("/basket/flaky", post(handler))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            idempotency::layer,
        ))
        .layer(CatchPanicLayer::new());
    let send = || {
        let request = Request::post("/basket/flaky")
            .header("idempotency-key", "panicked")
            .body(Body::empty())
            .unwrap();
        router.clone().oneshot(request)
    };
    assert_eq!(
        send().await.unwrap().status(),
        StatusCode::INTERNAL_SERVER_ERROR
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    let answer = loop {
        let response = send().await.unwrap();
        if response.status() != StatusCode::CONFLICT {
            break response;
        }
        assert!(Instant::now() < deadline, "the key never came free");
        tokio::time::sleep(Duration::from_millis(25)).await;
    };
    assert_eq!(answer.status(), StatusCode::OK);
    let replayed = send().await.unwrap();
    assert_eq!(replayed.headers()["idempotent-replayed"], "true");
    state.background.shut_down();
}
