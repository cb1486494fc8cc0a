//! Idempotency-Key records never stick: a key whose request died with its
//! process (so nothing released it) is free again once the record's lease
//! has ended. Before that it answers 409.

use std::time::Duration;

use conversant::messaging::idempotency::request_hash;
use conversant::store::{IdempotencyBegin, Store, now_ms};
use http::{HeaderMap, HeaderValue, Method, Uri};
use tokio::time::Instant;

use crate::support::{Response, TestApp, spawn_app};

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
