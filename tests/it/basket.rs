//! The stateless basket and the query-result exchange with pricing, walked by
//! links only.

use serde_json::json;

use crate::support::{spawn_app, token_of};

#[tokio::test]
async fn a_basket_is_walked_to_a_priced_checkout_by_links_only() {
    let app = spawn_app().await;
    let root = app.get("/").await;
    assert_eq!(root.status, 200);
    assert_eq!(root.content_type(), "application/hal+json");

    let basket = app.post_empty(&root.link("start-checkout")).await;
    assert_eq!(basket.status, 201);
    assert_eq!(basket.body["state"], json!({ "items": [] }));
    assert!(
        !basket.has_link("checkout"),
        "an empty basket cannot check out"
    );

    let basket = app
        .post_json(
            &basket.link("add-item"),
            json!({ "sku": "margherita", "quantity": 2 }),
        )
        .await;
    assert_eq!(basket.status, 200);
    let basket = app
        .post_json(&basket.link("add-item"), json!({ "sku": "miso-soup" }))
        .await;
    assert_eq!(
        basket.body["state"]["items"],
        json!([{ "sku": "margherita", "qty": 2 }, { "sku": "miso-soup", "qty": 1 }])
    );
    let basket = app
        .post_json(&basket.link("remove-item"), json!({ "sku": "miso-soup" }))
        .await;
    assert_eq!(basket.body["state"]["items"].as_array().unwrap().len(), 1);

    let priced = app.post_empty(&basket.link("checkout")).await;
    assert_eq!(priced.status, 200, "{:#}", priced.body);
    assert_eq!(priced.body["status"], "priced");
    assert_eq!(priced.body["state"]["total"], 2 * 950 + 250);
    assert_eq!(priced.body["conversation"], basket.body["conversation"]);
    assert!(priced.link("pay").contains("/pricing/checkouts/pay?state="));
    assert!(priced.body["_templates"]["pay"]["properties"][0]["name"] == "card_number");
    let link_header = priced.headers["link"].to_str().unwrap();
    assert!(link_header.contains("rel=\"pay\""));

    let cancelled = app.post_empty(&priced.link("cancel")).await;
    assert_eq!(cancelled.body["status"], "cancelled");
}

#[tokio::test]
async fn the_token_is_accepted_in_the_conversation_state_header() {
    let app = spawn_app().await;
    let basket = app.post_empty("/basket/checkouts").await;
    let token = token_of(&basket.link("add-item"));
    let response = app
        .client
        .post(app.url("/basket/checkouts/add-item"))
        .header("conversation-state", token)
        .json(&json!({ "sku": "tiramisu" }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
}

/// Every participant linked from `GET /` answers, and every link of its page
/// (but the journal, which wants a conversation id put in) leads somewhere.
#[tokio::test]
async fn every_participant_page_links_to_resources_that_answer() {
    let app = spawn_app().await;
    let root = app.get("/").await;
    let mut followed = 0;
    for participant in [
        "basket",
        "pricing",
        "payments",
        "orders",
        "deliveries",
        "couriers",
        "stores",
        "search",
    ] {
        let page = app.get(&root.link(participant)).await;
        assert_eq!(page.status, 200, "{participant}: {:#}", page.body);
        assert_eq!(page.body["participant"], participant);
        for (rel, link) in page.body["_links"].as_object().unwrap() {
            if rel == "journal" {
                continue;
            }
            let href = link["href"].as_str().unwrap();
            let target = app.get(href).await;
            assert_eq!(target.status, 200, "{participant} `{rel}` {href}");
            followed += 1;
        }
    }
    assert!(followed >= 8 * 4 + 8, "only {followed} links followed");
    let deliveries = app.get(&root.link("deliveries")).await;
    let list = app.get(&deliveries.link("deliveries")).await;
    assert!(list.body["_embedded"].is_object() || list.body["count"].is_number());
}
