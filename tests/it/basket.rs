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

// ---------------------------------------------------------------------------
// The stateful twin (`--basket-state store`): the same conversation, the
// basket's lines in the store, the token carrying only their version.

fn claims_of(href: &str) -> serde_json::Value {
    use base64::Engine;
    let token = token_of(href);
    let payload = token.split('.').nth(1).expect("a JWS");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .expect("base64url");
    serde_json::from_slice(&bytes).expect("JSON claims")
}

async fn stateful_app() -> crate::support::TestApp {
    crate::support::spawn_with(|c| c.basket_state = conversant::config::BasketStorage::Store).await
}

#[tokio::test]
async fn a_basket_kept_in_the_store_is_walked_like_the_stateless_one() {
    let app = stateful_app().await;
    let basket = app.post_empty("/basket/checkouts").await;
    assert_eq!(basket.status, 201, "{:#}", basket.body);
    assert_eq!(basket.body["state"], json!({ "items": [] }));
    assert_eq!(
        claims_of(&basket.link("self"))["st"],
        json!({ "version": 0 })
    );

    let basket = app
        .post_json(
            &basket.link("add-item"),
            json!({ "sku": "margherita", "quantity": 2 }),
        )
        .await;
    assert_eq!(basket.status, 200, "{:#}", basket.body);
    let basket = app
        .post_json(&basket.link("add-item"), json!({ "sku": "miso-soup" }))
        .await;
    let basket = app
        .post_json(&basket.link("remove-item"), json!({ "sku": "miso-soup" }))
        .await;
    assert_eq!(
        basket.body["state"],
        json!({ "items": [{ "sku": "margherita", "qty": 2 }] }),
        "the representation is the stateless basket's"
    );
    let claims = claims_of(&basket.link("self"));
    assert_eq!(
        claims["st"],
        json!({ "version": 3 }),
        "the token carries the version, not the lines"
    );
    assert_eq!(claims["seq"], 3);

    let viewed = app.get(&basket.link("self")).await;
    assert_eq!(viewed.status, 200);
    assert_eq!(viewed.body["state"], basket.body["state"]);
    assert_eq!(
        token_of(&viewed.link("self")),
        token_of(&basket.link("self")),
        "a current token is not signed again to read"
    );

    let priced = app.post_empty(&basket.link("checkout")).await;
    assert_eq!(priced.status, 200, "{:#}", priced.body);
    assert_eq!(priced.body["state"]["total"], 2 * 950 + 250);
}

#[tokio::test]
async fn a_stale_link_cannot_overwrite_a_basket_kept_in_the_store() {
    let app = stateful_app().await;
    let empty = app.post_empty("/basket/checkouts").await;
    let first = app
        .post_json(&empty.link("add-item"), json!({ "sku": "tiramisu" }))
        .await;
    assert_eq!(first.status, 200);

    // The empty basket's link again: the basket has moved on.
    let stale = app
        .post_json(&empty.link("add-item"), json!({ "sku": "diavola" }))
        .await;
    assert_eq!(stale.status, 409, "{:#}", stale.body);
    assert_eq!(stale.problem_type(), "/problems/stale-basket");
    assert_eq!(stale.body["conversation"], empty.body["conversation"]);
    let checkout = app.post_empty(&first.link("checkout")).await;
    assert_eq!(checkout.status, 200, "the current link still works");

    // The repair link shows the basket as it is, under a fresh token that works.
    let current = app.get(&stale.link("basket")).await;
    assert_eq!(current.status, 200, "{:#}", current.body);
    assert_eq!(
        current.body["state"],
        json!({ "items": [{ "sku": "tiramisu", "qty": 1 }] })
    );
    assert_eq!(
        claims_of(&current.link("self"))["st"],
        json!({ "version": 1 })
    );
    let next = app
        .post_json(&current.link("add-item"), json!({ "sku": "diavola" }))
        .await;
    assert_eq!(next.status, 200, "{:#}", next.body);
    assert_eq!(next.body["state"]["items"].as_array().unwrap().len(), 2);

    // Two turns racing from the same token: exactly one wins.
    let (add, remove) = (next.link("add-item"), next.link("remove-item"));
    let (a, b) = tokio::join!(
        app.post_json(&add, json!({ "sku": "margherita" })),
        app.post_json(&remove, json!({ "sku": "diavola" })),
    );
    let mut statuses = [a.status, b.status];
    statuses.sort_unstable();
    assert_eq!(statuses, [200, 409]);
}

#[tokio::test]
async fn the_stateless_basket_lets_an_older_link_branch() {
    let app = spawn_app().await;
    let empty = app.post_empty("/basket/checkouts").await;
    let first = app
        .post_json(&empty.link("add-item"), json!({ "sku": "tiramisu" }))
        .await;
    let branch = app
        .post_json(&empty.link("add-item"), json!({ "sku": "diavola" }))
        .await;
    assert_eq!(branch.status, 200);
    assert_eq!(
        branch.body["state"],
        json!({ "items": [{ "sku": "diavola", "qty": 1 }] })
    );
    assert_eq!(first.body["conversation"], branch.body["conversation"]);
    assert!(claims_of(&branch.link("self"))["st"]["items"].is_array());
}

/// Every resource the menu embeds has an address, and says it (`self`): a
/// generic HAL client (ketting) ignores an embedded resource without one,
/// and could not read a sku from the menu.
#[tokio::test]
async fn every_store_and_item_the_menu_embeds_links_to_itself() {
    let app = spawn_app().await;
    let menu = app.get("/stores/menu").await;
    assert_eq!(menu.status, 200);
    assert!(
        menu.body["_links"].get("stores").is_none(),
        "the embedded stores' rel is not also a link elsewhere"
    );
    let stores = menu.body["_embedded"]["stores"].as_array().unwrap();
    let mut items = 0;
    for store in stores {
        let own = app
            .get(store["_links"]["self"]["href"].as_str().unwrap())
            .await;
        assert_eq!(own.status, 200, "{:#}", own.body);
        assert_eq!(own.body["id"], store["id"]);
        for item in store["_embedded"]["items"].as_array().unwrap() {
            let own = app
                .get(item["_links"]["self"]["href"].as_str().unwrap())
                .await;
            assert_eq!(own.status, 200, "{:#}", own.body);
            assert_eq!(own.body["sku"], item["sku"]);
            assert_eq!(own.body["price"], item["price"]);
            assert_eq!(own.link("store"), store["_links"]["self"]["href"]);
            assert!(own.has_link("start-checkout"));
            items += 1;
        }
    }
    assert!(items > 0);
    let unknown = app.get("/stores/items/caviar").await;
    assert_eq!(unknown.status, 404);
    assert_eq!(unknown.problem_type(), "/problems/not-found");
}
