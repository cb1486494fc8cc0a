//! The pattern catalog: every pattern of the talk, in our own words, with an
//! honest status.
//!
//! A pattern is `available` only when it runs for real here, and then its
//! `try` link starts an example of it; otherwise it is `planned`. The catalog
//! never claims a pattern works before it does.

use serde::Serialize;

use crate::participant::Participant::{self, *};

pub use crate::messaging::rules::FaultRule;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Available,
    Planned,
}

/// One pattern of the talk.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct PatternInfo {
    pub slug: &'static str,
    pub group: &'static str,
    pub name: &'static str,
    /// What the pattern is, in our own words.
    pub explanation: &'static str,
    /// Where it lives in the example domain.
    pub example: &'static str,
    pub participants: &'static [Participant],
    pub fault_rule: FaultRule,
    /// How faults propagate, in a sentence.
    pub faults: &'static str,
    pub status: Status,
}

macro_rules! pattern {
    ($slug:literal, $group:literal, $name:literal, $status:ident, $rule:ident, [$($p:ident),*],
     $explanation:literal, $example:literal, $faults:literal) => {
        PatternInfo {
            slug: $slug,
            group: $group,
            name: $name,
            explanation: $explanation,
            example: $example,
            participants: &[$($p),*],
            fault_rule: FaultRule::$rule,
            faults: $faults,
            status: Status::$status,
        }
    };
}

pub const PATTERNS: &[PatternInfo] = &[
    pattern!(
        "in-only",
        "messaging",
        "In-Only (fire and forget)",
        Available,
        NoFault,
        [Pricing, Orders],
        "The requestor sends one message and expects nothing back: the provider acknowledges receipt with 202 and owns whatever happens next.",
        "A paid checkout tells orders to raise the order.",
        "None reach the requestor: a failure is dead-lettered at the provider."
    ),
    pattern!(
        "out-only",
        "messaging",
        "Out-Only (notification, publish-subscribe)",
        Available,
        NoFault,
        [Orders],
        "The provider speaks first, to whoever subscribed: each subscriber gets the event, and nobody's answer changes anything but delivery.",
        "Orders publishes order.placed to webhook subscribers and on a pull feed.",
        "Delivery failures are retried by the publisher; subscribers never fault back."
    ),
    pattern!(
        "in-out-command",
        "messaging",
        "In-Out: command-acknowledgement",
        Available,
        FaultReplacesMessage,
        [Pricing, Payments],
        "The requestor asks the provider to do something and waits for an acknowledgement that it was done.",
        "Pricing asks payments to take a payment; payments acknowledges with the payment id.",
        "A fault replaces the acknowledgement (declined card, insufficient funds, processor down)."
    ),
    pattern!(
        "in-out-query",
        "messaging",
        "In-Out: query-result",
        Available,
        FaultReplacesMessage,
        [Basket, Pricing],
        "The requestor asks a question and the reply is the answer; nothing changes at the provider.",
        "Basket asks pricing to price the basket; pricing answers with the priced basket.",
        "A fault replaces the result (an unknown item, pricing unreachable)."
    ),
    pattern!(
        "out-in",
        "messaging",
        "Out-In (solicit-response)",
        Available,
        PerExchange,
        [Deliveries, Couriers],
        "The provider asks its subscribers and correlates the answers that arrive before a deadline.",
        "Deliveries asks the couriers whether they are available; those close and free confirm.",
        "Late or missing answers are ignored; the solicitation simply has fewer confirmations."
    ),
    pattern!(
        "stateful-requestor",
        "activity",
        "Stateful requestor (correlation store)",
        Available,
        PerExchange,
        [Pricing],
        "The requestor keeps the pending state of an exchange in its own store, keyed by a correlation id the reply brings back.",
        "With --requestor-state store, pricing parks a pending asynchronous payment in its store and its Reply-To carries only the correlation id; by default (token) the Reply-To continuation itself carries the state, signed, and pricing stores nothing.",
        "As for the exchange; a reply with an unknown correlation id is refused."
    ),
    pattern!(
        "stateless-requestor",
        "activity",
        "Stateless requestor (state in the message, HATEOAS)",
        Available,
        PerExchange,
        [Basket, Pricing],
        "The state of the conversation travels signed in the messages themselves, inside the links to the next steps; no participant remembers it.",
        "The basket lives only in its token; every link of every response carries it.",
        "A forged, expired or misdirected token is refused with 401 or 403."
    ),
    pattern!(
        "journals",
        "activity",
        "Activities know messages sent and received",
        Available,
        PerExchange,
        [Basket, Pricing, Payments, Orders, Deliveries],
        "Each participant records the messages it sends and receives, so a conversation can be rebuilt from their journals.",
        "GET /conversations/{cid} merges the journals of all participants.",
        "Faults are journaled by both sides like any other message."
    ),
    pattern!(
        "subscriber-tracking",
        "activity",
        "Provider tracks its subscribers",
        Available,
        PerExchange,
        [Deliveries, Couriers],
        "To correlate solicited answers, the provider keeps a registry of whom it asked.",
        "Deliveries' courier registry.",
        "An answer from an unknown subscriber is refused."
    ),
    pattern!(
        "no-fault",
        "repair",
        "No Fault",
        Available,
        NoFault,
        [Orders],
        "A failure of an In-Only message stays with the provider (a dead letter); the requestor never hears.",
        "Raising an order for a closed store, sent In-Only.",
        "The provider dead-letters and journals it."
    ),
    pattern!(
        "robust-in-only",
        "repair",
        "Message Triggers Fault: Robust In-Only",
        Available,
        MessageTriggersFault,
        [Pricing, Orders, Payments],
        "An In-Only message that may trigger a fault, sent to the fault-to address the requestor gave.",
        "Orders cannot place the order and faults back to the checkout, which refunds.",
        "The fault goes to the requestor's fault-to continuation."
    ),
    pattern!(
        "robust-out-only",
        "repair",
        "Message Triggers Fault: Robust Out-Only",
        Available,
        MessageTriggersFault,
        [Stores, Search],
        "A notification that may trigger a fault back to the publisher: the event carries a fault-to continuation, and a subscriber that cannot process it acknowledges the delivery, then sends a fault there.",
        "Store information publishes store.updated; search cannot index an impossible location and faults back, so the listing needs attention and offers a repair link.",
        "The subscriber faults to the fault-to carried by the event; the publisher marks the listing until an update fixes it."
    ),
    pattern!(
        "robust-in-out",
        "repair",
        "Fault Replaces Message: Robust In-Out",
        Available,
        FaultReplacesMessage,
        [Pricing, Payments],
        "The provider answers with a fault instead of the reply, and the fault carries the links that repair the conversation.",
        "Payments declines a card; the fault offers another payment method or cancel.",
        "The fault replaces the reply."
    ),
    pattern!(
        "in-out-retry",
        "repair",
        "In-Out-Retry",
        Available,
        FaultReplacesMessage,
        [Pricing, Payments],
        "The requestor times out and retries with the same message id; the provider de-duplicates, so the effect happens once.",
        "Pricing retries a slow payment; the card is charged once.",
        "After the last retry, the timeout becomes a fault for the client."
    ),
    pattern!(
        "transactional-outbox",
        "repair",
        "Transactional Outbox",
        Available,
        PerExchange,
        [Orders, Payments],
        "The provider writes its change and the message announcing it in one transaction; a relay sends the message afterwards.",
        "Orders writes the order and order.placed together.",
        "Undeliverable messages are retried, then dead-lettered with a redeliver link."
    ),
    pattern!(
        "transactional-inbox",
        "repair",
        "Transactional Inbox",
        Available,
        PerExchange,
        [Orders, Payments],
        "The receiver records the message id in the same transaction as its effect, so a duplicate does nothing twice.",
        "Payments records the message id with the payment.",
        "A duplicate gets the original answer replayed."
    ),
    pattern!(
        "turn-taking",
        "conversation",
        "Turn Taking",
        Available,
        PerExchange,
        [Basket, Pricing, Payments, Orders],
        "The conversation is a sequence of In-Out pairs; each turn passes control to the next participant, with no one in charge.",
        "The checkout: basket, pricing, payments, orders; orders' order.placed passes the same conversation on to the delivery saga.",
        "Each exchange's own rule; repair links let the client take another turn."
    ),
    pattern!(
        "routing-slip",
        "conversation",
        "Routing Slip",
        Available,
        PerExchange,
        [Basket, Stores, Pricing, Payments, Orders],
        "The requestor chooses the steps; a signed slip travels with the message and each step marks itself done.",
        "Validate address, price, pay, raise order, notify.",
        "A failed step compensates the completed ones in reverse order."
    ),
    pattern!(
        "process-manager",
        "conversation",
        "Process Manager (Saga)",
        Available,
        PerExchange,
        [Deliveries, Couriers, Orders, Payments],
        "A central manager holds the state of each conversation and decides every next step, with timeouts and compensation.",
        "Deliveries: solicit couriers, assign, pick up, deliver.",
        "Timeouts re-solicit; exhausted retries compensate and report."
    ),
];

