//! Subscriptions: who hears orders' events (Out-Only, publish-subscribe; the
//! behaviour is [`crate::messaging::publishing`]'s): `POST`, `GET` and
//! `DELETE /orders/subscriptions`.

crate::messaging::publishing::subscription_routes! {
    topic: super::events::TOPIC,
    tag: "orders",
    summary: "Subscribe a callback URL to order events (CloudEvents signed per Standard Webhooks)",
    operations: [subscribe, get_subscription, unsubscribe],
}
