//! Subscriptions: who hears store information's events (Out-Only,
//! publish-subscribe), the same contract as orders' subscriptions (the
//! behaviour is [`crate::messaging::publishing`]'s). Search subscribes here at
//! start, with a callback on itself.

crate::messaging::publishing::subscription_routes! {
    topic: super::events::TOPIC,
    tag: "stores",
    summary: "Subscribe a callback URL to store events (CloudEvents signed per Standard Webhooks)",
    operations: [stores_subscribe, stores_get_subscription, stores_unsubscribe],
}
