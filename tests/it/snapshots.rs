//! The contracts, snapshotted: HAL bodies and problem documents, with
//! tokens, ids, conversation ids and the port masked, so a change of contract
//! shows up as a reviewable diff (DESIGN §5; crates.io snapshots its API the
//! same way).

use serde_json::{Map, Value, json};

use crate::support::{Response, TestApp, spawn_app, token_of};
use crate::tokens::decode;

/// Masks what changes from run to run: `state=` tokens in hrefs, UUIDs, the
/// port, and `conversation` values.
pub fn mask(value: Value) -> Value {
    match value {
        Value::String(s) => Value::String(mask_text(&s)),
        Value::Array(items) => Value::Array(items.into_iter().map(mask).collect()),
        Value::Object(members) => Value::Object(
            members
                .into_iter()
                .map(|(k, v)| {
                    let v = match (k.as_str(), v) {
                        ("conversation", Value::String(_)) => json!("[conversation]"),
                        (_, v) => mask(v),
                    };
                    (k, v)
                })
                .collect::<Map<_, _>>(),
        ),
        other => other,
    }
}

fn mask_text(text: &str) -> String {
    let text = replace_after(
        text,
        "state=",
        |c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'),
        "[token]",
    );
    let text = replace_after(&text, "127.0.0.1:", |c| c.is_ascii_digit(), "[port]");
    mask_uuids(&text)
}

/// Replaces the run of `keep` characters following each `marker`.
fn replace_after(text: &str, marker: &str, keep: impl Fn(char) -> bool, with: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find(marker) {
        let (before, after) = rest.split_at(at + marker.len());
        out.push_str(before);
        let end = after.find(|c: char| !keep(c)).unwrap_or(after.len());
        if end > 0 {
            out.push_str(with);
        }
        rest = &after[end..];
    }
    out.push_str(rest);
    out
}

/// Replaces every `8-4-4-4-12` hex UUID with `[uuid]`.
fn mask_uuids(text: &str) -> String {
    const SHAPE: [usize; 5] = [8, 4, 4, 4, 12];
    let is_uuid = |s: &[u8]| {
        let mut i = 0;
        for (n, len) in SHAPE.iter().enumerate() {
            if !s[i..i + len].iter().all(u8::is_ascii_hexdigit) {
                return false;
            }
            i += len;
            if n < 4 {
                if s[i] != b'-' {
                    return false;
                }
                i += 1;
            }
        }
        true
    };
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < bytes.len() {
        if i + 36 <= bytes.len() && text.is_char_boundary(i) && is_uuid(&bytes[i..i + 36]) {
            out.push_str("[uuid]");
            i += 36;
        } else {
            let c = text[i..].chars().next().unwrap();
            out.push(c);
            i += c.len_utf8();
        }
    }
    out
}

/// What a snapshot records of a response: status, media type and the body.
fn contract(response: &Response) -> Value {
    mask(json!({
        "status": response.status,
        "content-type": response.content_type(),
        "body": response.body,
    }))
}

/// Both legs (`tests/it`, `tests/pg`) compare with the same files, so the
/// name does not take the crate's module path as insta's default would.
macro_rules! snapshot {
    ($name:literal, $response:expr) => {{
        let contract = contract(&$response);
        insta::with_settings!({ prepend_module_to_snapshot => false }, {
            insta::assert_json_snapshot!(concat!("it__snapshots__", $name), contract)
        })
    }};
}

/// A basket holding two margheritas.
async fn basket_with_an_item(app: &TestApp) -> Response {
    let basket = app.post_empty("/basket/checkouts").await;
    app.post_json(
        &basket.link("add-item"),
        json!({ "sku": "margherita", "quantity": 2 }),
    )
    .await
}

async fn add_item(app: &TestApp, body: Value) -> Response {
    let basket = app.post_empty("/basket/checkouts").await;
    app.post_json(&basket.link("add-item"), body).await
}

/// `add-item` of a fresh basket with a raw body and content type.
async fn add_item_raw(app: &TestApp, content_type: &str, body: Vec<u8>) -> Response {
    let basket = app.post_empty("/basket/checkouts").await;
    let response = app
        .client
        .post(basket.link("add-item"))
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .unwrap();
    Response::read(response).await
}

#[test]
fn the_mask_hides_tokens_uuids_ports_and_conversations() {
    let masked = mask(json!({
        "conversation": "0190f5d2-3c4a-7b8c-9d0e-1f2a3b4c5d6e",
        "_links": { "self": { "href": "http://127.0.0.1:41234/basket/checkouts/view?state=eyJh.eyJi.c2ln&x=1" } },
        "detail": "message 0190f5d2-3c4a-7b8c-9d0e-1f2a3b4c5d6e failed",
        "turn": 2,
    }));
    assert_eq!(
        masked,
        json!({
            "conversation": "[conversation]",
            "_links": { "self": { "href": "http://127.0.0.1:[port]/basket/checkouts/view?state=[token]&x=1" } },
            "detail": "message [uuid] failed",
            "turn": 2,
        })
    );
}