pub fn by_slug(slug: &str) -> Option<&'static PatternInfo> {
    PATTERNS.iter().find(|p| p.slug == slug)
}

/// The talk's comparison of the three conversation types, each row with the
/// running example that shows it.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct Comparison {
    pub aspect: &'static str,
    pub turn_taking: &'static str,
    pub routing_slip: &'static str,
    pub process_manager: &'static str,
}

pub const COMPARISON: &[Comparison] = &[
    Comparison {
        aspect: "flow complexity",
        turn_taking: "simple: each turn is one In-Out pair; the checkout is basket, pricing, payments, orders",
        routing_slip: "linear: the itinerary, in order; compensation runs it backwards",
        process_manager: "any: states, timers, retries and branches (deliveries' saga)",
    },
    Comparison {
        aspect: "rigidity",
        turn_taking: "the sequence is in the participants' links: changing it changes them",
        routing_slip: "flexible per conversation: the requestor chooses the steps; steps cannot change them",
        process_manager: "flexible: the manager decides every next step at run time",
    },
    Comparison {
        aspect: "central point of failure",
        turn_taking: "none: control passes from participant to participant",
        routing_slip: "none: the slip travels; each step forwards it",
        process_manager: "the manager (its state is durable, its timers survive restarts)",
    },
    Comparison {
        aspect: "topology",
        turn_taking: "peer to peer, pairwise",
        routing_slip: "a chain, decided by the requestor",
        process_manager: "a hub and its spokes",
    },
    Comparison {
        aspect: "administration and reporting",
        turn_taking: "only by rebuilding the conversation from journals (/conversations/{cid})",
        routing_slip: "the slip itself (inspect) and its outcome feed (/routing-slips/events)",
        process_manager: "central: /deliveries (by state, paged), /deliveries/{id}, /deliveries/summary",
    },
];
