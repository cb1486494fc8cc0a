//! Several instances over one PostgreSQL database share the relay's work
//! without sending a message twice (claims with `FOR UPDATE SKIP LOCKED` and
//! a lease), and wake each other through LISTEN/NOTIFY.

use std::collections::HashSet;

use conversant::store::testing::TempPostgres;
use serde_json::json;

use crate::exchanges::priced;
use crate::receiver::Receiver;
use crate::support::spawn_with;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_over_one_database_deliver_each_event_once() {
    let Some(postgres) = tokio::task::spawn_blocking(TempPostgres::start)
        .await
        .unwrap()
    else {
        return;
    };
    let url = postgres.new_database().await;
    let receiver = Receiver::start().await;
    let configure = |c: &mut conversant::config::Config| {
        c.database_url = Some(url.clone());
        c.callback_allow = vec![receiver.authority()];
    };
    let (a, b) = (spawn_with(configure).await, spawn_with(configure).await);
    let subscribed = a
        .post_json(
            "/orders/subscriptions",
            json!({ "callback_url": receiver.url("/hooks") }),
        )
        .await;
    assert_eq!(subscribed.status, 201);

    let checkouts = 24;
    for n in 0..checkouts {
        let app = if n % 2 == 0 { &a } else { &b };
        let priced = priced(app).await;
        let paid = app
            .post_json(
                &priced.link("pay"),
                json!({ "card_number": "4242424242424242" }),
            )
            .await;
        assert_eq!(paid.status, 200, "{:#}", paid.body);
    }
    let delivered = receiver.wait_for(checkouts, 20).await;
    let ids: HashSet<&str> = delivered.iter().map(|d| d.header("webhook-id")).collect();
    assert_eq!(ids.len(), checkouts, "every order's event arrived");
    assert_eq!(delivered.len(), checkouts, "and none arrived twice");
    drop(postgres);
}