// ---------------------------------------------------------------------------
// HAL bodies along the checkout.

#[tokio::test]
async fn entry_point() {
    let app = spawn_app().await;
    snapshot!("entry_point", app.get("/").await);
}

#[tokio::test]
async fn empty_basket() {
    let app = spawn_app().await;
    snapshot!("empty_basket", app.post_empty("/basket/checkouts").await);
}

#[tokio::test]
async fn basket_with_one_line() {
    let app = spawn_app().await;
    snapshot!("basket_with_one_line", basket_with_an_item(&app).await);
}

#[tokio::test]
async fn priced_checkout() {
    let app = spawn_app().await;
    let basket = basket_with_an_item(&app).await;
    snapshot!(
        "priced_checkout",
        app.post_empty(&basket.link("checkout")).await
    );
}

#[tokio::test]
async fn cancelled_checkout() {
    let app = spawn_app().await;
    let basket = basket_with_an_item(&app).await;
    let priced = app.post_empty(&basket.link("checkout")).await;
    snapshot!(
        "cancelled_checkout",
        app.post_empty(&priced.link("cancel")).await
    );
}

#[tokio::test]
async fn pattern_catalog() {
    // The first two entries show the shape; the rest is the catalog's data.
    let app = spawn_app().await;
    let mut catalog = app.get("/patterns").await;
    let patterns = catalog.body["_embedded"]["patterns"]
        .as_array_mut()
        .expect("embedded patterns");
    assert!(patterns.len() > 2);
    patterns.truncate(2);
    snapshot!("pattern_catalog", catalog);
}

// ---------------------------------------------------------------------------
// Problem documents.

#[tokio::test]
async fn problem_malformed_json() {
    let app = spawn_app().await;
    let response = add_item_raw(&app, "application/json", br#"{"sku":"#.to_vec()).await;
    snapshot!("problem_400_malformed_json", response);
}

#[tokio::test]
async fn problem_unsupported_media_type() {
    let app = spawn_app().await;
    let response = add_item_raw(&app, "text/plain", b"margherita".to_vec()).await;
    snapshot!("problem_415_unsupported_media_type", response);
}

#[tokio::test]
async fn problem_body_too_large() {
    let app = spawn_app().await;
    let body = serde_json::to_vec(&json!({ "sku": "x".repeat(65 * 1024) })).unwrap();
    let response = add_item_raw(&app, "application/json", body).await;
    snapshot!("problem_413_body_too_large", response);
}

#[tokio::test]
async fn problem_not_found() {
    let app = spawn_app().await;
    snapshot!("problem_404_not_found", app.get("/no/such/thing").await);
}

#[tokio::test]
async fn problem_method_not_allowed() {
    let app = spawn_app().await;
    let response = app.get("/basket/checkouts/add-item").await;
    snapshot!("problem_405_method_not_allowed", response);
}

#[tokio::test]
async fn problem_unknown_sku() {
    let app = spawn_app().await;
    let response = add_item(&app, json!({ "sku": "caviar" })).await;
    snapshot!("problem_422_unknown_sku", response);
}

#[tokio::test]
async fn problem_quantity_zero() {
    let app = spawn_app().await;
    let response = add_item(&app, json!({ "sku": "margherita", "quantity": 0 })).await;
    snapshot!("problem_422_quantity_0", response);
}

#[tokio::test]
async fn problem_quantity_one_hundred() {
    let app = spawn_app().await;
    let response = add_item(&app, json!({ "sku": "margherita", "quantity": 100 })).await;
    snapshot!("problem_422_quantity_100", response);
}

#[tokio::test]
async fn problem_missing_token() {
    let app = spawn_app().await;
    let response = app
        .post_json("/basket/checkouts/add-item", json!({ "sku": "margherita" }))
        .await;
    snapshot!("problem_401_missing_token", response);
}

#[tokio::test]
async fn problem_bad_signature() {
    let app = spawn_app().await;
    let basket = app.post_empty("/basket/checkouts").await;
    let token = token_of(&basket.link("add-item"));
    let (header, claims) = decode(&token);
    let forged = crate::tokens::with_signature(&header, &claims, &[0; 64]);
    let response = app
        .post_json(
            &format!("/basket/checkouts/add-item?state={forged}"),
            json!({ "sku": "margherita" }),
        )
        .await;
    snapshot!("problem_401_bad_signature", response);
}

#[tokio::test]
async fn problem_step_not_allowed() {
    // An empty basket's token does not allow `checkout`.
    let app = spawn_app().await;
    let basket = app.post_empty("/basket/checkouts").await;
    let token = token_of(&basket.link("add-item"));
    let response = app
        .post_empty(&format!("/basket/checkouts/checkout?state={token}"))
        .await;
    snapshot!("problem_403_step_not_allowed", response);
}
