//! A split deployment: server A hosts basket and stores, server B hosts
//! pricing. They know each other only by the peers configuration; pricing
//! verifies basket's token with keys fetched from A's JWKS over HTTP.

use conversant::participant::Participant::{Basket, Pricing, Stores};
use serde_json::json;

use crate::support::{TestApp, spawn_pair};

/// A hosts basket and stores, B hosts pricing.
async fn split() -> (TestApp, TestApp) {
    spawn_pair(|a, base_a, b, base_b| {
        a.participants = vec![Basket, Stores];
        a.peers.insert(Pricing, base_b.to_owned());
        b.participants = vec![Pricing];
        b.peers.insert(Basket, base_a.to_owned());
        b.peers.insert(Stores, base_a.to_owned());
    })
    .await
}

#[tokio::test]
async fn a_basket_on_one_server_is_priced_by_pricing_on_another() {
    let (a, b) = split().await;
    assert!(
        a.get("/pricing/quotes").await.status == 404,
        "A does not host pricing"
    );

    let basket = a.post_empty("/basket/checkouts").await;
    assert_eq!(basket.status, 201);
    assert!(basket.link("add-item").starts_with(&a.base));
    let basket = a
        .post_json(
            &basket.link("add-item"),
            json!({ "sku": "margherita", "quantity": 2 }),
        )
        .await;
    assert_eq!(basket.status, 200, "{:#}", basket.body);

    let priced = a.post_empty(&basket.link("checkout")).await;
    assert_eq!(priced.status, 200, "{:#}", priced.body);
    assert_eq!(priced.body["status"], "priced");
    assert_eq!(priced.body["state"]["total"], 2 * 950 + 250);
    assert_eq!(priced.body["conversation"], basket.body["conversation"]);
    let pay = priced.link("pay");
    assert!(
        pay.starts_with(&format!("{}/pricing/checkouts/pay?state=", b.base)),
        "{pay}"
    );

    // The conversation goes on at B, by the links alone.
    let view = b.get(&priced.link("self")).await;
    assert_eq!(view.status, 200, "{:#}", view.body);
    let cancelled = b.post_empty(&priced.link("cancel")).await;
    assert_eq!(cancelled.body["status"], "cancelled");
    assert!(cancelled.link("start-checkout").starts_with(&a.base));
}

#[tokio::test]
async fn each_server_publishes_only_its_own_keys() {
    let (a, b) = split().await;
    let kids = |body: &serde_json::Value| -> Vec<String> {
        body["keys"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| {
                k["kid"]
                    .as_str()
                    .unwrap()
                    .split('.')
                    .next()
                    .unwrap()
                    .to_owned()
            })
            .collect()
    };
    assert_eq!(
        kids(&a.get("/.well-known/jwks.json").await.body),
        ["basket", "stores"]
    );
    assert_eq!(
        kids(&b.get("/.well-known/jwks.json").await.body),
        ["pricing"]
    );
}

#[tokio::test]
async fn pricing_refuses_a_basket_token_signed_by_a_stranger() {
    // B trusts basket keys only from A's JWKS: a basket of another deployment
    // (a kid B fetches for and does not find) cannot ask B for a quote.
    let (_a, b) = split().await;
    let stranger = crate::support::spawn_app().await;
    let basket = stranger.post_empty("/basket/checkouts").await;
    let token = crate::support::token_of(&basket.link("add-item"));
    let response = b
        .client
        .post(b.url("/pricing/quotes"))
        .header("conversation-state", token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
}
